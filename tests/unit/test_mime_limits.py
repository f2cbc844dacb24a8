"""The limits on what one message may cost (smtp/mime_limits.py): each limit with its reason,
the values right at a limit still allowed, and the check itself cheap on hostile input.

End to end (over SMTP, into quarantine) in tests/e2e/test_hostile.py.
"""

from __future__ import annotations

import base64
import time

import pytest

from smtp.mime_limits import (
    DEFAULT_LIMITS,
    LINE_TOO_LONG,
    MAX_DEPTH,
    MAX_HEADERS,
    MAX_LINE_CHARS,
    MAX_PARTS,
    TOO_DEEPLY_NESTED,
    TOO_LARGE_DECODED,
    TOO_MANY_HEADERS,
    TOO_MANY_PARTS,
    MimeLimits,
    check_limits,
)
from smtp.parse import MessageTooCostly, UnparseableMessage, parse_message

HEAD = b"From: a@example.com\r\nSubject: s\r\n"


def multipart(boundary: bytes, parts: list[bytes], subtype: bytes = b"mixed") -> bytes:
    inner = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    head = b"Content-Type: multipart/" + subtype + b"; boundary=" + boundary + b"\r\n\r\n"
    return head + b"preamble\r\n" + inner + b"--" + boundary + b"--\r\nepilogue\r\n"


def text(body: bytes = b"hello", encoding: bytes = b"") -> bytes:
    cte = b"Content-Transfer-Encoding: " + encoding + b"\r\n" if encoding else b""
    return b"Content-Type: text/plain\r\n" + cte + b"\r\n" + body


def nested(levels: int, body: bytes = b"hello") -> bytes:
    """A text part `levels` multipart levels below the message."""
    entity = text(body)
    for level in range(levels):
        entity = multipart(b"L%d" % level, [entity])
    return HEAD + entity


def reason(raw: bytes, limits: MimeLimits = DEFAULT_LIMITS) -> str | None:
    found = check_limits(raw, limits)
    return found.reason if found else None


def test_parts_are_counted_at_every_depth() -> None:
    assert reason(HEAD + multipart(b"B", [text()] * MAX_PARTS)) is None
    assert reason(HEAD + multipart(b"B", [text()] * (MAX_PARTS + 1))) == TOO_MANY_PARTS
    two_levels = multipart(b"O", [multipart(b"I", [text()] * 60)] * 2)  # 2 + 120 parts
    assert reason(HEAD + two_levels) == TOO_MANY_PARTS


def test_nesting_counts_multiparts_and_embedded_messages() -> None:
    assert reason(nested(MAX_DEPTH)) is None
    assert reason(nested(MAX_DEPTH + 1)) == TOO_DEEPLY_NESTED
    embedded = b"Content-Type: message/rfc822\r\n\r\n" + nested(MAX_DEPTH)
    assert reason(HEAD + embedded) == TOO_DEEPLY_NESTED
    # A base64-encoded message/rfc822 is decoded and followed, as the parsers do.
    hidden = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    assert reason(HEAD + hidden + base64.encodebytes(nested(MAX_DEPTH))) == TOO_DEEPLY_NESTED
    # In a multipart/digest a part without a Content-Type is a message.
    digest = multipart(b"D", [b"\r\n" + nested(MAX_DEPTH - 1)], subtype=b"digest")
    assert reason(HEAD + digest) == TOO_DEEPLY_NESTED


def test_header_fields_are_counted_per_block_and_folds_are_one_field() -> None:
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(MAX_HEADERS - 2))
    assert reason(HEAD + fields + b"\r\nbody") is None
    assert reason(HEAD + fields + b"X-More: v\r\n\r\nbody") == TOO_MANY_HEADERS
    folded = b"X-Folded: v\r\n" + b" more\r\n" * 2000
    assert reason(HEAD + folded + b"\r\nbody") is None
    in_part = HEAD + multipart(b"B", [fields * 2 + b"\r\nbody"])
    assert reason(in_part) == TOO_MANY_HEADERS
    # Lines of a header-less body are not header fields.
    assert reason(HEAD + b"\r\n" + b"Not: a header\r\n" * 1000) is None


