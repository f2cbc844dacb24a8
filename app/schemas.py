"""The JSON shapes of the API (its OpenAPI schema at /docs comes from these)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class TeamOut(BaseModel):
    slug: str
    name: str
    address: str
    checkin_question: str


class MemberOut(BaseModel):
    email: str
    name: str
    timezone: str
    digest_cadence: str
    digest_hour: int


class ThreadOut(BaseModel):
    id: int
    team: str
    title: str
    checkin_date: date | None
    created_at: datetime
    last_activity_at: datetime


class AuthorOut(BaseModel):
    id: int
    name: str
    email: str


class AttachmentOut(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    url: str


class UpdateOut(BaseModel):
    id: int
    parent_id: int | None
    depth: int  # 0 for a thread's first posts; updates come in tree order (depth first)
    author: AuthorOut
    body: str
    quoted: str
    extraction_confident: bool
    placed_by: str
    created_at: datetime
    edited_at: datetime | None
    # For a check-in answered after its day: the author's local date when they answered.
    answered_on: date | None
    attachments: list[AttachmentOut]


class ThreadDetailOut(ThreadOut):
    updates: list[UpdateOut]


class SearchHitOut(BaseModel):
    update_id: int
    thread_id: int
    thread_title: str
    team: str
    author: AuthorOut
    snippet: str
    snippet_html: str  # the snippet, HTML-escaped, with matches in <mark>
    created_at: datetime


class QuarantinedOut(BaseModel):
    id: int
    received_at: datetime
    mail_from: str
    rcpt_tos: list[str]
    message_id: str | None
    reason: str | None
    detail: str | None


class ErrorOut(BaseModel):
    """Every refusal the API gives: what went wrong and, where there is one, what to do."""

    detail: str


# The admin API (app/api_admin.py) ----------------------------------------------------------

# One line of text: no control characters (PostgreSQL cannot store a NUL, and none of
# these fields means anything with a line break).
_ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
Line = Annotated[str, Field(max_length=200, pattern=_ONE_LINE)]
Address = Annotated[str, Field(max_length=320, pattern=_ONE_LINE, examples=["alice@example.com"])]
Hour = Annotated[int, Field(ge=0, le=23, description="Local hour, 0-23.")]
Cadence = Literal["daily", "weekly", "immediate", "off"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Role = Literal["admin", "member"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is refused, not ignored


class RefusedOut(BaseModel):
    """422: a sentence saying what to change (`detail` is text), or, for a request that
    does not fit the schema, FastAPI's list of the fields at fault."""

    detail: str | list[dict[str, Any]]


class DoneOut(BaseModel):
    message: str  # what happened, and what follows from it


class TeamDetailOut(TeamOut):
    """A team with its settings, as an admin sees it."""

    public: bool  # anyone may read its archive; otherwise only its members
    archived_at: datetime | None  # archived teams take no posts and ask no check-ins
    former_slugs: list[str]  # mail to these still reaches the team
    checkin_questions: list[str]
    checkin_hour: int | None  # the weekday check-in's local hour; null: only on demand
    blocker_question: int | None  # which question (from 1) asks about blockers


class TeamCreateIn(_In):
    slug: str = Field(
        max_length=64,
        pattern=_ONE_LINE,
        description="Lower-case letters, digits and hyphens; the team's address is SLUG@domain.",
        examples=["eng"],
    )
    name: Line = Field("", description="Display name (default: the slug).")
    public: bool = Field(False, description="Anyone who can reach the archive may read it.")


class TeamPatchIn(_In):
    """Only the fields given change."""

    name: Line | None = Field(None, description="A new display name.")
    slug: str | None = Field(
        None,
        max_length=64,
        pattern=_ONE_LINE,
        description="A new slug. The old address, and reply addresses in mail sent before,"
        " keep reaching the team; no other team can take the old slug.",
    )
    checkin_hour: Hour | None = Field(
        None,
        description="Ask the check-in every weekday at this local hour in each member's zone;"
        " null stops the schedule (`tidings checkin send` still asks at once).",
    )
    checkin_questions: list[Line] | None = Field(
        None, min_length=1, max_length=20, description="What the check-in asks, in order."
    )
    blocker_question: int | None = Field(
        None,
        ge=1,
        description="Which question (from 1) asks about blockers: answers that are not"
        " 'no'/'none' show at the top of the team's digest section until resolved.",
    )


