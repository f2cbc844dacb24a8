"""All SQL lives here: the services the CLI, API, web archive, listener and digests share.

Functions take an open session and leave committing to the caller (the end of a
request, of a message, of a command), so one unit of work is one transaction.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from difflib import get_close_matches
from email.message import EmailMessage
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import delete, func, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.digest_plan import DigestPlan
from app.errors import Conflict, NotFound, TidingsError
from app.links import LinkRule
from app.models import (
    ApiToken,
    Attachment,
    Bounce,
    FormerTeamSlug,
    InboundMessage,
    Membership,
    MessageRef,
    OutboundMessage,
    Person,
    PersonAlias,
    SigningKey,
    SignInRequest,
    Team,
    TeamLink,
    Thread,
    Update,
    WebSession,
    utcnow,
)
from app.tokens import MAX_KEY_VERSION, ReplyKeys, parse_recipient, reply_keys

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Local parts we use for our own purposes; a team by that name would shadow them.
DIGEST_LOCAL_PART = "digest"  # digests come from here; a reply to it is answered with help
UNSUBSCRIBE_LOCAL_PART = "unsubscribe"  # unsubscribe+TOKEN@domain: List-Unsubscribe by mail
BOUNCE_LOCAL_PART = "bounce"  # bounce+TOKEN@domain: the return path of mail to a member
RESERVED_SLUGS = frozenset(
    {
        DIGEST_LOCAL_PART,
        UNSUBSCRIBE_LOCAL_PART,
        "postmaster",
        "abuse",
        "mailer-daemon",
        "noreply",
        BOUNCE_LOCAL_PART,
    }
)
CADENCES = ("daily", "weekly", "immediate", "off")


# Teams ---------------------------------------------------------------------------------


def _valid_slug(slug: str) -> str:
    slug = slug.strip().lower()
    if not SLUG_RE.match(slug) or slug in RESERVED_SLUGS:
        raise TidingsError(
            f"'{slug}' cannot be a team slug.",
            "Use lower-case letters, digits and hyphens (it becomes the address SLUG@domain),"
            f" and none of: {', '.join(sorted(RESERVED_SLUGS))}.",
        )
    return slug


def _former_slug(session: Session, slug: str) -> FormerTeamSlug | None:
    return session.exec(select(FormerTeamSlug).where(FormerTeamSlug.slug == slug)).first()


def _refuse_former_slug(session: Session, former: FormerTeamSlug) -> None:
    owner = session.get(Team, former.team_id)
    raise Conflict(
        f"'{former.slug}' was the slug of team {owner.slug if owner else '?'} until"
        f" {former.retired_at:%Y-%m-%d}: mail to {former.slug}@ and reply addresses in older"
        " mail still reach that team.",
        "Choose another slug.",
    )


def create_team(session: Session, slug: str, name: str, public: bool = False) -> Team:
    slug = _valid_slug(slug)
    if session.exec(select(Team).where(Team.slug == slug)).first():
        raise Conflict(f"Team '{slug}' already exists.", "See it with `tidings team list`.")
    former = _former_slug(session, slug)
    if former is not None:
        _refuse_former_slug(session, former)
    team = Team(slug=slug, name=name.strip() or slug, public=public)
    session.add(team)
    session.flush()
    return team


def rename_team(
    session: Session, slug: str, new_slug: str | None = None, name: str | None = None
) -> tuple[Team, str]:
    """Give a team a new slug, a new display name, or both; returns (team, old slug).

    The old slug is kept as a former slug of the team: its address and the reply
    addresses in mail sent before (they carry the slug) keep reaching the team, and no
    other team can take it. Renaming back to a former slug takes it back."""
    team = get_team(session, slug)
    old = team.slug
    if new_slug is None and name is None:
        raise TidingsError(
            "Nothing to rename.",
            f"Give a new slug, a new --name, or both: tidings team rename {old} NEW --name NAME",
        )
    if name is not None:
        if not name.strip():
            raise TidingsError("The team's name cannot be empty.", "Give the name to show.")
        team.name = name.strip()
    if new_slug is not None and _valid_slug(new_slug) != old:
        new = _valid_slug(new_slug)
        if session.exec(select(Team).where(Team.slug == new)).first():
            raise Conflict(
                f"Team '{new}' already exists.", "Choose another slug, or see `tidings team list`."
            )
        former = _former_slug(session, new)
        if former is not None and former.team_id != team.id:
            _refuse_former_slug(session, former)
        if former is not None:
            session.delete(former)  # taking its old slug back
            session.flush()
        session.add(FormerTeamSlug(slug=old, team_id=team.id))  # type: ignore[arg-type]
        team.slug = new
    session.add(team)
    session.flush()
    return team, old


def archived_notice(team: Team) -> str:
    """Why mail to an archived team is refused, for the sender's bounce."""
    day = f" on {team.archived_at:%Y-%m-%d}" if team.archived_at else ""
    return (
        f"the team {team.slug} was archived{day} and takes no new posts; its archive stays"
        " readable. Ask a team admin if it should be reopened"
    )


def former_slugs(session: Session, team_id: int) -> list[str]:
    query = (
        select(FormerTeamSlug.slug)
        .where(FormerTeamSlug.team_id == team_id)
        .order_by(FormerTeamSlug.retired_at)  # type: ignore[arg-type]
    )
    return list(session.exec(query))


def archive_team(session: Session, slug: str, archived: bool = True) -> Team:
    """Archive a team (no new posts, no check-ins; the archive stays readable), or with
    `archived=False` open it again."""
    team = get_team(session, slug)
    if archived and team.archived_at is None:
        team.archived_at = utcnow()
    elif not archived:
        team.archived_at = None
    session.add(team)
    session.flush()
    return team


def set_checkin(
    session: Session,
    slug: str,
    hour: int | None,
    questions: Sequence[str] | None = None,
    blocker: int | None = None,
) -> Team:
    """Schedule the team's weekday check-in at a local hour (None: only on demand), with
    its questions (one or more) and which of them (1-based) asks about blockers."""
    team = get_team(session, slug)
    if hour is not None and not 0 <= hour <= 23:
        raise TidingsError(f"Check-in hour {hour} is not an hour.", "Use 0 to 23 (local time).")
    if isinstance(questions, str):
        questions = [questions]  # one question, not a sequence of its letters
    if questions is not None:
        asked = [" ".join(q.split()) for q in questions if q.strip()]
        if not asked:
            raise TidingsError("The check-in question is empty.", "Give the question to ask.")
        team.checkin_question = "\n".join(asked)
        team.blocker_question = None  # it numbered the old questions
    if blocker is not None:
        count = len(team.checkin_questions)
        if not 1 <= blocker <= count:
            raise TidingsError(
                f"There is no question {blocker}: the check-in asks {count}.",
                "Number the questions from 1, in the order given with --question.",
            )
        team.blocker_question = blocker
    team.checkin_hour = hour
    session.add(team)
    session.flush()
    return team


def scheduled_checkin_teams(session: Session) -> list[Team]:
    """Teams with a weekday check-in hour; archived teams ask nothing."""
    query = select(Team).where(
        Team.checkin_hour.is_not(None),  # type: ignore[union-attr]
        Team.archived_at.is_(None),  # type: ignore[union-attr]
    )
    return list(session.exec(query))


def memberships_of(session: Session, team_id: int) -> list[tuple[Person, Membership]]:
    query = (
        select(Person, Membership)
        .join(Membership, Membership.person_id == Person.id)
        .where(Membership.team_id == team_id)
        .order_by(Person.id)  # type: ignore[arg-type]
    )
    return [(p, m) for p, m in session.exec(query).all()]


