"""Tests for digest.schedule: DST edge cases, away periods, quiet hours, and properties."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.schedule import (
    Cadence,
    Schedule,
    checkin_due,
    digest_due,
    end_of_quiet_hours,
    is_away,
    local_slot,
    next_slot,
)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"
KATHMANDU = "Asia/Kathmandu"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(instant: datetime, tz: str) -> datetime:
    return instant.astimezone(ZoneInfo(tz))


def slots(schedule: Schedule, start: datetime, until: datetime) -> Iterator[datetime]:
    slot = next_slot(schedule, start)
    while slot is not None and slot <= until:
        yield slot
        slot = next_slot(schedule, slot)


def simulate_sends(
    schedule: Schedule, joined: datetime, until: datetime, step: timedelta
) -> list[datetime]:
    """Tick a scheduler every `step`, sending whenever a digest is due; return send times."""
    sent: list[datetime] = []
    now = joined
    while now <= until:
        if digest_due(schedule, sent[-1] if sent else None, joined, now):
            sent.append(now)
        now += step
    return sent


# --- input validation and output shape ---------------------------------------------------


NAIVE = datetime(2026, 1, 5, 9, 0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: next_slot(Schedule(), NAIVE),
        lambda: digest_due(Schedule(), None, NAIVE, utc(2026, 1, 5)),
        lambda: digest_due(Schedule(), None, utc(2026, 1, 5), NAIVE),
        lambda: digest_due(Schedule(), NAIVE, utc(2026, 1, 5), utc(2026, 1, 5)),
        lambda: digest_due(Schedule(), utc(2026, 1, 5), NAIVE, utc(2026, 1, 5)),
        lambda: end_of_quiet_hours(Schedule(), NAIVE),
        lambda: is_away(Schedule(), NAIVE),
        lambda: checkin_due("UTC", 9, 0, NAIVE, utc(2026, 1, 5), utc(2026, 1, 5)),
        lambda: checkin_due("UTC", 9, 0, None, utc(2026, 1, 5), NAIVE),
    ],
)
def test_naive_datetimes_are_rejected(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        call()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hour": 24},
        {"minute": 60},
        {"weekday": 7},
        {"timezone": "Mars/Olympus_Mons"},
        {"cadence": "hourly"},
        {"quiet_start": time(20, tzinfo=UTC)},
    ],
)
def test_invalid_schedules_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Schedule(**kwargs)  # type: ignore[arg-type]


def test_outputs_are_utc_even_for_non_utc_input() -> None:
    after = datetime(2026, 1, 5, 12, 0, tzinfo=timezone(timedelta(hours=5)))
    slot = next_slot(Schedule(timezone=BERLIN), after)
    assert slot == utc(2026, 1, 5, 8, 0)  # 07:00 UTC is 08:00 Berlin; 09:00 is next
    assert slot is not None and slot.tzinfo is UTC
    quiet = end_of_quiet_hours(Schedule(timezone=BERLIN), after)  # 08:00 local
    assert quiet.tzinfo is UTC and quiet == after


def test_off_has_no_slots() -> None:
    off = Schedule(cadence="off")
    assert next_slot(off, utc(2026, 1, 5)) is None
    assert not digest_due(off, None, utc(2020, 1, 1), utc(2026, 1, 5))


def test_immediate_batches_for_a_minute() -> None:
    after = utc(2026, 1, 5, 12, 0, 7)
    assert next_slot(Schedule(cadence="immediate"), after) == after + timedelta(seconds=60)


# --- local_slot ---------------------------------------------------------------------------


def test_local_slot_accepts_a_zone_name_and_rejects_aware_times() -> None:
    assert local_slot(date(2026, 1, 5), time(9), KATHMANDU) == utc(2026, 1, 5, 3, 15)
    with pytest.raises(ValueError, match="naive"):
        local_slot(date(2026, 1, 5), time(9, tzinfo=UTC), KATHMANDU)


def test_local_slot_fold_picks_the_occurrence_of_a_repeated_time() -> None:
    day, at = date(2026, 10, 25), time(2, 30)
    assert local_slot(day, at, BERLIN) == utc(2026, 10, 25, 0, 30)
    assert local_slot(day, at, BERLIN, fold=1) == utc(2026, 10, 25, 1, 30)


def test_local_slot_skipped_day_resolves_past_it() -> None:
    # Samoa jumped from 29 to 31 December 2011.
    resolved = local_slot(date(2011, 12, 30), time(9), "Pacific/Apia")
    assert local(resolved, "Pacific/Apia") == datetime(
        2011, 12, 31, 0, 0, tzinfo=ZoneInfo("Pacific/Apia")
    )


def test_daily_skips_a_date_that_does_not_exist() -> None:
    schedule = Schedule(timezone="Pacific/Apia")
    got = [
        local(s, "Pacific/Apia").date()
        for s in slots(schedule, utc(2011, 12, 28), utc(2012, 1, 1, 12))
    ]
    assert got == [date(2011, 12, 28), date(2011, 12, 29), date(2011, 12, 31), date(2012, 1, 1)]


# --- named DST edge cases -----------------------------------------------------------------


def test_berlin_nine_am_stays_nine_am_across_both_changes() -> None:
    schedule = Schedule(timezone=BERLIN)
    spring = list(slots(schedule, utc(2026, 3, 27), utc(2026, 3, 31)))
    autumn = list(slots(schedule, utc(2026, 10, 23), utc(2026, 10, 27)))
    assert spring == [
        utc(2026, 3, 27, 8),
        utc(2026, 3, 28, 8),
        utc(2026, 3, 29, 7),
        utc(2026, 3, 30, 7),
    ]
    assert autumn == [
        utc(2026, 10, 23, 7),
        utc(2026, 10, 24, 7),
        utc(2026, 10, 25, 8),
        utc(2026, 10, 26, 8),
    ]
    assert {local(s, BERLIN).time() for s in spring + autumn} == {time(9)}


def test_berlin_spring_forward_missing_slot_fires_after_the_gap_once() -> None:
    schedule = Schedule(timezone=BERLIN, hour=2, minute=30)
    got = list(slots(schedule, utc(2026, 3, 28, 12), utc(2026, 3, 30, 12)))
    assert got == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
    assert local(got[0], BERLIN).replace(tzinfo=None) == datetime(2026, 3, 29, 3, 0)


def test_berlin_fall_back_repeated_slot_fires_on_first_occurrence_only() -> None:
    schedule = Schedule(timezone=BERLIN, hour=2, minute=30)
    first = next_slot(schedule, utc(2026, 10, 24, 12))
    assert first == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, not 02:30 CET an hour later
    # Asked from inside the repeated hour, or at the second 02:30, the next slot is tomorrow.
    assert next_slot(schedule, first) == utc(2026, 10, 26, 1, 30)
    assert next_slot(schedule, utc(2026, 10, 25, 1, 30)) == utc(2026, 10, 26, 1, 30)
    assert not digest_due(schedule, first, utc(2026, 1, 1), utc(2026, 10, 25, 1, 30))


@pytest.mark.parametrize(
    ("tz", "at", "change_day"),
    [
        (BERLIN, time(2, 30), date(2026, 3, 29)),
        (BERLIN, time(2, 30), date(2026, 10, 25)),
        (NEW_YORK, time(1, 30), date(2026, 3, 8)),
        (NEW_YORK, time(1, 30), date(2026, 11, 1)),
        (NEW_YORK, time(2, 30), date(2026, 3, 8)),
        (LORD_HOWE, time(1, 45), date(2026, 4, 5)),
        (LORD_HOWE, time(2, 15), date(2026, 10, 4)),
    ],
)
def test_scheduler_ticking_every_minute_sends_once_per_day_across_dst(
    tz: str, at: time, change_day: date
) -> None:
    schedule = Schedule(timezone=tz, hour=at.hour, minute=at.minute)
    zone = ZoneInfo(tz)
    joined = datetime.combine(change_day - timedelta(days=1), time(12), zone).astimezone(UTC)
    until = datetime.combine(change_day + timedelta(days=1), time(12), zone).astimezone(UTC)
    sent = simulate_sends(schedule, joined, until, timedelta(minutes=1))
    assert [local(s, tz).date() for s in sent] == [change_day, change_day + timedelta(days=1)]


def test_new_york_one_thirty() -> None:
    schedule = Schedule(timezone=NEW_YORK, hour=1, minute=30)
    # Spring: 01:30 exists (the gap is 02:00–03:00), still EST.
    assert next_slot(schedule, utc(2026, 3, 7, 12)) == utc(2026, 3, 8, 6, 30)
    assert next_slot(schedule, utc(2026, 3, 8, 7)) == utc(2026, 3, 9, 5, 30)
    # Autumn: 01:30 happens twice; the EDT one is used and the EST one is not a new slot.
    first = next_slot(schedule, utc(2026, 10, 31, 12))
    assert first == utc(2026, 11, 1, 5, 30)
    assert next_slot(schedule, first) == utc(2026, 11, 2, 6, 30)


def test_new_york_two_thirty_on_spring_day_is_three_am() -> None:
    schedule = Schedule(timezone=NEW_YORK, hour=2, minute=30)
    slot = next_slot(schedule, utc(2026, 3, 7, 12))
    assert slot == utc(2026, 3, 8, 7, 0)
    assert local(slot, NEW_YORK).time() == time(3, 0)


def test_lord_howe_half_hour_shift() -> None:
    schedule = Schedule(timezone=LORD_HOWE, hour=1, minute=45)
    # 2026-04-05: 02:00 (+11) goes back to 01:30 (+10:30); 01:45 repeats, first one wins.
    autumn = list(slots(schedule, utc(2026, 4, 3, 20), utc(2026, 4, 6, 0)))
    assert autumn == [utc(2026, 4, 4, 14, 45), utc(2026, 4, 5, 15, 15)]
    # 2026-10-04: 02:00 (+10:30) jumps to 02:30 (+11); 01:45 is before the gap.
    spring = list(slots(schedule, utc(2026, 10, 2, 20), utc(2026, 10, 5, 0)))
    assert spring == [utc(2026, 10, 3, 15, 15), utc(2026, 10, 4, 14, 45)]
    # A slot inside that 30-minute gap lands on 02:30 local.
    in_gap = next_slot(Schedule(timezone=LORD_HOWE, hour=2, minute=15), utc(2026, 10, 3, 12))
    assert in_gap == utc(2026, 10, 3, 15, 30)
    assert local(in_gap, LORD_HOWE).time() == time(2, 30)


def test_kathmandu_quarter_hour_offset() -> None:
    schedule = Schedule(timezone=KATHMANDU)
    assert next_slot(schedule, utc(2026, 7, 1)) == utc(2026, 7, 1, 3, 15)
    assert next_slot(schedule, utc(2026, 7, 1, 3, 15)) == utc(2026, 7, 2, 3, 15)


# --- cadences -----------------------------------------------------------------------------


def test_weekly_uses_the_chosen_local_weekday_only() -> None:
    schedule = Schedule(cadence="weekly", timezone="Pacific/Auckland", weekday=2, hour=8)
    got = list(slots(schedule, utc(2026, 3, 1), utc(2026, 5, 1)))
    assert len(got) == 9
    assert {local(s, "Pacific/Auckland").weekday() for s in got} == {2}
    # 08:00 Wednesday in Auckland is Tuesday evening in UTC.
    assert {s.weekday() for s in got} == {1}


def test_weekdays_only_uses_the_local_date() -> None:
    tz = "Pacific/Auckland"
    schedule = Schedule(timezone=tz, weekdays_only=True, hour=7)
    got = list(slots(schedule, utc(2026, 6, 5, 12), utc(2026, 6, 13, 12)))
    assert [local(s, tz).date() for s in got] == [
        date(2026, 6, 8),
        date(2026, 6, 9),
        date(2026, 6, 10),
        date(2026, 6, 11),
        date(2026, 6, 12),
    ]
    # Monday 07:00 in Auckland is Sunday in UTC, and is still a weekday slot.
    assert got[0] == utc(2026, 6, 7, 19, 0)


# --- digest_due ---------------------------------------------------------------------------


def test_first_digest_is_the_first_slot_after_joining() -> None:
    schedule = Schedule(timezone=BERLIN)
    joined = utc(2026, 1, 5, 7, 0)  # 08:00 local
    assert not digest_due(schedule, None, joined, utc(2026, 1, 5, 7, 59))
    assert digest_due(schedule, None, joined, utc(2026, 1, 5, 8, 0))


def test_sent_digest_is_not_due_again_until_the_next_slot() -> None:
    schedule = Schedule(timezone=BERLIN)
    sent = utc(2026, 1, 5, 8, 0, 4)
    assert not digest_due(schedule, sent, utc(2025, 1, 1), utc(2026, 1, 6, 7, 59))
    assert digest_due(schedule, sent, utc(2025, 1, 1), utc(2026, 1, 6, 8, 0))


def test_missed_slots_collapse_into_one_due_digest() -> None:
    schedule = Schedule()
    sent = simulate_sends(schedule, utc(2026, 1, 1), utc(2026, 1, 10), timedelta(days=4))
    # Ticking every 4 days still sends on each tick after the first slot, never more.
    assert sent == [utc(2026, 1, 5), utc(2026, 1, 9)]


def test_daily_digest_at_chosen_hour_ignores_quiet_hours() -> None:
    schedule = Schedule(hour=22)  # inside the default 20:00–08:00 quiet hours
    assert digest_due(schedule, None, utc(2026, 1, 5, 12), utc(2026, 1, 5, 22))


def test_immediate_digest_respects_batching_and_quiet_hours() -> None:
    schedule = Schedule(cadence="immediate", timezone=BERLIN)
    sent = utc(2026, 1, 5, 10, 0)  # 11:00 local
    assert not digest_due(schedule, sent, sent, sent + timedelta(seconds=59))
    assert digest_due(schedule, sent, sent, sent + timedelta(seconds=60))
    assert not digest_due(schedule, sent, sent, utc(2026, 1, 5, 21, 0))  # 22:00 local
    assert digest_due(schedule, sent, sent, utc(2026, 1, 6, 7, 0))  # 08:00 local


# --- away ---------------------------------------------------------------------------------

AWAY = Schedule(timezone=BERLIN, away_from=date(2026, 6, 10), away_until=date(2026, 6, 14))
BEFORE_AWAY = utc(2026, 6, 9, 7, 0)  # the 09:00 local digest on the day before leaving


def test_nothing_is_due_while_away() -> None:
    for day in range(10, 15):
        assert not digest_due(AWAY, BEFORE_AWAY, BEFORE_AWAY, utc(2026, 6, day, 12))


def test_first_digest_after_return_is_the_first_slot_on_the_return_day() -> None:
    # Back on the 15th: not at midnight, but at the member's usual 09:00.
    assert not digest_due(AWAY, BEFORE_AWAY, BEFORE_AWAY, utc(2026, 6, 14, 22, 0))
    assert not digest_due(AWAY, BEFORE_AWAY, BEFORE_AWAY, utc(2026, 6, 15, 6, 59))
    assert digest_due(AWAY, BEFORE_AWAY, BEFORE_AWAY, utc(2026, 6, 15, 7, 0))
    sent = simulate_sends(AWAY, BEFORE_AWAY, utc(2026, 6, 17), timedelta(minutes=10))
    assert sent == [utc(2026, 6, 15, 7, 0), utc(2026, 6, 16, 7, 0)]


def test_weekly_slot_missed_while_away_waits_for_the_next_weekly_slot() -> None:
    # Weekly on Wednesday; away over Wednesday the 10th. The absence is covered by the next
    # Wednesday's digest, not one sent on return.
    schedule = Schedule(
        cadence="weekly", weekday=2, away_from=date(2026, 6, 8), away_until=date(2026, 6, 12)
    )
    sent = utc(2026, 6, 3, 9)
    assert not digest_due(schedule, sent, sent, utc(2026, 6, 13, 9))
    assert digest_due(schedule, sent, sent, utc(2026, 6, 17, 9))


def test_open_ended_away_is_never_due() -> None:
    schedule = Schedule(away_from=date(2026, 6, 10))
    assert not digest_due(schedule, BEFORE_AWAY, BEFORE_AWAY, utc(2027, 1, 1, 12))
    assert is_away(schedule, utc(2030, 1, 1))
    assert not is_away(schedule, utc(2026, 6, 9, 23))


def test_away_until_alone_covers_everything_before_it() -> None:
    schedule = Schedule(away_until=date(2026, 6, 14))
    assert is_away(schedule, utc(2020, 1, 1))
    assert not is_away(schedule, utc(2026, 6, 15))
    assert digest_due(schedule, None, utc(2026, 6, 1), utc(2026, 6, 15, 9))


def test_is_away_uses_the_members_local_date() -> None:
    tokyo = Schedule(
        timezone="Asia/Tokyo", away_from=date(2026, 6, 10), away_until=date(2026, 6, 14)
    )
    assert not is_away(tokyo, utc(2026, 6, 9, 14, 59))  # 23:59 on the 9th in Tokyo
    assert is_away(tokyo, utc(2026, 6, 9, 15, 0))  # midnight on the 10th in Tokyo
    assert is_away(tokyo, utc(2026, 6, 14, 14, 59))
    assert not is_away(tokyo, utc(2026, 6, 14, 15, 0))
    assert not is_away(Schedule(), utc(2026, 6, 10))


# --- quiet hours --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (utc(2026, 1, 5, 12, 0), utc(2026, 1, 5, 12, 0)),  # 13:00 local: not quiet
        (utc(2026, 1, 5, 18, 59), utc(2026, 1, 5, 18, 59)),  # 19:59 local
        (utc(2026, 1, 5, 19, 0), utc(2026, 1, 6, 7, 0)),  # 20:00 local: quiet till 08:00
        (utc(2026, 1, 5, 23, 30), utc(2026, 1, 6, 7, 0)),  # after local midnight
        (utc(2026, 1, 6, 6, 59), utc(2026, 1, 6, 7, 0)),
        (utc(2026, 1, 6, 7, 0), utc(2026, 1, 6, 7, 0)),  # 08:00 local: quiet is over
    ],
)
def test_default_quiet_hours_wrap_midnight(instant: datetime, expected: datetime) -> None:
    assert end_of_quiet_hours(Schedule(timezone=BERLIN), instant) == expected


def test_non_wrapping_and_empty_quiet_hours() -> None:
    lunch = Schedule(quiet_start=time(12), quiet_end=time(13, 30))
    assert end_of_quiet_hours(lunch, utc(2026, 1, 5, 12, 10)) == utc(2026, 1, 5, 13, 30)
    assert end_of_quiet_hours(lunch, utc(2026, 1, 5, 11, 59)) == utc(2026, 1, 5, 11, 59)
    assert end_of_quiet_hours(lunch, utc(2026, 1, 5, 23, 0)) == utc(2026, 1, 5, 23, 0)
    never = Schedule(quiet_start=time(8), quiet_end=time(8))
    assert end_of_quiet_hours(never, utc(2026, 1, 5, 3)) == utc(2026, 1, 5, 3)


def test_quiet_hours_ending_inside_a_dst_gap_end_after_the_gap() -> None:
    schedule = Schedule(timezone=BERLIN, quiet_start=time(22), quiet_end=time(2, 30))
    assert end_of_quiet_hours(schedule, utc(2026, 3, 28, 23, 0)) == utc(2026, 3, 29, 1, 0)


def test_quiet_hours_on_the_repeated_hour_follow_the_wall_clock() -> None:
    schedule = Schedule(timezone=NEW_YORK, quiet_start=time(20), quiet_end=time(1, 30))
    # First pass: 01:15 EDT is quiet until 01:30 EDT.
    assert end_of_quiet_hours(schedule, utc(2026, 11, 1, 5, 15)) == utc(2026, 11, 1, 5, 30)
    # 01:45 EDT is outside; then the clock shows 01:15 again (EST), quiet until 01:30 EST.
    assert end_of_quiet_hours(schedule, utc(2026, 11, 1, 5, 45)) == utc(2026, 11, 1, 5, 45)
    assert end_of_quiet_hours(schedule, utc(2026, 11, 1, 6, 15)) == utc(2026, 11, 1, 6, 30)


def test_immediate_send_is_deferred_by_quiet_hours() -> None:
    schedule = Schedule(cadence="immediate", timezone=KATHMANDU)
    item_at = utc(2026, 1, 5, 14, 14, 30)  # 19:59:30 local
    send_at = next_slot(schedule, item_at)
    assert send_at is not None
    assert end_of_quiet_hours(schedule, send_at) == utc(2026, 1, 6, 2, 15)  # 08:00 local


# --- check-in prompts ---------------------------------------------------------------------


def test_checkin_goes_out_weekdays_at_the_members_local_hour() -> None:
    joined = utc(2026, 1, 1)
    prompted = utc(2026, 1, 2, 8, 0)  # Friday 09:00 Berlin
    assert not checkin_due(BERLIN, 9, 0, prompted, joined, utc(2026, 1, 3, 8, 0))  # Saturday
    assert not checkin_due(BERLIN, 9, 0, prompted, joined, utc(2026, 1, 4, 8, 0))  # Sunday
    assert not checkin_due(BERLIN, 9, 0, prompted, joined, utc(2026, 1, 5, 7, 59))
    assert checkin_due(BERLIN, 9, 0, prompted, joined, utc(2026, 1, 5, 8, 0))  # Monday


def test_checkin_first_prompt_after_joining_and_across_dst() -> None:
    joined = utc(2026, 3, 27, 12)  # Friday afternoon
    assert not checkin_due(BERLIN, 9, 0, None, joined, utc(2026, 3, 30, 6, 59))
    assert checkin_due(BERLIN, 9, 0, None, joined, utc(2026, 3, 30, 7, 0))  # 09:00 CEST


def test_checkin_skipped_while_away_and_resumes_on_return() -> None:
    prompted = utc(2026, 6, 5, 7, 0)  # Friday 09:00 Berlin
    away = {"away_from": date(2026, 6, 8), "away_until": date(2026, 6, 10)}
    assert not checkin_due(BERLIN, 9, 0, prompted, prompted, utc(2026, 6, 9, 7), **away)
    assert not checkin_due(BERLIN, 9, 0, prompted, prompted, utc(2026, 6, 11, 6, 59), **away)
    assert checkin_due(BERLIN, 9, 0, prompted, prompted, utc(2026, 6, 11, 7), **away)


# --- properties over random zones and instants --------------------------------------------

ZONES = sorted(available_timezones())
zones = st.sampled_from(ZONES)
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)
hours = st.integers(0, 23)
# Minutes that DST transitions and odd offsets actually hit, plus anything else.
minutes = st.one_of(st.sampled_from([0, 15, 30, 45]), st.integers(0, 59))
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


def wall_time_exists(day: date, at: time, zone: ZoneInfo) -> bool:
    wall = datetime.combine(day, at)
    return any(
        wall.replace(tzinfo=zone, fold=f).astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        == wall
        for f in (0, 1)
    )


def local_dates_between(start: datetime, end: datetime, zone: ZoneInfo) -> set[date]:
    """Local dates that actually occur in `zone` between two instants (sampled every 15 min)."""
    steps = int((end - start) / timedelta(minutes=15))
    return {(start + k * timedelta(minutes=15)).astimezone(zone).date() for k in range(steps + 1)}


@PROPERTY_SETTINGS
@given(
    zones,
    instants,
    hours,
    minutes,
    st.sampled_from(["daily", "weekly", "immediate"]),
    st.booleans(),
    st.integers(0, 6),
)
def test_next_slot_is_strictly_after_and_utc(
    tz: str,
    after: datetime,
    hour: int,
    minute: int,
    cadence: Cadence,
    weekdays_only: bool,
    weekday: int,
) -> None:
    schedule = Schedule(
        cadence=cadence,
        timezone=tz,
        hour=hour,
        minute=minute,
        weekdays_only=weekdays_only,
        weekday=weekday,
    )
    slot = next_slot(schedule, after)
    assert slot is not None and slot > after and slot.tzinfo is UTC
    if cadence != "immediate":
        assert slot - after <= timedelta(days=8)


@PROPERTY_SETTINGS
@given(zones, instants, hours, minutes, st.booleans())
def test_daily_slots_over_sixty_days(
    tz: str, start: datetime, hour: int, minute: int, weekdays_only: bool
) -> None:
    zone = ZoneInfo(tz)
    schedule = Schedule(timezone=tz, hour=hour, minute=minute, weekdays_only=weekdays_only)
    end = start + timedelta(days=60)
    got = list(slots(schedule, start, end))

    assert all(a < b for a, b in pairwise(got))
    days = Counter(s.astimezone(zone).date() for s in got)
    assert max(days.values()) == 1, "two slots on one local date"

    # Every eligible local date strictly inside the window has exactly one slot.
    inner = local_dates_between(start, end, zone) - {
        start.astimezone(zone).date(),
        end.astimezone(zone).date(),
    }
    eligible = {d for d in inner if not weekdays_only or d.weekday() < 5}
    assert eligible <= set(days)
    assert all(not weekdays_only or d.weekday() < 5 for d in days)

    at = time(hour, minute)
    for slot in got:
        loc = slot.astimezone(zone)
        wall = datetime.combine(loc.date(), at)
        if wall_time_exists(loc.date(), at, zone):
            assert loc.replace(tzinfo=None) == wall
            assert loc.fold == 0, "a repeated wall time must use its first occurrence"
        else:
            before = (slot - timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None)
            assert before < wall < loc.replace(tzinfo=None), "not the first instant after the gap"


@PROPERTY_SETTINGS
@given(zones, instants, hours, minutes, st.integers(0, 6))
def test_weekly_slots_are_on_the_chosen_weekday_once_a_week(
    tz: str, start: datetime, hour: int, minute: int, weekday: int
) -> None:
    zone = ZoneInfo(tz)
    schedule = Schedule(cadence="weekly", timezone=tz, hour=hour, minute=minute, weekday=weekday)
    got = list(slots(schedule, start, start + timedelta(days=60)))
    assert len(got) in (8, 9)
    assert {s.astimezone(zone).weekday() for s in got} == {weekday}
    assert all(timedelta(days=6) < b - a < timedelta(days=8) for a, b in pairwise(got))


@PROPERTY_SETTINGS
@given(zones, instants, hours, minutes)
def test_digest_due_exactly_at_next_slot(tz: str, since: datetime, hour: int, minute: int) -> None:
    schedule = Schedule(timezone=tz, hour=hour, minute=minute)
    slot = next_slot(schedule, since)
    assert slot is not None
    assert not digest_due(schedule, since, since, slot - timedelta(microseconds=1))
    assert digest_due(schedule, since, since, slot)
    assert not digest_due(schedule, slot, since, slot)


@PROPERTY_SETTINGS
@given(
    zones,
    instants,
    st.sampled_from([time(20), time(22, 30), time(0, 30), time(9)]),
    st.sampled_from([time(8), time(2, 30), time(7, 15), time(17)]),
)
def test_end_of_quiet_hours_is_never_earlier_and_lands_outside(
    tz: str, instant: datetime, start: time, end: time
) -> None:
    schedule = Schedule(timezone=tz, quiet_start=start, quiet_end=end)
    result = end_of_quiet_hours(schedule, instant)
    assert result >= instant and result.tzinfo is UTC
    assert result - instant <= timedelta(days=2)
    # Once quiet hours are over, asking again changes nothing.
    assert end_of_quiet_hours(schedule, result) == result


@PROPERTY_SETTINGS
@given(zones, instants, hours, minutes, st.integers(0, 10), st.integers(0, 10))
def test_away_defers_to_the_first_slot_after_return(
    tz: str, since: datetime, hour: int, minute: int, lead_days: int, away_days: int
) -> None:
    zone = ZoneInfo(tz)
    away_from = since.astimezone(zone).date() + timedelta(days=lead_days)
    away_until = away_from + timedelta(days=away_days)
    present = Schedule(timezone=tz, hour=hour, minute=minute)
    away = Schedule(
        timezone=tz, hour=hour, minute=minute, away_from=away_from, away_until=away_until
    )

    expected = next_slot(present, since)
    assert expected is not None
    if away_from <= expected.astimezone(zone).date() <= away_until:
        while expected.astimezone(zone).date() <= away_until:
            expected = next_slot(present, expected)
            assert expected is not None
    assert not digest_due(away, since, since, expected - timedelta(microseconds=1))
    assert digest_due(away, since, since, expected)
    for offset in range(away_days + 1):
        day = away_from + timedelta(days=offset)
        noon = local_slot(day, time(12), zone)
        if noon.astimezone(zone).date() != day:
            continue  # a date the zone skipped entirely
        assert is_away(away, noon)
        assert not digest_due(away, since, since, noon)