class MemberDetailOut(MemberOut):
    """A member with all their settings."""

    role: str  # admin | member (of this team)
    schedule: str  # the digest settings in words, as `tidings member list` shows them
    digest_weekday: str  # weekly digests come on this day: mon .. sun
    digest_weekdays_only: bool  # daily digests Monday to Friday only
    quiet_hours: str | None  # "20:00-08:00" (local); null: none
    away_from: date | None
    away_until: date | None
    mail_paused_at: datetime | None  # nothing is mailed to them while paused
    mail_paused_reason: str | None


class MemberIn(_In):
    """Like `tidings member add`: someone already in the team gets these settings."""

    email: Address
    name: Line = Field("", description="Display name (default: the address's local part).")
    timezone: Line = Field("UTC", description="IANA time zone, e.g. Europe/Berlin.")
    digest_cadence: Cadence = "daily"
    digest_hour: Hour = 9
    role: Role | None = Field(None, description="admin runs the team; default member.")


class MemberPatchIn(_In):
    """Like `tidings member set` (and the role in this team): only the fields given change."""

    timezone: Line | None = Field(None, description="IANA time zone, e.g. Europe/Berlin.")
    digest_cadence: Cadence | None = None
    digest_hour: Hour | None = None
    digest_weekday: Weekday | None = Field(None, description="Weekly digests: the day.")
    digest_weekdays_only: bool | None = Field(
        None, description="Daily digests Monday to Friday only (false: every day)."
    )
    quiet_hours: Line | None = Field(
        None, description="Local quiet hours, 20:00-08:00, or off.", examples=["20:00-08:00"]
    )
    away: Line | None = Field(
        None,
        description="Away dates, both included: 2026-12-20..2027-01-03, 2026-12-20.. (open),"
        " or off.",
        examples=["2026-12-20..2027-01-03"],
    )
    role: Role | None = None


class PauseIn(_In):
    reason: Line = Field(
        "paused by an admin", description="Why; shown to admins and on the member's banner."
    )


class ResumedOut(BaseModel):
    member: MemberDetailOut
    was_paused: bool
    held_dropped: int  # held messages dropped; the next digest covers their updates
    bounces_cleared: int  # bounces that no longer count towards a pause
    message: str


class ImportIn(_In):
    csv: str = Field(
        pattern=r"^[^\x00]*$",
        description="The CSV text: a header row naming name,email,timezone,cadence,hour (any"
        " order), then a row per member.",
        examples=["name,email,timezone,cadence,hour\nAlice,alice@example.com,Europe/Berlin,,\n"],
    )


class ImportRowOut(BaseModel):
    row: int  # as a spreadsheet numbers it: the header is row 1
    action: str  # add (new person) | join (known person, new to the team) | change | same
    email: str
    name: str
    timezone: str
    digest_cadence: str
    digest_hour: int
    changes: list[str]  # "hour 9 -> 7", for people already known
    description: str  # the row's line of `tidings member import`


class ImportOut(BaseModel):
    team: str
    dry_run: bool  # true: nothing changed; this is what an import would do
    rows: list[ImportRowOut]
    added: int
    joined: int
    changed: int
    unchanged: int
    summary: str


class DigestResentOut(BaseModel):
    outbox_id: int
    recipient: str
    subject: str
    message: str


class PostedOut(BaseModel):
    thread_id: int
    title: str
    team: str
    url: str


class ReleasedOut(BaseModel):
    id: int
    status: str  # processed | quarantined (again: see reason) | duplicate | pending | ...
    reason: str | None
    detail: str | None
    posted: list[PostedOut]  # where it was posted, if it was
    message: str


class KeyVersionOut(BaseModel):
    version: int
    status: str  # signing (new mail) | verifying (older mail, still accepted) | retired
    created_at: datetime
    retired_at: datetime | None


class KeysOut(BaseModel):
    signing_version: int
    versions: list[KeyVersionOut]
    message: str