def last_checkin_prompts(session: Session, team_id: int) -> dict[int, datetime]:
    """When each member of the team was last asked its check-in question."""
    query = (
        select(OutboundMessage.person_id, func.max(OutboundMessage.created_at))
        .where(
            OutboundMessage.kind == "checkin",
            OutboundMessage.idempotency_key.startswith(f"checkin:{team_id}:"),  # type: ignore[attr-defined]
        )
        .group_by(OutboundMessage.person_id)
    )
    return {person_id: last for person_id, last in session.exec(query).all()}  # type: ignore[misc]


def get_team(session: Session, slug: str) -> Team:
    """The team with this slug, or the one that had it before a rename (so its old
    address and older reply addresses still reach it)."""
    team = session.exec(select(Team).where(Team.slug == slug.lower())).first()
    if team is None:
        query = (
            select(Team)
            .join(FormerTeamSlug, FormerTeamSlug.team_id == Team.id)
            .where(FormerTeamSlug.slug == slug.lower())
        )
        team = session.exec(query).first()
    if team is None:
        raise NotFound(
            f"No team '{slug}'.",
            "List teams with `tidings team list`, or create one with"
            f" `tidings team create {slug} --name NAME`.",
        )
    return team


def add_team_link(session: Session, slug: str, pattern: str, url: str) -> TeamLink:
    """Link `pattern` (text around one `{id}`, like `PROJ-{id}` or `#{id}`) in the team's
    posts to `url` (http or https, with `{id}`); the same pattern again changes its URL."""
    team = get_team(session, slug)
    if pattern.count("{id}") != 1 or pattern == "{id}" or any(c.isspace() for c in pattern):
        raise TidingsError(
            f"Link pattern '{pattern}' is not text around one {{id}}.",
            "Give it like PROJ-{id} or #{id} (no spaces); {id} stands for the number.",
        )
    if not url.startswith(("https://", "http://")) or "{id}" not in url:
        raise TidingsError(
            f"Link URL '{url}' is not an http(s) address with {{id}} in it.",
            "Give it like https://jira.example.com/browse/PROJ-{id}.",
        )
    link = session.exec(
        select(TeamLink).where(TeamLink.team_id == team.id, TeamLink.pattern == pattern)
    ).first() or TeamLink(team_id=team.id, pattern=pattern, url=url)  # type: ignore[arg-type]
    link.url = url
    session.add(link)
    session.flush()
    return link


def remove_team_link(session: Session, slug: str, pattern: str) -> None:
    team = get_team(session, slug)
    link = session.exec(
        select(TeamLink).where(TeamLink.team_id == team.id, TeamLink.pattern == pattern)
    ).first()
    if link is None:
        raise NotFound(
            f"Team {team.slug} has no link pattern '{pattern}'.",
            f"See them with `tidings team link list {team.slug}`.",
        )
    session.delete(link)
    session.flush()


def team_links(session: Session, team_ids: Sequence[int]) -> dict[int, list[LinkRule]]:
    """Each team's link patterns, ready for `render_markdown` (teams without any: [])."""
    found: dict[int, list[LinkRule]] = {team_id: [] for team_id in team_ids}
    query = select(TeamLink).where(TeamLink.team_id.in_(team_ids)).order_by(TeamLink.id)  # type: ignore[attr-defined]
    for link in session.exec(query):
        found[link.team_id].append(LinkRule(link.pattern, link.url))
    return found


def list_teams(session: Session, team_ids: Sequence[int] | None = None) -> list[Team]:
    query = select(Team).order_by(Team.slug)
    if team_ids is not None:
        query = query.where(Team.id.in_(team_ids))  # type: ignore[union-attr]
    return list(session.exec(query))


# People and memberships ----------------------------------------------------------------


def normalise_email(address: str) -> str:
    return address.strip().strip("<>").lower()


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        zones = sorted(available_timezones())
        near = get_close_matches(name, zones, n=3, cutoff=0.6)
        hint = (
            f"Did you mean {' or '.join(near)}?"
            if near
            else "Use an IANA name such as Europe/Berlin or America/New_York."
        )
        raise TidingsError(f"Unknown time zone '{name}'.", hint) from exc
    return name


def add_member(
    session: Session,
    slug: str,
    email: str,
    name: str,
    timezone: str = "UTC",
    cadence: str = "daily",
    hour: int = 9,
) -> Person:
    """Add a person to a team, creating the person or updating their name and settings."""
    team = get_team(session, slug)
    email = check_address(email)
    if cadence not in CADENCES:
        raise TidingsError(
            f"Unknown digest cadence '{cadence}'.", f"Use one of {', '.join(CADENCES)}."
        )
    if not 0 <= hour <= 23:
        raise TidingsError(f"Digest hour {hour} is not an hour.", "Use 0 to 23 (local time).")
    person = find_person(session, email)
    if person is None:
        person = Person(email=email, name=name or email.split("@")[0])
        session.add(person)
    elif name:
        person.name = name
    person.timezone = check_timezone(timezone)
    person.digest_cadence = cadence
    person.digest_hour = hour
    session.flush()
    if not is_member(session, team.id, person.id):  # type: ignore[arg-type]
        # Updates from before they joined are not theirs to get in a digest.
        newest = session.scalar(select(func.max(Update.id)).where(Update.team_id == team.id))
        session.add(
            Membership(team_id=team.id, person_id=person.id, digest_cursor=newest or 0)  # type: ignore[arg-type]
        )
        session.flush()
    return person


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class MemberSettings:
    """Changes to a member's schedule; None leaves a setting as it is."""

    cadence: str | None = None
    hour: int | None = None
    timezone: str | None = None
    weekday: str | None = None  # for weekly digests: mon .. sun
    weekdays_only: bool | None = None
    quiet: str | None = None  # "20:00-08:00", or "off"
    away: str | None = None  # "2026-12-20..2027-01-03", "2026-12-20..", or "off"


def _parse_quiet(text: str) -> tuple[time, time]:
    if text.strip().lower() == "off":
        return time(0, 0), time(0, 0)  # equal bounds: no quiet hours
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError as exc:
        raise TidingsError(
            f"Quiet hours '{text}' are not START-END.", "Give them as 20:00-08:00, or off."
        ) from exc
    return start, end


def _parse_away(text: str) -> tuple[date | None, date | None]:
    if text.strip().lower() == "off":
        return None, None
    first, dots, last = text.partition("..")
    try:
        start = date.fromisoformat(first.strip()) if first.strip() else None
        end = date.fromisoformat(last.strip()) if last.strip() else None
    except ValueError as exc:
        raise TidingsError(
            f"Away dates '{text}' are not FROM..UNTIL.",
            "Give them as 2026-12-20..2027-01-03 (both days included), 2026-12-20.. for"
            " open-ended, or off.",
        ) from exc
    if not dots or (start is None and end is None):
        raise TidingsError(
            f"Away dates '{text}' are not FROM..UNTIL.", "Example: 2026-12-20..2027-01-03"
        )
    if start and end and end < start:
        raise TidingsError(f"Away dates '{text}' end before they start.", "Swap them.")
    return start, end


