"""A team's whole history, out: JSON for programs and mbox for mail clients.

The JSON has everything needed to rebuild the archive (members, threads, the update
tree, attachments as base64). The mbox holds one message per update with its own
Message-ID, and In-Reply-To/References to the update it answers, so a mail client
shows the same threads.
"""

from __future__ import annotations

import base64
import email.policy
import io
from collections.abc import Iterator
from email.generator import BytesGenerator
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from sqlmodel import Session, select

from app import store
from app.models import Person, Team, Thread, Update

EXPORT_VERSION = 1
_MBOX_POLICY = email.policy.SMTP.clone(linesep="\n")  # mbox files use the local newline


def _updates(session: Session, team: Team) -> list[tuple[Thread, Update, Person]]:
    query = (
        select(Thread, Update, Person)
        .join(Update, Update.thread_id == Thread.id)
        .join(Person, Person.id == Update.author_id)
        .where(Thread.team_id == team.id, Thread.deleted_at.is_(None))  # type: ignore[union-attr]
        .order_by(Thread.id, Update.created_at, Update.id)
    )
    return [(t, u, p) for t, u, p in session.exec(query).all()]


def team_json(session: Session, slug: str) -> dict[str, Any]:
    """Everything a team wrote, as plain data (dates in ISO 8601, UTC)."""
    team = store.get_team(session, slug)
    rows = _updates(session, team)
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


def team_mbox(session: Session, slug: str, domain: str) -> Iterator[bytes]:
    """The team's updates as an mbox (mboxrd-style "From " quoting), one message each."""
    team = store.get_team(session, slug)
    rows = _updates(session, team)
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
