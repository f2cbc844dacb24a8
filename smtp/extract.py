"""Pick the readable body of a raw RFC 822 message and trim it to the newly written reply.

The MIME structure is split here with byte-level searches and only each header block goes
through the stdlib `email` parser (`policy.compat32`): the stdlib feed parser walks every body
line in Python, which for a 1 MB body costs more than the whole time budget. At most
`MAX_PARTS` parts are looked at; text parts come first in real mail. Decoding is done by hand
from the transfer-decoded bytes so mislabelled charsets (windows-1252 declared as iso-8859-1 or
us-ascii, UTF-8 declared as latin-1, Shift_JIS variants) still come out right. Nothing here
raises on broken mail: the worst case is the raw text run through the trimmer.
"""

from __future__ import annotations

import codecs
import email
import re
from email import policy
from email.message import Message

from smtp import mime_limits
from smtp.htmltext import html_to_text
from smtp.trim import Reply, split_scan_region, trim_quoted_reply

# As deep and as many as processing lets through (`smtp.mime_limits`): all of it is read.
MAX_PARTS = mime_limits.MAX_PARTS
_MAX_DEPTH = mime_limits.MAX_DEPTH
# A header block longer than this is not one: the message is read as a bare body.
_MAX_HEADER_BYTES = 256 * 1024
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")

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


# Text codecs Python knows that are not charsets: a label naming one is treated as unknown.
# The escape codecs turn plain ASCII ("\\x00", "\\ud800") into NULs and lone surrogates.
NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "punycode", "idna", "undefined"})


def _codec(label: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None when it names none."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        codec = codecs.lookup(name)
    except (LookupError, ValueError):  # ValueError: a label with a NUL in it
        return None
    # Bytes-to-bytes codecs (hex, base64, zlib, rot13) are not text encodings either.
    if codec.name in NOT_CHARSETS or not getattr(codec, "_is_text_encoding", True):
        return None
    return codec.name


def is_valid_text(text: str) -> bool:
    """No lone surrogates (UTF-7 and UTF-16 data can carry them): storable as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode a body whose declared charset may be wrong or missing. The result is always
    valid Unicode (no lone surrogates); NULs are kept (the trimmer removes them)."""
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
                text = data.decode(candidate)
            except (UnicodeDecodeError, LookupError):
                continue
            if is_valid_text(text):
                return text
    if declared:
        text = data.decode(declared, "replace")
        if is_valid_text(text):
            return text
    return data.decode("cp1252", "replace")


def _unflow(text: str, delsp: bool) -> str:
    """Join RFC 3676 format=flowed lines: a trailing space means the line continues.

    Only the region the trimmer scans is unwrapped; the rest is kept as sent.
    """
    head, rest = split_scan_region(text)
    out: list[str] = []
    buffer = ""
    depth = -1
    for raw in head.split("\n"):
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
    return "\n".join(out) + ("\n" + rest if rest else "")


def part_text(part: Message) -> str:
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


def is_attachment(part: Message) -> bool:
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
        if ctype == "message/rfc822" or is_attachment(part):
            continue
        if ctype == "text/plain":
            plain.append(part_text(part))
        elif ctype == "text/html":
            html.append(part_text(part))
    text = "\n".join(p for p in plain if p.strip())
    if text.strip():
        return text, False
    if html:
        return "\n".join(html_to_text(h) for h in html), True
    if not msg.is_multipart() and msg.get_content_maintype() != "text":
        return "", False
    return text, False


def _split_head(raw: bytes) -> tuple[bytes, bytes]:
    """The header block (with its last line ending) and the body of a message or part."""
    if not _HEADER_LINE.match(raw):
        # No header at all (or a blank first line): all of it is body, as for the stdlib parser.
        return b"", raw[2:] if raw.startswith(b"\r\n") else raw[1:] if raw[:1] == b"\n" else raw
    blank = _BLANK_LINE.search(raw, 0, _MAX_HEADER_BYTES)
    if blank is None:
        return (raw, b"") if len(raw) <= _MAX_HEADER_BYTES else (b"", raw)
    head_end = blank.start() + (2 if raw[blank.start() : blank.start() + 2] == b"\r\n" else 1)
    return raw[:head_end], raw[blank.end() :]


def parse_mime(raw: bytes, budget: list[int], depth: int = 0) -> Message:
    """A message tree like the stdlib parser's, with bodies split by byte search.

    `budget` holds the number of entities still allowed (each costs one, the message
    included); parts beyond it are left out.
    """
    head, body = _split_head(raw)
    msg = email.message_from_bytes(head, policy=policy.compat32)
    leftover = msg.get_payload()
    text = body.decode("ascii", "surrogateescape")
    if isinstance(leftover, str) and leftover:
        # A line that is not a header ends the header block and starts the body.
        text = leftover + "\n" + text
    budget[0] -= 1
    boundary = msg.get_boundary() if msg.get_content_maintype() == "multipart" else None
    if boundary and depth < _MAX_DEPTH:
        msg.set_payload(
            [parse_mime(part, budget, depth + 1) for part in _parts(body, boundary, budget)]
        )
    elif msg.get_content_type() == "message/rfc822" and depth < _MAX_DEPTH and budget[0] > 0:
        msg.set_payload([parse_mime(body, budget, depth + 1)])
    else:
        msg.set_payload(text)
    return msg


def _parts(body: bytes, boundary: str, budget: list[int]) -> list[bytes]:
    """The bodies between `--boundary` delimiter lines, up to the close delimiter."""
    marker = re.escape(boundary.encode("ascii", "surrogateescape"))
    delimiter = re.compile(rb"^--" + marker + rb"(--)?[ \t]*\r?$", re.MULTILINE)
    parts: list[bytes] = []
    start = -1
    for match in delimiter.finditer(body):
        if start >= 0:
            end = match.start()
            end -= 2 if body[end - 2 : end] == b"\r\n" else 1 if body[end - 1 : end] == b"\n" else 0
            parts.append(body[start : max(start, end)])
        if match.group(1) or len(parts) >= budget[0]:
            return parts
        start = match.end() + 1
    if start >= 0 and start < len(body):
        parts.append(body[start:])
    return parts


def body_text(raw: bytes) -> str:
    """The readable body of a raw message (HTML converted to text). Never raises."""
    try:
        return _select_body(parse_mime(raw, [MAX_PARTS + 1]))[0]
    except Exception:
        pass
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
