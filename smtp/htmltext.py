"""HTML to readable Markdown-ish text, with quoted history removed structurally first.

Mail clients wrap the message being replied to in a recognisable container (Gmail's
`gmail_quote`, Outlook's `divRplyFwdMsg`, Thunderbird's `moz-cite-prefix`, ...). Conversion
stops at the first such container, so the text handed to the plain-text trimmer already lacks
the history. `<blockquote>` content is kept as `>`-quoted lines so an inline reply keeps the
shape the trimmer understands. Hidden elements (preheaders), styles, scripts and images
(tracking pixels) produce nothing.

The parser is pure Python and costs several microseconds per tag, so its work is bounded: the
markup is fed in chunks and parsing stops at the quote container, and only the first
`_MAX_ELEMENTS` start tags are converted structurally. If the budget runs out inside a
`<blockquote>`, the rest is quoted history and is dropped like a quote container's content.
Otherwise the markup beyond it is reduced to its text by one regex pass that drops the tags and
keeps the source's own line breaks, so nothing the sender wrote is lost, only its layout.
"""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser

_SKIP_TAGS = frozenset({"head", "style", "script", "title", "template", "noscript", "xml"})
_VOID_TAGS = frozenset(
    {"br", "img", "hr", "meta", "link", "input", "area", "base", "col", "embed", "source", "wbr"}
)
_BLOCK_TAGS = frozenset(
    {
        "div",
        "table",
        "tr",
        "ul",
        "ol",
        "li",
        "blockquote",
        "section",
        "article",
        "header",
        "footer",
        "address",
        "dl",
        "dt",
        "dd",
        "center",
        "form",
        "fieldset",
        "figure",
        "main",
        "nav",
        "aside",
        "tbody",
        "thead",
        "tfoot",
    }
)
_PARAGRAPH_TAGS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre"})
_EMPHASIS = {"b": "**", "strong": "**", "i": "*", "em": "*"}
# Containers that hold the quoted message, by class or id (matched as substrings).
QUOTE_CONTAINERS = (
    "gmail_quote",
    "gmail_extra_quote",
    "divrplyfwdmsg",
    "olk_src_body_section",
    "moz-cite-prefix",
    "yahoo_quoted",
    "protonmail_quote",
    "appendonsend",
    "zmail_extra",
    "replyforwardmessage",
    "x_divrplyfwdmsg",
    "mail-quote",
    "ms-outlook-mobile-reference-message",
    "gmail_attr",
    "yandex_quote",
    "quote_container",
)
# Quote containers that hold only the attribution line above a `<blockquote>`. At the top of
# a message (a bottom-posted reply) they are converted like any block instead: the trimmer
# then removes the attribution and the quote, and keeps the reply written below them.
_PREFIX_CONTAINERS = ("moz-cite-prefix",)
_HIDDEN_STYLE = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*hidden|max-height\s*:\s*0(?![.\d])"
    r"|font-size\s*:\s*0(?![.\d])|mso-hide\s*:\s*all",
    re.IGNORECASE,
)
_SPACES = re.compile(r"[ \t\r\n\f\u00a0]+")
_TAG = re.compile(r"<[^<>]*>")
_MAX_ELEMENTS = 800
FEED_CHUNK = 8_192
# Deeper `<blockquote>` nesting renders with this many `> `: the trimmer only needs to know a
# line is quoted, and an unbounded prefix would make deep nesting quadratic.
_MAX_QUOTE_PREFIX = 8


