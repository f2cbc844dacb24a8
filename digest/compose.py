"""The one mail renderer: subject, text and HTML templates -> a multipart/alternative message.

Pure: everything it needs (including `now` and the Message-ID) comes in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from markupsafe import Markup

from app.render import template_env


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


def render_email(
    templates_dir: Path,
    name: str,
    context: dict[str, Any],
    *,
    sender: Address,
    to: Address,
    message_id: str,
    now: datetime,
    reply_to: str | None = None,
) -> EmailMessage:
    """`templates/email/<name>.{subject.txt,txt,html}` -> a ready-to-send message."""
    env = template_env(templates_dir, "email")
    msg = EmailMessage()
    msg["Subject"] = " ".join(env.get_template(f"{name}.subject.txt").render(context).split())
    msg["From"] = sender
    msg["To"] = to
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    # RFC 3834: tells well-behaved auto-responders not to answer us (no mail loops).
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(env.get_template(f"{name}.txt").render(context))
    msg.add_alternative(env.get_template(f"{name}.html").render(context), subtype="html")
    return msg


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
