"""The one renderer: update Markdown -> safe HTML, and the Jinja2 environments.

Everything people mail in is untrusted. Markdown passes raw HTML through, so its
output always goes through nh3's allow-list before it reaches a page or an email.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import markdown
import nh3
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

_ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}


def render_markdown(text: str) -> Markup:
    """Update text (Markdown, as extracted from mail) -> sanitised HTML.

    `nl2br` keeps the line breaks people type in mail; links get
    `rel="nofollow noopener"` and only http(s)/mailto URLs survive.
    """
    html = markdown.markdown(text, extensions=["nl2br", "fenced_code", "sane_lists"])
    clean = nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener",
    )
    return Markup(clean)


@lru_cache(maxsize=8)
def template_env(templates_dir: Path, kind: str) -> Environment:
    """Jinja2 for `templates/<kind>/`; HTML templates autoescape, text ones do not."""
    env = Environment(
        loader=FileSystemLoader(templates_dir / kind),
        autoescape=select_autoescape(["html"], default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["markdown"] = render_markdown
    return env
