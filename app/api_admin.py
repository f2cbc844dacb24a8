"""The JSON API's write half, under /api/: what an admin does with the CLI (teams,
members, the quarantine, digests, reply-address keys), through the same store functions.

Changes need a token created with `--scope write`. A team's token acts on that team only
(other teams answer 404, as if they did not exist); creating a team and rotating keys are
about no one team, so they need a write token for every team (made without --team).
Refusals are `{"detail": "what went wrong, and what to do"}`: 404 nothing there (for this
token), 409 refused as things stand (a slug taken, a digest not sent yet), 422 a value
that cannot be used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlmodel import Session

from app import members_csv, store
from app.deps import (
    AllTeamsWriteTokenDep,
    RowId,
    SessionDep,
    SettingsDep,
    TokenDep,
    WriteTokenDep,
    team_for_token,
)
from app.errors import Conflict, NotFound, TidingsError
from app.models import InboundMessage, Membership, Person, Team, utcnow
from app.quarantine import RELEASE_WAIT_SECONDS, release
from app.schemas import (
    DigestResentOut,
    DoneOut,
    ErrorOut,
    ImportIn,
    ImportOut,
    ImportRowOut,
    KeysOut,
    KeyVersionOut,
    MemberDetailOut,
    MemberIn,
    MemberPatchIn,
    PauseIn,
    PostedOut,
    QuarantinedOut,
    RefusedOut,
    ReleasedOut,
    ResumedOut,
    TeamCreateIn,
    TeamDetailOut,
    TeamPatchIn,
)
from app.settings import Settings
from app.store import WEEKDAYS
from app.views import describe_schedule, quarantined_out

router = APIRouter(
    prefix="/api",
    tags=["admin"],
    responses={
        401: {"model": ErrorOut, "description": "No token, or not a valid one."},
        403: {
            "model": ErrorOut,
            "description": "A read token on a change, or a team's token on something that is"
            " not about one team.",
        },
        404: {"model": ErrorOut, "description": "Not found, or not visible to this token."},
        409: {"model": ErrorOut, "description": "Refused as things stand; the detail says why."},
        422: {"model": RefusedOut, "description": "A value that cannot be used."},
    },
)

# Path parameters: one line of text, so a stray control character is refused at the edge.
Slug = Annotated[str, Path(max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
Email = Annotated[str, Path(max_length=320, pattern=r"^[^\x00-\x1f\x7f]+$")]


def said(error: TidingsError) -> str:
    return f"{error.message} {error.hint}".strip()


@contextmanager
def refused_as_http() -> Iterator[None]:
    """The store's refusals as HTTP answers; the request's transaction rolls back."""
    try:
        yield
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, said(exc)) from exc
    except Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, said(exc)) from exc
    except TidingsError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, said(exc)) from exc


def team_out(session: Session, settings: Settings, team: Team) -> TeamDetailOut:
    return TeamDetailOut(
        slug=team.slug,
        name=team.name,
        address=settings.team_address(team.slug),
        checkin_question=team.checkin_question,
        public=team.public,
        archived_at=team.archived_at,
        former_slugs=store.former_slugs(session, team.id),  # type: ignore[arg-type]
        checkin_questions=team.checkin_questions,
        checkin_hour=team.checkin_hour,
        blocker_question=team.blocker_question,
    )


def member_out(person: Person, membership: Membership) -> MemberDetailOut:
    quiet = person.quiet_start != person.quiet_end
    return MemberDetailOut(
        email=person.email,
        name=person.name,
        timezone=person.timezone,
        digest_cadence=person.digest_cadence,
        digest_hour=person.digest_hour,
        role=membership.role,
        schedule=describe_schedule(person),
        digest_weekday=WEEKDAYS[person.digest_weekday],
        digest_weekdays_only=person.digest_weekdays_only,
        quiet_hours=f"{person.quiet_start:%H:%M}-{person.quiet_end:%H:%M}" if quiet else None,
        away_from=person.away_from,
        away_until=person.away_until,
        mail_paused_at=person.mail_paused_at,
        mail_paused_reason=person.mail_paused_reason,
    )


# Checked before the request's body, so that a team or member this token may not touch
# answers 404 whatever was sent; the scope (403) is checked before either.


def readable_team(session: SessionDep, token: TokenDep, slug: Slug) -> Team:
    return team_for_token(session, token, slug)


def writable_team(session: SessionDep, token: WriteTokenDep, slug: Slug) -> Team:
    return team_for_token(session, token, slug)


ReadableTeam = Annotated[Team, Depends(readable_team)]
WritableTeam = Annotated[Team, Depends(writable_team)]


def writable_member(
    session: SessionDep, team: WritableTeam, email: Email
) -> tuple[Team, Person, Membership]:
    """A member of a team this token may change; 404 for anyone else."""
    with refused_as_http():
        return store.team_member(session, team.slug, email)


WritableMember = Annotated[tuple[Team, Person, Membership], Depends(writable_member)]


def writable_entry(
    session: SessionDep, settings: SettingsDep, token: WriteTokenDep, entry_id: RowId
) -> InboundMessage:
    """A journal entry this token may act on: any, for a token of every team; for a team's
    token, mail sent to that team alone. Otherwise the same 404 as for no entry at all."""
    hidden = HTTPException(
        status.HTTP_404_NOT_FOUND,
        f"No message #{entry_id} in the quarantine this token can see. List it with GET"
        " /api/teams/SLUG/quarantine (or /api/quarantine, with a token for every team).",
    )
    try:
        entry = store.journal_entry(session, entry_id)
    except NotFound as exc:
        raise hidden from exc
    team_ids = store.addressed_team_ids(session, entry, settings.mail_domain)
    if token.team_id is not None and team_ids != {token.team_id}:
        raise hidden
    return entry


WritableEntry = Annotated[InboundMessage, Depends(writable_entry)]


# Teams --------------------------------------------------------------------------------------


@router.get("/teams/{slug}", response_model=TeamDetailOut)
def get_team(session: SessionDep, settings: SettingsDep, team: ReadableTeam) -> TeamDetailOut:
    """A team and its settings: visibility, archived or not, former slugs, check-in."""
    return team_out(session, settings, team)


@router.post("/teams", response_model=TeamDetailOut, status_code=status.HTTP_201_CREATED)
def create_team(
    session: SessionDep, settings: SettingsDep, token: AllTeamsWriteTokenDep, team: TeamCreateIn
) -> TeamDetailOut:
    """Create a team (as `tidings team create`): members post to it by mailing
    SLUG@mail-domain. Its archive is private to its members unless `public`. Needs a write
    token for every team; a token for one team cannot make another."""
    with refused_as_http():
        created = store.create_team(session, team.slug, team.name or team.slug, team.public)
    return team_out(session, settings, created)


@router.patch("/teams/{slug}", response_model=TeamDetailOut)
def change_team(
    session: SessionDep, settings: SettingsDep, team: WritableTeam, change: TeamPatchIn
) -> TeamDetailOut:
    """Rename a team (as `tidings team rename`: the old slug keeps reaching it) and set
    its check-in (as `tidings team checkin`): its questions, which one asks about
    blockers, and the weekday hour (null: only on demand). Only the fields given change,
    all together or none; new questions clear `blocker_question` unless it is given too."""
    given = change.model_fields_set
    if not given:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "Nothing to change: give name, slug, checkin_hour, checkin_questions or"
            " blocker_question.",
        )
    with refused_as_http():
        if {"name", "slug"} & given:
            team, _old = store.rename_team(session, team.slug, change.slug, change.name)
        if {"checkin_hour", "checkin_questions", "blocker_question"} & given:
            hour = change.checkin_hour if "checkin_hour" in given else team.checkin_hour
            team = store.set_checkin(
                session, team.slug, hour, change.checkin_questions, change.blocker_question
            )
    return team_out(session, settings, team)


@router.post("/teams/{slug}/archive", response_model=TeamDetailOut)
def archive_team(session: SessionDep, settings: SettingsDep, team: WritableTeam) -> TeamDetailOut:
    """Archive a team that has finished (as `tidings team archive`): mail to it is
    refused with a reason, check-ins stop, its archive stays readable and nothing is
    deleted. `POST .../reopen` undoes it."""
    return team_out(session, settings, store.archive_team(session, team.slug, True))


@router.post("/teams/{slug}/reopen", response_model=TeamDetailOut)
def reopen_team(session: SessionDep, settings: SettingsDep, team: WritableTeam) -> TeamDetailOut:
    """Reopen an archived team (as `tidings team archive --undo`): it takes posts again
    and its scheduled check-ins resume."""
    return team_out(session, settings, store.archive_team(session, team.slug, False))


# Members ------------------------------------------------------------------------------------


@router.post(
    "/teams/{slug}/members",
    response_model=MemberDetailOut,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": MemberDetailOut, "description": "Already a member: updated."}},
)
def add_member(
    session: SessionDep, team: WritableTeam, member: MemberIn, response: Response
) -> MemberDetailOut:
    """Add someone to a team (as `tidings member add`): 201 when they join it, 200 when
    they were a member already and get these settings."""
    with refused_as_http():
        known = store.find_person(session, member.email)
        joined = known is None or not store.is_member(session, team.id, known.id)  # type: ignore[arg-type]
        person = store.add_member(
            session,
            team.slug,
            member.email,
            member.name,
            member.timezone,
            member.digest_cadence,
            member.digest_hour,
        )
        if member.role is not None:
            store.set_member_role(session, team.slug, person.email, member.role)
        _team, person, membership = store.team_member(session, team.slug, person.email)
    if not joined:
        response.status_code = status.HTTP_200_OK
    return member_out(person, membership)


async def csv_text(request: Request) -> str:
    """The import's CSV: the body as text/csv, or JSON `{"csv": "..."}`."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    body = await request.body()
    if kind == "application/json":
        try:
            return ImportIn.model_validate_json(body).csv
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False), body=body) from exc
    if kind != "text/csv":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            'Send the CSV as the body with Content-Type: text/csv, or as JSON {"csv": "..."}.',
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "The CSV is not UTF-8 text. Save it as CSV UTF-8 and send it again.",
        ) from exc
    if "\x00" in text:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "The CSV contains a NUL character: it is not a text file. Send the CSV itself.",
        )
    return text


