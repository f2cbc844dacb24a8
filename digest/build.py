"""Plan digests: what each person gets, recorded in the outbox before anything is sent.

A digest is planned in one transaction: the outbox row with the rendered message,
and a `DigestItem` for every update it covers. The unique (person, update) key on
`DigestItem` is what makes "never the same update twice" hold even when two workers
plan at once: the second plan fails as a whole and is rolled back.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address

from markupsafe import Markup
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, and_, exists, func, select

from app import store
from app.db import session_scope
from app.models import DigestItem, Membership, OutboundMessage, Person, Team, Thread, Update
from app.render import render_email, render_markdown
from app.settings import Settings
from app.tokens import (
    UNSUBSCRIBE_PURPOSE,
    ReplyKeys,
    reply_address_for,
    sign_address_link,
    sign_link,
)
from digest.compose import (
    Digest,
    DigestEntry,
    compose,
    cut_long,
    handles_for,
    is_blocker,
    local_time,
    mentions,
    says_resolved,
)
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


BLOCKER_WINDOW = timedelta(days=7)


def threads_written_in(session: Session, person: Person) -> dict[int, datetime]:
    """When the person first wrote in each thread: later posts there are replies to them."""
    query = (
        select(Update.thread_id, func.min(Update.created_at))
        .where(Update.author_id == person.id)
        .group_by(Update.thread_id)
    )
    return {thread_id: first for thread_id, first in session.exec(query).all()}  # type: ignore[misc]


def open_blockers(
    session: Session, person: Person, now: datetime
) -> list[tuple[Update, Person, Thread, Team]]:
    """Blockers in the person's teams from the last week whose thread has not since said
    they are resolved, oldest first. They stay at the top of each team's section in every
    digest until then, whether or not an earlier digest showed them."""
    author = aliased(Person)
    query = (
        select(Update, author, Thread, Team)
        .join(Membership, Membership.team_id == Update.team_id)
        .join(Thread, Thread.id == Update.thread_id)
        .join(Team, Team.id == Update.team_id)
        .join(author, author.id == Update.author_id)
        .where(
            Membership.person_id == person.id,
            Thread.deleted_at.is_(None),  # type: ignore[union-attr]
            Update.created_at >= now - BLOCKER_WINDOW,
            Update.body.ilike("%block%"),  # type: ignore[attr-defined]
        )
        .order_by(Update.created_at, Update.id)
    )
    candidates = [tuple(row) for row in session.exec(query).all() if is_blocker(row[0].body)]
    if not candidates:
        return []
    later = session.exec(
        select(Update).where(
            Update.thread_id.in_({row[0].thread_id for row in candidates}),  # type: ignore[attr-defined]
            Update.created_at >= now - BLOCKER_WINDOW,
        )
    ).all()
    return [
        row  # type: ignore[misc]
        for row in candidates
        if not any(
            u.thread_id == row[0].thread_id
            and (u.created_at, u.id) > (row[0].created_at, row[0].id)
            and says_resolved(u.body)
            for u in later
        )
    ]


def _entries(
    rows: Iterable[tuple[Update, Person, Thread, Team]],
    person: Person,
    settings: Settings,
    rendered: dict[int, tuple[str, bool, Markup]],
    keys: ReplyKeys,
    written_in: Mapping[int, datetime] | None = None,
) -> list[DigestEntry]:
    """Digest entries for `rows`; each update's Markdown is rendered once per run, however
    many people get it (`rendered` is shared across the run)."""
    handles = handles_for(person.name, person.email)
    entries = []
    for update, author, thread, team in rows:
        if update.id not in rendered:
            body, cut = cut_long(update.body)
            rendered[update.id] = (body, cut, render_markdown(body))  # type: ignore[index]
        body, cut, html = rendered[update.id]  # type: ignore[index]
        first_post = (written_in or {}).get(thread.id)  # type: ignore[arg-type]
        if first_post is not None and update.created_at > first_post:
            for_you = "replied in your thread"
        elif mentions(update.body, handles, person.email):
            for_you = "mentions you"
        else:
            for_you = ""
        entries.append(
            DigestEntry(
                update_id=update.id,  # type: ignore[arg-type]
                thread_id=thread.id,  # type: ignore[arg-type]
                thread_title=thread.title,
                team_slug=team.slug,
                team_name=team.name,
                author_name=author.name,
                created_at=update.created_at,
                body=body,
                body_html=html,
                reply_address=reply_address_for(
                    person.id,  # type: ignore[arg-type]
                    thread.id,  # type: ignore[arg-type]
                    team.slug,
                    settings.mail_domain,
                    keys,
                ),
                archive_url=f"{settings.base_url}/threads/{thread.id}#u{update.id}",
                cut=cut,
                for_you=for_you,
            )
        )
    return entries


def plan_digest(
    session: Session,
    person: Person,
    settings: Settings,
    now: datetime,
    rendered: dict[int, tuple[str, bool, Markup]] | None = None,
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
    cache = {} if rendered is None else rendered
    entries = _entries(rows, person, settings, cache, keys, threads_written_in(session, person))
    blockers = _entries(open_blockers(session, person, now), person, settings, cache, keys)
    digest = compose(entries, blockers)
    threads = {e.thread_id for e in entries}
    ids = [e.update_id for e in entries]
    key = f"digest:{person.id}:{min(ids)}-{max(ids)}:{len(ids)}"
    message_id = f"<{hashlib.sha256(key.encode()).hexdigest()[:24]}.digest@{settings.mail_domain}>"
    unsubscribe_url = unsubscribe_url_for(person, settings, now)
    # Replying to the digest as a whole is only unambiguous when it covers one thread.
    reply_to = entries[0].reply_address if len(threads) == 1 else None
    msg = render_email(
        settings.templates_dir,
        "digest",
        {
            "person": person,
            "digest": digest,
            "count": digest.count,
            "titles": list(dict.fromkeys(e.thread_title for e in entries)),
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
            "List-Id": list_id(digest, settings.mail_domain),
            # RFC 2369: clients that cannot POST (RFC 8058) send mail to the address instead.
            "List-Unsubscribe": f"<{unsubscribe_mailto(person, settings, now)}>,"
            f" <{unsubscribe_url}>",
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


def list_id(digest: Digest, domain: str) -> str:
    """RFC 2919: a digest from one team is that team's list, so a mail filter can sort it;
    one that spans teams is the member's own digest list."""
    if len(digest.teams) == 1 and not digest.for_you:
        team = digest.teams[0]
        return f"{team.name} <{team.slug}.{domain}>"
    return f"Tidings digest <digest.{domain}>"


def unsubscribe_mailto(person: Person, settings: Settings, now: datetime) -> str:
    token = sign_address_link(
        UNSUBSCRIBE_PURPOSE,
        person.id,  # type: ignore[arg-type]
        now + UNSUBSCRIBE_LINK_LIFETIME,
        settings.ensure_secret_key(),
    )
    local = f"{store.UNSUBSCRIBE_LOCAL_PART}+{token}"
    return f"mailto:{local}@{settings.mail_domain}?subject=unsubscribe"


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
    rendered: dict[int, tuple[str, bool, Markup]] = {}
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
