"""What a chat channel is sent: a team's new updates, or one urgent update, as the JSON a
Slack-compatible or Microsoft Teams-compatible incoming webhook takes. Pure: no database,
no clock, no network; `digest/webhooks.py` gathers the updates and queues the posts.

Slack gets `text` (the summary, for notifications) and Block Kit `blocks` of `mrkdwn`
sections. Sender text is escaped (`&`, `<`, `>`: the only characters Slack treats as
markup for links and mentions such as `<!channel>`), and every text object is
`verbatim`, so Slack neither turns bare names into mentions nor words into links.
Formatting characters (`*`, `_`, `~`, `` ` ``) are left as written: they can only change
how the text looks.

Microsoft Teams gets an Adaptive Card in the message envelope (`type: message`,
`attachments` of content type `application/vnd.microsoft.card.adaptive`). That is what
both kinds of Teams incoming webhook take today: the Workflows ("When a Teams webhook
request is received") that replace the retired Office 365 connectors accept Adaptive
Cards only, and the connectors' own incoming webhooks accept them too; a MessageCard
would work only on the latter. Sender text goes into `TextRun`s of `RichTextBlock`s,
which Teams never reads as Markdown, so it cannot make links or mentions either.

Both stay within the receivers' limits: Slack's 50 blocks and 3,000 characters a text
object, Teams' 28 KB a message. What does not fit is counted in a last line, "and N
more", which links to the team's archive.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SLACK_MAX_BLOCKS = 50
SLACK_MAX_TEXT = 3_000
# Teams refuses messages over about 28 KB; the margin covers the envelope's own bytes.
TEAMS_MAX_BYTES = 27_000
ADAPTIVE_CARD_VERSION = "1.4"  # RichTextBlock and TextRun links need 1.2; Teams renders 1.4

# Blockers and threads shown in a section; the rest is counted in "and N more". Each is one
# Slack block: with the summary and the closing line, a post has at most 50.
MAX_GROUPS = SLACK_MAX_BLOCKS - 2
MAX_ITEMS = 60  # updates shown in a section in all
MAX_THREAD_ITEMS = 5  # a busy thread shows its newest few and counts the earlier ones
# Characters shown (once escaped, for Slack) of each update in a section, of an urgent
# update posted on its own, of a thread title and of an author's name: a section's lines
# stay well under Slack's 3,000 characters a text.
SECTION_EXCERPT = 280
URGENT_EXCERPT = 1_500
TITLE_CHARS = 150
NAME_CHARS = 80

_URGENT = re.compile(r"^\s*(?:\*\*|__)?\s*(?:(?i:urgent)\s*:|URGENT\b)")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class ChatItem:
    """One update as a channel sees it."""

    update_id: int
    thread_id: int
    thread_title: str
    author: str
    body: str  # the update's text (Markdown, as posted)
    url: str  # the update's permalink in the archive
    thread_url: str
    blocker: bool = False


@dataclass(frozen=True)
class ChatSection:
    """A team's new updates since its channel's last post, in order of posting."""

    team_name: str
    team_url: str  # the team's archive
    items: Sequence[ChatItem]


@dataclass(frozen=True)
class ThreadGroup:
    title: str
    url: str
    items: list[ChatItem]  # shown, oldest first
    earlier: int  # its older new updates, left out to keep the post short


@dataclass(frozen=True)
class SectionLayout:
    """What a section shows: blockers first, then the other updates by thread (threads in
    the order of their first update), and how many updates it leaves out altogether."""

    blockers: list[ChatItem]
    threads: list[ThreadGroup]
    more: int


def is_urgent(body: str) -> bool:
    """An update is urgent when its text starts `Urgent:` (any case) or `URGENT`; blockers
    are urgent too, which the caller decides (digest/updates.py knows check-in answers)."""
    return bool(_URGENT.match(body))


def excerpt(body: str, limit: int) -> str:
    """The text on one line, cut at a word boundary to at most `limit` characters."""
    flat = _SPACE.sub(" ", body).strip()
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def lay_out(
    items: Sequence[ChatItem], max_items: int = MAX_ITEMS, max_groups: int = MAX_GROUPS
) -> SectionLayout:
    """Blockers first, then threads, within `max_items` updates and `max_groups` blockers
    and threads; every update left out is counted, either as a thread's earlier updates or
    in `more`."""
    shown_items = groups = 0
    blockers: list[ChatItem] = []
    for item in items:
        if item.blocker and shown_items < max_items and groups < max_groups:
            blockers.append(item)
            shown_items += 1
            groups += 1
    by_thread: dict[int, list[ChatItem]] = {}
    for item in items:
        if not item.blocker:
            by_thread.setdefault(item.thread_id, []).append(item)
    threads: list[ThreadGroup] = []
    for thread_items in by_thread.values():
        keep = min(MAX_THREAD_ITEMS, len(thread_items), max_items - shown_items)
        if keep <= 0 or groups >= max_groups:
            break
        first = thread_items[0]
        threads.append(
            ThreadGroup(
                first.thread_title,
                first.thread_url,
                thread_items[len(thread_items) - keep :],
                len(thread_items) - keep,
            )
        )
        shown_items += keep
        groups += 1
    counted = shown_items + sum(t.earlier for t in threads)
    return SectionLayout(blockers, threads, len(items) - counted)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _summary(section: ChatSection) -> str:
    threads = len({item.thread_id for item in section.items})
    return (
        f"{section.team_name}: {_plural(len(section.items), 'new update')}"
        f" in {_plural(threads, 'thread')}"
    )


def _more_line(count: int) -> str:
    return f"…and {count} more"


# Slack ---------------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Text as Slack shows it literally: `<!channel>` or `<https://x|y>` stay characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_text(text: str, limit: int) -> str:
    """`text` on one line, escaped, cut to at most `limit` characters once escaped (each
    `&`, `<`, `>` takes four or five)."""
    chars = limit
    while True:
        escaped = slack_escape(excerpt(text, chars))
        if len(escaped) <= limit or chars <= 1:
            return escaped
        chars = max(1, chars * limit // len(escaped) - 1)


def _slack_link(url: str, label: str) -> str:
    return f"<{slack_escape(url)}|{_slack_text(label, TITLE_CHARS)}>"


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _slack_section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _slack_item_line(item: ChatItem, limit: int) -> str:
    author = _slack_text(item.author, NAME_CHARS)
    return f"*{author}*: {_slack_text(item.body, limit)} {_slack_link(item.url, 'Open')}"


def _fit_lines(lines: list[str], limit: int) -> tuple[str, int]:
    """The lines joined, as many as fit in `limit` characters; and how many did not."""
    kept: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) + 1 > limit:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept), len(lines) - len(kept)


def slack_section(section: ChatSection) -> dict[str, Any]:
    """The team's new updates as a Slack message: a summary line, each blocker, each
    thread with its newest updates, and a closing link to the archive."""
    layout = lay_out(section.items)
    summary = _summary(section)
    blocks = [_slack_section(f"*{slack_escape(summary)}*")]
    more = layout.more
    for item in layout.blockers:
        heading = f":warning: *Blocker* in *{_slack_link(item.thread_url, item.thread_title)}*"
        text, left = _fit_lines([heading, _slack_item_line(item, SECTION_EXCERPT)], SLACK_MAX_TEXT)
        more += left
        blocks.append(_slack_section(text))
    for thread in layout.threads:
        lines = [f"*{_slack_link(thread.url, thread.title)}*"]
        if thread.earlier:
            lines.append(f"_{_plural(thread.earlier, 'earlier update')} in this thread_")
        lines.extend(f"• {_slack_item_line(item, SECTION_EXCERPT)}" for item in thread.items)
        text, left = _fit_lines(lines, SLACK_MAX_TEXT)
        more += left
        blocks.append(_slack_section(text))
    if more:
        closing = f"{_more_line(more)} — {_slack_link(section.team_url, 'see the archive')}"
    else:
        closing = _slack_link(section.team_url, f"{section.team_name} in the archive")
    blocks.append({"type": "context", "elements": [_mrkdwn(closing)]})
    return {
        "text": slack_escape(summary),
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }


def slack_urgent(team_name: str, item: ChatItem) -> dict[str, Any]:
    """One urgent update as a Slack message, posted as soon as it is stored."""
    label = "Blocker" if item.blocker else "Urgent"
    heading = (
        f":rotating_light: *{label}* in {slack_escape(team_name)}:"
        f" *{_slack_link(item.thread_url, item.thread_title)}*"
    )
    text, _ = _fit_lines([heading, _slack_item_line(item, URGENT_EXCERPT)], SLACK_MAX_TEXT)
    return {
        "text": slack_escape(f"{label} in {team_name} from {item.author}"),
        "blocks": [_slack_section(text)],
        "unfurl_links": False,
        "unfurl_media": False,
    }


# Microsoft Teams -------------------------------------------------------------------------


def _run(text: str, url: str | None = None, **style: Any) -> dict[str, Any]:
    """A TextRun: never read as Markdown, so sender text stays text."""
    run: dict[str, Any] = {"type": "TextRun", "text": text, **style}
    if url is not None:
        run["selectAction"] = {"type": "Action.OpenUrl", "url": url}
    return run


def _rich(*runs: dict[str, Any], spacing: str = "Small") -> dict[str, Any]:
    return {"type": "RichTextBlock", "inlines": list(runs), "spacing": spacing}


def _teams_item(item: ChatItem, limit: int) -> dict[str, Any]:
    return _rich(
        _run(f"{excerpt(item.author, NAME_CHARS)}: ", weight="Bolder"),
        _run(excerpt(item.body, limit) + " "),
        _run("Open", item.url, color="Accent"),
    )


def _title_run(item_or_thread: ChatItem | ThreadGroup) -> dict[str, Any]:
    if isinstance(item_or_thread, ThreadGroup):
        title, url = item_or_thread.title, item_or_thread.url
    else:
        title, url = item_or_thread.thread_title, item_or_thread.thread_url
    return _run(excerpt(title, TITLE_CHARS), url, weight="Bolder")


def _teams_message(
    summary: str, body: list[dict[str, Any]], link: tuple[str, str]
) -> dict[str, Any]:
    """The card in the envelope Teams webhooks take, with one button: `link` (title, url)."""
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
        "actions": [{"type": "Action.OpenUrl", "title": link[0], "url": link[1]}],
    }
    return {
        "type": "message",
        "summary": summary,
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def _teams_section_with(section: ChatSection, max_items: int) -> dict[str, Any]:
    layout = lay_out(section.items, max_items=max_items)
    summary = _summary(section)
    body = [_rich(_run(summary, weight="Bolder", size="Medium"), spacing="None")]
    for item in layout.blockers:
        body.append(
            _rich(
                _run("Blocker", weight="Bolder", color="Attention"),
                _run(" in "),
                _title_run(item),
                spacing="Medium",
            )
        )
        body.append(_teams_item(item, SECTION_EXCERPT))
    for thread in layout.threads:
        body.append(_rich(_title_run(thread), spacing="Medium"))
        if thread.earlier:
            body.append(_rich(_run(f"{_plural(thread.earlier, 'earlier update')} in this thread")))
        body.extend(_teams_item(item, SECTION_EXCERPT) for item in thread.items)
    if layout.more:
        body.append(
            _rich(
                _run(f"{_more_line(layout.more)} — "),
                _run("see the archive", section.team_url, color="Accent"),
                spacing="Medium",
            )
        )
    return _teams_message(summary, body, ("Open the archive", section.team_url))


def teams_section(section: ChatSection) -> dict[str, Any]:
    """The team's new updates as an Adaptive Card for Teams, laid out like Slack's; fewer
    updates are shown when the card would be too large for Teams."""
    max_items = MAX_ITEMS
    message = _teams_section_with(section, max_items)
    while len(encode(message)) > TEAMS_MAX_BYTES and max_items > 1:
        max_items //= 2
        message = _teams_section_with(section, max_items)
    return message


def teams_urgent(team_name: str, item: ChatItem) -> dict[str, Any]:
    """One urgent update as an Adaptive Card for Teams."""
    label = "Blocker" if item.blocker else "Urgent"
    body = [
        _rich(
            _run(label, weight="Bolder", color="Attention"),
            _run(f" in {team_name}: "),
            _title_run(item),
            spacing="None",
        ),
        _teams_item(item, URGENT_EXCERPT),
    ]
    summary = f"{label} in {team_name} from {item.author}"
    return _teams_message(summary, body, ("Open the thread", item.thread_url))


# Both --------------------------------------------------------------------------------------


def section_payload(kind: str, section: ChatSection) -> dict[str, Any]:
    return slack_section(section) if kind == "slack" else teams_section(section)


def urgent_payload(kind: str, team_name: str, item: ChatItem) -> dict[str, Any]:
    return slack_urgent(team_name, item) if kind == "slack" else teams_urgent(team_name, item)


def encode(payload: dict[str, Any]) -> bytes:
    """The request body: compact UTF-8 JSON."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
