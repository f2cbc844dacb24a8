"""What a digest says and in which order, read back through the `email` package the way a
mail client would: "for you" first, open blockers on top of their team until resolved,
every item in both parts with a reply address that verifies.

Runs on SQLite and on the live PostgreSQL; the worker's run is called with a chosen `now`.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app import store
from app.db import make_engine, session_scope, upgrade
from app.models import OutboundMessage, Thread, Update
from app.settings import Settings
from app.tokens import parse_recipient, verify_reply_token
from digest.build import run_digests
from digest.compose import MAX_ITEMS_SHOWN
from digest.layout import DigestLayout

DOMAIN = "tidings.test"
START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def world(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    upgrade(database_url)
    engine = make_engine(database_url)
    with session_scope(engine) as session:
        for slug, name in (("eng", "Engineering"), ("ops", "Operations")):
            store.create_team(session, slug, name)
            for who in ("alice", "bob", "carol"):
                store.add_member(session, slug, f"{who}@example.com", who.title())
        for _, membership in store.memberships_of(session, 1) + store.memberships_of(session, 2):
            membership.joined_at = START - timedelta(days=1)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("var"), database_url=database_url, mail_domain=DOMAIN
    )


def post(
    engine: Engine, team: str, author: str, body: str, title: str, when: datetime
) -> tuple[int, int]:
    """(thread id, update id) of a new update, in the thread titled `title` (made if new)."""
    with session_scope(engine) as session:
        slug_team = store.get_team(session, team)
        thread = session.exec(
            select(Thread).where(Thread.team_id == slug_team.id, Thread.title == title)
        ).first()
        if thread is None:
            thread = Thread(team_id=slug_team.id, title=title, created_at=when)  # type: ignore[arg-type]
            session.add(thread)
            session.flush()
        update = store.add_update(
            session,
            thread=thread,
            author=store.find_person(session, f"{author}@example.com"),  # type: ignore[arg-type]
            body=body,
            placed_by="new-thread",
        )
        update.created_at = when
        return thread.id, update.id  # type: ignore[return-value]


def latest_digest(engine: Engine, settings: Settings, person: str) -> EmailMessage:
    """The person's newest planned digest, rendered as the sender would render it."""
    with session_scope(engine) as session:
        row = session.exec(
            select(OutboundMessage)
            .where(
                OutboundMessage.recipient == f"{person}@example.com",
                OutboundMessage.kind == "digest",
            )
            .order_by(OutboundMessage.id.desc())  # type: ignore[union-attr]
        ).first()
        assert row is not None, f"no digest for {person}"
        raw = DigestLayout(settings).render(session, row)
        return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def parts(msg: EmailMessage) -> tuple[str, str]:
    return msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def test_what_needs_the_reader_comes_first(world: Engine, settings: Settings) -> None:
    post(world, "eng", "carol", "Draft of the API plan is up.", "API plan", START)
    post(world, "eng", "alice", "Looks good; one question on paging.", "API plan", START)
    post(world, "eng", "bob", "Paging: cursor-based, see RFC.", "API plan", START + timedelta(1))
    post(world, "ops", "bob", "Can @alice check the pager rota?", "Pager", START + timedelta(1))
    post(world, "ops", "carol", "Blocker: the VPN certificate expired.", "VPN", START)
    post(world, "eng", "carol", "Unrelated news.", "News", START + timedelta(1))
    run_digests(world, settings, START + timedelta(days=1, hours=2), force=True)

    digest = latest_digest(world, settings, "alice")
    assert digest.get_content_type() == "multipart/alternative"
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert digest["List-Id"] == f"Tidings digest <digest.{DOMAIN}>"  # two teams
    text, html = parts(digest)
    for part in (text, html):
        for phrase in (
            "Paging: cursor-based",  # a reply in a thread Alice wrote in
            "Can @alice check the pager rota?",  # a mention
            "Blocker: the VPN certificate expired.",
            "Unrelated news.",
            "Draft of the API plan is up.",
        ):
            assert part.count(phrase) == 1, (phrase, part)
    assert text.index("== For you ==") < text.index("Paging: cursor-based")
    assert text.index("Can @alice") < text.index("==== Engineering ====")
    assert text.index("==== Operations ====") < text.index("[Blocker] VPN")
    # Carol's draft came before Alice wrote in the thread: it is not a reply to her.
    assert text.index("==== Engineering ====") < text.index("Draft of the API plan is up.")
    assert html.index("For you") < html.index("Paging: cursor-based") < html.index("Unrelated")
    assert "Replied in your thread" in html and "Mentions you" in html and "Blocker" in html
    # Every numbered reply address verifies and names Alice.
    with session_scope(world) as session:
        keys = store.load_reply_keys(session, settings.ensure_secret_key())
        alice = store.find_person(session, "alice@example.com")
    addresses = re.findall(r"\[\d+\] ((?:eng|ops)\+r\.[a-z2-7]+@" + DOMAIN + ")", text)
    assert len(addresses) == 4  # one per thread: API plan, Pager, VPN, News
    assert {
        verify_reply_token(parse_recipient(a, DOMAIN).token, keys).person_id  # type: ignore[arg-type, union-attr]
        for a in addresses
    } == {alice.id}  # type: ignore[union-attr]
    assert all(len(line) <= 72 for line in text.splitlines() if "://" not in line)


