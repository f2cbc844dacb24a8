"""The domain model, as SQLModel tables. Alembic migrations in app/migrations mirror it.

A `Person` is one human (one address, one time zone, one digest schedule); a
`Membership` puts them in a `Team`. Mail arrives in the `InboundMessage` journal
first and becomes an `Update` in a `Thread` afterwards; everything Tidings sends
goes through `OutboundMessage`; a digest's row holds its plan (which updates it covers),
and each `Membership` keeps a digest cursor: every update of that team up to it has been
offered to that member.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    Index,
    LargeBinary,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every engine: SQLite would otherwise hand back naive values."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), **kw))


def _optional_ts() -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class Team(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, index=True, max_length=64)
    name: str
    # One question per line; a prompt with several numbers them.
    checkin_question: str = "What did you get done today?"
    # Local hour (in each member's zone) for the weekday check-in; None: only on demand.
    checkin_hour: int | None = None
    # Which question (1-based) asks about blockers: its answers show as blockers in digests.
    blocker_question: int | None = None
    # Private teams' archives are seen only by signed-in members; public ones by anyone.
    public: bool = False
    created_at: datetime = _ts(nullable=False)
    # An archived team takes no new posts (mail to it is refused with a reason) and asks
    # no check-ins; its archive stays readable.
    archived_at: datetime | None = _optional_ts()

    @property
    def checkin_questions(self) -> list[str]:
        return [q.strip() for q in self.checkin_question.splitlines() if q.strip()]


class Person(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, index=True, max_length=320)
    name: str
    timezone: str = "UTC"
    digest_cadence: str = "daily"  # daily | weekly | immediate | off
    digest_hour: int = 9
    digest_weekdays_only: bool = False  # daily digests Monday to Friday only
    digest_weekday: int = 0  # weekly digests: 0 Monday .. 6 Sunday
    # Nothing scheduled is sent while away (inclusive local dates; an open end is allowed).
    away_from: date | None = None
    away_until: date | None = None
    # Prompts and notices wait for the end of these local hours (equal: no quiet hours).
    quiet_start: time = time(20, 0)
    quiet_end: time = time(8, 0)
    last_digest_at: datetime | None = _optional_ts()
    created_at: datetime = _ts(nullable=False)
    # Nothing is mailed to a paused member (an admin paused them, or their address kept
    # bouncing); mail meant for them waits in the outbox as "held" until they resume.
    mail_paused_at: datetime | None = _optional_ts()
    mail_paused_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class PersonAlias(SQLModel, table=True):
    """Another address a person sends from; it counts as theirs once confirmed by a link
    sent to it, so nobody can claim an address they cannot read."""

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    email: str = Field(unique=True, max_length=320)
    created_at: datetime = _ts(nullable=False)
    confirmed_at: datetime | None = _optional_ts()


class FormerTeamSlug(SQLModel, table=True):
    """A slug a team had before it was renamed. Mail to it, and reply addresses in mail
    sent before the rename (they carry the slug), still reach the team; no other team may
    take it while old mail may still be answered."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, max_length=64)
    team_id: int = Field(foreign_key="team.id", index=True)
    retired_at: datetime = _ts(nullable=False)


class Bounce(SQLModel, table=True):
    """A failed delivery reported for mail to a member: a DSN or another bounce that came
    back to their VERP return path. Hard bounces in a window pause the member's mail."""

    __table_args__ = (Index("ix_bounce_person_id_received_at", "person_id", "received_at"),)
    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id")
    # One record per returned message, however often it is processed.
    inbound_id: int | None = Field(default=None, foreign_key="inboundmessage.id", unique=True)
    received_at: datetime = _ts(nullable=False)
    hard: bool
    status: str = Field(default="", max_length=16)  # RFC 3463, e.g. 5.1.1; "" if none given
    diagnostic: str = Field(default="", sa_column=Column(Text, nullable=False))
    address: str = Field(default="", max_length=320)  # the failed recipient it names
    # Set when the member's mail is resumed: cleared bounces no longer count.
    cleared_at: datetime | None = _optional_ts()


