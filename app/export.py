"""A team's history, out: JSON for programs, mbox for mail clients, and a Markdown summary
for documents (Notion, Confluence, Google Docs).

The JSON has everything needed to rebuild the archive (members, threads, the update
tree, attachments as base64). The mbox holds one message per update with its own
Message-ID, and In-Reply-To/References to the update it answers, so a mail client
shows the same threads. The Markdown is a summary of a stretch of time (`--since 7d`):
a heading per thread, each update under its author and time, its text quoted so that a
heading or list in it cannot break the document's own structure.

Every format takes `since`: only updates from then on.
"""

from __future__ import annotations

import base64
import email.policy
import io
import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from email.generator import BytesGenerator
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from sqlmodel import Session, select

from app import store
from app.errors import TidingsError
from app.models import Person, Team, Thread, Update, utcnow

EXPORT_VERSION = 1
_MBOX_POLICY = email.policy.SMTP.clone(linesep="\n")  # mbox files use the local newline


_SPAN = re.compile(r"(\d+)\s*([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def since_when(text: str, now: datetime | None = None) -> datetime:
    """`--since`: a span back from now (12h, 7d, 2w) or a date (2026-11-01, from its
    start, UTC)."""
    now = now or utcnow()
    text = text.strip().lower()
    if span := _SPAN.fullmatch(text):
        return now - timedelta(**{_UNITS[span[2]]: int(span[1])})
    try:
        return datetime.combine(date.fromisoformat(text), time(), tzinfo=now.tzinfo)
    except ValueError:
        raise TidingsError(
            f"--since '{text}' is neither a span nor a date.",
            "Give a span back from now, like 12h, 7d or 2w, or a date like 2026-11-01.",
        ) from None


def _updates(
    session: Session, team: Team, since: datetime | None = None
) -> list[tuple[Thread, Update, Person]]:
    query = (
        select(Thread, Update, Person)
        .join(Update, Update.thread_id == Thread.id)
        .join(Person, Person.id == Update.author_id)
        .where(Thread.team_id == team.id, Thread.deleted_at.is_(None))  # type: ignore[union-attr]
        .order_by(Thread.id, Update.created_at, Update.id)
    )
    if since is not None:
        query = query.where(Update.created_at >= since)  # type: ignore[operator]
    return [(t, u, p) for t, u, p in session.exec(query).all()]


def team_json(session: Session, slug: str, since: datetime | None = None) -> dict[str, Any]:
    """Everything a team wrote (since `since`), as plain data (dates in ISO 8601, UTC)."""
    team = store.get_team(session, slug)
    rows = _updates(session, team, since)
    files = store.attachments_of(session, [u.id for _, u, _ in rows])  # type: ignore[misc]
    threads: dict[int, dict[str, Any]] = {}
    for thread, update, author in rows:
        entry = threads.setdefault(
            thread.id,  # type: ignore[arg-type]
            {
                "id": thread.id,
                "title": thread.title,
                "checkin_date": thread.checkin_date.isoformat() if thread.checkin_date else None,
                "created_at": thread.created_at.isoformat(),
                "updates": [],
            },
        )
        entry["updates"].append(
            {
                "id": update.id,
                "parent_id": update.parent_id,
                "author": author.email,
                "created_at": update.created_at.isoformat(),
                "edited_at": update.edited_at.isoformat() if update.edited_at else None,
                "message_id": update.message_id,
                "placed_by": update.placed_by,
                "body": update.body,
                "quoted": update.quoted,
                "attachments": [
                    {
                        "filename": a.filename,
                        "content_type": a.content_type,
                        "data_base64": base64.b64encode(a.data).decode(),
                    }
                    for a in files[update.id]  # type: ignore[index]
                ],
            }
        )
    return {
        "tidings_export": EXPORT_VERSION,
        "team": {"slug": team.slug, "name": team.name, "public": team.public},
        "members": [
            {"email": p.email, "name": p.name, "timezone": p.timezone}
            for p in store.list_members(session, slug)
        ],
        "threads": list(threads.values()),
    }


def _message_id(update: Update, domain: str) -> str:
    return update.message_id or f"<update.{update.id}@{domain}>"


def team_mbox(
    session: Session, slug: str, domain: str, since: datetime | None = None
) -> Iterator[bytes]:
    """The team's updates as an mbox (mboxrd-style "From " quoting), one message each."""
    team = store.get_team(session, slug)
    rows = _updates(session, team, since)
    files = store.attachments_of(session, [u.id for _, u, _ in rows])  # type: ignore[misc]
    ids = {u.id: _message_id(u, domain) for _, u, _ in rows}
    chains: dict[int, list[str]] = {}
    for thread, update, author in rows:
        parent = ids.get(update.parent_id) if update.parent_id else None
        chain = [*chains.get(update.parent_id, []), parent] if parent else []  # type: ignore[arg-type]
        chains[update.id] = chain  # type: ignore[index]
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = Address(author.name, addr_spec=author.email)
        msg["To"] = Address(team.name, team.slug, domain)
        msg["Subject"] = f"Re: {thread.title}" if parent else thread.title
        msg["Date"] = format_datetime(update.created_at)
        msg["Message-ID"] = ids[update.id]
        if parent:
            msg["In-Reply-To"] = parent
            msg["References"] = " ".join(chain[-20:])
        msg.set_content(update.body or "")
        for item in files[update.id]:  # type: ignore[index]
            maintype, _, subtype = item.content_type.partition("/")
            msg.add_attachment(
                item.data,
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=item.filename,
            )
        out = io.BytesIO()
        out.write(f"From {author.email} {update.created_at:%a %b %d %H:%M:%S %Y}\n".encode())
        generator = BytesGenerator(out, mangle_from_=True, policy=_MBOX_POLICY)
        generator.flatten(msg)
        out.write(b"\n")
        yield out.getvalue()


def team_markdown(session: Session, slug: str, base_url: str, since: datetime | None = None) -> str:
    """A summary document of what the team wrote since `since`: plain CommonMark (headings,
    emphasis, quotes, links), times in UTC, newest thread activity first."""
    team = store.get_team(session, slug)
    rows = _updates(session, team, since)
    threads: dict[int, list[tuple[Update, Person]]] = {}
    titles: dict[int, Thread] = {}
    for thread, update, author in rows:
        threads.setdefault(thread.id, []).append((update, author))  # type: ignore[arg-type]
        titles[thread.id] = thread  # type: ignore[index]
    order = sorted(threads, key=lambda t: max(u.created_at for u, _ in threads[t]), reverse=True)
    start = since.strftime("%a %d %b %Y") if since else "the start"
    people = {a.id for items in threads.values() for _, a in items}
    lines = [
        f"# {_inline(team.name)}: updates since {start}",
        "",
        f"{len(rows)} update{'s' * (len(rows) != 1)} in {len(threads)}"
        f" thread{'s' * (len(threads) != 1)} by {len(people)}"
        f" {'person' if len(people) == 1 else 'people'}. Times are UTC.",
    ]
    for thread_id in order:
        items = threads[thread_id]
        lines += [
            "",
            f"## {_inline(titles[thread_id].title)}",
            "",
            f"[Open in the archive]({base_url}/threads/{thread_id})",
        ]
        for update, author in items:
            lines += [
                "",
                f"**{_inline(author.name or author.email)}**, {update.created_at:%a %d %b %H:%M}",
                "",
            ]
            body = (update.body or "").strip() or "(no text)"
            lines += [f"> {line}".rstrip() for line in body.splitlines()]
    return "\n".join(lines) + "\n"


def _inline(text: str) -> str:
    """`text` for a heading or bold span: one line, Markdown's own characters escaped."""
    return re.sub(r"([\\`*_{}\[\]<>#|])", r"\\\1", " ".join(text.split()))
