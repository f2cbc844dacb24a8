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
from functools import cached_property

from markupsafe import Markup
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, and_, exists, func, or_, select

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
from digest.answers import answers, reports_blocker
from digest.compose import (
    Digest,
    DigestEntry,
    Mentionable,
    compose,
    cut_long,
    handles_for,
    is_blocker,
    local_time,
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


# Ids per IN (...) list: well under every engine's limit on bound parameters.
_LOAD_BATCH = 500


@dataclass(frozen=True)
class CachedUpdate:
    """One update and what every digest shows of it, read once per run (as its rendered
    Markdown always was): an edit made while a run is under way shows in later runs."""

    id: int
    thread_id: int
    body: str
    created_at: datetime
    author_name: str
    thread_title: str
    team_slug: str
    team_name: str
    checkin: bool  # an answer in a check-in thread
    questions: str  # the team's check-in questions, one a line
    blocker_question: int | None  # which of them asks about blockers

    @cached_property
    def blocker(self) -> bool:
        """A `Blocker:` line, or a check-in answer to the blocker question that names
        something (not "No" or "None")."""
        if is_blocker(self.body):
            return True
        if not (self.checkin and self.blocker_question):
            return False
        asked = [q for q in self.questions.splitlines() if q.strip()]
        answer = answers(self.body, asked).get(self.blocker_question, "")
        return reports_blocker(answer)

    @cached_property
    def resolves(self) -> bool:
        return says_resolved(self.body)

    @cached_property
    def mentionable(self) -> Mentionable:
        return Mentionable.of(self.body)


class RunCache:
    """What a digest run works out once, however many digests show it: each update with
    its thread, team and author, its Markdown rendered and cut, whether it reports or
    resolves a blocker and whom it mentions, and its time in each zone. Planning one
    digest only asks the database which updates it gets; their content comes from here."""

    def __init__(self) -> None:
        self._updates: dict[int, CachedUpdate] = {}
        self._rendered: dict[int, tuple[str, bool, Markup]] = {}
        self._local_times: dict[tuple[datetime, str], str] = {}

    def get(self, session: Session, ids: Iterable[int]) -> list[CachedUpdate]:
        """The updates `ids`, in that order; those not seen yet in this run are loaded."""
        ids = list(ids)
        missing = list(dict.fromkeys(i for i in ids if i not in self._updates))
        author = aliased(Person)
        for at in range(0, len(missing), _LOAD_BATCH):
            query = (
                select(
                    Update.id,
                    Update.thread_id,
                    Update.body,
                    Update.created_at,
                    author.name,
                    Thread.title,
                    Team.slug,
                    Team.name,
                    Thread.checkin_date.is_not(None),  # type: ignore[union-attr]
                    Team.checkin_question,
                    Team.blocker_question,
                )
                .join(Thread, Thread.id == Update.thread_id)
                .join(Team, Team.id == Update.team_id)
                .join(author, author.id == Update.author_id)
                .where(Update.id.in_(missing[at : at + _LOAD_BATCH]))  # type: ignore[union-attr]
            )
            for row in session.exec(query):
                update = CachedUpdate(*row)
                self._updates[update.id] = update
        return [self._updates[i] for i in ids]

    def rendered(self, update: CachedUpdate) -> tuple[str, bool, Markup]:
        """(body as shown, whether it was cut, its HTML): rendered on first use only, so
        updates looked at only to see whether they resolve a blocker are never rendered."""
        if update.id not in self._rendered:
            body, cut = cut_long(update.body)
            self._rendered[update.id] = (body, cut, render_markdown(body))
        return self._rendered[update.id]

    def local_time(self, instant: datetime, timezone: str) -> str:
        """`local_time`, which both parts of every digest ask for each item."""
        key = (instant, timezone)
        if key not in self._local_times:
            self._local_times[key] = local_time(instant, timezone)
        return self._local_times[key]


def new_updates_for(session: Session, person: Person) -> list[int]:
    """Ids of updates by others in the person's teams, since they joined, not yet in a
    digest; in digest order (team, then time)."""
    already = exists().where(
        and_(DigestItem.person_id == person.id, DigestItem.update_id == Update.id)
    )
    query = (
        select(Update.id)
        .join(Membership, Membership.team_id == Update.team_id)
        .join(Thread, Thread.id == Update.thread_id)
        .join(Team, Team.id == Update.team_id)
        .where(
            Membership.person_id == person.id,
            Thread.deleted_at.is_(None),  # type: ignore[union-attr]
            Update.author_id != person.id,
            Update.created_at >= Membership.joined_at,
            ~already,
        )
        .order_by(Team.slug, Update.created_at, Update.id)
    )
    return list(session.exec(query).all())  # type: ignore[arg-type]


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
    session: Session, person: Person, now: datetime, cache: RunCache
) -> list[CachedUpdate]:
    """Blockers in the person's teams from the last week whose thread has not since said
    they are resolved, oldest first. They stay at the top of each team's section in every
    digest until then, whether or not an earlier digest showed them."""
    query = (
        select(Update.id)
        .join(Membership, Membership.team_id == Update.team_id)
        .join(Thread, Thread.id == Update.thread_id)
        .join(Team, Team.id == Update.team_id)
        .where(
            Membership.person_id == person.id,
            Thread.deleted_at.is_(None),  # type: ignore[union-attr]
            Update.created_at >= now - BLOCKER_WINDOW,
            or_(
                Update.body.ilike("%block%"),  # type: ignore[attr-defined]
                and_(
                    Thread.checkin_date.is_not(None),  # type: ignore[union-attr]
                    Team.blocker_question.is_not(None),  # type: ignore[union-attr]
                ),
            ),
        )
        .order_by(Update.created_at, Update.id)
    )
    candidates = [u for u in cache.get(session, session.exec(query).all()) if u.blocker]
    if not candidates:
        return []
    later = cache.get(
        session,
        session.exec(
            select(Update.id).where(
                Update.thread_id.in_({u.thread_id for u in candidates}),  # type: ignore[attr-defined]
                Update.created_at >= now - BLOCKER_WINDOW,
            )
        ).all(),
    )
    return [
        blocker
        for blocker in candidates
        if not any(
            u.thread_id == blocker.thread_id
            and (u.created_at, u.id) > (blocker.created_at, blocker.id)
            and u.resolves
            for u in later
        )
    ]