def test_open_blocker_stays_on_top_until_resolved(world: Engine, settings: Settings) -> None:
    day3 = START + timedelta(days=2)
    post(world, "ops", "carol", "New rota is live.", "Rota", day3)
    run_digests(world, settings, day3 + timedelta(hours=2), force=True)
    text, _ = parts(latest_digest(world, settings, "bob"))
    assert "Blocker: the VPN certificate expired." in text  # sent yesterday, still open
    assert "New rota is live." in text

    day4 = START + timedelta(days=3)
    post(world, "ops", "alice", "Resolved: new certificate installed.", "VPN", day4)
    run_digests(world, settings, day4 + timedelta(hours=2), force=True)
    text, _ = parts(latest_digest(world, settings, "bob"))
    assert "Resolved: new certificate installed." in text
    assert "[Blocker]" not in text


def test_a_week_old_blocker_drops_off(world: Engine, settings: Settings) -> None:
    posted = START + timedelta(days=20)
    post(world, "eng", "carol", "Blocked: waiting for the vendor.", "Vendor", posted)
    run_digests(world, settings, posted + timedelta(hours=1), force=True)
    assert "[Blocker] Vendor" in parts(latest_digest(world, settings, "bob"))[0]
    later = posted + timedelta(days=8)
    post(world, "eng", "carol", "Something else.", "Other", later)
    run_digests(world, settings, later + timedelta(hours=1), force=True)
    text, _ = parts(latest_digest(world, settings, "bob"))
    assert "Something else." in text and "waiting for the vendor" not in text


def test_long_item_is_cut_with_a_link_to_the_rest(world: Engine, settings: Settings) -> None:
    long = "\n\n".join(f"Section {i}: " + "detail " * 60 for i in range(12))
    _, update_id = post(world, "eng", "carol", long, "Long read", START + timedelta(days=30))
    run_digests(world, settings, START + timedelta(days=30, hours=1), force=True)
    text, html = parts(latest_digest(world, settings, "bob"))
    assert "Section 0:" in text and "Section 11:" not in text
    assert "Read the rest" in text and "Read the rest" in html
    assert f"/updates/{update_id}" in html  # the permalink, which survives signing in


def test_nothing_new_sends_nothing(world: Engine, settings: Settings) -> None:
    now = START + timedelta(days=40)
    run_digests(world, settings, now, force=True)
    before = latest_digest(world, settings, "bob")["Message-ID"]
    run = run_digests(world, settings, now + timedelta(hours=1), force=True)
    assert run.planned == 0 and latest_digest(world, settings, "bob")["Message-ID"] == before


