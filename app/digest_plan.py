"""A planned digest: what it covers, decided when it is planned and kept in its outbox row.

It lives in app/ because the store reads it too (replies to a digest by Message-ID).
The planner (digest/build.py) decides and records this in one transaction; the sender
renders the message from it (digest/layout.py). A retry after a crash renders the same
digest again, because everything that chose its content is here.

Pure: no database, no clock.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class PausedMember:
    """A member whose mail Tidings paused (or an admin did), told to their team's admins
    in their next digest, so someone fixes the address and resumes them."""

    team: str  # the team's name
    name: str
    email: str
    reason: str
    since: str  # the day it was paused, ISO, UTC


@dataclass(frozen=True)
class DigestPlan:
    updates: list[int]  # new updates, in digest order (team, then time)
    blockers: list[int] = field(default_factory=list)  # open blockers pinned at the top
    for_you: dict[int, str] = field(default_factory=dict)  # update id -> why it is for them
    # membership id -> (cursor before, cursor after): a digest that never arrives moves
    # them back, so its updates are offered again.
    cursors: dict[int, tuple[int, int]] = field(default_factory=dict)
    # The reader's name and time zone when it was planned: the digest shows times in the
    # zone its schedule was worked out in. None in plans from before they were kept.
    reader: str | None = None
    timezone: str | None = None
    # For a team admin: members of their teams paused since their previous digest.
    paused: list[PausedMember] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(
            {
                "updates": self.updates,
                "blockers": self.blockers,
                "for_you": {str(k): v for k, v in self.for_you.items()},
                "cursors": {str(k): list(v) for k, v in self.cursors.items()},
                "reader": self.reader,
                "timezone": self.timezone,
                "paused": [asdict(p) for p in self.paused],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> DigestPlan:
        data = json.loads(text)
        return cls(
            updates=list(map(int, data.get("updates", []))),
            blockers=list(map(int, data.get("blockers", []))),
            for_you={int(k): str(v) for k, v in data.get("for_you", {}).items()},
            cursors={int(k): (int(v[0]), int(v[1])) for k, v in data.get("cursors", {}).items()},
            reader=data.get("reader"),
            timezone=data.get("timezone"),
            paused=[PausedMember(**p) for p in data.get("paused", [])],
        )
