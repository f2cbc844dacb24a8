"""Rendering a server-side page from templates/web/, shared by the archive and the pages
behind the signed links in our emails."""

from __future__ import annotations

import re

from fastapi import Request, status
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from app.render import template_env

# The sanitiser leaves heading tags bare (no attributes), so these are all there are.
_HEADING_TAG = re.compile(r"<(/?)h([1-6])>")


def nest_headings(html: Markup, top: int = 3) -> Markup:
    """Headings people typed in a post, moved under the page's own: the first and biggest
    becomes `<h{top}>`, and none goes more than one level deeper than the one before, so a
    post can neither add a second <h1> to the page nor skip a level (WCAG 1.3.1)."""
    levels = [int(level) for slash, level in _HEADING_TAG.findall(html) if not slash]
    if not levels:
        return html
    biggest = min(levels)
    previous = top - 1
    current = top

    def moved(match: re.Match[str]) -> str:
        nonlocal previous, current
        if not match.group(1):
            current = min(top + int(match.group(2)) - biggest, previous + 1, 6)
            previous = current
        return f"<{match.group(1)}h{current}>"

    return Markup(_HEADING_TAG.sub(moved, str(html)))


def page(request: Request, name: str, **context: object) -> HTMLResponse:
    settings = request.app.state.settings
    env = template_env(settings.templates_dir, "web")
    env.filters.setdefault("nest_headings", nest_headings)
    html = env.get_template(name).render(request=request, **context)
    return HTMLResponse(html)


def bad_link(request: Request, text: str) -> HTMLResponse:
    """The answer to an expired, altered or misused signed link: what happened and what to
    do instead, never a bare 403."""
    response = page(request, "message.html", heading="This link does not work any more", text=text)
    response.status_code = status.HTTP_403_FORBIDDEN
    return response
