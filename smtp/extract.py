"""Pick the readable body of a raw RFC 822 message and trim it to the newly written reply.

Parsing uses the stdlib `email` package with `policy.default`; decoding is done by hand from
the transfer-decoded bytes so mislabelled charsets (windows-1252 declared as iso-8859-1 or
us-ascii, UTF-8 declared as latin-1, Shift_JIS variants) still come out right. Nothing here
raises on broken mail: the worst case is the raw text run through the trimmer.
"""

from __future__ import annotations

import codecs
import email
import re
from email import policy
from email.message import Message

from smtp.htmltext import html_to_text
from smtp.trim import Reply, trim_quoted_reply

# Charset labels that real mail uses for a superset encoding.
_CHARSET_ALIASES = {
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso_8859-1": "cp1252",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
    "big5": "big5hkscs",
}


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode a body whose declared charset may be wrong or missing."""
    declared = _codec(charset)
    if declared in (None, "cp1252", "ascii"):
        # Mail declared as ASCII/latin-1 (or undeclared) is very often really UTF-8.
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    for candidate in (declared, "utf-8", "cp1252"):
        if candidate:
            try:
                return data.decode(candidate)
            except (UnicodeDecodeError, LookupError):
                continue
    return data.decode(declared or "cp1252", "replace")


def _unflow(text: str, delsp: bool) -> str:
    """Join RFC 3676 format=flowed lines: a trailing space means the line continues."""
    out: list[str] = []
    buffer = ""
    depth = -1
    for raw in text.split("\n"):
        line = raw.rstrip("\r")
        stripped = line.lstrip(">")
        level = len(line) - len(stripped)
        if stripped.startswith(" "):
            stripped = stripped[1:]  # space-stuffing
        if buffer and level != depth:
            out.append(">" * depth + (" " if depth else "") + buffer)
            buffer = ""
        depth = level
        if stripped.endswith(" ") and stripped != "-- ":
            buffer += stripped[:-1] if delsp else stripped
            continue
        buffer += stripped
        out.append(">" * level + (" " if level and buffer else "") + buffer)
        buffer = ""
    if buffer:
        out.append(">" * max(depth, 0) + (" " if depth > 0 else "") + buffer)
    return "\n".join(out)


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        payload = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    text = decode_bytes(payload, charset).replace("\r\n", "\n").replace("\r", "\n")
    try:
        params = {k.lower(): v.lower() for k, v in part.get_params() or [] if isinstance(v, str)}
    except Exception:
        params = {}
    if part.get_content_type() == "text/plain" and params.get("format") == "flowed":
        text = _unflow(text, params.get("delsp") == "yes")
    return text


def _is_attachment(part: Message) -> bool:
    try:
        disposition = (part.get("Content-Disposition") or "").lower()
    except Exception:
        return False
    return disposition.startswith("attachment")


def _select_body(msg: Message) -> tuple[str, bool]:
    """The text of the preferred body part and whether it came from HTML."""
    plain: list[str] = []
    html: list[str] = []
    stack = [msg]
    while stack:
        part = stack.pop(0)
        ctype = part.get_content_type()
        if part.is_multipart():
            children = part.get_payload()
            if isinstance(children, list):
                stack = [c for c in children if isinstance(c, Message)] + stack
            continue
        if ctype == "message/rfc822" or _is_attachment(part):
            continue
        if ctype == "text/plain":
            plain.append(_part_text(part))
        elif ctype == "text/html":
            html.append(_part_text(part))
    text = "\n".join(p for p in plain if p.strip())
    if text.strip():
        return text, False
    if html:
        return "\n".join(html_to_text(h) for h in html), True
    if not msg.is_multipart() and msg.get_content_maintype() != "text":
        return "", False
    return text, False


def body_text(raw: bytes) -> str:
    """The readable body of a raw message (HTML converted to text). Never raises."""
    for parse_policy in (policy.default, policy.compat32):
        try:
            msg = email.message_from_bytes(raw, policy=parse_policy)
            return _select_body(msg)[0]
        except Exception:
            continue
    return decode_bytes(raw, None)


_HTML_HINT = re.compile(r"<(?:html|body|div|p|br|blockquote|table)\b", re.IGNORECASE)


def extract_reply_parts(message: str | bytes) -> Reply:
    """The new text of a reply: `str` is a body, `bytes` a whole raw RFC 822 message."""
    try:
        body = body_text(message) if isinstance(message, bytes) else message
    except Exception:
        body = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    if isinstance(message, str) and _HTML_HINT.match(message.lstrip()):
        body = html_to_text(message)
    try:
        return trim_quoted_reply(body)
    except Exception:
        stripped = body.replace("\x00", "").strip()
        return Reply(text=stripped, quoted="", confident=False)


def extract_reply(message: str | bytes) -> str:
    """Only the newly written text of a reply (see `extract_reply_parts`)."""
    return extract_reply_parts(message).text