def test_an_answer_to_the_blocker_question_is_shown_as_a_blocker(
    world: Engine, settings: Settings
) -> None:
    asked = ["What did you get done?", "What's next?", "Anything blocking you?"]
    with session_scope(world) as session:
        store.set_checkin(session, "ops", None, asked, blocker=3)
        team = store.get_team(session, "ops")
        thread = store.checkin_thread(session, team, (START + timedelta(days=50)).date())
        title = thread.title
    when = START + timedelta(days=50)
    post(
        world,
        "ops",
        "carol",
        "1. Rota\n2. Alerts\n3. Waiting on the vendor's API keys.",
        title,
        when,
    )
    post(world, "ops", "alice", "1. Docs\n2. More docs\n3. None", title, when)
    run_digests(world, settings, when + timedelta(hours=1), force=True)
    text, _ = parts(latest_digest(world, settings, "bob"))
    assert text.count(f"[Blocker] {title}") == 1
    blocker_at = text.index(f"[Blocker] {title}")
    assert text.index("Waiting on the vendor's API keys.") > blocker_at
    assert "3. None" in text  # Alice's answer is there, as an ordinary item


def test_a_busy_day_fits_before_gmail_clips_and_every_thread_is_linked(
    world: Engine, settings: Settings
) -> None:
    """Gmail hides everything after 102 KB of HTML (the unsubscribe link with it): a digest
    of 90 long updates in 18 threads shows what fits in full, and each other thread as a
    count with its link, in both parts."""
    when = START + timedelta(days=60)
    threads = {}
    for n in range(90):
        body = f"Item {n}. " + "A long paragraph about the rollout and what comes next. " * 25
        threads[f"Topic {n % 18}"], _ = post(world, "eng", "carol", body, f"Topic {n % 18}", when)
    run_digests(world, settings, when + timedelta(hours=1), force=True)
    digest = latest_digest(world, settings, "bob")
    text, html = parts(digest)
    assert len(html.encode()) < 102 * 1024
    assert html.count('class="card') == MAX_ITEMS_SHOWN
    for title, thread_id in threads.items():
        assert f"/threads/{thread_id}" in html and f"== {title} ==" in text
    counts = [int(n) for n in re.findall(r"(\d+) new updates?:", text)]
    counts += [int(n) for n in re.findall(r"(\d+) earlier updates?", text)]
    assert sum(counts) + MAX_ITEMS_SHOWN == 90
    assert digest["Subject"] == "90 new updates in 18 threads"


def test_readers_of_the_same_digest_each_get_their_own_reply_addresses(
    world: Engine, settings: Settings
) -> None:
    """Alice and Bob get the same items, so one delivery pass composes that body once and
    keeps it; every message still carries only its own reader's signed addresses."""
    when = START + timedelta(days=70)
    post(world, "eng", "carol", "Shared news for everyone.", "Shared", when)
    run_digests(world, settings, when + timedelta(hours=1), force=True)
    layout = DigestLayout(settings)
    with session_scope(world) as session:
        keys = store.load_reply_keys(session, settings.ensure_secret_key())
        rows = {
            who: session.exec(
                select(OutboundMessage)
                .where(OutboundMessage.recipient == f"{who}@example.com")
                .order_by(OutboundMessage.id.desc())  # type: ignore[union-attr]
            ).first()
            for who in ("alice", "bob")
        }
        ids = {who: store.find_person(session, f"{who}@example.com").id for who in rows}  # type: ignore[union-attr]
        for who in ("alice", "bob", "alice", "bob", "alice"):
            msg = email.message_from_bytes(
                layout.render(session, rows[who]), policy=email.policy.default
            )  # type: ignore[arg-type]
            text, html = parts(msg)  # type: ignore[arg-type]
            found = re.findall(r"eng\+r\.[a-z2-7]+@" + DOMAIN, text + html + str(msg["Reply-To"]))
            assert len(found) >= 3 and "Shared news for everyone." in text
            readers = {
                verify_reply_token(parse_recipient(a, DOMAIN).token, keys).person_id  # type: ignore[arg-type, union-attr]
                for a in found
            }
            assert readers == {ids[who]}, who
            assert msg["To"].addresses[0].addr_spec == f"{who}@example.com"


