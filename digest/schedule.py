"""Pure scheduling maths for digests, check-in prompts and quiet hours.

Nothing here reads a clock or does I/O: every instant is an argument. All datetimes going in
must be timezone-aware (a naive one raises ``ValueError``); every datetime coming out is aware
and in UTC.

Local wall-clock times become instants in exactly one place, :func:`local_slot`, which fixes
the DST policy for the whole service:

* a wall time that occurs twice (the repeated hour when clocks fall back) means its *first*
  occurrence (``fold=0``), so a slot inside that hour fires once;
* a wall time that does not occur (the hour skipped when clocks spring forward) means the first
  valid instant after the gap (02:30 on a Berlin spring-forward day is 03:00 local), so the
  slot still fires, once;
* a calendar day that does not exist at all in a zone (e.g. Pacific/Apia skipped 2011-12-30)
  has no slot.

Quiet hours: they defer sends that are *not* at a time the member picked themselves (check-in
prompts, ``immediate`` batches, notices) via :func:`end_of_quiet_hours`. A ``daily`` or
``weekly`` digest goes out at the member's chosen hour even when that hour is inside their quiet
hours, because they chose it; :func:`digest_due` therefore ignores quiet hours for those
cadences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal, Protocol, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Cadence = Literal["daily", "weekly", "immediate", "off"]

IMMEDIATE_BATCH_DELAY = timedelta(seconds=60)
"""How long an ``immediate`` item waits so that items arriving together share one email."""

_CADENCES: frozenset[str] = frozenset(get_args(Cadence))
_WORKDAYS = frozenset(range(5))  # Mon–Fri
# Enough days to reach the next eligible day for every cadence even when a day in between
# does not exist in the zone (a weekly slot is at most 7 days out, plus one skipped date).
_SEARCH_DAYS = 9


@dataclass(frozen=True)
class Schedule:
    """When one member gets digests, and when they must not be disturbed.

    ``away_from``/``away_until`` are inclusive local dates; a missing bound makes that side of
    the away period open-ended (``away_from`` alone means "away until further notice"), and
    both missing means never away. ``quiet_start == quiet_end`` means no quiet hours.
    """

    cadence: Cadence = "daily"
    timezone: str = "UTC"
    hour: int = 9
    minute: int = 0
    weekdays_only: bool = False
    weekday: int = 0
    away_from: date | None = None
    away_until: date | None = None
    quiet_start: time = time(20, 0)
    quiet_end: time = time(8, 0)

    def __post_init__(self) -> None:
        # Fail where a bad row is built rather than deep inside a scheduler loop.
        if self.cadence not in _CADENCES:
            raise ValueError(f"cadence must be one of {sorted(_CADENCES)}, got {self.cadence!r}")
        if not 0 <= self.hour <= 23:
            raise ValueError(f"hour must be 0..23, got {self.hour!r}")
        if not 0 <= self.minute <= 59:
            raise ValueError(f"minute must be 0..59, got {self.minute!r}")
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0 (Monday)..6 (Sunday), got {self.weekday!r}")
        for name in ("quiet_start", "quiet_end"):
            if getattr(self, name).tzinfo is not None:
                raise ValueError(f"{name} must be a naive local wall time")
        _zone(self.timezone)

    @property
    def tz(self) -> ZoneInfo:
        """The member's zone."""
        return _zone(self.timezone)


class MemberPreferences(Protocol):
    """What a member row says about their schedule (app.models.Person has these fields)."""

    digest_cadence: str
    timezone: str
    digest_hour: int
    digest_weekdays_only: bool
    digest_weekday: int
    away_from: date | None
    away_until: date | None
    quiet_start: time
    quiet_end: time


