"""Rendering a server-side page from templates/web/, shared by the archive and the pages
behind the signed links in our emails."""

from __future__ import annotations

from fastapi import Request, status
from fastapi.responses import HTMLResponse

from app.render import template_env


def page(request: Request, name: str, **context: object) -> HTMLResponse:
    settings = request.app.state.settings
    html = (
        template_env(settings.templates_dir, "web")
        .get_template(name)
        .render(request=request, **context)
    )
    return HTMLResponse(html)


def bad_link(request: Request, text: str) -> HTMLResponse:
    """The answer to an expired, altered or misused signed link: what happened and what to
    do instead, never a bare 403."""
    response = page(request, "message.html", heading="This link does not work any more", text=text)
    response.status_code = status.HTTP_403_FORBIDDEN
    return response