def change_member_settings(session: Session, email: str, changes: MemberSettings) -> Person:
    """Apply `changes` to the person with this address, checking each value first."""
    person = _member(session, email)
    if changes.cadence is not None:
        if changes.cadence not in CADENCES:
            raise TidingsError(
                f"Unknown digest cadence '{changes.cadence}'.", f"Use one of {', '.join(CADENCES)}."
            )
        person.digest_cadence = changes.cadence
    if changes.hour is not None:
        if not 0 <= changes.hour <= 23:
            raise TidingsError(f"Digest hour {changes.hour} is not an hour.", "Use 0 to 23.")
        person.digest_hour = changes.hour
    if changes.timezone is not None:
        person.timezone = check_timezone(changes.timezone)
    if changes.weekday is not None:
        day = changes.weekday.strip().lower()[:3]
        if day not in WEEKDAYS:
            raise TidingsError(f"'{changes.weekday}' is not a weekday.", "Use mon, tue, ... sun.")
        person.digest_weekday = WEEKDAYS.index(day)
    if changes.weekdays_only is not None:
        person.digest_weekdays_only = changes.weekdays_only
    if changes.quiet is not None:
        person.quiet_start, person.quiet_end = _parse_quiet(changes.quiet)
    if changes.away is not None:
        person.away_from, person.away_until = _parse_away(changes.away)
    session.add(person)
    session.flush()
    return person


def stop_digests(session: Session, person_id: int) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound(f"No person {person_id}.")
    person.digest_cadence = "off"
    session.add(person)
    session.flush()
    return person


# Paused mail and bounces -----------------------------------------------------------------

BOUNCE_WINDOW = timedelta(days=14)  # hard bounces within it count towards a pause
# Mail a member asks for themselves, at the moment they need it, goes out even while
# their mail is paused: without a sign-in link they could not read the archive's banner
# saying why nothing else arrives.
PAUSE_EXEMPT_KINDS = frozenset({"signin"})
HELD = "held"  # outbox status of mail for a paused member: never claimed, never sent


def _member(session: Session, email: str) -> Person:
    person = find_person(session, email)
    if person is None:
        raise NotFound(
            f"No member with the address {normalise_email(email)}.",
            "See the members with `tidings member list TEAM`.",
        )
    return person


def pause_mail(
    session: Session, email: str | Person, reason: str, now: datetime | None = None
) -> Person:
    """Send nothing more to this member: mail already queued for them, and any queued
    later, is held in the outbox until `resume_mail`. Pausing twice keeps the first
    reason."""
    person = email if isinstance(email, Person) else _member(session, email)
    if person.mail_paused_at is not None:
        return person
    now = now or utcnow()
    person.mail_paused_at = now
    person.mail_paused_reason = reason.strip() or "paused by an admin"
    session.add(person)
    session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.person_id == person.id,  # type: ignore[arg-type]
            OutboundMessage.status == "pending",  # type: ignore[arg-type]
            OutboundMessage.kind.not_in(PAUSE_EXEMPT_KINDS),  # type: ignore[attr-defined]
        )
        .values(status=HELD, last_error=_held_note(person))
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return person


def _held_note(person: Person) -> str:
    return f"Held: mail to {person.email} is paused ({person.mail_paused_reason})."[:500]


@dataclass(frozen=True)
class Resumed:
    person: Person
    was_paused: bool
    cancelled: int  # held outbox rows cancelled (a digest's updates come in the next one)
    cleared: int  # bounces that no longer count towards a pause