def schedule_of(member: MemberPreferences) -> Schedule:
    return Schedule(
        cadence=member.digest_cadence,  # type: ignore[arg-type]
        timezone=member.timezone,
        hour=member.digest_hour,
        weekdays_only=member.digest_weekdays_only,
        weekday=member.digest_weekday,
        away_from=member.away_from,
        away_until=member.away_until,
        quiet_start=member.quiet_start,
        quiet_end=member.quiet_end,
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc


def _require_aware(value: datetime, name: str) -> datetime:
    """Return `value` in UTC, refusing naive datetimes (their meaning depends on the host)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} must be a timezone-aware datetime (e.g. tzinfo=datetime.UTC), "
            f"got naive {value!r}"
        )
    return value.astimezone(UTC)


def local_slot(day: date, at: time, tz: tzinfo | str, *, fold: Literal[0, 1] = 0) -> datetime:
    """The UTC instant at which the wall clock in `tz` shows `at` on `day`.

    A repeated wall time gives its first occurrence (with ``fold=1``, its second); a wall time
    inside a spring-forward gap gives the first instant after the gap (which, for a day skipped
    entirely, is on a later local date — callers that need "one per day" check for that).
    """
    if at.tzinfo is not None:
        raise ValueError(f"`at` must be a naive local wall time, got {at!r}")
    zone = _zone(tz) if isinstance(tz, str) else tz
    wall = datetime.combine(day, at)
    instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    return _end_of_gap(wall, zone)


def _end_of_gap(wall: datetime, zone: tzinfo) -> datetime:
    """First instant whose local wall time is past `wall`, which lies in a gap of `zone`.

    For a wall time in a gap the two folds map to instants on either side of the transition
    (PEP 495), so the transition is found by bisection between them; tzdata transitions fall on
    whole UTC seconds, hence the integer search.
    """
    a, b = (wall.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1))
    lo = math.floor(min(a, b).timestamp())  # wall time here is before the gap
    hi = math.ceil(max(a, b).timestamp())  # and here after it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) > wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _slot_on(day: date, at: time, zone: ZoneInfo) -> datetime | None:
    """The slot for local `day`, or None when that date does not exist in `zone`."""
    slot = local_slot(day, at, zone)
    return slot if slot.astimezone(zone).date() == day else None


def _eligible_weekdays(schedule: Schedule) -> frozenset[int]:
    if schedule.cadence == "weekly":
        return frozenset({schedule.weekday})
    return _WORKDAYS if schedule.weekdays_only else frozenset(range(7))


def _next_wall_slot(
    zone: ZoneInfo, at: time, weekdays: frozenset[int], after: datetime
) -> datetime:
    # Start a day early: a slot belongs to its own local date or later, never earlier, so the
    # previous day is the earliest whose slot could still be after `after`.
    start = after.astimezone(zone).date() - timedelta(days=1)
    for offset in range(_SEARCH_DAYS + 1):
        day = start + timedelta(days=offset)
        if day.weekday() not in weekdays:
            continue
        slot = _slot_on(day, at, zone)
        if slot is not None and slot > after:
            return slot
    raise AssertionError("unreachable: every week has an eligible day that exists")


def next_slot(schedule: Schedule, after: datetime) -> datetime | None:
    """First scheduled instant strictly after `after`; None for cadence ``off``.

    ``daily`` (optionally Mon–Fri local) and ``weekly`` (on ``schedule.weekday`` local) slots
    are at ``hour:minute`` local time under the DST policy of :func:`local_slot`. For
    ``immediate`` this is ``after`` plus the 60 s batching delay; callers then pass the result
    through :func:`end_of_quiet_hours`. Away periods are not applied here (see
    :func:`digest_due`).
    """
    after = _require_aware(after, "after")
    if schedule.cadence == "off":
        return None
    if schedule.cadence == "immediate":
        return after + IMMEDIATE_BATCH_DELAY
    return _next_wall_slot(
        schedule.tz, time(schedule.hour, schedule.minute), _eligible_weekdays(schedule), after
    )


def is_away(schedule: Schedule, instant: datetime) -> bool:
    """Whether the member's local date at `instant` is inside their away period."""
    return _in_away(
        _require_aware(instant, "instant").astimezone(schedule.tz).date(),
        schedule.away_from,
        schedule.away_until,
    )


def _in_away(day: date, away_from: date | None, away_until: date | None) -> bool:
    if away_from is None and away_until is None:
        return False
    return (away_from is None or away_from <= day) and (away_until is None or day <= away_until)


def digest_due(
    schedule: Schedule, last_sent: datetime | None, joined: datetime, now: datetime
) -> bool:
    """Whether the member's digest should go out at `now`.

    True when the next slot after ``last_sent`` (or ``joined`` if nothing was sent yet) is at
    or before `now` and `now` is not inside an away period. A slot that falls while away is
    replaced by the first slot on or after the return day, so the first digest after return
    covers the whole absence. Quiet hours do not apply to ``daily``/``weekly`` digests (the
    member chose the hour). For ``immediate`` the answer means "a batch may go out now": at
    least 60 s since the last one, not away and outside quiet hours — whether there is
    anything to send is the caller's business. Always False for ``off``.
    """
    now = _require_aware(now, "now")
    since = _require_aware(joined, "joined")
    if last_sent is not None:
        since = _require_aware(last_sent, "last_sent")
    if schedule.cadence == "off" or is_away(schedule, now):
        return False
    if schedule.cadence == "immediate" and end_of_quiet_hours(schedule, now) != now:
        return False
    slot = next_slot(schedule, since)
    if slot is not None and is_away(schedule, slot):
        if schedule.away_until is None:
            return False
        # A slot missed while away becomes the first slot once back, so the first email after
        # the absence covers all of it instead of arriving the moment the period ends.
        back = local_slot(schedule.away_until + timedelta(days=1), time(0, 0), schedule.tz)
        slot = next_slot(schedule, back - timedelta(microseconds=1))
    return slot is not None and slot <= now


def checkin_due(
    timezone: str,
    hour: int,
    minute: int,
    last_prompted: datetime | None,
    joined: datetime,
    now: datetime,
    away_from: date | None = None,
    away_until: date | None = None,
) -> bool:
    """Whether a member's check-in prompt should be sent at `now`.

    Prompts go out Mon–Fri at ``hour:minute`` in the member's own zone, with the same DST and
    away rules as :func:`digest_due`. The hour is the team's, not the member's, so the caller
    should defer the send with :func:`end_of_quiet_hours` using the member's schedule.
    """
    for value, name in ((now, "now"), (joined, "joined"), (last_prompted, "last_prompted")):
        if value is not None:
            _require_aware(value, name)
    schedule = Schedule(
        cadence="daily",
        timezone=timezone,
        hour=hour,
        minute=minute,
        weekdays_only=True,
        away_from=away_from,
        away_until=away_until,
    )
    return digest_due(schedule, last_prompted, joined, now)


def end_of_quiet_hours(schedule: Schedule, instant: datetime) -> datetime:
    """`instant` (in UTC) if outside the member's quiet hours, else the instant they end.

    Quiet hours are the local wall-clock window ``[quiet_start, quiet_end)``, wrapping past
    midnight when ``quiet_start > quiet_end``; equal bounds mean no quiet hours.
    """
    instant = _require_aware(instant, "instant")
    start, end = schedule.quiet_start, schedule.quiet_end
    zone = schedule.tz
    local = instant.astimezone(zone)
    wall = local.time().replace(tzinfo=None)
    if start == end:
        return instant
    if start < end:
        if not start <= wall < end:
            return instant
        end_day = local.date()
    elif wall >= start:
        end_day = local.date() + timedelta(days=1)
    elif wall < end:
        end_day = local.date()
    else:
        return instant
    quiet_over = local_slot(end_day, end, zone)
    if quiet_over <= instant:
        # `instant` is in the second pass of a repeated hour, past the first occurrence of
        # quiet_end: by the wall clock it is quiet again until quiet_end comes round again.
        quiet_over = local_slot(end_day, end, zone, fold=1)
    return quiet_over
