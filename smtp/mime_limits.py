"""What one message may cost processing: MIME parts, nesting depth, decoded size, header
fields and line length. Over any of them the message is quarantined with its own reason
code (the raw message stays in the journal) instead of being handed to the parsers.

The check runs before any parser sees the message, so it must itself be cheap on any
input: it walks the MIME structure with byte-level searches over offsets into the raw
message (no copies of parts, no line-by-line Python loops over bodies), and it stops at the
first limit exceeded. Every search is linear in what it scans; a byte is scanned once per
enclosing multipart, and that nesting is capped at `MAX_DEPTH`, so the whole check is linear
in the size of the message. Header blocks are counted with `bytes.count` before any field is
looked at one by one, so the per-field work is bounded by `MAX_HEADERS`. Only text parts and
quoted-printable or base64 parts are decoded (in C, by `binascii`).

Pure: no I/O, no clock, no settings.
"""

from __future__ import annotations

import binascii
import email
import itertools
import re
from dataclasses import dataclass
from email import policy

MAX_PARTS = 100
MAX_DEPTH = 10
MAX_DECODED_BYTES = 50 * 1024 * 1024
MAX_HEADERS = 500
MAX_LINE_CHARS = 100_000

TOO_MANY_PARTS = "too-many-parts"
TOO_DEEPLY_NESTED = "too-deeply-nested"
TOO_LARGE_DECODED = "too-large-decoded"
TOO_MANY_HEADERS = "too-many-headers"
LINE_TOO_LONG = "line-too-long"
REASONS = (TOO_MANY_PARTS, TOO_DEEPLY_NESTED, TOO_LARGE_DECODED, TOO_MANY_HEADERS, LINE_TOO_LONG)


@dataclass(frozen=True)
class MimeLimits:
    parts: int = MAX_PARTS  # MIME entities below the message itself, at any depth
    depth: int = MAX_DEPTH  # multipart and message/* levels below the message
    decoded_bytes: int = MAX_DECODED_BYTES  # all leaf parts after their transfer encoding
    headers: int = MAX_HEADERS  # header fields in any one header block
    line_chars: int = MAX_LINE_CHARS  # an unfolded header field, or a line of decoded text


DEFAULT_LIMITS = MimeLimits()


@dataclass(frozen=True)
class OverLimit:
    reason: str  # one of REASONS
    detail: str  # a sentence a person can read


# A header line as the stdlib parser (and so mail-parser) reads one: "From ", a field name and
# its colon, or a continuation. The first line that is none of these ends the header block.
_HEADER_LINE = rb"From |[\x21-\x39\x3b-\x7e]*:|[ \t]"
_FIELD_LINE = re.compile(_HEADER_LINE)
# A line ending not followed by another header line: the end of the header block (a blank
# line, or a line that is not a header, which the parsers read as the start of the body).
_HEADER_END = re.compile(rb"\n(?!" + _HEADER_LINE + rb")")
_FIELD_START = re.compile(rb"\n(?![ \t])")
_BLANK = re.compile(rb"\r?\n")
_WANTED = (b"content-type", b"content-transfer-encoding")
_MESSAGE_TYPES = ("message/rfc822", "message/global")
_WHITESPACE = (b"\n", b"\r", b" ", b"\t")


@dataclass(frozen=True)
class _Entity:
    buf: bytes
    start: int
    end: int
    depth: int
    default_type: str = "text/plain"  # "message/rfc822" inside a multipart/digest


