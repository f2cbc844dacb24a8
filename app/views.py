"""Read models shared by the API and the web archive, so both show the same thing."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from app import store
from app.models import InboundMessage, Person, Team, Thread
from app.schemas import (
    AttachmentOut,
    AuthorOut,
    QuarantinedOut,
    SearchHitOut,
    ThreadDetailOut,
    ThreadOut,
    UpdateOut,
)
from app.search import MARK_END, MARK_START, search_updates
from app.store import WEEKDAYS


def describe_schedule(person: Person) -> str:
    """A member's digest settings in words, as `tidings member list` and `set` print them."""
    when = f"{person.digest_hour:02d}:00 {person.timezone}"
    cadence = {
        "daily": f"daily at {when}" + (", weekdays only" if person.digest_weekdays_only else ""),
        "weekly": f"weekly on {WEEKDAYS[person.digest_weekday]} at {when}",
        "immediate": "immediate (within a minute of each post)",
        "off": "off",
    }.get(person.digest_cadence, person.digest_cadence)
    parts = [cadence]
    if person.quiet_start != person.quiet_end:
        parts.append(f"quiet {person.quiet_start:%H:%M}-{person.quiet_end:%H:%M}")
    if person.away_from or person.away_until:
        start = person.away_from.isoformat() if person.away_from else ""
        end = person.away_until.isoformat() if person.away_until else ""
        parts.append(f"away {start}..{end}")
    return "; ".join(parts)


def thread_out(thread: Thread, team: Team) -> ThreadOut:
    return ThreadOut(
        id=thread.id,  # type: ignore[arg-type]
        team=team.slug,
        title=thread.title,
        checkin_date=thread.checkin_date,
        created_at=thread.created_at,
        last_activity_at=thread.last_activity_at,
    )


def tree_order(updates: Sequence[tuple[int, int | None]]) -> list[tuple[int, int]]:
    """(position, depth) of each (id, parent id) in reading order: every update followed by
    its replies, oldest first at each level. `updates` come oldest first; a reply whose
    parent is not in the list is shown as a top-level post."""
    known = {update_id for update_id, _ in updates}
    children: dict[int | None, list[int]] = {}
    for position, (_, parent_id) in enumerate(updates):
        children.setdefault(parent_id if parent_id in known else None, []).append(position)
    ordered: list[tuple[int, int]] = []
    stack = [(position, 0) for position in reversed(children.get(None, []))]
    while stack:
        position, depth = stack.pop()
        ordered.append((position, depth))
        replies = children.get(updates[position][0], [])
        stack.extend((child, depth + 1) for child in reversed(replies))
    return ordered


def answered_on(checkin_date: date | None, created_at: datetime, timezone: str) -> date | None:
    """The author's local date of a check-in answer given after the check-in's day
    (`checkin_date`; None for a thread that is not a check-in)."""
    if checkin_date is None:
        return None
    local_day = created_at.astimezone(ZoneInfo(timezone)).date()
    return local_day if local_day > checkin_date else None


# Attachments a page may show as pictures: raster formats browsers decode as images and
# nothing else. SVG is left out on purpose: it is a document that can carry script.
INLINE_IMAGE_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),  # and "WEBP" at offset 8, checked below
}


def inline_image_type(content_type: str, data: bytes) -> str | None:
    """The image type to show an attachment inline as, or None for a download: the type
    the sender declared must be on the allow-list and the bytes must start the way that
    format does (a declared type alone is only the sender's word)."""
    declared = content_type.split(";", 1)[0].strip().lower()
    signatures = INLINE_IMAGE_SIGNATURES.get(declared)
    if signatures is None or not data.startswith(signatures):
        return None
    if declared == "image/webp" and data[8:12] != b"WEBP":
        return None
    return declared


def thread_detail(
    session: Session, thread_id: int, team_ids: Sequence[int] | None, base_url: str = ""
) -> ThreadDetailOut:
    return thread_detail_and_images(session, thread_id, team_ids, base_url)[0]


def thread_detail_and_images(
    session: Session, thread_id: int, team_ids: Sequence[int] | None, base_url: str = ""
) -> tuple[ThreadDetailOut, set[int]]:
    """The thread as `thread_detail` gives it, and the ids of its attachments that the
    archive shows inline (`inline_image_type`), decided while their bytes are at hand."""
    thread = store.get_thread(session, thread_id, team_ids)
    team = session.get(Team, thread.team_id)
    rows = store.thread_updates(session, thread_id)
    files = store.attachments_of(session, [u.id for u, _ in rows])  # type: ignore[misc]
    images = {
        a.id  # type: ignore[misc]
        for found in files.values()
        for a in found
        if inline_image_type(a.content_type, a.data)
    }
    updates = [
        UpdateOut(
            id=u.id,  # type: ignore[arg-type]
            parent_id=u.parent_id,
            depth=depth,
            author=AuthorOut(id=p.id, name=p.name, email=p.email),  # type: ignore[arg-type]
            body=u.body,
            quoted=u.quoted,
            extraction_confident=u.extraction_confident,
            placed_by=u.placed_by,
            created_at=u.created_at,
            edited_at=u.edited_at,
            answered_on=answered_on(thread.checkin_date, u.created_at, p.timezone),
            attachments=[
                AttachmentOut(
                    id=a.id,  # type: ignore[arg-type]
                    filename=a.filename,
                    content_type=a.content_type,
                    size=a.size,
                    url=f"{base_url}/attachments/{a.id}",
                )
                for a in files[u.id]  # type: ignore[index]
            ],
        )
        for u, p, depth in (
            (*rows[position], depth)
            for position, depth in tree_order([(u.id, u.parent_id) for u, _ in rows])  # type: ignore[misc]
        )
    ]
    detail = ThreadDetailOut(**thread_out(thread, team).model_dump(), updates=updates)  # type: ignore[arg-type]
    return detail, images


def search_out(session: Session, q: str, team_ids: Sequence[int]) -> list[SearchHitOut]:
    slugs = {t.id: t.slug for t in store.list_teams(session, team_ids)}
    return [
        SearchHitOut(
            update_id=hit.update.id,  # type: ignore[arg-type]
            thread_id=hit.thread.id,  # type: ignore[arg-type]
            thread_title=hit.thread.title,
            team=slugs[hit.update.team_id],
            author=AuthorOut(
                id=hit.author.id,  # type: ignore[arg-type]
                name=hit.author.name,
                email=hit.author.email,
            ),
            snippet=hit.plain_snippet,
            snippet_html=html.escape(hit.snippet)
            .replace(MARK_START, "<mark>")
            .replace(MARK_END, "</mark>"),
            created_at=hit.update.created_at,
        )
        for hit in search_updates(session, q, team_ids)
    ]


def quarantined_out(entry: InboundMessage) -> QuarantinedOut:
    return QuarantinedOut(
        id=entry.id,  # type: ignore[arg-type]
        received_at=entry.received_at,
        mail_from=entry.mail_from,
        rcpt_tos=[r for r in entry.rcpt_tos.split("\n") if r],
        message_id=entry.message_id,
        reason=entry.reason,
        detail=entry.detail,
    )
