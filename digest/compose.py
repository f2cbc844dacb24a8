"""What a digest is made of: what needs the reader first, then each team's threads.

Pure: no database, no clock. `digest/build.py` plans what each digest covers and
`digest/layout.py` turns a `Digest` into the message its reader gets.

The order follows what needs a person's attention: a "for you" section (replies in
threads they wrote in, and updates that @-mention them), then per team its open
blockers, then its threads. Long items are cut, with a link to the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

# An item longer than this is cut at a paragraph (or line) boundary, with a link to the rest.
MAX_ITEM_CHARS = 1_500
MAX_ITEM_LINES = 30
# A thread with more new items than this (after an absence, say) shows only its newest.
MAX_THREAD_ITEMS = 5
# A digest shows at most this many items in full; further threads show a count and a
# link. Gmail cuts messages over 102 KB of HTML off behind a "[Message clipped]" link (and
# the unsubscribe footer with them); this many items, each cut at MAX_ITEM_CHARS, stay
# under that.
MAX_ITEMS_SHOWN = 30

_BLOCKER_LINE = re.compile(r"^\s*(?:[-*+>]\s*)*(?:\*\*|__)?\s*block(?:er|ed)\b\s*:", re.I | re.M)
_RESOLVED = re.compile(r"\b(?:resolved|unblocked|no longer blocked)\b", re.I)
_MENTION = re.compile(r"(?<![\w.@])@([A-Za-z0-9][\w.-]*[A-Za-z0-9]|[A-Za-z0-9])")


@dataclass(frozen=True)
class DigestEntry:
    """One update as it appears in one recipient's digest."""

    update_id: int
    thread_id: int
    thread_title: str
    team_slug: str
    team_name: str
    author_name: str
    created_at: datetime
    body: str  # as shown: cut when long (digest/layout.py renders its Markdown once shown)
    reply_address: str
    archive_url: str  # the update's permalink
    thread_url: str
    cut: bool = False  # the body was shortened; the archive has the rest
    for_you: str = ""  # why it is in "for you": "replied in your thread" | "mentions you"
    answered_on: date | None = None  # a check-in answered after its day: the author's day

    def mailto(self) -> str:
        subject = quote(f"Re: {self.thread_title}")
        return f"mailto:{self.reply_address}?subject={subject}"


@dataclass(frozen=True)
class ThreadSection:
    title: str
    team_name: str
    archive_url: str
    entries: list[DigestEntry]
    first: DigestEntry  # its first new item, shown or not: where it belongs
    earlier: int = 0  # new items left out of this digest to keep it short (see the archive)


@dataclass(frozen=True)
class TeamSection:
    name: str
    slug: str
    blockers: list[DigestEntry]
    threads: list[ThreadSection]


@dataclass(frozen=True)
class Digest:
    for_you: list[DigestEntry]
    teams: list[TeamSection]
    count: int  # new items covered, whether shown in full or summarised


def local_time(instant: datetime, timezone: str) -> str:
    return instant.astimezone(ZoneInfo(timezone)).strftime("%a %d %b, %H:%M")


def is_blocker(body: str) -> bool:
    """An update reports a blocker when one of its lines starts `Blocker:` or `Blocked:`."""
    return bool(_BLOCKER_LINE.search(body))


def says_resolved(body: str) -> bool:
    return bool(_RESOLVED.search(body))


@dataclass(frozen=True)
class Mentionable:
    """What `mentions` looks at in one text, worked out once: a digest run asks it about
    the same update for every member who gets it."""

    lowered: str
    handles: frozenset[str]  # every @-handle in the text, lower-cased

    @classmethod
    def of(cls, body: str) -> Mentionable:
        handles = frozenset(m.group(1).lower().rstrip(".") for m in _MENTION.finditer(body))
        # Most updates mention nobody: then `names` is false without looking further.
        return cls(body.lower() if "@" in body else "", handles)

    def names(self, handles: Iterable[str], address: str) -> bool:
        """Whether the text @-mentions one of `handles` (case-insensitive) or names
        `address`."""
        return self.names_lowered(frozenset(h.lower() for h in handles if h), address.lower())

    def names_lowered(self, handles: frozenset[str], address: str) -> bool:
        """`names`, with `handles` and `address` lower-cased already: a planning run asks
        about each update for every member who gets it."""
        if not self.lowered:
            return False
        if address and address in self.lowered:
            return True
        return not self.handles.isdisjoint(handles)