class HtmlConverter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current = ""
        self.quote_depth = 0
        self.skip_depth = 0
        self.stack: list[tuple[str, bool, int]] = []
        self.lists: list[list[int]] = []
        self.pre_depth = 0
        self.link_href: str | None = None
        self.link_start = 0
        self.emphasis_starts: list[int] = []
        # The current line while it holds only a list item's bullet ("- ", "1. "): a block
        # opening inside the item (Outlook's `<li><div>`) continues that line.
        self.bullet: str | None = None
        self.done = False
        self.has_text = False
        self.elements = 0
        # Source position (line, column) where the element budget ran out.
        self.stopped_at: tuple[int, int] | None = None

    # Line assembly -------------------------------------------------------------------------

    def _prefix(self) -> str:
        return "> " * min(self.quote_depth, _MAX_QUOTE_PREFIX)

    def _newline(self) -> None:
        self.lines.append(self.current.rstrip())
        self.current = ""
        self.bullet = None

    def _ensure_newline(self) -> None:
        if self.current.strip(" >") and self.current != self.bullet:
            self._newline()

    def _ensure_blank(self) -> None:
        if self.current and self.current == self.bullet:
            return
        self._ensure_newline()
        if self.lines and self.lines[-1].strip(" >"):
            self.lines.append(self._prefix().rstrip())

    def _write(self, text: str) -> None:
        if not self.current:
            self.current = self._prefix()
        self.current += text

    # Parser callbacks ----------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.done:
            return
        self.elements += 1
        if self.elements > _MAX_ELEMENTS:
            if self.quote_depth == 0:
                self.stopped_at = self.getpos()
            self.done = True
            return
        attributes = {name: value or "" for name, value in attrs}
        hidden = bool(_HIDDEN_STYLE.search(attributes.get("style", ""))) or (
            "hidden" in attributes or attributes.get("aria-hidden") == "true"
        )
        marker = (attributes.get("class", "") + " " + attributes.get("id", "")).lower()
        if (
            self.skip_depth == 0
            and any(name in marker for name in QUOTE_CONTAINERS)
            and (self.has_text or not any(name in marker for name in _PREFIX_CONTAINERS))
        ):
            self.done = True
            return
        if tag == "hr":
            if self.skip_depth == 0 and self.has_text:
                self.done = True
            return
        if tag in _VOID_TAGS:
            if tag == "br" and self.skip_depth == 0:
                self._newline()
            return
        skip = tag in _SKIP_TAGS or hidden
        # Word's "MsoNormal" paragraphs have no margins: they render as plain lines.
        if tag == "p" and "msonormal" in marker:
            tag = "msop"
        self.stack.append((tag, skip, len(self.lines)))
        if skip:
            self.skip_depth += 1
        if self.skip_depth:
            return
        self._open(tag, attributes)

    def _open(self, tag: str, attributes: dict[str, str]) -> None:
        if tag == "msop":
            self._ensure_newline()
        elif tag in _PARAGRAPH_TAGS:
            self._ensure_blank()
            if tag == "pre":
                self.pre_depth += 1
            elif tag.startswith("h"):
                self._write("#" * int(tag[1]) + " ")
        elif tag == "blockquote":
            self._ensure_newline()
            self.quote_depth += 1
        elif tag in ("ul", "ol"):
            self._ensure_newline()
            self.lists.append([0 if tag == "ol" else -1])
        elif tag == "li":
            if self.current.strip(" >"):
                self._newline()  # also an empty item's bullet
            indent = "  " * max(0, len(self.lists) - 1)
            if self.lists and self.lists[-1][0] >= 0:
                self.lists[-1][0] += 1
                self._write(f"{indent}{self.lists[-1][0]}. ")
            else:
                self._write(f"{indent}- ")
            self.bullet = self.current
        elif tag in _BLOCK_TAGS:
            self._ensure_newline()
        elif tag in _EMPHASIS:
            self._write(_EMPHASIS[tag])
            self.emphasis_starts.append(len(self.current))
        elif tag == "a":
            self.link_href = attributes.get("href", "").strip()
            self._write("")
            self.link_start = len(self.current)

    def handle_endtag(self, tag: str) -> None:
        if self.done or tag in _VOID_TAGS:
            return
        if tag == "p" and self.stack and self.stack[-1][0] == "msop":
            tag = "msop"
        if not any(name == tag for name, _, _ in self.stack):
            return
        while self.stack:
            name, skip, opened_at = self.stack.pop()
            if skip:
                self.skip_depth -= 1
            elif self.skip_depth == 0:
                self._close(name, opened_at)
            if name == tag:
                break

    def _close(self, tag: str, opened_at: int) -> None:
        if tag == "msop":
            if len(self.lines) == opened_at and not self.current.strip(" >"):
                self._newline()
            else:
                self._ensure_newline()
        elif tag in _PARAGRAPH_TAGS:
            if tag == "pre":
                self.pre_depth = max(0, self.pre_depth - 1)
            self._ensure_blank()
        elif tag == "blockquote":
            self._ensure_newline()
            self.quote_depth = max(0, self.quote_depth - 1)
        elif tag in ("ul", "ol"):
            self._ensure_newline()
            if self.lists:
                self.lists.pop()
        elif tag in _BLOCK_TAGS:
            self._ensure_newline()
        elif tag in _EMPHASIS and self.emphasis_starts:
            start = self.emphasis_starts.pop()
            mark = _EMPHASIS[tag]
            inner = self.current[start:]
            if inner.strip() and start <= len(self.current):
                self.current = self.current[:start] + inner.strip() + mark
                if inner != inner.rstrip():
                    self.current += " "
            else:
                self.current = self.current[: max(0, start - len(mark))] + inner
        elif tag == "a" and self.link_href is not None:
            label = self.current[self.link_start :].strip()
            href = self.link_href
            self.link_href = None
            target = href[7:] if href.lower().startswith("mailto:") else href
            if (
                label
                and href.lower().startswith(("http:", "https:", "mailto:"))
                and (label != target and label != href)
            ):
                self.current = self.current[: self.link_start] + f"[{label}]({href})"

    def handle_data(self, data: str) -> None:
        if self.done or self.skip_depth:
            return
        if self.pre_depth:
            for i, part in enumerate(data.split("\n")):
                if i:
                    self._newline()
                self._write(part)
            self.has_text = self.has_text or bool(data.strip())
            return
        text = _SPACES.sub(" ", data)
        if not text.strip():
            if self.current.strip(" >") and not self.current.endswith(" "):
                self.current += " "
            return
        if not self.current.strip(" >") or self.current.endswith(" "):
            text = text.lstrip()
        self._write(text)
        self.has_text = True

    def text(self) -> str:
        if self.current:
            self._newline()
        out = "\n".join(line.rstrip() for line in self.lines)
        return re.sub(r"\n{3,}", "\n\n", out).strip()


def markup_offset(markup: str, position: tuple[int, int]) -> int:
    line, column = position
    if line <= 1:
        return column
    last = markup.split("\n", line - 1)[-1]
    return len(markup) - len(last) + column


def flatten_markup(markup: str) -> str:
    return html_lib.unescape(_TAG.sub("", markup)).replace("\u00a0", " ")


def html_to_text(html: str) -> str:
    """Readable Markdown-ish text of an HTML body, without its quoted history. Never raises."""
    converter = HtmlConverter()
    try:
        for start in range(0, len(html), FEED_CHUNK):
            converter.feed(html[start : start + FEED_CHUNK])
            if converter.done:
                break
        else:
            converter.close()
    except Exception:  # html.parser is lenient, but a broken body must still yield its text
        converter.done = True
    text = converter.text()
    if converter.stopped_at is not None:
        rest = flatten_markup(html[markup_offset(html, converter.stopped_at) :]).strip()
        text = f"{text}\n{rest}" if rest else text
    return text