class TeamLink(SQLModel, table=True):
    """A team's link pattern: `PROJ-{id}` in a post becomes a link to `url` with the
    number in place of `{id}` (a tracker's issue, a merge request)."""

    __table_args__ = (UniqueConstraint("team_id", "pattern"),)
    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    pattern: str = Field(max_length=100)  # text around one {id}: "PROJ-{id}", "#{id}"
    url: str = Field(max_length=500)  # http(s), with {id}


class TeamWebhook(SQLModel, table=True):
    """A chat channel's incoming-webhook URL: the team's section of each day's digest and
    each urgent update are posted there, as Slack- or Microsoft Teams-compatible JSON."""

    __table_args__ = (UniqueConstraint("team_id", "url"),)
    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    kind: str = Field(max_length=16)  # slack | teams
    url: str = Field(max_length=1000)
    created_at: datetime = _ts(nullable=False)
    # The team's section is posted once a day at this local hour in `timezone`.
    hour: int = Field(default=9, sa_column_kwargs={"server_default": "9"})
    timezone: str = Field(default="UTC", max_length=64, sa_column_kwargs={"server_default": "UTC"})
    # Every update of the team with an id up to this one has been posted to the channel in
    # a day's section (urgent ones were posted on their own too, as they came).
    cursor: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # Every update up to this one has been looked at for urgency, and posted if urgent.
    urgent_cursor: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # When the last day's section was planned (posted, or nothing was new): the schedule
    # counts from it.
    last_section_at: datetime | None = _optional_ts()


class Membership(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("team_id", "person_id"),)
    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    joined_at: datetime = _ts(nullable=False)
    # Every update of the team with an id up to this one has been offered to this member
    # in a planned digest (or was theirs, or older than their joining): see digest/build.py.
    digest_cursor: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # "admin": runs the team, and is told in their digest when a member's mail is paused.
    role: str = Field(
        default="member", max_length=16, sa_column_kwargs={"server_default": "member"}
    )


class Thread(SQLModel, table=True):
    # At most one check-in thread per team and day; NULL dates (ordinary threads) never clash.
    __table_args__ = (UniqueConstraint("team_id", "checkin_date"),)
    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    title: str
    checkin_date: date | None = None
    created_at: datetime = _ts(nullable=False)
    # Deleted threads keep their rows (nothing posted is lost) but leave the archive, and
    # replies to them are refused with a reason.
    deleted_at: datetime | None = _optional_ts()
    last_activity_at: datetime = _ts(nullable=False, index=True)


class InboundMessage(SQLModel, table=True):
    """The inbound journal: every message we answered 250 for, raw, before any parsing."""

    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime = _ts(nullable=False)
    peer: str = ""
    mail_from: str = ""
    rcpt_tos: str = ""  # newline-separated envelope recipients
    message_id: str | None = Field(default=None, index=True)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # pending -> processed | duplicate | quarantined (-> pending again when approved) | discarded
    status: str = Field(default="pending", index=True, max_length=16)
    reason: str | None = None  # stable reason code when quarantined
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    processed_at: datetime | None = _optional_ts()
    # Set when the member a reply token names approves a message held as "unverified
    # sender"; processing then posts it under their name.
    approved_by_id: int | None = Field(default=None, foreign_key="person.id")


class Update(SQLModel, table=True):
    # A redelivered message (same Message-ID to the same team) never makes a second update,
    # even when two processes handle the two copies at once.
    __table_args__ = (
        UniqueConstraint("team_id", "message_id"),
        UniqueConstraint("team_id", "inbound_id"),
        Index("uq_update_team_content_hash", "team_id", "content_hash", unique=True),
    )
    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    thread_id: int = Field(foreign_key="thread.id", index=True)
    author_id: int = Field(foreign_key="person.id", index=True)
    parent_id: int | None = Field(default=None, foreign_key="update.id")
    inbound_id: int | None = Field(default=None, foreign_key="inboundmessage.id")
    message_id: str | None = None
    # Outlook's conversation key (the first 22 bytes of Thread-Index, base64): replies from
    # Outlook that carry nothing else still find their thread through it.
    thread_index: str | None = Field(default=None, max_length=32, index=True)
    # For redeliveries without a Message-ID: sender, recipient, subject, text and the day
    # received, hashed; unique per team, so two copies processed at once cannot both post.
    content_hash: str | None = Field(default=None, max_length=64)
    body: str = Field(sa_column=Column(Text, nullable=False))  # the new text, Markdown
    quoted: str = Field(default="", sa_column=Column(Text, nullable=False))  # what was trimmed
    extraction_confident: bool = True
    # Which rule put it in its thread:
    # reply-token | checkin | in-reply-to | thread-index | subject | new-thread
    placed_by: str = "new-thread"
    created_at: datetime = _ts(nullable=False, index=True)
    edited_at: datetime | None = _optional_ts()  # set when the author corrects the text


