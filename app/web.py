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
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app import store
from app.deps import RowId, SessionDep, SettingsDep, ViewerDep
from app.errors import NotFound
from app.feed import feed_url
from app.models import Person, Update
from app.pages import page
from app.settings import Settings
from app.signin import sign_in_url
from app.tokens import reply_address_for
from app.views import inline_image_type, search_out, thread_detail_and_images

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


async def not_understood(request: Request, exc: RequestValidationError) -> Response:
    """A request FastAPI could not read: the API answers in JSON (422, as its schema
    says); a page answers with a page: 404 for an address that names no such thing (an
    id out of range), 400 for a form it cannot use."""
    if request.url.path.startswith("/api/"):
        return await request_validation_exception_handler(request, exc)
    in_path = any(error.get("loc", ("",))[0] == "path" for error in exc.errors())
    response = page(
        request,
        "message.html",
        heading="Nothing here" if in_path else "That did not work",
        text="There is nothing at this address."
        if in_path
        else "The form was not filled in as this page expects; go back and try again.",
    )
    response.status_code = status.HTTP_404_NOT_FOUND if in_path else status.HTTP_400_BAD_REQUEST
    return response


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
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    viewer: ViewerDep,
    thread_id: RowId,
) -> HTMLResponse:
    try:
        detail, images = thread_detail_and_images(
            session, thread_id, store.viewable_team_ids(session, viewer)
        )
    except NotFound:
        raise _not_visible(request, viewer) from None
    team = store.get_team(session, detail.team)
    reply = None
    if viewer is not None and store.is_member(session, team.id, viewer.id):  # type: ignore[arg-type]
        reply = reply_mailto(session, settings, viewer, team.slug, detail.id, detail.title)
    return page(
        request,
        "thread.html",
        thread=detail,
        team=team,
        viewer=viewer,
        images=images,
        reply_mailto=reply,
        links=store.team_links(session, [team.id])[team.id],  # type: ignore[list-item,index]
    )


def reply_mailto(
    session: Session,
    settings: Settings,
    member: Person,
    slug: str,
    thread_id: RowId,
    title: str,
) -> str:
    """A `mailto:` link to the member's own signed reply address for the thread, with the
    subject a mail client would give a reply: what a digest's "reply" link is."""
    keys = store.load_reply_keys(session, settings.ensure_secret_key())
    address = reply_address_for(member.id, thread_id, slug, settings.mail_domain, keys)  # type: ignore[arg-type]
    return f"mailto:{address}?subject={quote(f'Re: {title}')}"


@router.get("/updates/{update_id}")
def update_permalink(
    request: Request, session: SessionDep, viewer: ViewerDep, update_id: RowId
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
    request: Request, session: SessionDep, viewer: ViewerDep, person_id: RowId
) -> HTMLResponse:
    """A member's recent updates, in the teams the viewer may read."""
    person = session.get(Person, person_id)
    visible = store.viewable_team_ids(session, viewer)
    shared = set(store.team_ids_of(session, person_id)) & set(visible) if person else set()
    if person is None or not shared:
        raise _not_visible(request, viewer)
    updates = store.recent_updates_by(session, person_id, sorted(shared))  # type: ignore[type-var]
    links = store.team_links(session, sorted(shared))  # type: ignore[type-var]
    return page(request, "member.html", person=person, updates=updates, viewer=viewer, links=links)


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
    request: Request, session: SessionDep, viewer: ViewerDep, attachment_id: RowId
) -> Response:
    try:
        att = store.get_attachment(session, attachment_id, store.viewable_team_ids(session, viewer))
    except NotFound:
        raise _not_visible(request, viewer) from None
    # A download, as bytes no browser may sniff, unless it is a raster image on the
    # allow-list whose bytes are what its type says: a mailed-in HTML or SVG file must
    # never run in our origin. Images are shown under the same strict CSP as every page.
    image = inline_image_type(att.content_type, att.data)
    return Response(
        att.data,
        media_type=image or "application/octet-stream",
        headers={
            "Content-Disposition": content_disposition(
                att.filename, "inline" if image else "attachment"
            ),
            "X-Content-Type-Options": "nosniff",
        },
    )


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """`attachment` (or `inline`) with the name as typed (RFC 6266 `filename*`, UTF-8) and a
    plain ASCII fallback for old clients; header values can only carry Latin-1 themselves."""
    printable = "".join(c for c in filename if c.isprintable())
    fallback = printable.encode("ascii", "replace").decode().replace('"', "'").replace("\\", "_")
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(printable, safe='')}"


@router.get("/style.css")
def stylesheet(settings: SettingsDep) -> FileResponse:
    return FileResponse(settings.templates_dir / "web" / "style.css", media_type="text/css")