def test_long_lines_unfolded_or_decoded() -> None:
    def header(length: int) -> bytes:
        value = b"\r\n ".join([b"x" * 999] * (length // 1000)) + b"y" * (length % 1000)
        return b"X-Long: " + value[: length - 8] + b"\r\n"

    assert reason(HEAD + header(MAX_LINE_CHARS) + b"\r\nbody") is None
    assert reason(HEAD + header(MAX_LINE_CHARS + 1000) + b"\r\nbody") == LINE_TOO_LONG

    def qp(length: int) -> bytes:
        soft = b"=\r\n".join([b"a" * 50] * (length // 50))
        return HEAD + text(soft + b"\r\nnext line", b"quoted-printable")

    assert reason(qp(MAX_LINE_CHARS)) is None
    assert reason(qp(MAX_LINE_CHARS + 50)) == LINE_TOO_LONG
    one_line = base64.encodebytes(b"z" * (MAX_LINE_CHARS + 1))
    assert reason(HEAD + text(one_line, b"base64")) == LINE_TOO_LONG
    # Only text is read line by line; an attachment may be one long line once decoded.
    attachment = b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    assert reason(HEAD + attachment + one_line) is None


def test_decoded_size_adds_up_every_part() -> None:
    small = MimeLimits(decoded_bytes=1000)
    assert reason(HEAD + multipart(b"B", [text(b"x" * 400)] * 2), small) is None
    assert reason(HEAD + multipart(b"B", [text(b"x" * 400)] * 3), small) == TOO_LARGE_DECODED
    encoded = b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    picture = encoded + base64.encodebytes(b"\x89PNG" * 300)  # 1,200 bytes decoded
    assert reason(HEAD + multipart(b"B", [picture]), small) == TOO_LARGE_DECODED


def test_parse_message_refuses_what_is_over_a_limit_with_its_reason() -> None:
    with pytest.raises(MessageTooCostly) as raised:
        parse_message(nested(MAX_DEPTH + 1))
    assert isinstance(raised.value, UnparseableMessage)
    assert raised.value.reason == TOO_DEEPLY_NESTED
    assert "10 levels" in str(raised.value)


def test_broken_structures_are_no_problem_for_the_check() -> None:
    for raw in (
        b"",
        b"\r\n",
        b"no header at all",
        b" leading fold\r\nSubject: x\r\n\r\nbody",
        HEAD + b"Content-Type: multipart/mixed\r\n\r\n--\r\n",  # no boundary
        HEAD + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nunterminated",
        HEAD + b"Content-Type: multipart/mixed; boundary*=utf-8''%C3%A9\r\n\r\n--\xc3\xa9\r\n",
        HEAD + b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n@@",
    ):
        assert reason(raw) is None


# Each input is about 8 MB and built to make a careless check slow: backtracking, a Python
# loop per line or per delimiter, re-scanning per nesting level.
HOSTILE = {
    "blank lines": HEAD + b"\r\n" + b"\r\n" * 4_000_000,
    "header lines": b"a:\r\n" * 2_000_000,
    "one folded header": HEAD + b" x\r\n" * 2_500_000,
    "lines just under the limit": HEAD
    + text((b"=\r\n".join([b"a" * 70] * 1400) + b"\r\n") * 80, b"quoted-printable"),
    "field names without colons": HEAD + (b"a" * 60_000 + b"\r\n") * 130,
    "delimiter look-alikes": HEAD
    + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
    + b"\r\n--Bx" * 1_600_000,
    "dash lines": HEAD
    + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
    + b"--\r\n" * 2_000_000,
    # Every level searches all of it for its delimiter: near misses of each.
    "deepest nesting": nested(MAX_DEPTH, b"--L\r\n--L1x\r\n" * 500_000),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_the_check_stays_cheap_on_hostile_input(name: str) -> None:
    raw = HOSTILE[name]
    started = time.perf_counter()
    check_limits(raw)
    # About 0.2 s on a slow machine; anything superlinear takes minutes here.
    assert time.perf_counter() - started < 3.0
