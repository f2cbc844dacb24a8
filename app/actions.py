"""Pages behind the signed links in our emails: fixing a post, unsubscribing, approving a
held reply, confirming an alias address.

No sign-in is needed: the signed token in the link is the proof, and it grants only
the one action on the one object it names. GETs only show a page with a button,
because link scanners and previews follow GETs; the POST does the work.
"""

from __future__ import annotations

import email
import email.policy
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app import store
from app.deps import RowId, SessionDep
from app.errors import NotFound, TidingsError
from app.models import InboundMessage, Person, PersonAlias, Thread, Update, utcnow
from app.pages import bad_link, page
from app.settings import Settings
from app.tokens import (
    CONFIRM_ALIAS_PURPOSE,
    FIX_LINK_PURPOSE,
    UNSUBSCRIBE_PURPOSE,
    InvalidToken,
    approve_held_purpose,
    parse_recipient,
    verify_link,
    verify_reply_token,
)

router = APIRouter(include_in_schema=False)


def _fixable(request: Request, session: SessionDep, update_id: RowId, token: str) -> Update | None:
    """The update a fix link is for, or None when the link is not valid for it."""
    settings = request.app.state.settings
    try:
        granted = verify_link(token, FIX_LINK_PURPOSE, utcnow(), settings.ensure_secret_key())
    except InvalidToken:
        return None
    return session.get(Update, update_id) if granted == update_id else None


def _bad_fix_link(request: Request) -> HTMLResponse:
    return bad_link(
        request,
        "Fix links expire after two weeks and only work for the post they were sent for."
        " Reply in the thread by email to add a correction instead.",
    )


def _fixpage(
    request: Request, session: SessionDep, update: Update, token: str, body: str, error: str = ""
) -> HTMLResponse:
    thread = store.get_thread(session, update.thread_id)
    return page(
        request, "fix.html", update=update, thread=thread, token=token, body=body, error=error
    )


@router.get("/updates/{update_id}/fix", response_class=HTMLResponse)
def fix_form(request: Request, session: SessionDep, update_id: RowId, t: str = "") -> HTMLResponse:
    update = _fixable(request, session, update_id, t)
    if update is None:
        return _bad_fix_link(request)
    return _fixpage(request, session, update, t, update.body)


