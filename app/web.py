"""The web archive: server-rendered pages from templates/web/, no JavaScript needed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, Response

from app import store
from app.deps import SessionDep, SettingsDep
from app.errors import NotFound
from app.pages import page
from app.views import search_out, thread_detail

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    teams = [
        (team, settings.team_address(team.slug), store.team_threads(session, team.id, 20))  # type: ignore[arg-type]
        for team in store.list_teams(session)
    ]
    return page(request, "index.html", teams=teams)


@router.get("/teams/{slug}", response_class=HTMLResponse)
def teampage(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    slug: str,
    page: Annotated[int, Query(ge=1)] = 1,
) -> HTMLResponse:
    try:
        team = store.get_team(session, slug)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, exc.message) from exc
    per_page = 50
    threads = store.team_threads(session, team.id, per_page + 1, (page - 1) * per_page)  # type: ignore[arg-type]
    return page(
        request,
        "team.html",
        team=team,
        address=settings.team_address(team.slug),
        threads=threads[:per_page],
        page=page,
        has_next=len(threads) > per_page,
    )


@router.get("/threads/{thread_id}", response_class=HTMLResponse)
def threadpage(request: Request, session: SessionDep, thread_id: int) -> HTMLResponse:
    try:
        detail = thread_detail(session, thread_id, None)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, exc.message) from exc
    team = store.get_team(session, detail.team)
    return page(request, "thread.html", thread=detail, team=team)


@router.get("/search", response_class=HTMLResponse)
def searchpage(
    request: Request,
    session: SessionDep,
    q: Annotated[str, Query(max_length=500)] = "",
    team: str = "",
) -> HTMLResponse:
    teams = store.list_teams(session)
    team_ids = [t.id for t in teams if not team or t.slug == team]
    hits = search_out(session, q, team_ids) if q.strip() else []  # type: ignore[arg-type]
    return page(request, "search.html", q=q, team=team, teams=teams, hits=hits)


@router.get("/attachments/{attachment_id}")
def attachment(session: SessionDep, attachment_id: int) -> Response:
    try:
        att = store.get_attachment(session, attachment_id, None)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, exc.message) from exc
    # Always a download: a mailed-in HTML or SVG file must never run in our origin.
    safe_name = att.filename.replace('"', "").replace("\r", "").replace("\n", "")
    return Response(
        att.data,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{safe_name}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/style.css")
def stylesheet(settings: SettingsDep) -> FileResponse:
    return FileResponse(settings.templates_dir / "web" / "style.css", media_type="text/css")