_IMPORT_BODY = {
    "required": True,
    "content": {
        "text/csv": {
            "schema": {"type": "string", "pattern": r"^[^\x00]*$"},
            "example": "name,email,timezone,cadence,hour\nAlice,alice@example.com,Europe/Berlin,"
            "daily,9\n",
        },
        "application/json": {"schema": ImportIn.model_json_schema()},
    },
}


@router.post(
    "/teams/{slug}/members/import",
    response_model=ImportOut,
    openapi_extra={"requestBody": _IMPORT_BODY},
    responses={415: {"model": ErrorOut, "description": "Neither text/csv nor JSON."}},
)
def import_members(
    session: SessionDep,
    team: WritableTeam,
    text: Annotated[str, Depends(csv_text)],
    dry_run: Annotated[
        bool, Query(description="Show what would change, and change nothing.")
    ] = False,
) -> ImportOut:
    """Add members from CSV, or update the ones already there (as `tidings member
    import`). The header row names the columns name, email, timezone, cadence and hour, in
    any order; an empty cell keeps a known member's setting (a new one gets the defaults:
    UTC, daily, 9). Every row is checked before anything changes: a problem anywhere
    answers 422 listing the rows at fault (the header is row 1) and imports nothing.
    Each row says what it does (or, with `dry_run`, would do): add, join (known person,
    new to the team), change, or same."""
    with refused_as_http():
        done = members_csv.import_members(session, team.slug, text, dry_run)
    counts = done.counts
    return ImportOut(
        team=team.slug,
        dry_run=dry_run,
        rows=[
            ImportRowOut(
                row=c.number,
                action=c.action,
                email=c.email,
                name=c.name,
                timezone=c.timezone,
                digest_cadence=c.cadence,
                digest_hour=c.hour,
                changes=c.changes,
                description=c.describe(),
            )
            for c in done.plan
        ],
        added=counts["add"],
        joined=counts["join"],
        changed=counts["change"],
        unchanged=counts["same"],
        summary=done.summary(),
    )


