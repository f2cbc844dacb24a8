"""The one renderer: update Markdown -> safe HTML, Jinja2 pages, and email messages.

Everything people mail in is untrusted. Markdown passes raw HTML through, so its
output always goes through nh3's allow-list before it reaches a page or an email.
"""

from __future__ import annotations

import binascii
import html as html_lib
import re
import textwrap
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import css_inline
import markdown
import nh3
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markdown.extensions import Extension
from markdown.inlinepatterns import InlineProcessor
from markdown.treeprocessors import Treeprocessor
from markdown.util import AtomicString
from markupsafe import Markup

from app.links import LinkRule

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


class _LinkRuleProcessor(InlineProcessor):
    def __init__(self, rule: LinkRule) -> None:
        super().__init__(rule.regex())
        self.rule = rule

    def handleMatch(  # type: ignore[override]
        self, m: re.Match[str], data: str
    ) -> tuple[ElementTree.Element, int, int]:
        link = ElementTree.Element("a", href=self.rule.url.replace("{id}", m.group("id")))
        link.text = AtomicString(m.group(0))
        return link, m.start(0), m.end(0)


class _NoLinksInLinks(Treeprocessor):
    """A pattern inside a link the author wrote (`[PROJ-2](url)`) stays their link's
    text: links cannot nest."""

    def run(self, root: ElementTree.Element) -> None:
        for outer in root.iter("a"):
            for parent in list(outer.iter()):
                for inner in [c for c in parent if c.tag == "a"]:
                    at = list(parent).index(inner)
                    text = (inner.text or "") + (inner.tail or "")
                    if at:
                        before = parent[at - 1]
                        before.tail = (before.tail or "") + text
                    else:
                        parent.text = (parent.text or "") + text
                    parent.remove(inner)


class _LinkRules(Extension):
    def __init__(self, rules: Sequence[LinkRule]) -> None:
        self.rules = rules
        super().__init__()

    def extendMarkdown(self, md: markdown.Markdown) -> None:
        for n, rule in enumerate(self.rules):  # after code spans and links: priority 5
            md.inlinePatterns.register(_LinkRuleProcessor(rule), f"tidings-link-{n}", 5)
        md.treeprocessors.register(_NoLinksInLinks(md), "tidings-no-nested-links", 5)


def render_markdown(text: str, links: Sequence[LinkRule] = ()) -> Markup:
    """Update text (Markdown, as extracted from mail) -> sanitised HTML.

    `nl2br` keeps the line breaks people type in mail; links get
    `rel="nofollow noopener"` and only http(s)/mailto URLs survive; images become links;
    the team's link patterns (`links`) become links.
    """
    extensions: list[str | Extension] = ["nl2br", "fenced_code", "sane_lists", "tables"]
    if links:
        extensions.append(_LinkRules(links))
    html = markdown.markdown(text, extensions=extensions)
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
    msg["Subject"] = render_subject(templates_dir, name, context)
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
    html = INLINER.inline(env.get_template(f"{name}.html").render(context))
    msg.add_alternative(html, subtype="html")
    return msg


def render_subject(templates_dir: Path, name: str, context: dict[str, Any]) -> str:
    """`templates/email/<name>.subject.txt`, on one line."""
    env = template_env(templates_dir, "email")
    return " ".join(env.get_template(f"{name}.subject.txt").render(context).split())


# Many mail clients (Gmail among them) drop <style> blocks, so rules become style
# attributes; @media rules (dark mode) cannot be inlined and stay in a <style>.
# Nothing is ever fetched: a message must not depend on the network.
INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


# Messages assembled from pieces --------------------------------------------------------
#
# A digest goes to thousands of people, and most of it is the same for all of them. Its
# pieces are rendered from the templates once, with named slots where one reader's
# values go (a time in their zone, their reply address), CSS-inlined and encoded as
# quoted-printable once; a message is then a join of encoded pieces and slot values.
# (Generating each message with the `email` package costs about a millisecond per 100 KB,
# most of a digest run.) tests/unit/test_render.py checks that the `email` package reads
# such a message back exactly as it was meant.

SLOT = "\ue000"  # a private-use character: no template has it; slot values are escaped


def slot(name: str) -> str:
    """A marker for `name` in a template's output; `QPPiece` fills it."""
    return f"{SLOT}{name}{SLOT}"


