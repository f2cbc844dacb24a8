"""The JSON API under /api/, authenticated with bearer tokens (`tidings token create`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from app import store
from app.deps import RowId, SessionDep, SettingsDep, TokenDep, team_for_token
from app.errors import NotFound
from app.schemas import (
    ErrorOut,
    MemberOut,
    QuarantinedOut,
    SearchHitOut,
    TeamOut,
    ThreadDetailOut,
    ThreadOut,
)
from app.views import quarantined_out, search_out, thread_detail, thread_out

# Documented for every operation, so clients (and the schema test) know each refusal.
router = APIRouter(
    prefix="/api",
    tags=["api"],
    responses={
        401: {"model": ErrorOut, "description": "No token, or not a valid one."},
        403: {"model": ErrorOut, "description": "The token's team or scope does not allow it."},
        404: {"model": ErrorOut, "description": "Not found, or not visible to this token."},
    },
)


@router.get("/teams", response_model=list[TeamOut])
def list_teams(session: SessionDep, settings: SettingsDep, token: TokenDep) -> list[TeamOut]:
    return [
        TeamOut(
            slug=t.slug,
            name=t.name,
            address=settings.team_address(t.slug),
            checkin_question=t.checkin_question,
        )
        for t in store.list_teams(session, store.visible_team_ids(session, token))
    ]


@router.get("/teams/{slug}/members", response_model=list[MemberOut])
def list_members(session: SessionDep, token: TokenDep, slug: str) -> list[MemberOut]:
    team = team_for_token(session, token, slug)
    return [
        MemberOut.model_validate(p, from_attributes=True)
        for p in store.list_members(session, team.slug)
    ]


@router.get("/teams/{slug}/threads", response_model=list[ThreadOut])
def list_threads(
    session: SessionDep,
    token: TokenDep,
    slug: str,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # past it the driver fails (500)
) -> list[ThreadOut]:
    team = team_for_token(session, token, slug)
    return [thread_out(t, team) for t in store.team_threads(session, team.id, limit, offset)]  # type: ignore[arg-type]


@router.get("/threads/{thread_id}", response_model=ThreadDetailOut)
def get_thread(
    session: SessionDep, settings: SettingsDep, token: TokenDep, thread_id: RowId
) -> ThreadDetailOut:
    try:
        return thread_detail(
            session, thread_id, store.visible_team_ids(session, token), settings.base_url
        )
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, exc.message) from exc


@router.get("/search", response_model=list[SearchHitOut])
def search(
    session: SessionDep,
    token: TokenDep,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Words to find.")],
    team: Annotated[str | None, Query(description="Limit to one team's slug.")] = None,
) -> list[SearchHitOut]:
    team_ids = store.visible_team_ids(session, token)
    if team is not None:
        team_ids = [team_for_token(session, token, team).id]  # type: ignore[list-item]
    return search_out(session, q, team_ids)


@router.get("/quarantine", response_model=list[QuarantinedOut])
def quarantine(session: SessionDep, token: TokenDep) -> list[QuarantinedOut]:
    if token.team_id is not None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "The quarantine spans all teams; use a token created without --team.",
        )
    return [quarantined_out(e) for e in store.quarantined(session)]
