"""Plan digests: what each person gets, recorded in the outbox before anything is sent.

A run plans everyone who is due, a batch of people per transaction. Planning a person
writes an outbox row holding the digest's plan (the updates it covers, the blockers it
pins, which items are "for you"; `app/digest_plan.py`) and moves each of their
memberships' digest cursor to the run's ceiling: every update of that team up to it has
now been offered to them. The message is rendered from the plan when it is sent
(`digest/layout.py`), so planning touches a few rows per person whatever a digest holds.

Never twice, never skipped:
* the cursors move in the same transaction as the outbox row is written, under a lock on
  the person's row, so a second worker planning the same person finds them moved and
  plans nothing;
* the ceiling is an update id below which no update can still appear
  (`store.committed_update_ceiling`), so a cursor never passes one that commits late;
* a digest that fails for good moves the cursors back (`digest/send.py`), so its updates
  are offered again.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from itertools import chain
from typing import Any, NamedTuple

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, or_, select

from app import store
from app.db import session_scope
from app.digest_plan import DigestPlan, PausedMember
from app.models import Membership, Person, Team, Thread, Update
from app.render import render_subject
from app.settings import Settings
from digest.compose import handles_for
from digest.schedule import MemberPreferences, digest_due, schedule_of
from digest.updates import LOAD_BATCH, CachedUpdate, UpdateCache

log = logging.getLogger(__name__)

BLOCKER_WINDOW = timedelta(days=7)
# Before an admin's first digest, pauses this recent are news to them.
PAUSED_LOOKBACK = timedelta(days=14)
# People planned per transaction: a commit (an fsync) each would cost more than planning
# them, and a batch holds the write lock for well under a second.
PLAN_BATCH = 500


@dataclass
class DigestRun:
    """What one run planned: people with a digest, people with nothing new."""

    planned: int = 0
    nothing_new: int = 0
    skipped: int = 0


class _Reader(NamedTuple):
    id: int
    name: str
    email: str
    timezone: str
    last_digest_at: datetime | None


class _Membership(NamedTuple):
    id: int
    team_id: int
    person_id: int
    digest_cursor: int
    joined_at: datetime
    role: str


class News:
    """What is new for a reader: the updates others posted in their teams since their
    cursors, in live threads, team by team, in order of posting. Most members of a team
    share one (`Planner.news`), so what every digest of it needs is worked out once."""

    def __init__(self, updates: list[CachedUpdate], shared: bool) -> None:
        self.updates = updates
        self.shared = shared  # whether many readers may get it

    @cached_property
    def ids(self) -> list[int]:
        return [u.id for u in self.updates]

    @cached_property
    def span(self) -> tuple[int, int]:
        """The lowest and the highest update id."""
        return min(self.ids), max(self.ids)

    @cached_property
    def authors(self) -> set[int]:
        return {u.author_id for u in self.updates}

    @cached_property
    def earliest(self) -> datetime | None:
        return min((u.created_at for u in self.updates), default=None)

    @cached_property
    def threads(self) -> dict[int, None]:
        """The threads, in order of their first update here."""
        return dict.fromkeys(u.thread_id for u in self.updates)

    @cached_property
    def by_thread(self) -> dict[int, list[CachedUpdate]]:
        by_thread: dict[int, list[CachedUpdate]] = {}
        for u in self.updates:
            by_thread.setdefault(u.thread_id, []).append(u)
        return by_thread

    @cached_property
    def may_mention(self) -> list[CachedUpdate]:
        return [u for u in self.updates if u.may_mention]

    @cached_property
    def positions(self) -> dict[int, int]:
        return {u.id: n for n, u in enumerate(self.updates)}

    @cached_property
    def titles(self) -> tuple[str, ...]:
        """The threads' titles, in order."""
        return tuple(dict.fromkeys(u.thread_title for u in self.updates))

    def for_you(self, reader: _Reader, written_in: dict[int, datetime]) -> dict[int, str]:
        """{update: why it is for `reader`}, in digest order: replies in threads they
        wrote in (`written_in`: when they first did), and updates that mention them."""
        found: dict[int, str] = {}
        if written_in:
            # One reader's own news is looked through once; shared news, by thread.
            replies = (
                (u for thread in written_in for u in self.by_thread.get(thread, ()))
                if self.shared
                else self.updates
            )
            for u in replies:
                first_post = written_in.get(u.thread_id)
                if first_post is not None and u.created_at > first_post:
                    found[u.id] = "replied in your thread"
        if self.may_mention:
            handles = frozenset(h.lower() for h in handles_for(reader.name, reader.email) if h)
            address = reader.email.lower()
            for u in self.may_mention:
                if u.id not in found and u.mentionable.names_lowered(handles, address):
                    found[u.id] = "mentions you"
        if len(found) > 1:
            position = self.positions
            found = dict(sorted(found.items(), key=lambda item: position[item[0]]))
        return found