_QP_LINE = 76  # RFC 2045: encoded lines are at most 76 characters
_SOFT_BREAK = b"=\n"


def _end_with_soft_break(encoded: bytes) -> bytes:
    """`encoded` (quoted-printable that stops mid-line) ending in a soft line break, so
    whatever follows starts a new encoded line and no line grows past 76."""
    head, _, last = encoded.rpartition(b"\n")
    if len(last) >= _QP_LINE:
        cut = _QP_LINE - 1
        escape = last.rfind(b"=", cut - 2, cut)  # never split an =XX escape
        cut = escape if escape != -1 else cut
        last = last[:cut] + _SOFT_BREAK + last[cut:]
    return (head + b"\n" if head or encoded.startswith(b"\n") else b"") + last + _SOFT_BREAK


def qp_encode(text: str) -> bytes:
    """`text` as quoted-printable UTF-8; when it does not end a line, with a soft line
    break at its end, so encoded pieces can be joined in any order."""
    if not text:
        return b""
    encoded = binascii.b2a_qp(text.encode("utf-8"))
    return encoded if text.endswith("\n") else _end_with_soft_break(encoded)


def qp_value(value: str) -> bytes:
    """A slot value (one line) as quoted-printable, ending in a soft line break. The
    common case, a short ASCII value without `=`, is the value itself."""
    if (
        len(value) < _QP_LINE - 1
        and value.isascii()
        and value.isprintable()
        and "=" not in value
        and not value.endswith((" ", "\t"))
    ):
        return value.encode() + _SOFT_BREAK
    return qp_encode(value.replace("\n", " "))


class QPPiece:
    """Template output with `slot()` markers, encoded once: the literal text between the
    slots is quoted-printable already, so filling in one reader's values is a join."""

    __slots__ = ("_after", "literals", "names")

    def __init__(self, rendered: str) -> None:
        parts = rendered.split(SLOT)
        if len(parts) % 2 == 0:
            raise ValueError("unbalanced slot marker in a rendered piece")
        self.literals = [qp_encode(part) for part in parts[0::2]]
        self.names = parts[1::2]
        self._after = list(zip(self.names, self.literals[1:], strict=True))

    def fill(self, out: list[bytes], values: Mapping[str, bytes]) -> None:
        """Append this piece to `out` with `values` (already `qp_value`-encoded)."""
        out.append(self.literals[0])
        for name, literal in self._after:
            out.append(values[name])
            out.append(literal)


def header_value(value: str, name: str) -> str:
    """An unstructured header's value, RFC 2047-encoded when it is not ASCII and folded
    when it is long."""
    if value.isascii() and len(value) + len(name) < 76:
        return value
    charset = "us-ascii" if value.isascii() else "utf-8"
    return Header(value, charset, header_name=name).encode(linesep="\n")


def address_header(name: str, address: str) -> str:
    """`Name <address>` (or a List-Id's `Name <list.id>`), the name quoted or encoded as
    it needs."""
    return formataddr((name, address), charset="utf-8")


_PART = b'Content-Type: text/%s; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable\n\n'


def alternative_format(text: bytes, html: bytes) -> bytes:
    """A multipart/alternative message as a %-format, around `text` and `html`: %-formats
    of its quoted-printable UTF-8 parts (each literal `%` doubled). Its values, in order:
    the header lines and boundary (`message_head`), the boundary again, the values of
    `text`, the boundary, those of `html`, the boundary. A digest formats one message
    for each of its readers in one step, so the ~100 KB of it are copied once."""
    return b"".join(
        [
            b'%sMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="%s"\n',
            b"\n--%s\n",
            _PART % b"plain",
            text,
            b"\n--%s\n",
            _PART % b"html",
            html,
            b"\n--%s--\n",
        ]
    )


def message_head(headers: Sequence[tuple[str, str]], boundary: str) -> tuple[bytes, bytes]:
    """(the header lines, the boundary) of an `alternative_format` message, from ready
    header values. `boundary` must start with `=_`, which quoted-printable text can never
    contain."""
    if not boundary.startswith("=_"):
        raise ValueError("a boundary that quoted-printable text cannot contain starts with =_")
    head = "".join(f"{name}: {value}\n" for name, value in headers)
    return head.encode("ascii"), boundary.encode("ascii")
