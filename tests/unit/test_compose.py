"""What comes first in a digest, what counts as a blocker or a mention, and how long items
are cut."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.compose import (
    MAX_ITEM_CHARS,
    MAX_ITEMS_SHOWN,
    MAX_THREAD_ITEMS,
    DigestEntry,
    compose,
    cut_long,
    handles_for,
    is_blocker,
    mentions,
    says_resolved,
)


def entry(update_id: int, thread_id: int, team: str = "eng", for_you: str = "") -> DigestEntry:
    return DigestEntry(
        update_id=update_id,
        thread_id=thread_id,
        thread_title=f"Thread {thread_id}",
        team_slug=team,
        team_name=team.title(),
        author_name="Alice",
        created_at=datetime(2026, 11, 24, 9, tzinfo=UTC),
        body=f"Update {update_id}",
        reply_address=f"{team}+r.x{thread_id}@tidings.test",
        archive_url=f"http://archive/updates/{update_id}",
        thread_url=f"http://archive/threads/{thread_id}",
        for_you=for_you,
    )


@pytest.mark.parametrize(
    "body",
    [
        "Blocker: staging is down",
        "Shipped X.\nBlocked: waiting on legal",
        "- **Blocker:** no credentials",
        "BLOCKED : vendor API",
    ],
)
def test_blocker_lines_are_recognised(body: str) -> None:
    assert is_blocker(body)


@pytest.mark.parametrize(
    "body", ["Nothing blocking me.", "We unblocked the deploy.", "The blockers list is empty"]
)
def test_text_about_blockers_is_not_a_blocker(body: str) -> None:
    assert not is_blocker(body)


def test_a_thread_says_its_blocker_is_resolved() -> None:
    assert says_resolved("Resolved: ops sent the credentials")
    assert says_resolved("We're unblocked now, thanks!")
    assert not says_resolved("Still waiting.")


def test_mentions_by_handle_first_name_or_address() -> None:
    handles = handles_for("Alice Liddell", "alice.l@example.com")
    assert mentions("Can @alice.l review?", handles, "alice.l@example.com")
    assert mentions("@Alice, thoughts?", handles, "alice.l@example.com")
    assert mentions("Ask alice.l@example.com", handles, "alice.l@example.com")
    assert not mentions("Mail me at bob@alice.example", handles, "alice.l@example.com")
    assert not mentions("@alicia knows", handles, "alice.l@example.com")


def test_long_items_are_cut_at_a_boundary_and_short_ones_kept() -> None:
    short = "One paragraph.\n\nTwo."
    assert cut_long(short) == (short, False)
    long = "\n\n".join(f"Paragraph {i} " + "word " * 40 for i in range(20))
    body, cut = cut_long(long)
    assert cut and len(body) <= MAX_ITEM_CHARS + 2 and body.endswith(" …")
    assert long.startswith(body.removesuffix(" …").rstrip())


def test_a_cut_never_leaves_a_code_block_open() -> None:
    body, cut = cut_long("Log:\n```\n" + "line\n" * 100 + "```\nDone.")
    assert cut and body.count("```") % 2 == 0


@given(st.text(max_size=5000))
def test_cutting_keeps_a_prefix_of_the_text(text: str) -> None:
    body, cut = cut_long(text)
    if cut:
        kept = body.removesuffix(" …").removesuffix("\n```").rstrip()
        assert text.startswith(kept)
    else:
        assert body == text


def test_for_you_comes_first_and_is_not_repeated_below() -> None:
    entries = [entry(1, 10), entry(2, 11, for_you="mentions you"), entry(3, 12, team="ops")]
    digest = compose(entries)
    assert [e.update_id for e in digest.for_you] == [2]
    assert [t.slug for t in digest.teams] == ["eng", "ops"]
    shown = [e.update_id for t in digest.teams for s in t.threads for e in s.entries]
    assert shown == [1, 3] and digest.count == 3


def test_open_blockers_lead_their_team_even_when_sent_before() -> None:
    old_blocker = entry(7, 20)  # shown in an earlier digest, still open
    digest = compose([entry(8, 21), entry(9, 22)], [old_blocker, entry(9, 22)])
    [eng] = digest.teams
    assert [b.update_id for b in eng.blockers] == [7, 9]
    assert [e.update_id for s in eng.threads for e in s.entries] == [8]  # 9 shown once


def test_a_long_absence_is_summarised_per_thread() -> None:
    entries = [entry(i, 30) for i in range(1, 13)]
    [section] = compose(entries).teams[0].threads
    assert [e.update_id for e in section.entries] == list(range(13 - MAX_THREAD_ITEMS, 13))
    assert section.earlier == 12 - MAX_THREAD_ITEMS


def test_a_long_digest_shows_what_fits_and_counts_the_rest_per_thread() -> None:
    """After MAX_ITEMS_SHOWN items, threads only say how many new items they have: every
    thread is still there (with its link), and every item is counted once."""
    mine = [entry(1000 + n, 1000, for_you="mentions you") for n in range(3)]
    entries = mine + [entry(thread * 10 + n, thread) for thread in range(20) for n in range(5)]
    digest = compose(entries)
    [eng] = digest.teams
    shown = [e for s in eng.threads for e in s.entries]
    assert len(digest.for_you) + len(shown) == MAX_ITEMS_SHOWN
    assert [s.first.thread_id for s in eng.threads] == list(range(20))
    assert sum(len(s.entries) + s.earlier for s in eng.threads) == 100
    cut = [s for s in eng.threads if s.earlier]
    assert cut and all(s.earlier == 5 - len(s.entries) for s in cut)
    # A thread that is shown keeps its newest items.
    partial = [s for s in eng.threads if s.entries and s.earlier]
    assert all(s.entries[-1].update_id % 10 == 4 for s in partial)
