"""Settings a member changes by replying to a check-in or a digest with one line. Pure.

    away until 2026-12-03       away until 3 December      away 2026-12-20..2027-01-03
    back                        digest daily|weekly|immediate|off
    digest weekly friday        digest 08:00 (or 8am)      mute / unmute

A reply is a command only when its whole new text is one such line (a signature below
it is trimmed before this sees it), so an update that merely mentions "digest" or
"away" is posted as usual. `parse_command` says what the line asks for; the caller applies it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from app.store import WEEKDAYS, MemberSettings
from smtp.away import read_date

# Longer than any command: a line past this is an update, not a command.
MAX_COMMAND = 60
_ISO_DAY = r"\d{4}-\d{2}-\d{2}"
_AWAY_RANGE = re.compile(rf"away\s+(?:from\s+)?({_ISO_DAY})\s*(?:\.\.|to|until|-)\s*({_ISO_DAY})")
_AWAY_UNTIL = re.compile(r"away\s+(?:until|till|through|to)\s+(.+)")
_CADENCE = re.compile(r"digests?\s+(daily|weekly|immediate|off)(?:\s+(?:on\s+)?([a-z]+))?")
_SETTING = re.compile(r"daily|weekly|immediate|off|at|\d")
_HOUR = re.compile(r"digests?\s+(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*(am|pm)?")


@dataclass(frozen=True)
class Command:
    settings: MemberSettings  # what to change (see app/store.py)
    says: str  # the change in words, for the confirmation


class NotACommand(ValueError):
    """The line looks like a command but cannot be one; the message says why and what
    would work, for the reply to the member."""


def parse_command(text: str, today: date) -> Command | None:
    """The command that `text` (a reply's whole new text) is, or None when it is not one.
    Raises NotACommand for a line that starts like one but is wrong ("digest 25:00")."""
    line = " ".join(text.split()).strip(" .!").lower()
    if not line or len(line) > MAX_COMMAND or "\n" in text.strip():
        return None
    if line in ("mute", "unmute", "back", "i'm back", "i am back"):
        return {
            "mute": Command(MemberSettings(cadence="off"), "digests are off"),
            "unmute": Command(MemberSettings(cadence="daily"), "digests are daily again"),
        }.get(line, Command(MemberSettings(away="off"), "you are no longer away"))
    if _AWAY_RANGE.fullmatch(line) or _AWAY_UNTIL.fullmatch(line):
        return _away(line, today)
    # "digest weekly" is a command; "Digest service refactor done" and "Digest broken"
    # are updates.
    words = line.split()
    if words[0] in ("digest", "digests") and len(words) in (2, 3) and _SETTING.match(words[1]):
        return _digest(line)
    return None


def _away(line: str, today: date) -> Command:
    if found := _AWAY_RANGE.fullmatch(line):
        start, end = date.fromisoformat(found[1]), date.fromisoformat(found[2])
    else:
        found = _AWAY_UNTIL.fullmatch(line)
        assert found is not None
        start, end = today, read_date(found[1], today)  # type: ignore[assignment]
        if end is None:
            raise NotACommand(f"'{found[1]}' is not a date I can read: say away until 2026-12-03.")
    if end < start or end > today + timedelta(days=366):
        raise NotACommand(f"{start}..{end} is not a stretch of days within the next year.")
    return Command(
        MemberSettings(away=f"{start}..{end}"),
        f"you are away from {start:%a %d %b} to {end:%a %d %b %Y}: no digests or check-ins"
        f" until {end + timedelta(days=1):%a %d %b}",
    )


def _digest(line: str) -> Command:
    if found := _CADENCE.fullmatch(line):
        cadence, weekday = found[1], found[2]
        if weekday is None:
            return Command(MemberSettings(cadence=cadence), f"digests are {cadence}")
        if cadence != "weekly" or weekday[:3] not in WEEKDAYS:
            raise NotACommand(f"'{weekday}' only goes with weekly, as a weekday name.")
        return Command(
            MemberSettings(cadence="weekly", weekday=weekday[:3]),
            f"digests are weekly, on {weekday[:3].title()}",
        )
    if found := _HOUR.fullmatch(line):
        hour, minutes, half = int(found[1]), found[2], found[3]
        if half and 1 <= hour <= 12:
            hour = hour % 12 + (12 if half == "pm" else 0)
        if hour > 23 or (minutes or "00") != "00" or (half and not 0 <= hour <= 23):
            raise NotACommand("Digests come on the hour: say digest 08:00, or digest 8am.")
        return Command(MemberSettings(hour=hour), f"digests come at {hour:02d}:00")
    raise NotACommand("Say digest daily, weekly, immediate or off, or digest 08:00.")
