"""Plan digests: what each person gets, recorded in the outbox before anything is sent.

A digest is planned in one transaction: the outbox row with the rendered message,
and a `DigestItem` for every update it covers. The unique (person, update) key on
`DigestItem` is what makes "never the same update twice" hold even when two workers
plan at once: the second plan fails as a whole and is rolled back.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address

from markupsafe import Markup
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, and_, exists, select

from app import store
from app.db import session_scope
from app.models import DigestItem, Membership, OutboundMessage, Person, Team, Thread, Update
from app.render import render_email, render_markdown
from app.settings import Settings
from app.tokens import UNSUBSCRIBE_PURPOSE, ReplyKeys, reply_address_for, sign_link
from digest.compose import DigestEntry, group_by_thread, local_time
from digest.schedule import digest_due, schedule_of

log = logging.getLogger(__name__)

UNSUBSCRIBE_LINK_LIFETIME = timedelta(days=400)


@dataclass
class DigestRun:
    """What one run planned: people with a digest, people with nothing new."""

    planned: int = 0
    nothing_new: int = 0
    skipped: int = 0


def new_updates_for(session: Session, person: Person) -> list[tuple[Update, Person, Thread, Team]]:
    """Updates by others in the person's teams, since they joined, not yet in a digest."""
    author = aliased(Person)
    already = exists().where(
        and_(DigestItem.person_id == person.id, DigestItem.update_id == Update.id)
    )
    query = (
        select(Update, author, Thread, Team)
        .join(Membership, Membership.team_id == Update.team_id)
        .join(Thread, Thread.id == Update.thread_id)
        .join(Team, Team.id == Update.team_id)
        .join(author, author.id == Update.author_id)
        .where(
            Membership.person_id == person.id,
            Thread.deleted_at.is_(None),  # type: ignore[union-attr]
            Update.author_id != person.id,
            Update.created_at >= Membership.joined_at,
            ~already,
        )
        .order_by(Team.slug, Update.created_at, Update.id)
    )
    return [tuple(row) for row in session.exec(query).all()]  # type: ignore[misc]


def _entries(
    rows: Iterable[tuple[Update, Person, Thread, Team]],
    person: Person,
    settings: Settings,
    rendered: dict[int, Markup],
    keys: ReplyKeys,
) -> list[DigestEntry]:
    entries = []
    for update, author, thread, team in rows:
        if update.id not in rendered:
            rendered[update.id] = render_markdown(update.body)  # type: ignore[index]
        entries.append(
            DigestEntry(
                update_id=update.id,  # type: ignore[arg-type]
                thread_id=thread.id,  # type: ignore[arg-type]
                thread_title=thread.title,
                team_slug=team.slug,
                team_name=team.name,
                author_name=author.name,
                created_at=update.created_at,
                body=update.body,
                body_html=rendered[update.id],  # type: ignore[index]
                reply_address=reply_address_for(
                    person.id,
                    thread.id,
                    team.slug,
                    settings.mail_domain,
                    keys,
                ),
                archive_url=f"{settings.base_url}/threads/{thread.id}#u{update.id}",
            )
        )
    return entries


def plan_digest(
    session: Session,
    person: Person,
    settings: Settings,
    now: datetime,
    rendered: dict[int, Markup] | None = None,
) -> OutboundMessage | None:
    """Record `person`'s digest in the outbox (not sent yet); None when nothing is new."""
    # The slot counts as handled even when nothing is new, so the schedule moves on to
    # the next one instead of finding this person due on every pass.
    person.last_digest_at = now
    session.add(person)
    rows = new_updates_for(session, person)
    if not rows:
        return None
    keys = store.load_reply_keys(session, settings.ensure_secret_key())
    entries = _entries(rows, person, settings, {} if rendered is None else rendered, keys)
    sections = group_by_thread(entries)
    ids = [e.update_id for e in entries]
    key = f"digest:{person.id}:{min(ids)}-{max(ids)}:{len(ids)}"
    message_id = f"<{hashlib.sha256(key.encode()).hexdigest()[:24]}.digest@{settings.mail_domain}>"
    unsubscribe_url = unsubscribe_url_for(person, settings, now)
    # Replying to the digest as a whole is only unambiguous when it covers one thread.
    reply_to = entries[0].reply_address if len(sections) == 1 else None
    msg = render_email(
        settings.templates_dir,
        "digest",
        {
            "person": person,
            "sections": sections,
            "count": len(entries),
            "local_time": lambda t: local_time(t, person.timezone),
            "base_url": settings.base_url,
            "single_thread": reply_to is not None,
            "unsubscribe_url": unsubscribe_url,
        },
        sender=Address("Tidings", "digest", settings.mail_domain),
        to=Address(person.name, addr_spec=person.email),
        message_id=message_id,
        now=now,
        reply_to=reply_to,
        headers={
            # One stable list for every digest, so a mail filter on it keeps working.
            "List-Id": f"Tidings digest <digest.{settings.mail_domain}>",
            "List-Unsubscribe": f"<{unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",  # RFC 8058
        },
    )
    outbound = store.enqueue_mail(
        session, kind="digest", idempotency_key=key, person=person, message=msg
    )
    if reply_to is not None:  # one thread: a reply keeping only In-Reply-To belongs there
        thread = store.get_thread(session, entries[0].thread_id)
        store.remember_sent(session, message_id, thread, person)
    for entry in entries:
        session.add(
            DigestItem(outbound_id=outbound.id, person_id=person.id, update_id=entry.update_id)  # type: ignore[arg-type]
        )
    session.flush()
    return outbound


def unsubscribe_url_for(person: Person, settings: Settings, now: datetime) -> str:
    """A one-click link that turns this person's digest off; it must outlive old digests."""
    token = sign_link(
        UNSUBSCRIBE_PURPOSE,
        person.id,
        now + UNSUBSCRIBE_LINK_LIFETIME,  # type: ignore[arg-type]
        settings.ensure_secret_key(),
    )
    return f"{settings.base_url}/unsubscribe?t={token}"





def run_digests(
    engine: Engine,
    settings: Settings,
    now: datetime,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> DigestRun:
    """Plan a digest for everyone who is due (everyone, with `force`), one person per
    transaction, so one person's failure or a concurrent worker never blocks the rest.

    `progress(done, total)` is called after each person.
    """
    with session_scope(engine) as session:
        people = list(session.exec(select(Person).where(Person.digest_cadence != "off")))
    run = DigestRun()
    rendered: dict[int, Markup] = {}
    for done, person in enumerate(people, 1):
        if progress is not None:
            progress(done, len(people))
        if not force and not digest_due(
            schedule_of(person), person.last_digest_at, person.created_at, now
        ):
            run.skipped += 1
            continue
        try:
            with session_scope(engine) as session:
                fresh = session.get(Person, person.id)
                planned = plan_digest(session, fresh, settings, now, rendered) if fresh else None
        except IntegrityError:
            log.info("digest for person %s was planned by another worker", person.id)
            run.skipped += 1
            continue
        if planned is None:
            run.nothing_new += 1
        else:
            run.planned += 1
    return run
