"""Updates as digests see them, read once however many digests show them.

A planning run and a sending pass each keep one `UpdateCache`: an update, its thread, team
and author are read from the database once, and what every digest asks of it (is it a
blocker, does it resolve one, whom does it mention) is worked out once.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from typing import Any

from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from app.models import Person, Team, Thread, Update
from app.views import answered_on
from digest.answers import answers, reports_blocker
from digest.compose import Mentionable, is_blocker, says_resolved

# Ids per IN (...) list: well under every engine's limit on bound parameters.
LOAD_BATCH = 500


@dataclass(frozen=True)
class CachedUpdate:
    """One update and what every digest shows of it, as it was when first read: an edit
    made while a run is under way shows in later runs."""

    id: int
    team_id: int
    thread_id: int
    author_id: int
    body: str
    created_at: datetime
    author_name: str
    thread_title: str
    thread_deleted: bool
    team_slug: str
    team_name: str
    checkin_date: date | None  # the day of the check-in it answers, if it does
    questions: str  # the team's check-in questions, one a line
    blocker_question: int | None  # which of them asks about blockers
    author_timezone: str

    @property
    def checkin(self) -> bool:
        """An answer in a check-in thread."""
        return self.checkin_date is not None

    @cached_property
    def answered_on(self) -> date | None:
        """The author's day, when they answered a check-in after its day."""
        return answered_on(self.checkin_date, self.created_at, self.author_timezone)

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

    @cached_property
    def may_mention(self) -> bool:
        """Whether it could mention anyone: most updates cannot (no `@` at all)."""
        return "@" in self.body


def _query() -> Any:
    author = aliased(Person)
    return (
        select(
            Update.id,
            Update.team_id,
            Update.thread_id,
            Update.author_id,
            Update.body,
            Update.created_at,
            author.name,
            Thread.title,
            Thread.deleted_at.is_not(None),  # type: ignore[union-attr]
            Team.slug,
            Team.name,
            Thread.checkin_date,
            Team.checkin_question,
            Team.blocker_question,
            author.timezone,
        )
        .join(Thread, Thread.id == Update.thread_id)
        .join(Team, Team.id == Update.team_id)
        .join(author, author.id == Update.author_id)
    )


class UpdateCache:
    def __init__(self) -> None:
        self._updates: dict[int, CachedUpdate] = {}
        # team id -> (every update after this id is loaded, those updates by id)
        self._teams: dict[int, tuple[int, list[CachedUpdate]]] = {}
        self._between: dict[tuple[int, int], list[CachedUpdate]] = {}

    def get(self, session: Session, ids: Iterable[int]) -> list[CachedUpdate]:
        """The updates `ids`, in that order; those not seen yet are loaded."""
        ids = list(ids)
        missing = list(dict.fromkeys(i for i in ids if i not in self._updates))
        for at in range(0, len(missing), LOAD_BATCH):
            chunk = missing[at : at + LOAD_BATCH]
            self._keep(session.exec(_query().where(Update.id.in_(chunk))))  # type: ignore[union-attr]
        return [self._updates[i] for i in ids if i in self._updates]

    def team_between(
        self, session: Session, team_id: int, after: int, up_to: int
    ) -> list[CachedUpdate]:
        """The team's updates with `after` < id <= `up_to`, in order of posting; `up_to` is
        the planning run's ceiling, the same on every call. Members of a team mostly share
        a cursor, so each answer is kept."""
        key = (team_id, after)
        if key not in self._between:
            found = self._by_id_between(session, team_id, after, up_to)
            self._between[key] = sorted(found, key=lambda u: (u.created_at, u.id))
        return self._between[key]

    def _by_id_between(
        self, session: Session, team_id: int, after: int, up_to: int
    ) -> list[CachedUpdate]:
        """The first member asking for a team loads its range; one with an older cursor
        loads only what is missing."""
        loaded_after, updates = self._teams.get(team_id, (up_to, []))
        if after < loaded_after:
            query = _query().where(
                Update.team_id == team_id,
                Update.id > after,  # type: ignore[operator]
                Update.id <= loaded_after,  # type: ignore[operator]
            )
            older = sorted(self._keep(session.exec(query)), key=lambda u: u.id)
            updates = older + updates
            loaded_after = after
            self._teams[team_id] = (loaded_after, updates)
        ids = [u.id for u in updates]
        return updates[bisect_right(ids, after) : bisect_right(ids, up_to)]

    def _keep(self, rows: Iterable[Any]) -> list[CachedUpdate]:
        kept = []
        for row in rows:
            update = self._updates.get(row[0]) or CachedUpdate(*row)
            self._updates[update.id] = update
            kept.append(update)
        return kept
