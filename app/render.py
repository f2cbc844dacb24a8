"""The one renderer: update Markdown -> safe HTML, Jinja2 pages, and email messages.

Everything people mail in is untrusted. Markdown passes raw HTML through, so its
output always goes through nh3's allow-list before it reaches a page or an email.
"""

from __future__ import annotations

import html as html_lib
import re
import textwrap
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import css_inline
import markdown
import nh3
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

_ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}


_IMG = re.compile(r"<img\b[^>]*>", re.I)
_ATTR = re.compile(r"""\b(alt|src)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.I)


def _image_as_link(match: re.Match[str]) -> str:
    """An image becomes a link to it, labelled with its alt text: loading it would tell its
    host who read what and when (and mail clients block it anyway)."""
    attrs = {name.lower(): value.strip("\"'") for name, value in _ATTR.findall(match.group(0))}
    label = html_lib.escape(html_lib.unescape(attrs.get("alt", "")).strip() or "image")
    src = attrs.get("src", "")
    return f'<a href="{src}">[image: {label}]</a>' if src else f"[image: {label}]"


def render_markdown(text: str) -> Markup:
    """Update text (Markdown, as extracted from mail) -> sanitised HTML.

    `nl2br` keeps the line breaks people type in mail; links get
    `rel="nofollow noopener"` and only http(s)/mailto URLs survive; images become links.
    """
    html = markdown.markdown(text, extensions=["nl2br", "fenced_code", "sane_lists", "tables"])
    html = _IMG.sub(_image_as_link, html)
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
    env.filters["wrap"] = wrap_text
    return env


_LEAD = re.compile(r"^(\s*(?:[-*+]|\d+[.)]|>+)?\s*)")


# A digest run wraps the same update for every member who gets it; the texts are the
# run's cached ones, so hashing them costs nothing after the first time.
@lru_cache(maxsize=4096)
def wrap_text(text: str, width: int = 72) -> str:
    """Wrap long lines for plain-text mail, keeping short lines as typed and continuing
    list items and quotes under their own marker's indentation."""
    lines = []
    for line in text.splitlines():
        if len(line) <= width:
            lines.append(line)
            continue
        lead = _LEAD.match(line).group(1)  # type: ignore[union-attr]
        hang = ">" * lead.count(">") + " " if ">" in lead else " " * len(lead)
        lines.extend(
            textwrap.wrap(
                line,
                width,
                initial_indent="",
                subsequent_indent=hang,
                break_long_words=False,
                break_on_hyphens=False,
            )
            or [line]
        )
    return "\n".join(lines)


def render_email(
    templates_dir: Path,
    name: str,
    context: dict[str, Any],
    *,
    sender: Address,
    to: Address,
    message_id: str,
    now: datetime,
    reply_to: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """`templates/email/<name>.{subject.txt,txt,html}` -> a ready-to-send message."""
    env = template_env(templates_dir, "email")
    msg = EmailMessage()
    msg["Subject"] = " ".join(env.get_template(f"{name}.subject.txt").render(context).split())
    msg["From"] = sender
    msg["To"] = to
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    # RFC 3834: tells well-behaved auto-responders not to answer us (no mail loops).
    msg["Auto-Submitted"] = "auto-generated"
    for name_, value in (headers or {}).items():
        msg[name_] = value
    msg.set_content(env.get_template(f"{name}.txt").render(context))
    html = _INLINER.inline(env.get_template(f"{name}.html").render(context))
    msg.add_alternative(html, subtype="html")
    return msg


# Many mail clients (Gmail among them) drop <style> blocks, so rules become style
# attributes; @media rules (dark mode) cannot be inlined and stay in a <style>.
# Nothing is ever fetched: a message must not depend on the network.
_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