class _Over(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.found = OverLimit(reason, detail)


class _Walk:
    def __init__(self, limits: MimeLimits) -> None:
        self.limits = limits
        self.parts = 0
        self.decoded = 0
        self.line = re.compile(rb"[^\r\n]{%d}" % (limits.line_chars + 1))
        self.later_line = re.compile(rb"[\r\n][^\r\n]{%d}" % (limits.line_chars + 1))

    # Header blocks ---------------------------------------------------------------------

    def headers(self, entity: _Entity) -> tuple[bytes, int]:
        """The Content-Type and Content-Transfer-Encoding fields of an entity (as a small
        header block) and where its body starts; raises `_Over` for a header limit."""
        buf, start, end = entity.buf, entity.start, entity.end
        if not _FIELD_LINE.match(buf, start, end):
            # No header at all: a blank first line is skipped, anything else is body.
            blank = _BLANK.match(buf, start, end)
            return b"", blank.end() if blank else start
        found = _HEADER_END.search(buf, start, end)
        head_end = found.start() if found else end  # the line ending of the last field
        if found is None:
            body = end
        else:
            blank = _BLANK.match(buf, head_end + 1, end)
            body = blank.end() if blank else head_end + 1
        lines = buf.count(b"\n", start, head_end) + 1
        fields = lines - buf.count(b"\n ", start, head_end) - buf.count(b"\n\t", start, head_end)
        where = "the message" if entity.depth == 0 else "a MIME part"
        if fields > self.limits.headers:
            raise _Over(
                TOO_MANY_HEADERS,
                f"The header of {where} has {fields} fields; at most {self.limits.headers}"
                " are read.",
            )
        wanted: list[bytes] = []
        position = start
        for match in _FIELD_START.finditer(buf, start, head_end):
            wanted += self._field(buf, position, match.start(), where)
            position = match.end()
        wanted += self._field(buf, position, head_end, where)
        return b"".join(wanted), body

    def _field(self, buf: bytes, start: int, end: int, where: str) -> list[bytes]:
        """Check one (folded) field's length; return it when it is one we need."""
        length = end - start - buf.count(b"\n", start, end) - buf.count(b"\r", start, end)
        if length > self.limits.line_chars:
            name = buf[start : min(end, start + 40)].split(b":", 1)[0]
            raise _Over(
                LINE_TOO_LONG,
                f"The {name.decode('ascii', 'replace')!r} header of {where} is {length:,}"
                f" characters long unfolded; at most {self.limits.line_chars:,} are read.",
            )
        name = buf[start : start + 30].lower()
        if name.startswith(_WANTED):
            return [buf[start:end].rstrip(b"\r") + b"\n"]
        return []

    # The walk --------------------------------------------------------------------------

    def run(self, raw: bytes) -> None:
        stack = [_Entity(raw, 0, len(raw), 0)]
        while stack:
            entity = stack.pop()
            fields, body = self.headers(entity)
            info = email.message_from_bytes(fields + b"\n", policy=policy.compat32)
            info.set_default_type(entity.default_type)
            ctype = info.get_content_type()
            encoding = str(info.get("Content-Transfer-Encoding", "") or "").strip().lower()
            children: list[_Entity] = []
            if info.get_content_maintype() == "multipart":
                boundary = info.get_boundary()
                if boundary:
                    children = self.multipart(entity, body, boundary, ctype)
            elif ctype in _MESSAGE_TYPES and body < entity.end:
                children = [self.embedded(entity, body, encoding)]
            if children:
                stack.extend(reversed(children))
            elif body < entity.end:
                self.leaf(entity.buf, body, entity.end, ctype, encoding)

    def _deeper(self, entity: _Entity) -> int:
        depth = entity.depth + 1
        if depth > self.limits.depth:
            raise _Over(
                TOO_DEEPLY_NESTED,
                f"MIME parts are nested more than {self.limits.depth} levels deep.",
            )
        return depth

    def _count_part(self) -> None:
        self.parts += 1
        if self.parts > self.limits.parts:
            raise _Over(
                TOO_MANY_PARTS,
                f"The message has more than {self.limits.parts} MIME parts.",
            )

    def multipart(self, entity: _Entity, body: int, boundary: str, ctype: str) -> list[_Entity]:
        """The parts between `--boundary` delimiter lines, up to the close delimiter."""
        buf, end = entity.buf, entity.end
        try:
            marker = re.escape(b"--" + boundary.encode("utf-8", "surrogateescape"))
        except UnicodeEncodeError:
            return []  # a boundary no line can carry: the parsers see no parts either
        # The line ending is looked at, not taken: it may also start the next delimiter.
        tail = rb"(--)?[ \t]*(?=\r?\n|\r?\Z)"
        first = re.compile(marker + tail).match(buf, body, end)
        later = re.compile(rb"\n" + marker + tail).finditer(
            buf, first.end() if first else body, end
        )
        children: list[_Entity] = []
        start = -1
        for match in itertools.chain([first] if first else [], later):
            if start >= 0:
                stop = match.start()
                if stop > start and buf[stop - 1 : stop] == b"\r":
                    stop -= 1
                children.append(_Entity(buf, start, max(start, stop), 0))
            if match.group(1):
                start = -1
                break
            self._count_part()  # before looking for the next delimiter: stops the search
            newline = _BLANK.match(buf, match.end(), end)
            start = newline.end() if newline else match.end()
        if start >= 0:
            children.append(_Entity(buf, start, end, 0))
        if not children:
            return []
        depth = self._deeper(entity)
        default = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
        return [_Entity(buf, c.start, c.end, depth, default) for c in children]

    def embedded(self, entity: _Entity, body: int, encoding: str) -> _Entity:
        """The message inside a message/* part (transfer-decoded, as the parsers do)."""
        self._count_part()
        depth = self._deeper(entity)
        buf, end = entity.buf, entity.end
        if encoding in ("base64", "quoted-printable"):
            data = _decode(buf[body:end], encoding)
            if data is not None:
                return _Entity(data, 0, len(data), depth)
        return _Entity(buf, body, end, depth)

    def leaf(self, buf: bytes, start: int, end: int, ctype: str, encoding: str) -> None:
        text = ctype.startswith("text/")
        data: bytes | None = None
        if encoding == "quoted-printable" or (text and encoding == "base64"):
            data = _decode(buf[start:end], encoding)
        if data is not None:
            size = len(data)
        elif encoding == "base64":
            blanks = sum(buf.count(ws, start, end) for ws in _WHITESPACE)
            size = (end - start - blanks) * 3 // 4
        else:
            size = end - start
        self.decoded += size
        if self.decoded > self.limits.decoded_bytes:
            mb = self.limits.decoded_bytes / (1024 * 1024)
            raise _Over(
                TOO_LARGE_DECODED,
                f"The message's parts come to more than {mb:g} MB once decoded.",
            )
        if text:
            if data is not None:
                buf, start, end = data, 0, len(data)
            if self.line.match(buf, start, end) or self.later_line.search(buf, start, end):
                raise _Over(
                    LINE_TOO_LONG,
                    f"A line of its {ctype} text is longer than {self.limits.line_chars:,}"
                    " characters.",
                )


def _decode(data: bytes, encoding: str) -> bytes | None:
    try:
        if encoding == "base64":
            return binascii.a2b_base64(data)
        return binascii.a2b_qp(data)
    except (binascii.Error, ValueError):
        return None


def check_limits(raw: bytes, limits: MimeLimits = DEFAULT_LIMITS) -> OverLimit | None:
    """The first limit `raw` exceeds, or None when processing may read it."""
    try:
        _Walk(limits).run(raw)
    except _Over as over:
        return over.found
    return None