def _entries(
    updates: Iterable[CachedUpdate],
    person: Person,
    settings: Settings,
    cache: RunCache,
    keys: ReplyKeys,
    addresses: dict[int, str],
    written_in: Mapping[int, datetime] | None = None,
) -> list[DigestEntry]:
    """Digest entries for `updates`. Each update's Markdown is rendered once per run however
    many people get it (`cache` is shared across the run), and each thread's reply address
    is signed once per person (`addresses`, by thread id)."""
    handles = handles_for(person.name, person.email)
    entries = []
    for update in updates:
        body, cut, html = cache.rendered(update)
        first_post = (written_in or {}).get(update.thread_id)
        if first_post is not None and update.created_at > first_post:
            for_you = "replied in your thread"
        elif update.mentionable.names(handles, person.email):
            for_you = "mentions you"
        else:
            for_you = ""
        if update.thread_id not in addresses:
            addresses[update.thread_id] = reply_address_for(
                person.id,  # type: ignore[arg-type]
                update.thread_id,
                update.team_slug,
                settings.mail_domain,
                keys,
            )
        entries.append(
            DigestEntry(
                update_id=update.id,
                thread_id=update.thread_id,
                thread_title=update.thread_title,
                team_slug=update.team_slug,
                team_name=update.team_name,
                author_name=update.author_name,
                created_at=update.created_at,
                body=body,
                body_html=html,
                reply_address=addresses[update.thread_id],
                # The permalink, not /threads/N#uM: it survives a detour through sign-in.
                archive_url=f"{settings.base_url}/updates/{update.id}",
                thread_url=f"{settings.base_url}/threads/{update.thread_id}",
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
    cache: RunCache | None = None,
) -> OutboundMessage | None:
    """Record `person`'s digest in the outbox (not sent yet); None when nothing is new.

    `cache` is the run's, shared by every digest it plans."""
    # The slot counts as handled even when nothing is new, so the schedule moves on to
    # the next one instead of finding this person due on every pass.
    person.last_digest_at = now
    session.add(person)
    ids = new_updates_for(session, person)
    if not ids:
        return None
    cache = RunCache() if cache is None else cache
    keys = store.load_reply_keys(session, settings.ensure_secret_key())
    addresses: dict[int, str] = {}
    entries = _entries(
        cache.get(session, ids),
        person,
        settings,
        cache,
        keys,
        addresses,
        threads_written_in(session, person),
    )
    blockers = _entries(
        open_blockers(session, person, now, cache), person, settings, cache, keys, addresses
    )
    digest = compose(entries, blockers)
    threads = {e.thread_id for e in entries}
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
            "local_time": lambda t: cache.local_time(t, person.timezone),
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
    # One executemany, not an ORM object per item: a digest can have a hundred. The outbox
    # row is flushed already (enqueue_mail), so its id is there to point at.
    session.connection().execute(
        insert(DigestItem.__table__),  # type: ignore[arg-type]
        [{"outbound_id": outbound.id, "person_id": person.id, "update_id": i} for i in ids],
    )
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
    teams = {e.team_slug: e.team_name for e in digest.for_you}
    teams.update((t.slug, t.name) for t in digest.teams)
    if len(teams) == 1:
        [(slug, name)] = teams.items()
        return f"{name} <{slug}.{domain}>"
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
    cache = RunCache()
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
                planned = plan_digest(session, fresh, settings, now, cache) if fresh else None
        except IntegrityError:
            log.info("digest for person %s was planned by another worker", person.id)
            run.skipped += 1
            continue
        if planned is None:
            run.nothing_new += 1
        else:
            run.planned += 1
    return run