def mentions(body: str, handles: Iterable[str], address: str) -> bool:
    """Whether the text @-mentions one of `handles` (case-insensitive) or names `address`."""
    return Mentionable.of(body).names(handles, address)


def handles_for(name: str, address: str) -> list[str]:
    """What colleagues type to mention someone: @alice (address local part or first name)."""
    first = name.split()[0] if name.split() else ""
    return [address.split("@")[0], first]


def cut_long(body: str) -> tuple[str, bool]:
    """`body`, or its beginning up to a paragraph or line boundary when it is long."""
    lines = body.splitlines()
    if len(body) <= MAX_ITEM_CHARS and len(lines) <= MAX_ITEM_LINES:
        return body, False
    head = "\n".join(lines[:MAX_ITEM_LINES])[:MAX_ITEM_CHARS]
    for boundary in ("\n\n", "\n", ". ", " "):
        at = head.rfind(boundary)
        if at > MAX_ITEM_CHARS // 3:
            head = head[: at + (1 if boundary == ". " else 0)]
            break
    # An unclosed code fence would swallow the rest of the digest's Markdown.
    if head.count("```") % 2:
        head += "\n```"
    return head.rstrip() + " …", True


def group_by_thread(entries: Sequence[DigestEntry], room: int | None = None) -> list[ThreadSection]:
    """Entries grouped by thread, threads in order of their first entry; a thread with many
    new items keeps only its newest `MAX_THREAD_ITEMS` and counts the rest. With `room`,
    only that many items are kept in all: later threads keep fewer, or none."""
    grouped: dict[int, list[DigestEntry]] = {}
    for entry in entries:
        if entry.thread_id in grouped:
            grouped[entry.thread_id].append(entry)
        else:
            grouped[entry.thread_id] = [entry]
    sections = []
    left = len(entries) if room is None else max(room, 0)
    for items in grouped.values():
        keep = min(MAX_THREAD_ITEMS, len(items), left)
        left -= keep
        first = items[0]
        sections.append(
            ThreadSection(
                first.thread_title,
                first.team_name,
                first.thread_url,
                items[len(items) - keep :] if keep else [],
                first,
                earlier=len(items) - keep,
            )
        )
    return sections


def compose(entries: Sequence[DigestEntry], open_blockers: Sequence[DigestEntry] = ()) -> Digest:
    """The digest's layout: "for you" first, then per team (in the order given) its open
    blockers and its threads. An entry in "for you" is not repeated in its team section;
    a blocker that is new in this digest is shown once, among the blockers. Once
    `MAX_ITEMS_SHOWN` items are shown, further threads only say how many new items they
    have (the "for you" items and blockers are always shown)."""
    pinned = {e.update_id for e in open_blockers}
    for_you: list[DigestEntry] = []
    rest: list[DigestEntry] = []
    teams: dict[str, TeamSection] = {}
    # One pass: a sending pass composes a digest for each reader whose items differ.
    for entry in entries:
        if entry.team_slug not in teams:
            teams[entry.team_slug] = TeamSection(entry.team_name, entry.team_slug, [], [])
        if entry.for_you:
            for_you.append(entry)
        elif entry.update_id not in pinned:
            rest.append(entry)
    for blocker in open_blockers:
        if blocker.team_slug not in teams:
            teams[blocker.team_slug] = TeamSection(blocker.team_name, blocker.team_slug, [], [])
        teams[blocker.team_slug].blockers.append(blocker)
    room = MAX_ITEMS_SHOWN - len(for_you) - len(open_blockers)
    for section in group_by_thread(rest, room):
        teams[section.first.team_slug].threads.append(section)
    shown = [t for t in teams.values() if t.blockers or t.threads]
    return Digest(for_you, shown, len(entries))
