"""A signed-in member's own settings page (`/settings`): digest schedule, time zone,
quiet hours and away dates, the same settings `tidings member set` and the one-line
email commands change (all through `store.change_member_settings`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app import store
from app.deps import SessionDep, SettingsDep, ViewerDep
from app.errors import TidingsError
from app.models import Person
from app.pages import page
from app.signin import from_another_site, sign_in_url
from app.views import describe_schedule

router = APIRouter(include_in_schema=False)


def _form(request: Request, person: Person, **context: object) -> HTMLResponse:
    away = ""
    if person.away_from or person.away_until:
        start = person.away_from.isoformat() if person.away_from else ""
        away = f"{start}..{person.away_until.isoformat() if person.away_until else ''}"
    quiet = f"{person.quiet_start:%H:%M}-{person.quiet_end:%H:%M}"
    return page(
        request,
        "settings.html",
        viewer=person,
        person=person,
        schedule=describe_schedule(person),
        weekdays=store.WEEKDAYS,
        cadences=store.CADENCES,
        away=away,
        quiet="off" if person.quiet_start == person.quiet_end else quiet,
        **{"saved": False, "error": "", **context},
    )


@router.get("/settings", response_model=None)
def settings_form(request: Request, viewer: ViewerDep) -> Response:
    if viewer is None:
        return RedirectResponse(sign_in_url("/settings"), status_code=status.HTTP_303_SEE_OTHER)
    return _form(request, viewer)


@router.post("/settings", response_model=None)
def settings_save(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    viewer: ViewerDep,
    cadence: Annotated[str, Form()],
    hour: Annotated[int, Form()],
    timezone: Annotated[str, Form()],
    weekday: Annotated[str, Form()] = "mon",
    weekdays_only: Annotated[bool, Form()] = False,
    quiet: Annotated[str, Form()] = "off",
    away: Annotated[str, Form()] = "",
) -> Response:
    if viewer is None:
        return RedirectResponse(sign_in_url("/settings"), status_code=status.HTTP_303_SEE_OTHER)
    if from_another_site(request, settings):
        response = page(
            request,
            "message.html",
            heading="Not from another site",
            text="Your settings can only be changed from this site's own settings page.",
        )
        response.status_code = status.HTTP_403_FORBIDDEN
        return response
    changes = store.MemberSettings(
        cadence=cadence,
        hour=hour,
        timezone=timezone.strip(),
        weekday=weekday,
        weekdays_only=weekdays_only,
        quiet=quiet.strip() or "off",
        away=away.strip() or "off",
    )
    try:
        person = store.change_member_settings(session, viewer.email, changes)
    except TidingsError as exc:
        session.rollback()
        response = _form(request, viewer, error=str(exc))
        response.status_code = status.HTTP_400_BAD_REQUEST
        return response
    return _form(request, person, saved=True)