class MessageRef(SQLModel, table=True):
    """A Message-ID we sent and the thread it belongs to, so that a reply whose client
    dropped our reply address still finds its thread through In-Reply-To/References."""

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(unique=True, max_length=250)
    team_id: int = Field(foreign_key="team.id")
    thread_id: int = Field(foreign_key="thread.id")
    person_id: int | None = Field(default=None, foreign_key="person.id")
    created_at: datetime = _ts(nullable=False)


class Attachment(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    update_id: int = Field(foreign_key="update.id", index=True)
    filename: str
    content_type: str = "application/octet-stream"
    size: int = 0
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class OutboundMessage(SQLModel, table=True):
    """The outbox: every message Tidings sends is written here before it is sent."""

    id: int | None = Field(default=None, primary_key=True)
    # digest | checkin | receipt | approval | notice | alias | webhook (a chat post: `raw` is
    # its JSON, `recipient` the webhook's URL; see digest/webhooks.py)
    kind: str = Field(max_length=16)
    idempotency_key: str = Field(unique=True, max_length=200)
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    recipient: str
    subject: str
    message_id: str = Field(index=True)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # pending -> sending (claimed by one worker) -> sent | failed; held: for a member whose
    # mail is paused (never claimed; resuming cancels it, moving a digest's cursors back)
    status: str = Field(default="pending", index=True, max_length=16)
    claimed_at: datetime | None = _optional_ts()
    attempts: int = 0
    last_error: str | None = None
    created_at: datetime = _ts(nullable=False)
    sent_at: datetime | None = _optional_ts()
    # A digest's plan (JSON, see app/digest_plan.py): it is rendered from this when it is sent,
    # so `raw` stays empty until then.
    plan: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ApiToken(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, max_length=64)
    team_id: int | None = Field(default=None, foreign_key="team.id")  # None: every team
    scope: str = "read"
    created_at: datetime = _ts(nullable=False)
    revoked_at: datetime | None = _optional_ts()


class SigningKey(SQLModel, table=True):
    """One version of the reply-token key. The key itself is derived from the secret key
    and this salt, so neither the database nor the secret alone can sign tokens.
    The newest unretired version signs; every unretired version verifies."""

    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    salt: str = Field(max_length=64)  # '' for version 1: the key before rotation existed
    created_at: datetime = _ts(nullable=False)
    retired_at: datetime | None = _optional_ts()


class SignInRequest(SQLModel, table=True):
    """One "email me a sign-in link" request, kept for rate limits whether or not the
    address belongs to anyone; the link's token is stored hashed, and used once."""

    id: int | None = Field(default=None, primary_key=True)
    address_hash: str = Field(max_length=64, index=True)  # never the address itself
    ip: str = Field(default="", max_length=64, index=True)
    person_id: int | None = Field(default=None, foreign_key="person.id")
    token_hash: str | None = Field(default=None, max_length=64, unique=True)
    next_path: str = Field(default="/", max_length=500)
    created_at: datetime = _ts(nullable=False, index=True)
    expires_at: datetime = _ts(nullable=False)
    used_at: datetime | None = _optional_ts()


class WebSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds a random token; only its hash is stored, so a
    database dump signs nobody in, and deleting the row signs the browser out."""

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    created_at: datetime = _ts(nullable=False)
    expires_at: datetime = _ts(nullable=False)
