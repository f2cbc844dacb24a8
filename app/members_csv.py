"""`tidings member import` (and the API's): members of a team from CSV, checked whole
before any change, with a plan of what would change that a dry run shows and a real run
applies.

The file has a header row naming the columns name, email, timezone, cadence and hour (in
any order). Rows are numbered as a spreadsheet shows them: the header is row 1. An empty
cell keeps a known member's setting, and gives a new one the default (`member add`'s).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlmodel import Session

from app import store
from app.errors import TidingsError

COLUMNS = ("name", "email", "timezone", "cadence", "hour")
ACTIONS = ("add", "join", "change", "same")
DEFAULTS = {"timezone": "UTC", "cadence": "daily", "hour": 9}
MAX_PROBLEMS_SHOWN = 50


@dataclass(frozen=True)
class Row:
    number: int  # as a spreadsheet numbers it: the header is row 1
    cells: dict[str, str]


@dataclass
class Change:
    number: int
    email: str
    action: str  # add (new person) | join (known person, new to the team) | change | same
    name: str
    timezone: str
    cadence: str
    hour: int
    changes: list[str] = field(default_factory=list)  # "hour 9 -> 7", for known people

    def describe(self) -> str:
        if self.action in ("add", "join"):
            what = f"{self.name}, {self.timezone}, {self.cadence} digest at {self.hour:02d}:00"
            if self.changes:
                what += "; changes " + "; ".join(self.changes)
            return what
        return "; ".join(self.changes) if self.changes else "no change"


def read_rows(text: str) -> list[Row]:
    """The file's rows under its header; a TidingsError naming every problem of shape
    (a missing or unknown column, a row with too many or too few cells)."""
    text = text.removeprefix("\ufeff")  # spreadsheets save UTF-8 with a byte-order mark
    records = list(csv.reader(io.StringIO(text)))
    if not records or not any(cell.strip() for cell in records[0]):
        raise TidingsError(
            "The file is empty.", f"Its first row must name the columns: {','.join(COLUMNS)}"
        )
    header = [cell.strip().lower() for cell in records[0]]
    missing = [c for c in COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if missing or unknown or repeated:
        said = []
        if missing:
            said.append(f"no column {', '.join(missing)}")
        if unknown:
            said.append(f"unknown column {', '.join(repr(c) for c in unknown)}")
        if repeated:
            said.append(f"column {', '.join(repeated)} twice")
        raise TidingsError(
            f"Row 1 (the header) has {'; '.join(said)}.",
            f"The first row must name the columns {','.join(COLUMNS)} (in any order).",
        )
    rows, problems = [], []
    for number, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue  # blank lines, often at the end
        if len(record) != len(header):
            problems.append(f"row {number}: {len(record)} cells, but the header has {len(header)}")
            continue
        rows.append(Row(number, {c: cell.strip() for c, cell in zip(header, record, strict=True)}))
    if problems:
        raise _problems(problems)
    if not rows:
        raise TidingsError("The file has a header but no members.", "Add a row per member.")
    return rows


def _problems(problems: list[str]) -> TidingsError:
    shown = problems[:MAX_PROBLEMS_SHOWN]
    if len(problems) > len(shown):
        shown.append(f"... and {len(problems) - len(shown)} more")
    return TidingsError(
        f"{len(problems)} problem(s) in the file; nothing was imported:\n  " + "\n  ".join(shown),
        "Fix those rows and run the import again (add --dry-run to check without changing"
        " anything).",
    )


def plan_import(session: Session, slug: str, rows: list[Row]) -> list[Change]:
    """What importing `rows` into the team would do, row by row. Every row is checked
    first; any problem raises a TidingsError listing them all, by row number."""
    team = store.get_team(session, slug)
    problems: list[str] = []
    seen: dict[str, int] = {}
    plan = []
    for row in rows:
        found = _check(row, seen, problems)
        if found is None:
            continue
        email, name, timezone, cadence, hour = found
        person = store.find_person(session, email)
        if person is None:
            plan.append(
                Change(
                    row.number,
                    email,
                    "add",
                    name or email.split("@")[0],
                    timezone or str(DEFAULTS["timezone"]),
                    cadence or str(DEFAULTS["cadence"]),
                    hour if hour is not None else int(DEFAULTS["hour"]),
                )
            )
            continue
        change = Change(
            row.number,
            person.email,
            "join" if not store.is_member(session, team.id, person.id) else "same",  # type: ignore[arg-type]
            name or person.name,
            timezone or person.timezone,
            cadence or person.digest_cadence,
            hour if hour is not None else person.digest_hour,
        )
        for label, before, after in [
            ("name", person.name, change.name),
            ("timezone", person.timezone, change.timezone),
            ("cadence", person.digest_cadence, change.cadence),
            ("hour", person.digest_hour, change.hour),
        ]:
            if before != after:
                change.changes.append(f"{label} {before} -> {after}")
        if change.action == "same" and change.changes:
            change.action = "change"
        plan.append(change)
    if problems:
        raise _problems(problems)
    return plan


def _check(
    row: Row, seen: dict[str, int], problems: list[str]
) -> tuple[str, str, str, str, int | None] | None:
    """The row's values, checked; None (and its problems noted) when any is wrong."""
    cells, before = row.cells, len(problems)

    def problem(text: str) -> None:
        problems.append(f"row {row.number}: {text}")

    email = cells["email"]
    if not email:
        problem("no email address")
    else:
        try:
            email = store.check_address(email)
        except TidingsError as exc:
            problem(exc.message)
        else:
            if email in seen:
                problem(f"{email} is already on row {seen[email]}")
            seen.setdefault(email, row.number)
    timezone = cells["timezone"]
    if timezone:
        try:
            store.check_timezone(timezone)
        except TidingsError as exc:
            problem(f"{exc.message} {exc.hint}")
    cadence = cells["cadence"].lower()
    if cadence and cadence not in store.CADENCES:
        problem(f"unknown cadence '{cells['cadence']}' (use {', '.join(store.CADENCES)})")
    hour = None
    if cells["hour"]:
        try:
            hour = int(cells["hour"])
        except ValueError:
            hour = -1
        if not 0 <= hour <= 23:
            problem(f"hour '{cells['hour']}' is not 0 to 23")
    if len(problems) > before:
        return None
    return email, cells["name"], timezone, cadence, hour


def apply_import(
    session: Session,
    slug: str,
    plan: list[Change],
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Make the planned changes (one transaction: the caller commits)."""
    for done, change in enumerate(plan, start=1):
        if change.action != "same":
            store.add_member(
                session,
                slug,
                change.email,
                change.name,
                change.timezone,
                change.cadence,
                change.hour,
            )
        if progress is not None:
            progress(done, len(plan))


@dataclass(frozen=True)
class Imported:
    """What an import did, or with `dry_run` would do: the plan, row by row."""

    plan: list[Change]
    dry_run: bool

    @property
    def counts(self) -> dict[str, int]:
        return {action: sum(c.action == action for c in self.plan) for action in ACTIONS}

    def summary(self) -> str:
        counts = self.counts
        return (
            f"{counts['add']} new, {counts['join']} joining from other teams,"
            f" {counts['change']} changed, {counts['same']} unchanged"
        )


def import_members(
    session: Session,
    slug: str,
    text: str,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Imported:
    """Read the CSV text, check every row, plan, and unless `dry_run` make the changes
    (one transaction: the caller commits). Any problem raises a TidingsError naming every
    row at fault, and nothing changes."""
    plan = plan_import(session, slug, read_rows(text))
    if not dry_run:
        apply_import(session, slug, plan, progress)
    return Imported(plan, dry_run)