def resume_mail(session: Session, email: str) -> Resumed:
    """Mail the member again. What was held for them is cancelled rather than sent in a
    heap: held digests move their cursors back, so the next digest covers all their
    updates; stale prompts and notices are dropped (they stay in the outbox as failed).
    Their bounces so far stop counting towards the next pause."""
    person = _member(session, email)
    was_paused = person.mail_paused_at is not None
    person.mail_paused_at = None
    person.mail_paused_reason = None
    session.add(person)
    held = list(
        session.exec(
            select(OutboundMessage)
            .where(OutboundMessage.person_id == person.id, OutboundMessage.status == HELD)
            .order_by(OutboundMessage.id.desc())  # type: ignore[union-attr]
        )
    )
    for row in held:  # newest first: each digest's cursors go back to where it found them
        if row.plan is not None:
            for membership_id, (before, after) in DigestPlan.from_json(row.plan).cursors.items():
                session.execute(
                    update(Membership)
                    .where(Membership.id == membership_id, Membership.digest_cursor == after)  # type: ignore[arg-type]
                    .values(digest_cursor=before)
                    .execution_options(synchronize_session=False)
                )
        row.status = "failed"
        row.last_error = "Not sent: held while the member's mail was paused, cancelled on resume."
        # Frees the key and the Message-ID, as a failed send does: the same prompt or
        # digest may be planned again (a reply can only quote a message that arrived).
        row.idempotency_key = f"{row.idempotency_key[:180]}:failed:{row.id}"
        session.add(row)
        session.execute(delete(MessageRef).where(MessageRef.message_id == row.message_id))  # type: ignore[arg-type]
    cleared = session.execute(
        update(Bounce)
        .where(Bounce.person_id == person.id, Bounce.cleared_at.is_(None))  # type: ignore[arg-type,union-attr]
        .values(cleared_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    session.flush()
    return Resumed(person, was_paused, len(held), cleared or 0)


def paused_members(session: Session, team_id: int) -> list[Person]:
    query = (
        select(Person)
        .join(Membership, Membership.person_id == Person.id)
        .where(Membership.team_id == team_id, Person.mail_paused_at.is_not(None))  # type: ignore[union-attr]
        .order_by(Person.email)
    )
    return list(session.exec(query))


def record_bounce(
    session: Session,
    person: Person,
    *,
    hard: bool,
    status: str,
    diagnostic: str,
    address: str = "",
    inbound_id: int | None = None,
    pause_after: int = 3,
    now: datetime | None = None,
) -> tuple[Bounce, bool]:
    """Record a bounce against a member; (the bounce, whether it paused their mail now).

    `pause_after` hard bounces within BOUNCE_WINDOW (not cleared by a resume) pause the
    member's mail; 0 never does. A returned message processed again (released from the
    quarantine) is recorded once."""
    if inbound_id is not None:
        known = session.exec(select(Bounce).where(Bounce.inbound_id == inbound_id)).first()
        if known is not None:
            return known, False
    now = now or utcnow()
    bounce = Bounce(
        person_id=person.id,  # type: ignore[arg-type]
        inbound_id=inbound_id,
        received_at=now,
        hard=hard,
        status=status[:16],
        diagnostic=diagnostic,
        address=address[:320],
    )
    session.add(bounce)
    session.flush()
    if not hard or pause_after <= 0 or person.mail_paused_at is not None:
        return bounce, False
    count = hard_bounce_count(session, person.id, now)  # type: ignore[arg-type]
    if count < pause_after:
        return bounce, False
    said = " ".join(part for part in (status, diagnostic) if part) or "no details given"
    reason = f"{count} hard bounces in {BOUNCE_WINDOW.days} days; the last: {said[:300]}"
    pause_mail(session, person, reason, now)
    return bounce, True


def hard_bounce_count(session: Session, person_id: int, now: datetime) -> int:
    """Hard bounces within BOUNCE_WINDOW before `now` that a resume has not cleared."""
    query = (
        select(func.count())
        .select_from(Bounce)
        .where(
            Bounce.person_id == person_id,
            Bounce.hard,
            Bounce.received_at >= now - BOUNCE_WINDOW,
            Bounce.cleared_at.is_(None),  # type: ignore[union-attr]
        )
    )
    return int(session.exec(query).one())


def bounces_of(session: Session, person_id: int, limit: int = 50) -> list[Bounce]:
    query = (
        select(Bounce)
        .where(Bounce.person_id == person_id)
        .order_by(Bounce.received_at.desc(), Bounce.id.desc())  # type: ignore[attr-defined,union-attr]
        .limit(limit)
    )
    return list(session.exec(query))


def find_person(session: Session, email: str) -> Person | None:
    """The person an address belongs to: their own, or one of their confirmed aliases."""
    address = normalise_email(email)
    person = session.exec(select(Person).where(Person.email == address)).first()
    if person is not None:
        return person
    query = (
        select(Person)
        .join(PersonAlias, PersonAlias.person_id == Person.id)
        .where(PersonAlias.email == address, PersonAlias.confirmed_at.is_not(None))  # type: ignore[union-attr]
    )
    return session.exec(query).first()


def remove_member(session: Session, slug: str, email: str) -> Person:
    """Take someone out of a team. Their posts stay; their reply addresses for the team's
    threads stop working, with a 550 that says why."""
    team = get_team(session, slug)
    person = find_person(session, email)
    membership = None
    if person is not None:
        query = select(Membership).where(
            Membership.team_id == team.id, Membership.person_id == person.id
        )
        membership = session.exec(query).first()
    if person is None or membership is None:
        raise NotFound(
            f"{normalise_email(email)} is not a member of {team.slug}.",
            f"See the members with `tidings member list {team.slug}`.",
        )
    session.delete(membership)
    session.flush()
    return person


_ADDRESS = re.compile(
    r'[^@\s<>()\[\],;:"\\]+@([^@\s<>()\[\],;:"\\]+\.[^@\s<>()\[\],;:"\\]+|localhost)'
)


def check_address(address: str) -> str:
    address = normalise_email(address)
    if not _ADDRESS.fullmatch(address):
        raise TidingsError(f"'{address}' is not an email address.", "Give it as name@example.com.")
    return address


def add_alias(session: Session, member_email: str, alias: str) -> PersonAlias:
    """Record an unconfirmed alias; it counts only after the link sent to it is followed."""
    person = session.exec(
        select(Person).where(Person.email == normalise_email(member_email))
    ).first()
    if person is None:
        raise NotFound(
            f"No member with the address {normalise_email(member_email)}.",
            "Give the member's main address, as `tidings member list TEAM` shows it.",
        )
    alias = check_address(alias)
    owner = find_person(session, alias)
    if owner is not None and owner.id != person.id:
        raise TidingsError(
            f"{alias} already belongs to {owner.email}.",
            "An address can belong to one person only; remove it there first.",
        )
    if alias == person.email:
        raise TidingsError(f"{alias} is {person.name}'s main address already.", "Nothing to do.")
    existing = session.exec(select(PersonAlias).where(PersonAlias.email == alias)).first()
    if existing is not None:
        if existing.person_id != person.id:
            raise TidingsError(
                f"{alias} is waiting for confirmation as another person's alias.",
                "Remove it there first with `tidings member alias remove`.",
            )
        return existing
    record = PersonAlias(person_id=person.id, email=alias)  # type: ignore[arg-type]
    session.add(record)
    session.flush()
    return record


def confirm_alias(session: Session, alias_id: int) -> PersonAlias:
    record = session.get(PersonAlias, alias_id)
    if record is None:
        raise NotFound("This alias was removed.", "Ask a team admin to add it again.")
    if record.confirmed_at is None:
        record.confirmed_at = utcnow()
        session.add(record)
        session.flush()
    return record


def aliases_of(session: Session, person_id: int) -> list[PersonAlias]:
    query = (
        select(PersonAlias).where(PersonAlias.person_id == person_id).order_by(PersonAlias.email)
    )
    return list(session.exec(query))


def remove_alias(session: Session, alias: str) -> PersonAlias:
    record = session.exec(
        select(PersonAlias).where(PersonAlias.email == normalise_email(alias))
    ).first()
    if record is None:
        raise NotFound(f"{normalise_email(alias)} is nobody's alias.")
    session.delete(record)
    session.flush()
    return record


def is_member(session: Session, team_id: int, person_id: int) -> bool:
    query = select(Membership.id).where(
        Membership.team_id == team_id, Membership.person_id == person_id
    )
    return session.exec(query).first() is not None


def list_members(session: Session, slug: str) -> list[Person]:
    team = get_team(session, slug)
    query = (
        select(Person)
        .join(Membership, Membership.person_id == Person.id)
        .where(Membership.team_id == team.id)
        .order_by(Person.email)
    )
    return list(session.exec(query))


def team_ids_of(session: Session, person_id: int) -> list[int]:
    query = select(Membership.team_id).where(Membership.person_id == person_id)
    return list(session.exec(query))


# Threads and updates -------------------------------------------------------------------


def get_thread(
    session: Session,
    thread_id: int,
    team_ids: Sequence[int] | None = None,
    *,
    include_deleted: bool = False,
) -> Thread:
    thread = session.get(Thread, thread_id)
    if (
        thread is None
        or (team_ids is not None and thread.team_id not in team_ids)
        or (thread.deleted_at is not None and not include_deleted)
    ):
        raise NotFound(f"No thread {thread_id}.")
    return thread


def delete_thread(session: Session, thread_id: int) -> Thread:
    """Take a thread out of the archive, search and digests. Its rows and the raw mail stay
    (nothing posted is lost); replies to it are refused with a reason."""
    thread = get_thread(session, thread_id, include_deleted=True)
    if thread.deleted_at is None:
        thread.deleted_at = utcnow()
        session.add(thread)
        session.flush()
    return thread


def team_threads(session: Session, team_id: int, limit: int = 50, offset: int = 0) -> list[Thread]:
    query = (
        select(Thread)
        .where(Thread.team_id == team_id, Thread.deleted_at.is_(None))  # type: ignore[union-attr]
        .order_by(Thread.last_activity_at.desc(), Thread.id.desc())  # type: ignore[attr-defined]
        .limit(limit)
        .offset(offset)
    )
    return list(session.exec(query))


def checkin_title(team: Team) -> str:
    questions = team.checkin_questions
    return questions[0] if len(questions) == 1 else f"{team.name} check-in"


def checkin_thread(session: Session, team: Team, day: date) -> Thread:
    """The team's check-in thread for `day`, created on first use (race-safe)."""
    query = select(Thread).where(Thread.team_id == team.id, Thread.checkin_date == day)
    thread = session.exec(query).first()
    if thread is not None:
        return thread
    try:
        with session.begin_nested():
            thread = Thread(
                team_id=team.id,  # type: ignore[arg-type]
                title=f"{checkin_title(team)} ({day.isoformat()})",
                checkin_date=day,
            )
            session.add(thread)
    except IntegrityError:
        thread = session.exec(query).one()
    return thread


# An advisory lock key (any constant): see `hold_update_order`.
_UPDATE_ORDER_LOCK = 0x7D16_0001


def hold_update_order(session: Session) -> None:
    """Called before inserting an update. On PostgreSQL, ids come from a sequence before
    the row commits, so a smaller id can become visible after a larger one; holding this
    lock (shared) until commit lets `committed_update_ceiling` wait for such rows. SQLite
    has one writer at a time, which orders them already."""
    if session.get_bind().dialect.name == "postgresql":
        session.exec(select(func.pg_advisory_xact_lock_shared(_UPDATE_ORDER_LOCK)))


def committed_update_ceiling(session: Session) -> int:
    """The largest update id below which no update can still appear: digests cover updates
    up to it, and a member's digest cursor moves to it. Commit (or roll back) right after:
    on PostgreSQL it briefly holds off new updates."""
    if session.get_bind().dialect.name == "postgresql":
        session.exec(select(func.pg_advisory_xact_lock(_UPDATE_ORDER_LOCK)))
    return session.scalar(select(func.max(Update.id))) or 0  # type: ignore[return-value]


@dataclass(frozen=True)
class NewAttachment:
    filename: str
    content_type: str
    data: bytes


def add_update(
    session: Session,
    *,
    thread: Thread,
    author: Person,
    body: str,
    quoted: str = "",
    confident: bool = True,
    parent: Update | None = None,
    message_id: str | None = None,
    content_hash: str | None = None,
    inbound_id: int | None = None,
    placed_by: str,
    thread_index: str | None = None,
    attachments: Sequence[NewAttachment] = (),
) -> Update:
    now = utcnow()
    hold_update_order(session)
    update = Update(
        team_id=thread.team_id,
        thread_id=thread.id,  # type: ignore[arg-type]
        author_id=author.id,  # type: ignore[arg-type]
        parent_id=parent.id if parent else None,
        inbound_id=inbound_id,
        message_id=message_id,
        content_hash=content_hash,
        body=body,
        quoted=quoted,
        extraction_confident=confident,
        placed_by=placed_by,
        thread_index=thread_index,
        created_at=now,
    )
    session.add(update)
    thread.last_activity_at = now
    session.add(thread)
    session.flush()
    for item in attachments:
        session.add(
            Attachment(
                update_id=update.id,  # type: ignore[arg-type]
                filename=item.filename,
                content_type=item.content_type,
                size=len(item.data),
                data=item.data,
            )
        )
    session.flush()
    return update


def correct_update(session: Session, update_id: int, body: str) -> Update:
    """The author's own correction of what extraction posted; the original stays in `quoted`
    and the raw message in the journal."""
    update = session.get(Update, update_id)
    if update is None:
        raise NotFound(f"No update {update_id}.")
    text = body.replace("\x00", "").strip()
    if not text:
        raise TidingsError("An update cannot be empty.", "Write the text you meant to post.")
    update.body = text
    update.extraction_confident = True
    update.edited_at = utcnow()
    session.add(update)
    session.flush()
    return update


def remember_sent(
    session: Session, message_id: str, thread: Thread, person: Person | None = None
) -> None:
    """Record that a message we send belongs to `thread`, for replies that keep only
    In-Reply-To/References."""
    session.add(
        MessageRef(
            message_id=message_id,
            team_id=thread.team_id,
            thread_id=thread.id,  # type: ignore[arg-type]
            person_id=person.id if person else None,
        )
    )
    session.flush()


def referenced_place(
    session: Session, team_id: int, references: Sequence[str]
) -> tuple[Thread, Update | None] | None:
    """The thread (and the update, when it was one of ours in this team) that the newest
    resolvable reference points at; `references` come newest first. Deleted threads are
    passed over: mail to the team address about them starts afresh."""
    for ref in references:
        update = session.exec(
            select(Update).where(Update.team_id == team_id, Update.message_id == ref)
        ).first()
        if update is not None:
            thread = get_thread(session, update.thread_id, include_deleted=True)
            if thread.deleted_at is None:
                return thread, update
            continue
        sent = session.exec(
            select(MessageRef).where(MessageRef.message_id == ref, MessageRef.team_id == team_id)
        ).first()
        if sent is not None:
            thread = get_thread(session, sent.thread_id, include_deleted=True)
            if thread.deleted_at is None:
                return thread, None
    return None


def recent_thread_titled(
    session: Session, team_id: int, title: str, active_since: datetime
) -> Thread | None:
    """The team's most recently active thread with this exact title, if active lately."""
    query = (
        select(Thread)
        .where(
            Thread.team_id == team_id,
            Thread.title == title,
            Thread.last_activity_at >= active_since,
            Thread.deleted_at.is_(None),  # type: ignore[union-attr]
        )
        .order_by(Thread.last_activity_at.desc())  # type: ignore[attr-defined]
    )
    return session.exec(query).first()


def thread_in_conversation(session: Session, team_id: int, conversation: str) -> Thread | None:
    """The live thread holding an update from the same Outlook conversation (Thread-Index)."""
    query = (
        select(Thread)
        .join(Update, Update.thread_id == Thread.id)
        .where(
            Update.team_id == team_id,
            Update.thread_index == conversation,
            Thread.deleted_at.is_(None),  # type: ignore[union-attr]
        )
        .order_by(Update.created_at.desc())  # type: ignore[attr-defined]
    )
    return session.exec(query).first()


def held_message(session: Session, entry_id: int) -> InboundMessage:
    entry = session.get(InboundMessage, entry_id)
    if entry is None or entry.status != "quarantined" or entry.reason != "unverified-sender":
        raise NotFound(
            "This message is not waiting for approval any more.",
            "It was approved or discarded already.",
        )
    return entry


def approve_held(session: Session, entry_id: int, person_id: int) -> InboundMessage:
    """Send a held message back through processing, which now posts it as `person_id`."""
    entry = held_message(session, entry_id)
    entry.approved_by_id = person_id
    entry.status, entry.reason, entry.processed_at = "pending", None, None
    session.add(entry)
    session.flush()
    return entry


def discard_held(session: Session, entry_id: int) -> InboundMessage:
    """Keep the raw message (nothing is deleted) but never post it."""
    entry = held_message(session, entry_id)
    finish_inbound(session, entry, "discarded", "discarded", "Discarded by the member it named.")
    return entry


def recent_updates_by(
    session: Session, person_id: int, team_ids: Sequence[int], limit: int = 50
) -> list[tuple[Update, Thread]]:
    """A person's newest updates in live threads of the given teams."""
    query = (
        select(Update, Thread)
        .join(Thread, Thread.id == Update.thread_id)
        .where(
            Update.author_id == person_id,
            Update.team_id.in_(team_ids),  # type: ignore[attr-defined]
            Thread.deleted_at.is_(None),  # type: ignore[union-attr]
        )
        .order_by(Update.created_at.desc(), Update.id.desc())  # type: ignore[attr-defined]
        .limit(limit)
    )
    return [(u, t) for u, t in session.exec(query).all()]


def root_update(session: Session, thread_id: int) -> Update | None:
    query = (
        select(Update).where(Update.thread_id == thread_id).order_by(Update.created_at, Update.id)  # type: ignore[arg-type]
    )
    return session.exec(query).first()


def update_with_hash_exists(session: Session, team_id: int, content_hash: str) -> bool:
    query = select(Update.id).where(Update.team_id == team_id, Update.content_hash == content_hash)
    return session.exec(query).first() is not None


def update_exists(session: Session, team_id: int, message_id: str) -> bool:
    query = select(Update.id).where(Update.team_id == team_id, Update.message_id == message_id)
    return session.exec(query).first() is not None


def latest_update_in(session: Session, thread_id: int) -> Update | None:
    query = (
        select(Update)
        .where(Update.thread_id == thread_id)
        .order_by(Update.created_at.desc(), Update.id.desc())  # type: ignore[attr-defined]
    )
    return session.exec(query).first()


def thread_updates(session: Session, thread_id: int) -> list[tuple[Update, Person]]:
    query = (
        select(Update, Person)
        .join(Person, Person.id == Update.author_id)
        .where(Update.thread_id == thread_id)
        .order_by(Update.created_at, Update.id)
    )
    return [(u, p) for u, p in session.exec(query).all()]


def attachments_of(session: Session, update_ids: Sequence[int]) -> dict[int, list[Attachment]]:
    found: dict[int, list[Attachment]] = {i: [] for i in update_ids}
    if update_ids:
        query = select(Attachment).where(Attachment.update_id.in_(update_ids))  # type: ignore[attr-defined]
        for att in session.exec(query):
            found[att.update_id].append(att)
    return found


def get_attachment(
    session: Session, attachment_id: int, team_ids: Sequence[int] | None
) -> Attachment:
    att = session.get(Attachment, attachment_id)
    if att is not None:
        update = session.get(Update, att.update_id)
        if update is not None and (team_ids is None or update.team_id in team_ids):
            return att
    raise NotFound(f"No attachment {attachment_id}.")


# The inbound journal -------------------------------------------------------------------


class JournalArrival(NamedTuple):
    """A message to journal, as the listener received it."""

    raw: bytes
    mail_from: str
    rcpt_tos: Sequence[str]
    peer: str
    message_id: str | None


def journal_messages(session: Session, arrivals: Sequence[JournalArrival]) -> list[int]:
    """Add the messages to the journal, pending processing; their ids, in order.

    One multi-row INSERT: the listener journals whole batches (smtp/journal.py), and
    building ORM objects for rows nothing reads back cost it more than the insert.
    """
    if not arrivals:
        return []
    now = utcnow()
    rows = [
        {
            "received_at": now,
            "peer": a.peer,
            "mail_from": a.mail_from,
            "rcpt_tos": "\n".join(a.rcpt_tos),
            "message_id": a.message_id,
            "raw": a.raw,
            "status": "pending",
        }
        for a in arrivals
    ]
    table = InboundMessage.__table__  # type: ignore[attr-defined]
    query = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return list(session.execute(query, rows).scalars())


def journal_message(
    session: Session,
    *,
    raw: bytes,
    mail_from: str,
    rcpt_tos: Sequence[str],
    peer: str,
    message_id: str | None,
) -> InboundMessage:
    """Add one message to the journal (tools and tests; the listener journals batches)."""
    (entry_id,) = journal_messages(
        session, [JournalArrival(raw, mail_from, rcpt_tos, peer, message_id)]
    )
    return session.get_one(InboundMessage, entry_id)


def finish_inbound(
    session: Session,
    entry: InboundMessage,
    status: str,
    reason: str | None = None,
    detail: str | None = None,
) -> None:
    entry.status = status
    entry.reason = reason
    entry.detail = detail
    entry.processed_at = utcnow()
    session.add(entry)


def claim_pending_inbound(
    session: Session, received_before: datetime, limit: int = 20
) -> list[InboundMessage]:
    """Pending journal entries, locked so that other workers skip them (PostgreSQL)."""
    query = (
        select(InboundMessage)
        .where(InboundMessage.status == "pending", InboundMessage.received_at < received_before)
        .order_by(InboundMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.exec(query))


def inbound_outcome(session: Session, entry_id: int) -> tuple[str, str | None] | None:
    """A journal entry's status and reason, without its raw bytes (for metrics)."""
    query = select(InboundMessage.status, InboundMessage.reason).where(
        InboundMessage.id == entry_id
    )
    row = session.exec(query).first()
    return (row[0], row[1]) if row is not None else None


def quarantined(
    session: Session, limit: int = 100, status: str = "quarantined"
) -> list[InboundMessage]:
    """Journal entries kept but not posted (or, with status="discarded", set aside)."""
    query = (
        select(InboundMessage)
        .where(InboundMessage.status == status)
        .order_by(InboundMessage.id.desc())  # type: ignore[union-attr]
        .limit(limit)
    )
    return list(session.exec(query))


def journal_entry(session: Session, entry_id: int) -> InboundMessage:
    entry = session.get(InboundMessage, entry_id)
    if entry is None:
        raise NotFound(f"No message #{entry_id} in the journal.", "See `tidings quarantine list`.")
    return entry


def release_quarantined(session: Session, entry_id: int) -> InboundMessage:
    """Put a quarantined (or discarded) message back in the journal as pending, so that
    processing runs on it again; the caller commits, then processes it."""
    entry = journal_entry(session, entry_id)
    if entry.status not in ("quarantined", "discarded"):
        raise TidingsError(
            f"Message #{entry_id} is not in the quarantine (it is {entry.status}).",
            "Only quarantined or discarded messages can be released; see"
            " `tidings quarantine list`.",
        )
    entry.status, entry.reason, entry.detail, entry.processed_at = "pending", None, None, None
    session.add(entry)
    session.flush()
    return entry


def discard_quarantined(session: Session, entry_id: int) -> InboundMessage:
    """Set a quarantined message aside for good. Nothing is deleted: the raw message, its
    reason and detail stay in the journal (`tidings quarantine list --discarded`)."""
    entry = journal_entry(session, entry_id)
    if entry.status != "quarantined":
        raise TidingsError(
            f"Message #{entry_id} is not in the quarantine (it is {entry.status}).",
            "See the quarantine with `tidings quarantine list`.",
        )
    entry.status, entry.processed_at = "discarded", utcnow()
    session.add(entry)
    session.flush()
    return entry


def posted_from(session: Session, entry_id: int) -> list[tuple[Update, Thread, Team]]:
    """The updates a journal entry became, with their threads and teams."""
    query = (
        select(Update, Thread, Team)
        .join(Thread, Thread.id == Update.thread_id)
        .join(Team, Team.id == Update.team_id)
        .where(Update.inbound_id == entry_id)
        .order_by(Update.id)  # type: ignore[arg-type]
    )
    return [(u, th, te) for u, th, te in session.exec(query).all()]


# The outbox ------------------------------------------------------------------------------


def enqueue_mail(
    session: Session,
    *,
    kind: str,
    idempotency_key: str,
    person: Person | None,
    message: EmailMessage,
    recipient: str = "",
    created_at: datetime | None = None,
) -> OutboundMessage:
    """Put a rendered message in the outbox; the sender in digest/ delivers it. It goes to
    `person`, or to `recipient` for someone who is not one (an alias, a stranger).

    `idempotency_key` is unique: queueing the same message twice raises IntegrityError.
    Mail for a member whose mail is paused is queued as held: it is never sent.
    """
    outbound = OutboundMessage(
        kind=kind,
        idempotency_key=idempotency_key,
        person_id=person.id if person else None,
        recipient=recipient or (person.email if person else ""),
        subject=str(message["Subject"]),
        message_id=str(message["Message-ID"]),
        raw=message.as_bytes(),
        # The planner's clock, when it has one: schedules compare against it.
        created_at=created_at or utcnow(),
    )
    if person is not None and person.mail_paused_at is not None and kind not in PAUSE_EXEMPT_KINDS:
        outbound.status, outbound.last_error = HELD, _held_note(person)
    session.add(outbound)
    session.flush()
    return outbound


def enqueue_digests(session: Session, digests: Sequence[dict[str, Any]]) -> None:
    """Put planned digests in the outbox in one statement: their plans now, their
    messages when they are sent (so `raw` stays empty). Each gives `person_id`,
    `recipient`, `idempotency_key`, `subject`, `message_id`, `plan` (JSON) and
    `created_at`; a repeated idempotency key raises IntegrityError. Digests of members
    whose mail is paused are held (see `resume_mail`)."""
    if digests:
        ids = [d["person_id"] for d in digests]
        paused = {
            p.id: _held_note(p)
            for p in session.exec(
                select(Person).where(Person.id.in_(ids), Person.mail_paused_at.is_not(None))  # type: ignore[union-attr]
            )
        }
        session.connection().execute(
            insert(OutboundMessage.__table__),  # type: ignore[arg-type]
            [
                {
                    **d,
                    "kind": "digest",
                    "raw": b"",
                    "status": HELD if d["person_id"] in paused else "pending",
                    "last_error": paused.get(d["person_id"]),
                    "attempts": 0,
                }
                for d in digests
            ],
        )


def digest_threads(session: Session, message_id: str, person_id: int) -> list[Thread]:
    """The live threads a digest we sent to `person_id` covered, found by its Message-ID."""
    query = select(OutboundMessage.plan).where(
        OutboundMessage.message_id == message_id,
        OutboundMessage.person_id == person_id,
        OutboundMessage.plan.is_not(None),  # type: ignore[union-attr]
    )
    ids = {i for plan in session.exec(query) for i in DigestPlan.from_json(plan).updates}  # type: ignore[arg-type]
    if not ids:
        return []
    threads = select(Thread).where(
        Thread.id.in_(select(Update.thread_id).where(Update.id.in_(ids))),  # type: ignore[union-attr,attr-defined]
        Thread.deleted_at.is_(None),  # type: ignore[union-attr]
    )
    return sorted(session.exec(threads).all(), key=lambda t: t.id or 0)


def resend_latest_digest(session: Session, email: str, now: datetime) -> OutboundMessage:
    """Queue the member's latest digest again as a new outbox row with the same plan (so
    the same content). It moves no cursors, and its failure moves none back."""
    person = _member(session, email)
    if person.mail_paused_at is not None:
        raise Conflict(
            f"Mail to {person.email} is paused ({person.mail_paused_reason}).",
            f"Resume it first: tidings member resume {person.email}",
        )
    latest = session.exec(
        select(OutboundMessage)
        .where(
            OutboundMessage.person_id == person.id,
            OutboundMessage.kind == "digest",
            OutboundMessage.plan.is_not(None),  # type: ignore[union-attr]
        )
        .order_by(OutboundMessage.id.desc())  # type: ignore[union-attr]
    ).first()
    if latest is None:
        raise NotFound(
            f"{person.email} has not had a digest yet.",
            "Send digests to everyone with something new: tidings digest run --now",
        )
    if latest.status in ("pending", "sending"):
        raise Conflict(
            f"{person.email}'s latest digest (outbox #{latest.id}) has not gone out yet.",
            "The worker sends it shortly (or run `tidings digest run`); resend it after.",
        )
    plan = DigestPlan.from_json(latest.plan)  # type: ignore[arg-type]
    plan = DigestPlan(plan.updates, plan.blockers, plan.for_you, {}, plan.reader, plan.timezone)
    key = f"digest-resend:{latest.id}:{secrets.token_hex(6)}"
    domain = latest.message_id.strip().strip("<>").rpartition("@")[2]
    message_id = f"<{hashlib.sha256(key.encode()).hexdigest()[:24]}.digest@{domain}>"
    row = OutboundMessage(
        kind="digest",
        idempotency_key=key,
        person_id=person.id,
        recipient=person.email,
        subject=latest.subject,
        message_id=message_id,
        raw=latest.raw,  # empty for a planned digest: rendered from the plan when sent
        plan=plan.to_json(),
        created_at=now,
    )
    session.add(row)
    # A reply keeping only In-Reply-To finds the thread the original's would have.
    refs = session.exec(select(MessageRef).where(MessageRef.message_id == latest.message_id))
    for ref in list(refs):
        session.add(
            MessageRef(
                message_id=message_id,
                team_id=ref.team_id,
                thread_id=ref.thread_id,
                person_id=ref.person_id,
            )
        )
    session.flush()
    return row


def outbox_key_exists(session: Session, idempotency_key: str) -> bool:
    query = select(OutboundMessage.id).where(OutboundMessage.idempotency_key == idempotency_key)
    return session.exec(query).first() is not None


def outbox_backlog(session: Session) -> tuple[dict[str, int], datetime | None]:
    """Rows not sent yet, by status (pending, sending), and when the oldest was queued
    (for the outbox depth and age metrics in app/metrics.py)."""
    query = (
        select(OutboundMessage.status, func.count(), func.min(OutboundMessage.created_at))
        .where(OutboundMessage.status.in_(("pending", "sending")))  # type: ignore[attr-defined]
        .group_by(OutboundMessage.status)
    )
    depth, oldest = {"pending": 0, "sending": 0}, None
    for status, count, first in session.exec(query):
        depth[status] = count
        if first is not None and (oldest is None or first < oldest):
            oldest = first
    return depth, oldest


# API tokens ----------------------------------------------------------------------------


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(session: Session, team_slug: str | None, scope: str = "read") -> str:
    """A new API token; only its hash is stored, so the caller must show it now."""
    if scope not in ("read", "write"):
        raise TidingsError(f"Unknown scope '{scope}'.", "Use read or write.")
    team_id = get_team(session, team_slug).id if team_slug else None
    token = "tid_" + secrets.token_urlsafe(32)
    session.add(ApiToken(token_hash=_hash_token(token), team_id=team_id, scope=scope))
    session.flush()
    return token


def list_api_tokens(session: Session) -> list[tuple[ApiToken, Team | None]]:
    query = (
        select(ApiToken, Team)
        .join(Team, Team.id == ApiToken.team_id, isouter=True)
        .order_by(ApiToken.id)  # type: ignore[arg-type]
    )
    return [(token, team) for token, team in session.exec(query).all()]


def revoke_api_token(session: Session, token_id: int) -> ApiToken:
    """Refuse the token from now on; the row stays, so `token list` shows what happened."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"No API token {token_id}.", "See them with `tidings token list`.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.add(token)
        session.flush()
    return token


def verify_api_token(session: Session, token: str) -> ApiToken | None:
    query = select(ApiToken).where(
        ApiToken.token_hash == _hash_token(token),
        ApiToken.revoked_at.is_(None),  # type: ignore[union-attr]
    )
    return session.exec(query).first()


def visible_team_ids(session: Session, api_token: ApiToken) -> list[int]:
    if api_token.team_id is not None:
        return [api_token.team_id]
    return [t.id for t in list_teams(session)]  # type: ignore[misc]


# Reply-token keys ----------------------------------------------------------------------


def signing_keys(session: Session) -> list[SigningKey]:
    return list(session.exec(select(SigningKey).order_by(SigningKey.version)))  # type: ignore[arg-type]


def load_reply_keys(session: Session, secret: str) -> ReplyKeys:
    """Every unretired key version, for signing (the newest) and verifying (all)."""
    keys = signing_keys(session)
    return reply_keys(
        secret,
        [(k.version, k.salt) for k in keys if k.retired_at is None],
        [(k.version, k.salt) for k in keys if k.retired_at is not None],
    )


def rotate_signing_key(session: Session) -> SigningKey:
    """Start signing with a new key version; older versions keep verifying until retired."""
    newest = max((k.version for k in signing_keys(session)), default=0)
    if newest >= MAX_KEY_VERSION:
        raise Conflict(
            f"Key version {newest} is the last one a reply token can name.",
            "Change TIDINGS_SECRET_KEY instead: that invalidates every reply address at once.",
        )
    key = SigningKey(version=newest + 1, salt=secrets.token_hex(16))
    try:
        with session.begin_nested():
            session.add(key)
    except IntegrityError as exc:
        raise Conflict(
            "Another rotation ran at the same time.", "Check with `tidings secret list`."
        ) from exc
    return key


def retire_signing_key(session: Session, version: int) -> SigningKey:
    """Stop accepting reply tokens signed with `version`; the signing version stays."""
    key = session.get(SigningKey, version)
    if key is None:
        raise NotFound(f"No key version {version}.", "See the versions with `tidings secret list`.")
    active = [k.version for k in signing_keys(session) if k.retired_at is None]
    if key.retired_at is None and version == max(active):
        raise TidingsError(
            f"Key version {version} is the one new reply addresses are signed with.",
            "Run `tidings secret rotate` first, then retire this version.",
        )
    if key.retired_at is None:
        key.retired_at = utcnow()
        session.add(key)
        session.flush()
    return key


# Web sign-in and sessions -------------------------------------------------------------

SIGN_IN_LINK_LIFETIME = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(days=30)
SIGN_IN_WINDOW = timedelta(minutes=15)
SIGN_IN_LIMIT_PER_ADDRESS = 5  # requests per window: enough for typos, too few to spam
SIGN_IN_LIMIT_PER_IP = 20


class TooManySignIns(TidingsError):
    """Sign-in links were requested too often for this address or from this network."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def request_sign_in(
    session: Session, address: str, ip: str, next_path: str, now: datetime
) -> tuple[Person, str] | None:
    """Record a request for a sign-in link; (person, token) when the address belongs to a
    member, else None. Rate limits count every request, known address or not, so the
    limit itself never tells anyone whether an address is known."""
    address_hash = _digest(normalise_email(address))
    since = now - SIGN_IN_WINDOW
    recent = (
        select(func.count()).select_from(SignInRequest).where(SignInRequest.created_at >= since)
    )
    by_address = session.exec(recent.where(SignInRequest.address_hash == address_hash)).one()
    by_ip = session.exec(recent.where(SignInRequest.ip == ip)).one()
    if by_address >= SIGN_IN_LIMIT_PER_ADDRESS or by_ip >= SIGN_IN_LIMIT_PER_IP:
        raise TooManySignIns(
            "Too many sign-in links were asked for just now.",
            f"Use the newest link you got, or try again in {SIGN_IN_WINDOW.seconds // 60} minutes.",
        )
    person = find_person(session, address)
    if person is not None and not team_ids_of(session, person.id):  # type: ignore[arg-type]
        person = None  # nothing to see: signing in would only confirm the address exists
    token = secrets.token_urlsafe(32) if person is not None else None
    session.add(
        SignInRequest(
            address_hash=address_hash,
            ip=ip[:64],
            person_id=person.id if person else None,
            token_hash=_digest(token) if token else None,
            next_path=next_path[:500],
            created_at=now,
            expires_at=now + SIGN_IN_LINK_LIFETIME,
        )
    )
    session.flush()
    return (person, token) if person is not None and token is not None else None


def pending_sign_in(session: Session, token: str, now: datetime) -> SignInRequest | None:
    """The unused, unexpired request a sign-in link token belongs to."""
    query = select(SignInRequest).where(
        SignInRequest.token_hash == _digest(token),
        SignInRequest.used_at.is_(None),  # type: ignore[union-attr]
        SignInRequest.expires_at > now,
    )
    return session.exec(query).first()


def complete_sign_in(session: Session, token: str, now: datetime) -> tuple[str, str] | None:
    """Use a sign-in link (once): (session token for the cookie, where to go next)."""
    request = pending_sign_in(session, token, now)
    if request is None or request.person_id is None:
        return None
    request.used_at = now
    session.add(request)
    cookie = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=_digest(cookie),
            person_id=request.person_id,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    session.flush()
    return cookie, request.next_path


def signed_in_person(session: Session, cookie: str, now: datetime) -> Person | None:
    query = (
        select(Person)
        .join(WebSession, WebSession.person_id == Person.id)
        .where(WebSession.token_hash == _digest(cookie), WebSession.expires_at > now)
    )
    return session.exec(query).first()


def end_web_session(session: Session, cookie: str) -> None:
    web_session = session.exec(
        select(WebSession).where(WebSession.token_hash == _digest(cookie))
    ).first()
    if web_session is not None:
        session.delete(web_session)
        session.flush()


def viewable_team_ids(session: Session, person: Person | None) -> list[int]:
    """The teams whose archive `person` may read: public ones, and their own."""
    public = [t.id for t in session.exec(select(Team).where(Team.public))]
    mine = team_ids_of(session, person.id) if person is not None else []  # type: ignore[arg-type]
    return sorted({*public, *mine})  # type: ignore[type-var]


# Roles, quarantine by team, key versions ---------------------------------------------------

ROLES = ("admin", "member")


def team_member(session: Session, slug: str, email: str) -> tuple[Team, Person, Membership]:
    """The team, the person with this address (or confirmed alias) and their membership
    of it; NotFound when they are not a member of that team."""
    team = get_team(session, slug)
    person = find_person(session, email)
    membership = None
    if person is not None:
        membership = session.exec(
            select(Membership).where(
                Membership.team_id == team.id, Membership.person_id == person.id
            )
        ).first()
    if person is None or membership is None:
        raise NotFound(
            f"{normalise_email(email)} is not a member of {team.slug}.",
            f"See the members with `tidings member list {team.slug}`.",
        )
    return team, person, membership


def team_admins(session: Session, slug: str) -> set[int]:
    """The ids of the people who are admins of the team."""
    team = get_team(session, slug)
    query = select(Membership.person_id).where(
        Membership.team_id == team.id, Membership.role == "admin"
    )
    return set(session.exec(query))


def set_member_role(session: Session, slug: str, email: str, role: str) -> Membership:
    """Make a member of the team its admin, or an ordinary member again."""
    if role not in ROLES:
        raise TidingsError(f"Unknown role '{role}'.", f"Use one of {', '.join(ROLES)}.")
    _team, _person, membership = team_member(session, slug, email)
    membership.role = role
    session.add(membership)
    session.flush()
    return membership


def _team_ids_by_slug(session: Session) -> dict[str, int]:
    """Every slug that reaches a team, former slugs included, and the team's id."""
    found: dict[str, int] = {
        slug: team_id
        for slug, team_id in session.exec(select(FormerTeamSlug.slug, FormerTeamSlug.team_id))
    }
    found.update({slug: team_id for slug, team_id in session.exec(select(Team.slug, Team.id))})  # type: ignore[misc]
    return found


def _addressed(rcpt_tos: str, mail_domain: str, team_ids: dict[str, int]) -> set[int]:
    recipients = (parse_recipient(r, mail_domain) for r in rcpt_tos.split("\n") if r)
    return {team_ids[r.team_slug] for r in recipients if r and r.team_slug in team_ids}


def addressed_team_ids(session: Session, entry: InboundMessage, mail_domain: str) -> set[int]:
    """The teams a journal entry was sent to, by team or reply address (current or former
    slug); empty for mail to service addresses only (digest@, bounces, unsubscribes)."""
    return _addressed(entry.rcpt_tos, mail_domain, _team_ids_by_slug(session))


def quarantined_for_team(
    session: Session, team_id: int, mail_domain: str, status: str = "quarantined", limit: int = 100
) -> list[InboundMessage]:
    """Like `quarantined`, but only mail sent to this team and no other (mail to several
    teams, or to none, is for an admin of every team), newest first."""
    team_ids = _team_ids_by_slug(session)
    rows = session.exec(
        select(InboundMessage.id, InboundMessage.rcpt_tos)
        .where(InboundMessage.status == status)
        .order_by(InboundMessage.id.desc())  # type: ignore[union-attr]
    )
    ids = [
        entry_id
        for entry_id, rcpt_tos in rows
        if _addressed(rcpt_tos, mail_domain, team_ids) == {team_id}
    ][:limit]
    if not ids:
        return []
    query = (
        select(InboundMessage)
        .where(InboundMessage.id.in_(ids))  # type: ignore[union-attr]
        .order_by(InboundMessage.id.desc())  # type: ignore[union-attr]
    )
    return list(session.exec(query))


@dataclass(frozen=True)
class KeyVersion:
    version: int
    status: str  # signing (new mail) | verifying (older mail still accepted) | retired
    created_at: datetime
    retired_at: datetime | None


def key_versions(session: Session) -> list[KeyVersion]:
    """The reply-token key versions and what each is used for now, oldest first."""
    keys = signing_keys(session)
    signing = max((k.version for k in keys if k.retired_at is None), default=None)
    return [
        KeyVersion(
            k.version,
            "retired" if k.retired_at else ("signing" if k.version == signing else "verifying"),
            k.created_at,
            k.retired_at,
        )
        for k in keys
    ]