class Planner:
    """Plans digests for one run: one ceiling, one clock, one cache of updates and of
    each team's open blockers, shared by everyone the run plans."""

    def __init__(self, settings: Settings, now: datetime, ceiling: int) -> None:
        self.settings = settings
        self.now = now
        self.ceiling = ceiling
        self.updates = UpdateCache()
        self._blockers: dict[int, list[CachedUpdate]] = {}
        self._news: dict[tuple[tuple[int, int], ...], News] = {}
        self._subjects: dict[tuple[int, tuple[str, ...], tuple[str, ...]], str] = {}

    def plan(self, session: Session, person_ids: Sequence[int]) -> dict[int, bool]:
        """Plan the digests of `person_ids` in `session`'s transaction: {person id: whether
        they got one}. Their person rows are read for update and written first, which
        locks them (and, on SQLite, the database) until the caller commits."""
        people = [
            _Reader(*row)
            for row in session.exec(
                select(Person.id, Person.name, Person.email, Person.timezone, Person.last_digest_at)
                .where(Person.id.in_(person_ids))  # type: ignore[union-attr]
                .order_by(Person.id)  # type: ignore[arg-type]
                .with_for_update()
            )
        ]
        previous = {p.id: p.last_digest_at for p in people}
        session.execute(
            update(Person)
            .where(Person.id.in_(person_ids))  # type: ignore[union-attr]
            .values(last_digest_at=self.now)
            .execution_options(synchronize_session=False)
        )
        memberships: dict[int, list[tuple[_Membership, str]]] = defaultdict(list)
        query = (
            select(
                Membership.id,
                Membership.team_id,
                Membership.person_id,
                Membership.digest_cursor,
                Membership.joined_at,
                Membership.role,
                Team.slug,
            )
            .join(Team, Team.id == Membership.team_id)
            .where(Membership.person_id.in_(person_ids))  # type: ignore[attr-defined]
            .order_by(Team.slug)
        )
        for *membership, slug in session.exec(query):
            m = _Membership(*membership)
            memberships[m.person_id].append((m, slug))
        news = {p.id: self.news(session, p.id, memberships[p.id]) for p in people}
        paused = self._paused_for_admins(session, memberships, previous)
        written = self._threads_written_in(session, news)
        planned: dict[int, bool] = {}
        moved: list[int] = []
        digests: list[dict[str, Any]] = []
        for person in people:
            cursors = {
                m.id: (m.digest_cursor, self.ceiling)
                for m, _ in memberships[person.id]
                if m.digest_cursor < self.ceiling
            }
            moved.extend(cursors)
            new, notices = news[person.id], paused.get(person.id, [])
            planned[person.id] = bool(new.updates or notices)
            if new.updates or notices:
                teams = [m.team_id for m, _ in memberships[person.id]]
                written_in = written[person.id]
                digests.append(
                    self._digest(session, person, new, teams, written_in, cursors, notices)
                )
        store.enqueue_digests(session, digests)
        for at in range(0, len(moved), LOAD_BATCH):  # every cursor moves to the ceiling
            session.execute(
                update(Membership)
                .where(Membership.id.in_(moved[at : at + LOAD_BATCH]))  # type: ignore[union-attr]
                .values(digest_cursor=self.ceiling)
                .execution_options(synchronize_session=False)
            )
        return planned

    def news(
        self, session: Session, person_id: int, memberships: list[tuple[_Membership, str]]
    ) -> News:
        """What others posted in the person's teams since their cursors and since they
        joined, in live threads. Shared by the members of the same teams with the same
        cursors, unless they posted some of it or joined while it was posted."""
        parts: list[list[CachedUpdate]] = []
        shared = True
        for membership, _ in memberships:
            team = self._team_news(session, membership.team_id, membership.digest_cursor)
            joined = membership.joined_at
            if person_id in team.authors or (team.earliest and joined > team.earliest):
                shared = False
                parts.append(
                    [u for u in team.updates if u.author_id != person_id and u.created_at >= joined]
                )
            else:
                parts.append(team.updates)
        if not shared:
            return News(list(chain.from_iterable(parts)), shared=False)
        key = tuple((m.team_id, m.digest_cursor) for m, _ in memberships)
        found = self._news.get(key)
        if found is None:
            found = self._news[key] = News(list(chain.from_iterable(parts)), shared=True)
        return found

    def _team_news(self, session: Session, team_id: int, cursor: int) -> News:
        """The team's updates after `cursor` in live threads, whoever wrote them."""
        key = ((team_id, cursor),)
        found = self._news.get(key)
        if found is None:
            team = self.updates.team_between(session, team_id, cursor, self.ceiling)
            found = self._news[key] = News([u for u in team if not u.thread_deleted], shared=True)
        return found

    def _paused_for_admins(
        self,
        session: Session,
        memberships: dict[int, list[tuple[_Membership, str]]],
        previous: dict[int, datetime | None],
    ) -> dict[int, list[PausedMember]]:
        """{admin: members of the teams they run whose mail was paused since the admin's
        previous digest (or in the last `PAUSED_LOOKBACK`, before their first)}."""
        admin_of = {
            person_id: {m.team_id for m, _ in rows if m.role == "admin"}
            for person_id, rows in memberships.items()
        }
        admin_of = {p: teams for p, teams in admin_of.items() if teams}
        if not admin_of:
            return {}
        since = {p: previous.get(p) or self.now - PAUSED_LOOKBACK for p in admin_of}
        query = (
            select(Person, Membership.team_id, Team.name)
            .join(Membership, Membership.person_id == Person.id)
            .join(Team, Team.id == Membership.team_id)
            .where(
                Membership.team_id.in_(set().union(*admin_of.values())),  # type: ignore[attr-defined]
                Person.mail_paused_at > min(since.values()),  # type: ignore[operator]
                Person.mail_paused_at <= self.now,  # type: ignore[operator]
            )
            .order_by(Team.name, Person.email)
        )
        notices: dict[int, list[PausedMember]] = defaultdict(list)
        for member, team_id, team_name in session.exec(query):
            assert member.mail_paused_at is not None
            notice = PausedMember(
                team=team_name,
                name=member.name,
                email=member.email,
                reason=member.mail_paused_reason or "",
                since=member.mail_paused_at.date().isoformat(),
            )
            for admin, teams in admin_of.items():
                if team_id in teams and admin != member.id and member.mail_paused_at > since[admin]:
                    notices[admin].append(notice)
        return notices

    def _threads_written_in(
        self, session: Session, news: dict[int, News]
    ) -> dict[int, dict[int, datetime]]:
        """{person: {thread: when they first wrote in it}} for the threads their digests
        show: later posts there are replies to them."""
        threads = sorted(set().union(*(new.threads for new in set(news.values()))))
        people = [p for p, new in news.items() if new.updates]
        written: dict[int, dict[int, datetime]] = defaultdict(dict)
        for at in range(0, len(threads), LOAD_BATCH):
            query = (
                select(Update.author_id, Update.thread_id, func.min(Update.created_at))
                .where(
                    Update.author_id.in_(people),  # type: ignore[attr-defined]
                    Update.thread_id.in_(threads[at : at + LOAD_BATCH]),  # type: ignore[attr-defined]
                )
                .group_by(Update.author_id, Update.thread_id)
            )
            for author_id, thread_id, first in session.exec(query):
                written[author_id][thread_id] = first
        return written

    def _subject(self, new: News, paused: list[PausedMember]) -> str:
        """The digest's subject: the same for most members, whose news differs (their own
        posts left out) by a post or two."""
        key = (len(new.updates), new.titles, tuple(p.name or p.email for p in paused))
        subject = self._subjects.get(key)
        if subject is None:
            count, titles, names = key
            subject = self._subjects[key] = render_subject(
                self.settings.templates_dir,
                "digest",
                {"count": count, "titles": list(titles), "paused": list(names)},
            )
        return subject

    def open_blockers(self, session: Session, team_id: int) -> list[CachedUpdate]:
        """The team's blockers from the last week whose thread has not since said they are
        resolved, oldest first. They stay at the top of the team's section in every digest
        until then, whether or not an earlier digest showed them."""
        if team_id in self._blockers:
            return self._blockers[team_id]
        since = self.now - BLOCKER_WINDOW
        query = (
            select(Update.id)
            .join(Thread, Thread.id == Update.thread_id)
            .join(Team, Team.id == Update.team_id)
            .where(
                Update.team_id == team_id,
                Update.id <= self.ceiling,  # type: ignore[operator]
                Thread.deleted_at.is_(None),  # type: ignore[union-attr]
                Update.created_at >= since,  # type: ignore[operator]
                or_(
                    Update.body.ilike("%block%"),  # type: ignore[attr-defined]
                    Thread.checkin_date.is_not(None) & Team.blocker_question.is_not(None),  # type: ignore[union-attr]
                ),
            )
            .order_by(Update.created_at, Update.id)
        )
        candidates = [u for u in self.updates.get(session, session.exec(query)) if u.blocker]
        later = []
        if candidates:
            query = select(Update.id).where(
                Update.thread_id.in_({u.thread_id for u in candidates}),  # type: ignore[attr-defined]
                Update.id <= self.ceiling,  # type: ignore[operator]
                Update.created_at >= since,  # type: ignore[operator]
            )
            later = self.updates.get(session, session.exec(query))
        self._blockers[team_id] = [
            blocker
            for blocker in candidates
            if not any(
                u.thread_id == blocker.thread_id
                and (u.created_at, u.id) > (blocker.created_at, blocker.id)
                and u.resolves
                for u in later
            )
        ]
        return self._blockers[team_id]

    def _digest(
        self,
        session: Session,
        person: _Reader,
        new: News,
        teams: list[int],
        written_in: dict[int, datetime],
        cursors: dict[int, tuple[int, int]],
        paused: list[PausedMember],
    ) -> dict[str, Any]:
        """The person's planned digest, for `store.enqueue_digests`: what is new, and for
        an admin the members of their teams whose mail is paused (maybe only that)."""
        blockers = [b.id for team in teams for b in self.open_blockers(session, team)]
        plan = DigestPlan(
            new.ids,
            blockers,
            new.for_you(person, written_in),
            cursors,
            person.name,
            person.timezone,
            paused,
        )
        ids = plan.updates
        if ids:
            first, last = new.span
            key = f"digest:{person.id}:{first}-{last}:{len(ids)}"
        else:  # only notices: what they tell is the key
            key = f"digest:{person.id}:paused:" + ",".join(f"{p.email}@{p.since}" for p in paused)
            key = key[:150] + hashlib.sha256(key.encode()).hexdigest()[:16]
        domain = self.settings.mail_domain
        message_id = f"<{hashlib.sha256(key.encode()).hexdigest()[:24]}.digest@{domain}>"
        subject = self._subject(new, paused)
        if len(new.threads) == 1:
            # One thread: the digest's Reply-To posts there, and so does a reply keeping
            # only In-Reply-To.
            [thread_id] = new.threads
            thread = store.get_thread(session, thread_id)
            store.remember_sent(session, message_id, thread, session.get(Person, person.id))
        return {
            "person_id": person.id,
            "recipient": person.email,
            "idempotency_key": key,
            "subject": subject,
            "message_id": message_id,
            "plan": plan.to_json(),
            "created_at": self.now,
        }


