"""What a digest is made of: its entries, grouped by thread, and times in the reader's zone.

Pure: the rendering itself is `app.render.render_email`, the one mail renderer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

from markupsafe import Markup


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
    body: str
    body_html: Markup
    reply_address: str
    archive_url: str

    def mailto(self) -> str:
        subject = quote(f"Re: {self.thread_title}")
        return f"mailto:{self.reply_address}?subject={subject}"


@dataclass(frozen=True)
class ThreadSection:
    title: str
    team_name: str
    archive_url: str
    entries: list[DigestEntry]


def local_time(instant: datetime, timezone: str) -> str:
    return instant.astimezone(ZoneInfo(timezone)).strftime("%a %d %b, %H:%M")


def group_by_thread(entries: list[DigestEntry]) -> list[ThreadSection]:
    """Entries grouped by thread, threads in order of their first entry."""
    sections: dict[int, ThreadSection] = {}
    for entry in entries:
        if entry.thread_id not in sections:
            sections[entry.thread_id] = ThreadSection(
                entry.thread_title, entry.team_name, entry.archive_url.split("#")[0], []
            )
        sections[entry.thread_id].entries.append(entry)
    return list(sections.values())