def test_a_late_check_in_answer_says_when_it_was_given(world: Engine, settings: Settings) -> None:
    """An answer mailed days after the check-in joins that day's thread, and the digest
    says on which day (the author's) it was given, so it does not read as that day's."""
    day = START + timedelta(days=80)
    with session_scope(world) as session:
        title = store.checkin_thread(session, store.get_team(session, "eng"), day.date()).title
    late = day + timedelta(days=2, hours=3)
    post(world, "eng", "carol", "Finished the export after all.", title, late)
    post(world, "eng", "alice", "On time.", title, day + timedelta(hours=1))
    run_digests(world, settings, late + timedelta(hours=1), force=True)
    text, html = parts(latest_digest(world, settings, "bob"))
    stamp = late.strftime("%a %d %b")
    assert f"(answered on {stamp})" in text and f"answered on {stamp}" in html
    assert text.count("answered on") == 1  # Alice answered on the day


def numbered_links(text: str) -> dict[int, str]:
    """The text part's link list: {number: URL or address}."""
    _, _, listed = text.rpartition("\nLinks:\n")
    return {int(n): target for n, target in re.findall(r"^\[(\d+)\] (\S+)$", listed, re.M)}


def test_readers_sharing_parts_of_a_digest_each_get_it_right(
    world: Engine, settings: Settings
) -> None:
    """One pass renders the thread sections that several digests show once, numbered
    from wherever each digest has them: all but Dave's start with items for their reader
    (so the sections below count their links on from there, and a thread's reply link
    keeps the number it got up there), Bob's shows Tokyo times, each leaves its reader's
    own posts out, Dave's what came before he joined. Each message is what it would be
    if it were rendered alone, says how many items it leaves out, has every link number
    listed, pointing where its item says, and only its own reader's reply addresses, each
    for its item's thread."""
    when = START + timedelta(days=100)
    with session_scope(world) as session:
        # Dave joined after Alice's post: his digest shows the same newest items of
        # "Cache 0" as Bob's, with one fewer left out.
        dave = store.add_member(session, "eng", "dave@example.com", "Dave")
        for person, membership in store.memberships_of(session, store.get_team(session, "eng").id):  # type: ignore[arg-type]
            if person.id == dave.id:
                membership.joined_at = when - timedelta(hours=1)
    post(world, "eng", "alice", "My first take on the cache.", "Cache 0", when - timedelta(1))
    for n in range(40):  # more than a digest shows: later threads are only counted
        body = f"Cache note {n}. " + ("A long paragraph on eviction. " * 70 if n == 3 else "")
        post(world, "eng", "carol", body, f"Cache {n % 8}", when + timedelta(minutes=n))
    post(world, "eng", "bob", "@alice can you check the cache numbers?", "Cache 1", when)
    # Last in a thread the digests only count: Bob's counts one fewer there.
    post(world, "eng", "bob", "Bob's cache 7 numbers.", "Cache 7", when + timedelta(hours=1))
    with session_scope(world) as session:
        store.find_person(session, "bob@example.com").timezone = "Asia/Tokyo"  # type: ignore[union-attr]
    try:
        run_digests(world, settings, when + timedelta(hours=2), force=True)
        with session_scope(world) as session:
            keys = store.load_reply_keys(session, settings.ensure_secret_key())
            people = {
                who: store.find_person(session, f"{who}@example.com")
                for who in ("alice", "bob", "carol", "dave")
            }
            rows = {
                who: session.exec(
                    select(OutboundMessage)
                    .where(OutboundMessage.recipient == f"{who}@example.com")
                    .order_by(OutboundMessage.id.desc())  # type: ignore[union-attr]
                ).first()
                for who in people
            }
            new = select(Update).where(Update.created_at >= when - timedelta(1))
            thread_of = {u.id: u.thread_id for u in session.exec(new)}
            layout = DigestLayout(settings)
            for who in ("alice", "bob", "carol", "dave", "alice", "bob"):
                reader = people[who]
                assert reader is not None
                raw = layout.render(session, rows[who])  # type: ignore[arg-type]
                assert raw == DigestLayout(settings).render(session, rows[who])  # type: ignore[arg-type]
                text, html = parts(email.message_from_bytes(raw, policy=email.policy.default))  # type: ignore[arg-type]
                links = numbered_links(text)
                assert sorted(links) == list(range(1, len(links) + 1))
                above = text.partition("\nLinks:\n")[0]
                assert {int(n) for n in re.findall(r"\[(\d+)\]", above)} == set(links)
                for reply, archive in re.findall(r"Reply \[(\d+)\]  Archive \[(\d+)\]", text):
                    update_id = int(links[int(archive)].rpartition("/updates/")[2])
                    token = parse_recipient(links[int(reply)], DOMAIN).token  # type: ignore[union-attr]
                    claim = verify_reply_token(token, keys)  # type: ignore[arg-type]
                    assert (claim.person_id, claim.thread_id) == (reader.id, thread_of[update_id])
                addresses = re.findall(r"mailto:(eng\+r\.[a-z2-7]+@" + DOMAIN + ")", html)
                assert addresses and {
                    verify_reply_token(parse_recipient(a, DOMAIN).token, keys).person_id  # type: ignore[arg-type, union-attr]
                    for a in addresses
                } == {reader.id}
                shown = when.astimezone(ZoneInfo(reader.timezone)).strftime("%a %d %b, %H:%M")
                assert shown in text and shown in html
                # Replies in threads they wrote in, and a mention, come first.
                assert ("== For you ==" in text) == (who != "dave")
                [covered] = re.findall(r"^(\d+) new updates since", text, re.M)
                left_out = re.findall(r"\((\d+) (?:new|earlier) updates?", text)
                assert text.count("Reply [") + sum(map(int, left_out)) == int(covered)
                counted = re.search(r"\(5 new updates: see the archive \[\d+\]\)", text)
                assert (counted is not None) == (who != "carol")  # threads only counted
                mine = {"alice": "My first take", "bob": "Bob's", "carol": "Cache note"}
                assert mine.get(who, "My first take") not in text
    finally:
        with session_scope(world) as session:
            store.find_person(session, "bob@example.com").timezone = "UTC"  # type: ignore[union-attr]


def test_a_reply_in_a_thread_you_wrote_in_days_ago_is_for_you(
    world: Engine, settings: Settings
) -> None:
    """Alice wrote in a thread before her last digest; Carol answers there now. Alice's
    and Bob's digests cover the same new updates, but only Alice's has it "for you"."""
    day = START + timedelta(days=110)
    post(world, "eng", "alice", "Which region do we fail over to?", "Failover", day)
    run_digests(world, settings, day + timedelta(hours=1), force=True)
    later = day + timedelta(days=2)
    post(world, "eng", "carol", "Frankfurt, as in the runbook.", "Failover", later)
    post(world, "eng", "carol", "Unrelated: the office is closed on Friday.", "Office", later)
    run_digests(world, settings, later + timedelta(hours=1), force=True)
    alice, _ = parts(latest_digest(world, settings, "alice"))
    bob, _ = parts(latest_digest(world, settings, "bob"))
    assert alice.index("[replied in your thread] Failover") < alice.index("Frankfurt")
    assert alice.index("== For you ==") < alice.index("==== Engineering ====")
    assert "Frankfurt" in bob and "== For you ==" not in bob