@router.patch("/teams/{slug}/members/{email}", response_model=MemberDetailOut)
def change_member(
    session: SessionDep, member: WritableMember, change: MemberPatchIn
) -> MemberDetailOut:
    """Change when a member hears from Tidings (as `tidings member set`), and their role
    in this team. Only the fields given change. The schedule is the person's own: it is
    the same in every team they are in."""
    team, person, membership = member
    if not change.model_fields_set:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "Nothing to change: give timezone, digest_cadence, digest_hour, digest_weekday,"
            " digest_weekdays_only, quiet_hours, away or role.",
        )
    settings = store.MemberSettings(
        cadence=change.digest_cadence,
        hour=change.digest_hour,
        timezone=change.timezone,
        weekday=change.digest_weekday,
        weekdays_only=change.digest_weekdays_only,
        quiet=change.quiet_hours,
        away=change.away,
    )
    with refused_as_http():
        person = store.change_member_settings(session, person.email, settings)
        if change.role is not None:
            membership = store.set_member_role(session, team.slug, person.email, change.role)
    return member_out(person, membership)


@router.delete("/teams/{slug}/members/{email}", response_model=DoneOut)
def remove_member(session: SessionDep, member: WritableMember) -> DoneOut:
    """Take someone out of a team (as `tidings member remove`). Their posts stay in the
    archive; their mail to the team, or to reply addresses they were given, is refused
    with a reason from now on."""
    team, person, _membership = member
    with refused_as_http():
        store.remove_member(session, team.slug, person.email)
    return DoneOut(
        message=f"{person.name} <{person.email}> is no longer a member of {team.slug}; their"
        " posts stay in the archive."
    )


