"""The web archive: server-rendered pages from templates/web/, no JavaScript needed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from app import store
from app.deps import SessionDep, SettingsDep
from app.errors import NotFound, TidingsError
from app.models import Person, Update, utcnow
from app.render import template_env
from app.tokens import FIX_LINK_PURPOSE, UNSUBSCRIBE_PURPOSE, InvalidToken, verify_link
from app.views import search_out, thread_detail

router = APIRouter(include_in_schema=False)


def _page(request: Request, name: str, **context: object) -> HTMLResponse:
    settings = request.app.state.settings
    html = (
        template_env(settings.templates_dir, "web")
        .get_template(name)
        .render(request=request, **context)
    )
    return HTMLResponse(html)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    teams = [
        (team, settings.team_address(team.slug), store.team_threads(session, team.id, 20))  # type: ignore[arg-type]
        for team in store.list_teams(session)
    ]
    return _page(request, "index.html", teams=teams)


@router.get("/teams/{slug}", response_class=HTMLResponse)
def team_page(
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
    return _page(
        request,
        "team.html",
        team=team,
        address=settings.team_address(team.slug),
        threads=threads[:per_page],
        page=page,
        has_next=len(threads) > per_page,
    )


@router.get("/threads/{thread_id}", response_class=HTMLResponse)
def thread_page(request: Request, session: SessionDep, thread_id: int) -> HTMLResponse:
    try:
        detail = thread_detail(session, thread_id, None)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, exc.message) from exc
    team = store.get_team(session, detail.team)
    return _page(request, "thread.html", thread=detail, team=team)


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    session: SessionDep,
    q: Annotated[str, Query(max_length=500)] = "",
    team: str = "",
) -> HTMLResponse:
    teams = store.list_teams(session)
    team_ids = [t.id for t in teams if not team or t.slug == team]
    hits = search_out(session, q, team_ids) if q.strip() else []  # type: ignore[arg-type]
    return _page(request, "search.html", q=q, team=team, teams=teams, hits=hits)


def _fixable(request: Request, session: SessionDep, update_id: int, token: str) -> Update | None:
    """The update a fix link is for, or None when the link is not valid for it."""
    settings = request.app.state.settings
    try:
        granted = verify_link(token, FIX_LINK_PURPOSE, utcnow(), settings.ensure_secret_key())
    except InvalidToken:
        return None
    return session.get(Update, update_id) if granted == update_id else None


def _bad_link(request: Request, text: str) -> HTMLResponse:
    page = _page(request, "message.html", heading="This link does not work any more", text=text)
    page.status_code = status.HTTP_403_FORBIDDEN
    return page


def _bad_fix_link(request: Request) -> HTMLResponse:
    return _bad_link(
        request,
        "Fix links expire after two weeks and only work for the post they were sent for."
        " Reply in the thread by email to add a correction instead.",
    )


def _fix_page(
    request: Request, session: SessionDep, update: Update, token: str, body: str, error: str = ""
) -> HTMLResponse:
    thread = store.get_thread(session, update.thread_id)
    return _page(
        request, "fix.html", update=update, thread=thread, token=token, body=body, error=error
    )


@router.get("/updates/{update_id}/fix", response_class=HTMLResponse)
def fix_form(request: Request, session: SessionDep, update_id: int, t: str = "") -> HTMLResponse:
    update = _fixable(request, session, update_id, t)
    if update is None:
        return _bad_fix_link(request)
    return _fix_page(request, session, update, t, update.body)


@router.post("/updates/{update_id}/fix", response_model=None)
def fix_submit(
    request: Request,
    session: SessionDep,
    update_id: int,
    t: Annotated[str, Form()] = "",
    body: Annotated[str, Form(max_length=200_000)] = "",
) -> Response:
    # The signed token in the form is what authorises this: a forged cross-site POST
    # would need a token it cannot have.
    update = _fixable(request, session, update_id, t)
    if update is None:
        return _bad_fix_link(request)
    try:
        store.correct_update(session, update_id, body)
    except TidingsError as exc:
        page = _fix_page(request, session, update, t, body, exc.message)
        page.status_code = status.HTTP_400_BAD_REQUEST
        return page
    return RedirectResponse(
        f"/threads/{update.thread_id}#u{update_id}", status_code=status.HTTP_303_SEE_OTHER
    )


def _unsubscriber(request: Request, session: SessionDep, token: str) -> Person | None:
    settings = request.app.state.settings
    try:
        person_id = verify_link(token, UNSUBSCRIBE_PURPOSE, utcnow(), settings.ensure_secret_key())
    except InvalidToken:
        return None
    return session.get(Person, person_id)


@router.get("/unsubscribe", response_class=HTMLResponse)
def unsubscribe_form(request: Request, session: SessionDep, t: str = "") -> HTMLResponse:
    """A confirmation page only: link scanners and previews follow GETs, so a GET must
    never change anything."""
    person = _unsubscriber(request, session, t)
    if person is None:
        return _bad_link(
            request,
            "Unsubscribe links work for about a year after the digest"
            " they came in. Use the link in a recent digest.",
        )
    return _page(request, "unsubscribe.html", person=person, token=t)


@router.post("/unsubscribe", response_class=HTMLResponse)
async def unsubscribe(request: Request, session: SessionDep) -> HTMLResponse:
    """RFC 8058 one-click (the token in the URL, `List-Unsubscribe=One-Click` in the body)
    or our own form (the token in the body). No cookie is needed: the token is the proof."""
    form = await request.form()
    token = request.query_params.get("t") or str(form.get("t", ""))
    person = _unsubscriber(request, session, token)
    if person is None:
        return _bad_link(
            request,
            "Unsubscribe links work for about a year after the digest"
            " they came in. Use the link in a recent digest.",
        )
    store.stop_digests(session, person.id)  # type: ignore[arg-type]
    return _page(
        request,
        "message.html",
        heading="Digests stopped",
        text=f"{person.email} will get no more digests. You are still a member and"
        " can post and reply by email; a team admin can turn digests back on.",
    )


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
