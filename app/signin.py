"""Signing in to the archive with a link sent by email, and signing out.

The answer to "email me a link" is the same whether or not the address is known, so the
form cannot be used to find out who is a member. A link works once, for 15 minutes;
opening it shows a button (mail scanners follow links, and must not sign anyone in),
and the POST sets an HttpOnly, SameSite=Lax session cookie, Secure on https.
"""

from __future__ import annotations

from email.headerregistry import Address
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app import store
from app.deps import SESSION_COOKIE, SessionDep, SettingsDep, ViewerDep
from app.models import Person, utcnow
from app.pages import bad_link, page
from app.render import render_email
from app.settings import Settings

router = APIRouter(include_in_schema=False)


def safe_next(path: str) -> str:
    """Only a path on this site: an open redirect would make our links phishing tools."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path or "://" in path:
        return "/"
    return path


def sign_in_url(next_path: str) -> str:
    return f"/signin?next={quote(safe_next(next_path), safe='/')}"


@router.get("/signin", response_class=HTMLResponse)
def sign_in_form(request: Request, viewer: ViewerDep, next: str = "/") -> HTMLResponse:
    return page(request, "signin.html", next=safe_next(next), viewer=viewer, error="")


@router.post("/signin", response_class=HTMLResponse)
def sign_in_request(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=320)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> HTMLResponse:
    if "@" not in email:
        response = page(
            request,
            "signin.html",
            next=safe_next(next),
            viewer=None,
            error="Give the email address you get digests at.",
        )
        response.status_code = status.HTTP_400_BAD_REQUEST
        return response
    now = utcnow()
    ip = request.client.host if request.client else ""
    try:
        found = store.request_sign_in(session, email, ip, safe_next(next), now)
    except store.TooManySignIns as exc:
        response = page(request, "message.html", heading=exc.message, text=exc.hint or "")
        response.status_code = status.HTTP_429_TOO_MANY_REQUESTS
        return response
    if found is not None:
        person, token = found
        _queue_link(session, settings, person, token)
    return page(
        request,
        "message.html",
        heading="Check your email",
        text=f"If {email.strip()} belongs to a member, a sign-in link is on its way. It works"
        f" once, for {store.SIGN_IN_LINK_LIFETIME.seconds // 60} minutes.",
    )


def _queue_link(session: SessionDep, settings: Settings, person: Person, token: str) -> None:
    now = utcnow()
    message = render_email(
        settings.templates_dir,
        "signin",
        {
            "person": person,
            "url": f"{settings.base_url}/signin/{token}",
            "minutes": store.SIGN_IN_LINK_LIFETIME.seconds // 60,
        },
        sender=Address("Tidings", "noreply", settings.mail_domain),
        to=Address(person.name, addr_spec=person.email),
        message_id=f"<signin.{token[:16]}@{settings.mail_domain}>",
        now=now,
    )
    store.enqueue_mail(
        session,
        kind="signin",
        idempotency_key=f"signin:{token[:32]}",
        person=person,
        message=message,
    )


_BAD_SIGN_IN_LINK = (
    "Sign-in links work once, for 15 minutes. Ask for a new one on the sign-in page."
)


@router.get("/signin/{token}", response_class=HTMLResponse)
def sign_in_confirm(request: Request, session: SessionDep, token: str) -> HTMLResponse:
    if store.pending_sign_in(session, token, utcnow()) is None:
        return bad_link(request, _BAD_SIGN_IN_LINK)
    return page(request, "signin_confirm.html", token=token)


def from_another_site(request: Request, settings: Settings) -> bool:
    """Whether a POST came from a page on another site. SameSite=Lax keeps our cookie off
    such requests, but a response can still set or delete it: without this check a page
    elsewhere could sign a visitor in as someone else, or out."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin == "null"  # sandboxed frames and data: pages say "null"
    ours = {settings.base_url, f"{request.url.scheme}://{request.url.netloc}"}
    return origin.rstrip("/") not in ours


def _refuse_cross_site(request: Request) -> HTMLResponse:
    response = page(
        request,
        "message.html",
        heading="Not from another site",
        text="Signing in and out only works from this site's own pages. Open the link from"
        " your email, or use the button on this site.",
    )
    response.status_code = status.HTTP_403_FORBIDDEN
    return response


@router.post("/signin/{token}", response_model=None)
def sign_in_complete(
    request: Request, session: SessionDep, settings: SettingsDep, token: str
) -> Response:
    if from_another_site(request, settings):
        return _refuse_cross_site(request)
    done = store.complete_sign_in(session, token, utcnow())
    if done is None:
        return bad_link(request, _BAD_SIGN_IN_LINK)
    cookie, next_path = done
    response = RedirectResponse(safe_next(next_path), status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(store.SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=settings.base_url.startswith("https://"),
        path="/",
    )
    return response


@router.post("/signout", response_model=None)
def sign_out(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    if from_another_site(request, settings):
        return _refuse_cross_site(request)
    response = RedirectResponse("/", status_code=status.HTTP_303_SEE_OTHER)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        store.end_web_session(session, cookie)
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response