@router.post("/teams/{slug}/members/{email}/pause", response_model=MemberDetailOut)
def pause_member(
    session: SessionDep,
    member: WritableMember,
    pause: Annotated[PauseIn | None, Body()] = None,
) -> MemberDetailOut:
    """Stop all mail to a member without removing them (as `tidings member pause`): they
    can still post and read the archive; mail meant for them is held, not sent, until
    `POST .../resume`. Pausing a paused member keeps the first reason."""
    _team, person, membership = member
    reason = (pause or PauseIn()).reason
    return member_out(store.pause_mail(session, person, reason), membership)


@router.post("/teams/{slug}/members/{email}/resume", response_model=ResumedOut)
def resume_member(session: SessionDep, member: WritableMember) -> ResumedOut:
    """Mail a paused member again, and clear their bounces so far (as `tidings member
    resume`). Held mail is not sent in a heap: their next digest covers every update they
    missed, and held prompts and notices are dropped."""
    _team, person, membership = member
    with refused_as_http():
        done = store.resume_mail(session, person.email)
    message = (
        f"Mail to {person.email} is resumed."
        if done.was_paused
        else f"Mail to {person.email} was not paused; nothing to resume."
    )
    if done.cancelled:
        message += f" {done.cancelled} held message(s) were dropped; the next digest covers them."
    return ResumedOut(
        member=member_out(done.person, membership),
        was_paused=done.was_paused,
        held_dropped=done.cancelled,
        bounces_cleared=done.cleared,
        message=message,
    )


@router.post(
    "/teams/{slug}/members/{email}/digest/resend",
    response_model=DigestResentOut,
    status_code=status.HTTP_202_ACCEPTED,
)
def resend_digest(session: SessionDep, member: WritableMember) -> DigestResentOut:
    """Send a member's latest digest again, with the same content (as `tidings digest
    resend`): a new message in the outbox, sent by the worker shortly. It changes nothing
    about what their next digest brings. 409 while their mail is paused or their latest
    digest has not gone out yet."""
    _team, person, _membership = member
    with refused_as_http():
        row = store.resend_latest_digest(session, person.email, utcnow())
    return DigestResentOut(
        outbox_id=row.id,  # type: ignore[arg-type]
        recipient=row.recipient,
        subject=row.subject,
        message=f"Queued the latest digest again: {row.subject!r} to {row.recipient}.",
    )