@router.post("/updates/{update_id}/fix", response_model=None)
def fix_submit(
    request: Request,
    session: SessionDep,
    update_id: RowId,
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
        page = _fixpage(request, session, update, t, body, exc.message)
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
        return bad_link(
            request,
            "Unsubscribe links work for about a year after the digest"
            " they came in. Use the link in a recent digest.",
        )
    return page(request, "unsubscribe.html", person=person, token=t)


@router.post("/unsubscribe", response_class=HTMLResponse)
async def unsubscribe(request: Request, session: SessionDep) -> HTMLResponse:
    """RFC 8058 one-click (the token in the URL, `List-Unsubscribe=One-Click` in the body)
    or our own form (the token in the body). No cookie is needed: the token is the proof."""
    form = await request.form()
    token = request.query_params.get("t") or str(form.get("t", ""))
    person = _unsubscriber(request, session, token)
    if person is None:
        return bad_link(
            request,
            "Unsubscribe links work for about a year after the digest"
            " they came in. Use the link in a recent digest.",
        )
    store.stop_digests(session, person.id)  # type: ignore[arg-type]
    return page(
        request,
        "message.html",
        heading="Digests stopped",
        text=f"{person.email} will get no more digests. You are still a member and"
        " can post and reply by email; a team admin can turn digests back on.",
    )


# Held replies ---------------------------------------------------------------------------

_BAD_APPROVAL_LINK = (
    "Approval links expire after two weeks and work only for the person they were sent to."
    " Held mail stays in the quarantine; a team admin can see it with"
    " `tidings quarantine list`."
)


def _approver(
    request: Request, session: SessionDep, entry_id: RowId, person_id: int, token: str
) -> Person | None:
    """The member a valid approval link for this held message was sent to, or None."""
    secret = request.app.state.settings.ensure_secret_key()
    try:
        granted = verify_link(token, approve_held_purpose(person_id), utcnow(), secret)
    except InvalidToken:
        return None
    return session.get(Person, person_id) if granted == entry_id else None


def _plain_text(raw: bytes) -> str:
    """The message's own plain text, shown escaped for review; never its HTML."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = message.get_body(("plain",))  # type: ignore[attr-defined]
    try:
        text = body.get_content() if body is not None else ""
    except (LookupError, ValueError):
        text = ""
    return text[:20_000] or "(no plain-text part)"


@router.get("/held/{entry_id}", response_class=HTMLResponse)
def held_review(
    request: Request, session: SessionDep, entry_id: RowId, p: int = 0, t: str = ""
) -> HTMLResponse:
    person = _approver(request, session, entry_id, p, t)
    if person is None:
        return bad_link(request, _BAD_APPROVAL_LINK)
    try:
        entry = store.held_message(session, entry_id)
    except NotFound as exc:
        return page(request, "message.html", heading="Already decided", text=exc.message)
    headers = email.message_from_bytes(entry.raw, policy=email.policy.compat32)
    thread = _held_thread(session, entry, request.app.state.settings)
    return page(
        request,
        "held.html",
        entry_id=entry_id,
        person=person,
        token=t,
        sender=str(headers.get("From", "") or entry.mail_from or "an unknown sender"),
        thread=thread,
        text=_plain_text(entry.raw),
    )


def _held_thread(session: SessionDep, entry: InboundMessage, settings: Settings) -> Thread | None:
    """The thread the held reply was meant for, named by its reply address."""
    keys = store.load_reply_keys(session, settings.ensure_secret_key())
    for rcpt in entry.rcpt_tos.split("\n"):
        recipient = parse_recipient(rcpt, settings.mail_domain)
        if recipient is None or recipient.token is None:
            continue
        try:
            return store.get_thread(session, verify_reply_token(recipient.token, keys).thread_id)
        except (InvalidToken, NotFound):
            continue
    return None


def _decide(
    request: Request, session: SessionDep, entry_id: RowId, p: int, t: str, approve: bool
) -> HTMLResponse:
    # The signed token in the form is the authority: a forged cross-site POST would need a
    # token it cannot have, and the token works only for the member it was sent to.
    person = _approver(request, session, entry_id, p, t)
    if person is None:
        return bad_link(request, _BAD_APPROVAL_LINK)
    try:
        if approve:
            store.approve_held(session, entry_id, person.id)  # type: ignore[arg-type]
        else:
            store.discard_held(session, entry_id)
    except NotFound as exc:
        return page(request, "message.html", heading="Already decided", text=exc.message)
    if approve:
        return page(
            request,
            "message.html",
            heading="Approved",
            text="The reply is being posted under your name; it appears in the thread within"
            " a minute.",
        )
    return page(request, "message.html", heading="Discarded", text="The reply will not be posted.")


@router.post("/held/{entry_id}/{decision}", response_class=HTMLResponse)
def held_decide(
    request: Request,
    session: SessionDep,
    entry_id: RowId,
    decision: Literal["approve", "discard"],
    p: Annotated[int, Form()] = 0,
    t: Annotated[str, Form()] = "",
) -> HTMLResponse:
    return _decide(request, session, entry_id, p, t, approve=decision == "approve")


# Alias confirmation ---------------------------------------------------------------------

_BAD_ALIAS_LINK = (
    "Confirmation links expire after a week. Ask a team admin to add the address again"
    " with `tidings member alias add`; a new link is sent to it."
)


def _alias(
    request: Request, session: SessionDep, alias_id: RowId, token: str
) -> PersonAlias | None:
    secret = request.app.state.settings.ensure_secret_key()
    try:
        granted = verify_link(token, CONFIRM_ALIAS_PURPOSE, utcnow(), secret)
    except InvalidToken:
        return None
    return session.get(PersonAlias, alias_id) if granted == alias_id else None


@router.get("/aliases/{alias_id}/confirm", response_class=HTMLResponse)
def alias_form(request: Request, session: SessionDep, alias_id: RowId, t: str = "") -> HTMLResponse:
    alias = _alias(request, session, alias_id, t)
    if alias is None:
        return bad_link(request, _BAD_ALIAS_LINK)
    person = session.get(Person, alias.person_id)
    return page(request, "alias.html", alias=alias, person=person, token=t)


@router.post("/aliases/{alias_id}/confirm", response_class=HTMLResponse)
def alias_confirm(
    request: Request, session: SessionDep, alias_id: RowId, t: Annotated[str, Form()] = ""
) -> HTMLResponse:
    alias = _alias(request, session, alias_id, t)
    if alias is None:
        return bad_link(request, _BAD_ALIAS_LINK)
    store.confirm_alias(session, alias_id)
    person = session.get(Person, alias.person_id)
    return page(
        request,
        "message.html",
        heading="Address confirmed",
        text=f"Mail from {alias.email} now counts as from {person.name if person else 'you'}.",
    )
