"""What a chat channel is sent (digest/chat.py): Slack's text and blocks, Teams' Adaptive
Card, sender text that stays text, and posts that stay within the receivers' limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from digest.chat import (
    MAX_THREAD_ITEMS,
    SLACK_MAX_BLOCKS,
    SLACK_MAX_TEXT,
    TEAMS_MAX_BYTES,
    ChatItem,
    ChatSection,
    encode,
    is_urgent,
    lay_out,
    section_payload,
    slack_section,
    slack_urgent,
    teams_section,
    teams_urgent,
)

BASE = "https://tidings.example.com"
HOSTILE = (
    "Ship it <!channel> <@U024BE7LH> <https://evil.example|the docs> &"
    " [click](https://evil.example) **now**"
)


def item(
    n: int, thread: int = 1, body: str = "", blocker: bool = False, author: str = "Alice"
) -> ChatItem:
    return ChatItem(
        update_id=n,
        thread_id=thread,
        thread_title=f"Thread {thread}",
        author=author,
        body=body or f"Update number {n}.",
        url=f"{BASE}/updates/{n}",
        thread_url=f"{BASE}/threads/{thread}",
        blocker=blocker,
    )


def section(*items: ChatItem) -> ChatSection:
    return ChatSection("Engineering", f"{BASE}/teams/eng", list(items))


def slack_texts(payload: dict[str, Any]) -> Iterator[str]:
    for block in payload["blocks"]:
        if "text" in block:
            yield block["text"]["text"]
        for element in block.get("elements", []):
            yield element["text"]


def text_objects(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for block in payload["blocks"]:
        if "text" in block:
            yield block["text"]
        yield from block.get("elements", [])


def card(payload: dict[str, Any]) -> dict[str, Any]:
    [attachment] = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    return attachment["content"]


def runs(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [run for block in card(payload)["body"] for run in block["inlines"]]


def test_urgent_means_a_blocker_or_an_urgent_opening() -> None:
    assert is_urgent("Urgent: the build is red")
    assert is_urgent("urgent : prod is down")
    assert is_urgent("URGENT the certificate expires tonight")
    assert is_urgent("**Urgent:** call me")
    assert not is_urgent("Not urgent: whenever you have time")
    assert not is_urgent("Urgently needed: coffee")  # not the word, not all capitals
    assert not is_urgent("The release is urgent: ship it")  # not how it starts


def test_sender_text_cannot_make_slack_links_or_mentions() -> None:
    hostile = ChatItem(
        update_id=7,
        thread_id=3,
        thread_title="Release <!here>",
        author="Mallory <@U1>",
        body=HOSTILE,
        url=f"{BASE}/updates/7",
        thread_url=f"{BASE}/threads/3",
    )
    for payload in (slack_section(section(hostile)), slack_urgent("Eng & Ops", hostile)):
        raw = json.dumps(payload)
        for markup in ("<!channel>", "<!here>", "<@U024BE7LH>", "<@U1>", "<https://evil"):
            assert markup not in raw
        shown = "\n".join(slack_texts(payload))
        assert (
            "&lt;!channel&gt; &lt;@U024BE7LH&gt; &lt;https://evil.example|the docs&gt; &amp;"
            in shown
        )
        assert "Release &lt;!here&gt;" in shown and "Mallory &lt;@U1&gt;" in shown
        # Our own links are links; Slack does no parsing of its own on any text.
        assert f"<{BASE}/updates/7|Open>" in shown and f"<{BASE}/threads/3|" in shown
        assert all(obj["verbatim"] for obj in text_objects(payload))
        assert payload["unfurl_links"] is False
    assert (
        slack_urgent("Eng & Ops", hostile)["text"]
        == "Urgent in Eng &amp; Ops from Mallory &lt;@U1&gt;"
    )


def test_sender_text_reaches_teams_only_as_text_runs() -> None:
    hostile = item(7, body=HOSTILE, author="Mallory [x](https://evil.example)")
    for payload in (teams_section(section(hostile)), teams_urgent("Engineering", hostile)):
        body = card(payload)["body"]
        assert {block["type"] for block in body} == {"RichTextBlock"}  # never Markdown
        texts = [run["text"] for run in runs(payload)]
        assert any(HOSTILE in text for text in texts)
        assert "Mallory [x](https://evil.example): " in texts
        links = {run["selectAction"]["url"] for run in runs(payload) if "selectAction" in run}
        assert links <= {f"{BASE}/updates/7", f"{BASE}/threads/1", f"{BASE}/teams/eng"}


def test_teams_gets_an_adaptive_card_in_the_message_envelope() -> None:
    payload = teams_section(section(item(1), item(2, blocker=True, body="Blocker: VPN")))
    assert payload["type"] == "message"
    content = card(payload)
    assert content["type"] == "AdaptiveCard" and content["version"] == "1.4"
    assert content["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open the archive", "url": f"{BASE}/teams/eng"}
    ]
    texts = [run["text"] for run in runs(payload)]
    assert texts[0] == "Engineering: 2 new updates in 1 thread"
    assert texts.index("Blocker") < texts.index("Update number 1. ")


def test_blockers_come_first_then_threads_in_order_of_their_first_update() -> None:
    items = [
        item(1, thread=10),
        item(2, thread=20),
        item(3, thread=10),
        item(4, thread=30, body="Blocker: waiting on legal", blocker=True),
    ]
    layout = lay_out(items)
    assert [b.update_id for b in layout.blockers] == [4]
    assert [(t.title, [i.update_id for i in t.items]) for t in layout.threads] == [
        ("Thread 10", [1, 3]),
        ("Thread 20", [2]),
    ]
    assert layout.more == 0
    shown = "\n".join(slack_texts(slack_section(section(*items))))
    assert shown.index("waiting on legal") < shown.index("Thread 10") < shown.index("Thread 20")
    assert shown.index("Update number 1.") < shown.index("Update number 3.")
    assert shown.startswith("*Engineering: 4 new updates in 3 threads*")


def test_a_busy_thread_shows_its_newest_updates_and_counts_the_rest() -> None:
    items = [item(n) for n in range(1, 9)]
    [thread] = lay_out(items).threads
    assert [i.update_id for i in thread.items] == list(range(9 - MAX_THREAD_ITEMS, 9))
    assert thread.earlier == 8 - MAX_THREAD_ITEMS
    shown = "\n".join(slack_texts(slack_section(section(*items))))
    assert f"_{8 - MAX_THREAD_ITEMS} earlier updates in this thread_" in shown
    assert "Update number 1." not in shown and "Update number 8." in shown


def test_a_huge_day_stays_within_slacks_limits_and_says_what_it_left_out() -> None:
    long = "word & <b> " * 2_000
    items = [item(n, thread=n // 2, body=long, blocker=n % 7 == 0) for n in range(1, 400)]
    payload = slack_section(section(*items))
    assert len(payload["blocks"]) <= SLACK_MAX_BLOCKS
    assert all(len(text) <= SLACK_MAX_TEXT for text in slack_texts(payload))
    closing = payload["blocks"][-1]["elements"][0]["text"]
    assert closing.startswith("…and ") and f"<{BASE}/teams/eng|see the archive>" in closing
    more = int(closing.split()[1])
    layout = lay_out(items)
    assert more >= layout.more > 0
    # Every update is either shown, counted as a thread's earlier ones, or in "more".
    shown = sum(text.count("|Open>") for text in slack_texts(payload))
    earlier = sum(t.earlier for t in layout.threads)
    assert shown + earlier + more == len(items)


def test_a_huge_day_stays_within_teams_size_limit() -> None:
    long = "détail " * 2_000
    items = [item(n, thread=n // 3, body=long) for n in range(1, 400)]
    payload = teams_section(section(*items))
    assert len(encode(payload)) <= TEAMS_MAX_BYTES
    texts = [run["text"] for run in runs(payload)]
    assert texts[-1] == "see the archive" and texts[-2].startswith("…and ")


def test_a_quiet_day_ends_with_a_plain_link_to_the_archive() -> None:
    payload = section_payload("slack", section(item(1)))
    assert payload["blocks"][-1]["elements"][0]["text"] == (
        f"<{BASE}/teams/eng|Engineering in the archive>"
    )
    assert "…and" not in json.dumps(section_payload("teams", section(item(1))))


def test_an_urgent_post_carries_the_update_and_a_link_to_its_thread() -> None:
    urgent = item(5, thread=2, body="Urgent: prod is down.\n\nAll hands please.")
    slack = slack_urgent("Engineering", urgent)
    [block] = slack["blocks"]
    assert block["text"]["text"] == (
        f":rotating_light: *Urgent* in Engineering: *<{BASE}/threads/2|Thread 2>*\n"
        f"*Alice*: Urgent: prod is down. All hands please. <{BASE}/updates/5|Open>"
    )
    blocker = item(6, body="Blocker: no VPN", blocker=True)
    assert slack_urgent("Engineering", blocker)["text"] == "Blocker in Engineering from Alice"
    teams = teams_urgent("Engineering", urgent)
    assert card(teams)["actions"][0]["url"] == f"{BASE}/threads/2"
    assert [run["text"] for run in runs(teams)][:3] == ["Urgent", " in Engineering: ", "Thread 2"]


def test_a_long_urgent_update_is_cut_within_slacks_limit() -> None:
    urgent = item(5, body="<&> " * 5_000)
    [block] = slack_urgent("Engineering", urgent)["blocks"]
    text = block["text"]["text"]
    assert len(text) <= SLACK_MAX_TEXT and "…" in text and "|Open>" in text
