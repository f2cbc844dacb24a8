"""FastAPI dependencies: the session per request, API-token authentication (with the
write scope, and the teams a token may see), and the signed-in member of the web archive."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from app import store
from app.db import session_scope
from app.errors import NotFound
from app.models import ApiToken, Person, Team, utcnow
from app.settings import Settings

SESSION_COOKIE = "tidings_session"

# A row id in a URL: out of this range the database driver would fail to bind it (a 500);
# refused at the edge instead (404 on pages, 422 on the API).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def get_session(request: Request) -> Iterator[Session]:
    with session_scope(request.app.state.engine) as session:
        yield session


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


# scope="function": the transaction commits when the endpoint returns, before the response
# is sent, so the next request (after a sign-in redirect, say) sees what this one wrote.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
_bearer = HTTPBearer(auto_error=False, description="An API token from `tidings token create`.")


def api_token(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiToken:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Send an API token as 'Authorization: Bearer TOKEN' (create one with"
            " `tidings token create`).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = store.verify_api_token(session, credentials.credentials)
    if token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "This API token is not valid or was revoked.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token


TokenDep = Annotated[ApiToken, Depends(api_token)]


def write_token(session: SessionDep, token: TokenDep) -> ApiToken:
    """A token that may change things (`--scope write`); a read token gets 403 saying how
    to make one. Checked before anything about the request, so it reveals nothing."""
    if token.scope != "write":
        team = session.get(Team, token.team_id) if token.team_id is not None else None
        same_team = f" --team {team.slug}" if team is not None else ""
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "This API token may only read. To make changes, create a write token:"
            f" `tidings token create{same_team} --scope write`.",
        )
    return token


WriteTokenDep = Annotated[ApiToken, Depends(write_token)]


def all_teams_write_token(token: WriteTokenDep) -> ApiToken:
    """A write token for every team: for changes that are not about one team (creating a
    team, rotating the reply-address keys)."""
    if token.team_id is not None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "This is not about one team, and this token is limited to one. Use a write token"
            " for every team: `tidings token create --scope write` (without --team).",
        )
    return token


AllTeamsWriteTokenDep = Annotated[ApiToken, Depends(all_teams_write_token)]


def team_for_token(session: Session, token: ApiToken, slug: str) -> Team:
    """The team with this slug (or a former one), if the token may see it; otherwise 404,
    the same answer as for a team that does not exist, so other teams are never revealed."""
    try:
        team = store.get_team(session, slug)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, exc.message) from exc
    if team.id not in store.visible_team_ids(session, token):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No team '{slug}'.")
    return team


def current_person(request: Request, session: SessionDep) -> Person | None:
    """The signed-in member, from the session cookie; None for everyone else."""
    cookie = request.cookies.get(SESSION_COOKIE)
    return store.signed_in_person(session, cookie, utcnow()) if cookie else None


ViewerDep = Annotated[Person | None, Depends(current_person)]