def plan_digest(session: Session, person: Person, settings: Settings, now: datetime) -> bool:
    """Plan `person`'s digest now, in `session`'s transaction; whether there was anything
    new for it. For one-off use (a script, a test); `run_digests` plans everyone due."""
    ceiling = store.committed_update_ceiling(session)
    return Planner(settings, now, ceiling).plan(session, [person.id])[person.id]  # type: ignore[list-item,index]


def run_digests(
    engine: Engine,
    settings: Settings,
    now: datetime,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> DigestRun:
    """Plan a digest for everyone who is due (everyone, with `force`), `PLAN_BATCH` people
    per transaction. A batch that fails (another worker holding the same people, a
    deadlock, one person's bad data) is planned again one person per transaction, so one
    failure never blocks the rest.

    `progress(done, total)` is called after each batch.
    """
    with session_scope(engine) as session:
        # Rows, not objects, of every member: the columns `schedule_of` reads (named by
        # the protocol it takes, so the two stay in step) and when they last got one.
        people = list(
            session.exec(
                select(
                    Person.id,
                    Person.last_digest_at,
                    Person.created_at,
                    *(getattr(Person, name) for name in MemberPreferences.__annotations__),
                ).where(Person.digest_cadence != "off")
            )
        )
    due = [
        p.id
        for p in people
        if force or digest_due(schedule_of(p), p.last_digest_at, p.created_at, now)
    ]
    run = DigestRun(skipped=len(people) - len(due))
    with session_scope(engine) as session:
        ceiling = store.committed_update_ceiling(session)
    planner = Planner(settings, now, ceiling)
    for at in range(0, len(due), PLAN_BATCH):
        batch: list[int] = due[at : at + PLAN_BATCH]  # type: ignore[assignment]
        try:
            with session_scope(engine) as session:
                outcomes = planner.plan(session, batch)
        except Exception:
            log.info("planning %s people together failed; planning them one by one", len(batch))
            outcomes = {}
            for person_id in batch:
                try:
                    with session_scope(engine) as session:
                        outcomes.update(planner.plan(session, [person_id]))
                except IntegrityError:
                    log.info("digest for person %s was planned by another worker", person_id)
                    run.skipped += 1
                except Exception:
                    log.exception("could not plan the digest of person %s", person_id)
                    run.skipped += 1
        run.planned += sum(outcomes.values())
        run.nothing_new += sum(not got for got in outcomes.values())
        if progress is not None:
            progress(min(at + PLAN_BATCH, len(due)), len(due))
    return run