# The quarantine -----------------------------------------------------------------------------


@router.get("/teams/{slug}/quarantine", response_model=list[QuarantinedOut])
def team_quarantine(
    session: SessionDep,
    settings: SettingsDep,
    team: ReadableTeam,
    discarded: Annotated[
        bool, Query(description="Show discarded mail instead (kept, not posted).")
    ] = False,
) -> list[QuarantinedOut]:
    """Mail sent to this team (and no other) that was kept but not posted, with the
    reason, newest first. Mail to several teams, or to none, is in `/api/quarantine`, for
    a token of every team."""
    entries = store.quarantined_for_team(
        session,
        team.id,  # type: ignore[arg-type]
        settings.mail_domain,
        "discarded" if discarded else "quarantined",
    )
    return [quarantined_out(e) for e in entries]


@router.post(
    "/quarantine/{entry_id}/release",
    response_model=ReleasedOut,
    responses={202: {"model": ReleasedOut, "description": "Released; left to the worker."}},
)
def release_quarantined(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    entry: WritableEntry,
    response: Response,
) -> ReleasedOut:
    """Run a quarantined (or discarded) message through processing again, after fixing
    what kept it out (as `tidings quarantine release`): it is posted if it now passes
    every check, or quarantined again with the new reason (`status` and `reason` say
    which). 202 when it is left for the worker to process."""
    entry_id: int = entry.id  # type: ignore[assignment]
    process: Callable[[int], object] | None = request.app.state.process_entry
    with refused_as_http():
        outcome = release(
            session, entry_id, process, RELEASE_WAIT_SECONDS if process is not None else 0
        )
    problem = outcome.problem()
    if outcome.status == "pending":
        response.status_code = status.HTTP_202_ACCEPTED
    return ReleasedOut(
        id=entry_id,
        status=outcome.status,
        reason=outcome.reason,
        detail=outcome.detail,
        posted=[
            PostedOut(
                thread_id=p.thread_id,
                title=p.title,
                team=p.team,
                url=f"{settings.base_url}/threads/{p.thread_id}",
            )
            for p in outcome.posted
        ],
        message=said(problem) if problem else " ".join(outcome.notes(settings.base_url)),
    )


@router.post("/quarantine/{entry_id}/discard", response_model=QuarantinedOut)
def discard_quarantined(session: SessionDep, entry: WritableEntry) -> QuarantinedOut:
    """Set a quarantined message aside for good (as `tidings quarantine discard`): it
    leaves the quarantine but is not deleted (`?discarded=true` lists it), and release
    brings it back."""
    with refused_as_http():
        return quarantined_out(store.discard_quarantined(session, entry.id))  # type: ignore[arg-type]


# Reply-address keys -------------------------------------------------------------------------


@router.post("/secrets/rotate", response_model=KeysOut)
def rotate_secrets(session: SessionDep, token: AllTeamsWriteTokenDep) -> KeysOut:
    """Sign reply addresses in new mail with a fresh key version (as `tidings secret
    rotate`). Addresses in mail already sent keep working until their version is retired
    (`tidings secret retire`). Needs a write token for every team."""
    with refused_as_http():
        key = store.rotate_signing_key(session)
    versions = store.key_versions(session)
    older = [str(k.version) for k in versions if k.status == "verifying"]
    message = f"New reply addresses are signed with key version {key.version}."
    if older:
        message += (
            f" Addresses in older mail (version {', '.join(older)}) still work; when they no"
            f" longer matter, retire them: tidings secret retire {older[-1]}"
        )
    return KeysOut(
        signing_version=key.version,
        versions=[
            KeyVersionOut(
                version=k.version, status=k.status, created_at=k.created_at, retired_at=k.retired_at
            )
            for k in versions
        ],
        message=message,
    )
