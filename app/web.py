"""The web archive: server-rendered pages from templates/web/, no JavaScript needed.

Every page, download and search result is limited to the teams the viewer may read:
public teams, and the signed-in member's own. A page of a team the viewer may not read
answers 404 to a signed-in member (nothing says it exists) and sends a signed-out
visitor to sign in, back to the same page afterwards.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from app import store
from app.deps import SessionDep, SettingsDep, ViewerDep
from app.errors import NotFound
from app.feed import feed_url
from app.models import Person, Update
from app.pages import page
from app.signin import sign_in_url
from app.views import search_out, thread_detail

router = APIRouter(include_in_schema=False)


class SignInFirst(Exception):
    """A signed-out visitor asked for something only members may see (or nothing at all:
    the answer is the same, so it tells nobody what exists)."""


def _not_visible(request: Request, viewer: Person | None) -> Exception:
    if viewer is None:
        return SignInFirst(
            request.url.path + (f"?{request.url.query}" if request.url.query else "")
        )
    return HTTPException(status.HTTP_404_NOT_FOUND, "Nothing here, or not for you.")


def sign_in_first(request: Request, exc: SignInFirst) -> RedirectResponse:
    return RedirectResponse(sign_in_url(str(exc)), status_code=status.HTTP_303_SEE_OTHER)


@router.get("/", response_class=HTMLResponse)
def index(
    request: Request, session: SessionDep, settings: SettingsDep, viewer: ViewerDep
) -> HTMLResponse:
    visible = store.viewable_team_ids(session, viewer)
    teams = [
        (team, settings.team_address(team.slug), store.team_threads(session, team.id, 20))  # type: ignore[arg-type]
        for team in store.list_teams(session, visible)
    ]
    return page(request, "index.html", teams=teams, viewer=viewer)


@router.get("/teams/{slug}", response_class=HTMLResponse)
def team_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    viewer: ViewerDep,
    slug: str,
    number: Annotated[int, Query(alias="page", ge=1)] = 1,
) -> HTMLResponse:
    try:
        team = store.get_team(session, slug)
    except NotFound:
        team = None
    if team is None or team.id not in store.viewable_team_ids(session, viewer):
        raise _not_visible(request, viewer)
    per_page = 50
    threads = store.team_threads(session, team.id, per_page + 1, (number - 1) * per_page)  # type: ignore[arg-type]
    return page(
        request,
        "team.html",
        team=team,
        address=settings.team_address(team.slug),
        threads=threads[:per_page],
        page=number,
        has_next=len(threads) > per_page,
        viewer=viewer,
        feed=feed_url(settings, team, viewer),
    )


@router.get("/threads/{thread_id}", response_class=HTMLResponse)
def thread_page(
    request: Request, session: SessionDep, viewer: ViewerDep, thread_id: int
) -> HTMLResponse:
    try:
        detail = thread_detail(session, thread_id, store.viewable_team_ids(session, viewer))
    except NotFound:
        raise _not_visible(request, viewer) from None
    team = store.get_team(session, detail.team)
    return page(request, "thread.html", thread=detail, team=team, viewer=viewer)


@router.get("/updates/{update_id}")
def update_permalink(
    request: Request, session: SessionDep, viewer: ViewerDep, update_id: int
) -> RedirectResponse:
    """One update's lasting address: digests link here, so a visitor who must sign in
    first comes back to the update itself (a #fragment would not survive the trip)."""
    update = session.get(Update, update_id)
    visible = store.viewable_team_ids(session, viewer)
    if update is None or update.team_id not in visible:
        raise _not_visible(request, viewer)
    try:
        store.get_thread(session, update.thread_id, visible)
    except NotFound:
        raise _not_visible(request, viewer) from None
    return RedirectResponse(
        f"/threads/{update.thread_id}#u{update.id}", status_code=status.HTTP_303_SEE_OTHER
    )


@router.get("/members/{person_id}", response_class=HTMLResponse)
def member_page(
    request: Request, session: SessionDep, viewer: ViewerDep, person_id: int
) -> HTMLResponse:
    """A member's recent updates, in the teams the viewer may read."""
    person = session.get(Person, person_id)
    visible = store.viewable_team_ids(session, viewer)
    shared = set(store.team_ids_of(session, person_id)) & set(visible) if person else set()
    if person is None or not shared:
        raise _not_visible(request, viewer)
    updates = store.recent_updates_by(session, person_id, sorted(shared))  # type: ignore[type-var]
    return page(request, "member.html", person=person, updates=updates, viewer=viewer)


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    q: Annotated[str, Query(max_length=500)] = "",
    team: str = "",
) -> HTMLResponse:
    teams = store.list_teams(session, store.viewable_team_ids(session, viewer))
    team_ids = [t.id for t in teams if not team or t.slug == team]
    hits = search_out(session, q, team_ids) if q.strip() else []  # type: ignore[arg-type]
    return page(request, "search.html", q=q, team=team, teams=teams, hits=hits, viewer=viewer)


@router.get("/attachments/{attachment_id}")
def attachment(
    request: Request, session: SessionDep, viewer: ViewerDep, attachment_id: int
) -> Response:
    try:
        att = store.get_attachment(session, attachment_id, store.viewable_team_ids(session, viewer))
    except NotFound:
        raise _not_visible(request, viewer) from None
    # Always a download: a mailed-in HTML or SVG file must never run in our origin.
    return Response(
        att.data,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": content_disposition(att.filename),
            "X-Content-Type-Options": "nosniff",
        },
    )


def content_disposition(filename: str) -> str:
    """`attachment` with the name as typed (RFC 6266 `filename*`, UTF-8) and a plain ASCII
    fallback for old clients; header values can only carry Latin-1 themselves."""
    printable = "".join(c for c in filename if c.isprintable())
    fallback = printable.encode("ascii", "replace").decode().replace('"', "'").replace("\\", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(printable, safe='')}"


@router.get("/style.css")
def stylesheet(settings: SettingsDep) -> FileResponse:
    return FileResponse(settings.templates_dir / "web" / "style.css", media_type="text/css")
