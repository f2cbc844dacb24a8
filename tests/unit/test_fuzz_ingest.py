"""Property-based fuzzing of what processing does with a raw message: the limit check, then
`parse_message` (mail-parser, reply extraction, forward detection, classification), and the
pure pieces it is built from (`extract_reply_parts`, `trim_quoted_reply`, `html_to_text`,
`classify_message`).

The generated mail is hostile on purpose: nested multiparts with random and broken
boundaries, random content types, real and bogus charsets (including codecs that are not
charsets at all, like `unicode-escape`, which turn innocent ASCII into NULs and lone
surrogates), RFC 2047 encoded words in random charsets, 8-bit header bytes, header garbage,
random bytes and NULs. The properties: nothing raises except `UnparseableMessage`, and every
string processing would store is valid Unicode (encodable as UTF-8) without NUL characters.

`tests/e2e/test_fuzz_store.py` stores the same messages through the real processing path
into SQLite.
"""

from __future__ import annotations

import base64
import binascii
import quopri
from email.message import EmailMessage, Message

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtp.classify import Classification, classify_message
from smtp.extract import extract_reply_parts
from smtp.htmltext import html_to_text
from smtp.mime_limits import REASONS, check_limits
from smtp.parse import (
    ParsedMessage,
    UnparseableMessage,
    header_message,
    parse_message,
    thread_title,
)
from smtp.trim import trim_quoted_reply

# Runtime: each of these properties runs in a few seconds; together well under 30 s.
FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
QUICK = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MEMBER = "member@example.com"

# Real charsets, mislabelled ones, and labels Python resolves to codecs that are not charsets.
CHARSETS = (
    "utf-8",
    "UTF8",
    '"utf-8"',
    "us-ascii",
    "iso-8859-1",
    "windows-1252",
    "utf-16",
    "utf-16-le",
    "utf-32",
    "utf-7",
    "unicode-1-1-utf-7",
    "shift_jis",
    "iso-2022-jp",
    "gb2312",
    "big5",
    "koi8-r",
    "utf-8-sig",
    "unicode-escape",
    "unicode_escape",
    "raw-unicode-escape",
    "punycode",
    "idna",
    "rot13",
    "hex",
    "base64",
    "zlib",
    "uu",
    "x-unknown",
    "",
    "utf-8'en'",
    "\xe9t\xe9",
)
TRANSFER_ENCODINGS = ("7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "bogus")
CONTENT_TYPES = (
    "text/plain",
    "text/html",
    "text/enriched",
    "application/octet-stream",
    "image/png",
    "message/delivery-status",
    "text",
    "/",
    "foo/bar",
)
# Fragments that tend to break decoders: NULs, UTF-7 and escape-codec surrogates, UTF-8 for a
# surrogate, byte order marks, stray encoded words, quote and signature markers.
NASTY = (
    b"\x00",
    b"+2AA-",
    b"+2D3dAA-",
    b"\\ud800",
    b"\\udcff\\x00",
    b"\\U0010ffff",
    b"\xed\xa0\x80",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"=?utf-8?b?AA==?=",
    b"=?unicode-escape?q?\\ud800?=",
    b"=00",
    b"\r",
    b"\r\n>",
    b"\r\n-- \r\n",
    b"\r\nOn Mon, 1 Jan 2024 at 10:00, Bob <bob@example.com> wrote:\r\n> old\r\n",
    b"<html><body><div class=gmail_quote>q</div><b>x</b></body></html>",
    b"\r\n---------- Forwarded message ---------\r\nFrom: a@example.com\r\nSubject: s\r\n\r\n",
    b"\r\n\r\n",
    b"=",
    b"==",
    b"\x80\x81\x8d",
)

text_content = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.sampled_from(["Shipped it.", "Café résumé", "日本語のテキスト", "Привет", "\u202bשלום"]),
)


@st.composite
def payload(draw: st.DrawFn) -> bytes:
    """Body bytes: text in some charset, random bytes, and nasty fragments, mixed."""
    pieces = draw(
        st.lists(
            st.one_of(
                st.tuples(text_content, st.sampled_from(CHARSETS[:17])).map(
                    lambda pair: _encode_text(*pair)
                ),
                st.binary(max_size=40),
                st.sampled_from(NASTY),
            ),
            max_size=6,
        )
    )
    return b"".join(pieces)


def _encode_text(text: str, charset: str) -> bytes:
    name = charset.strip('"').lower().replace("unicode-1-1-", "")
    try:
        return text.encode(name, "replace")
    except (LookupError, UnicodeError):
        return text.encode("utf-8", "surrogatepass")


def _transfer_encode(data: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        return base64.encodebytes(data)
    if encoding == "quoted-printable":
        return quopri.encodestring(data)
    if encoding == "x-uuencode":
        lines = [binascii.b2a_uu(data[i : i + 45]) for i in range(0, len(data), 45)]
        return b"begin 644 x\n" + b"".join(lines) + b"`\nend\n"
    return data


@st.composite
def encoded_word(draw: st.DrawFn) -> bytes:
    charset = draw(st.sampled_from(CHARSETS)).encode("utf-8", "surrogateescape")
    data = draw(st.one_of(payload(), text_content.map(lambda t: t.encode("utf-8", "replace"))))
    if draw(st.booleans()):
        return b"=?" + charset + b"?B?" + base64.b64encode(data) + b"?="
    return b"=?" + charset + b"?Q?" + quopri.encodestring(data, header=True) + b"?="


header_value = st.lists(
    st.one_of(
        text_content.map(lambda t: t.encode("utf-8", "surrogatepass")),
        encoded_word(),
        st.binary(max_size=20),
        st.sampled_from(NASTY),
    ),
    max_size=4,
).map(lambda parts: b" ".join(p.replace(b"\r", b" ").replace(b"\n", b" ") for p in parts))


@st.composite
def params(draw: st.DrawFn) -> bytes:
    out = b""
    if draw(st.booleans()):
        charset = draw(st.sampled_from(CHARSETS)).encode("utf-8", "surrogateescape")
        out += b"; charset=" + charset
    if draw(st.booleans()):
        out += draw(st.sampled_from([b"; format=flowed", b"; format=flowed; delsp=yes"]))
    if draw(st.booleans()):
        name = draw(header_value)
        out += draw(
            st.sampled_from(
                [
                    b'; name="' + name + b'"',
                    b"; name*=utf-8''" + base64.b16encode(name[:10]),
                    b"; name*0*=bogus''%FF%00; name*1=x",
                ]
            )
        )
    return out


@st.composite
def leaf(draw: st.DrawFn) -> bytes:
    """One MIME entity that is not a multipart: its header lines, a blank line, its body."""
    ctype = draw(st.sampled_from(CONTENT_TYPES)).encode()
    encoding = draw(st.sampled_from(TRANSFER_ENCODINGS))
    body = draw(payload())
    headers = b"Content-Type: " + ctype + draw(params()) + b"\r\n"
    if draw(st.booleans()):
        headers += b"Content-Transfer-Encoding: " + encoding.encode() + b"\r\n"
        if draw(st.integers(0, 4)):  # now and then, declared but not applied
            body = _transfer_encode(body, encoding)
    if draw(st.booleans()):
        disposition = draw(st.sampled_from([b"attachment", b"inline", b"ATTACHMENT", b"x"]))
        filename = draw(header_value)
        headers += b"Content-Disposition: " + disposition + b'; filename="' + filename + b'"\r\n'
    if draw(st.integers(0, 5)) == 0:
        return body  # no header block at all
    return headers + b"\r\n" + body


def multipart(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        subtype = draw(
            st.sampled_from(["mixed", "alternative", "related", "report", "digest", "signed"])
        )
        boundary = draw(
            st.one_of(
                st.sampled_from([b"B", b"==b==", b"", b"x y", b"\xe9"]),
                st.binary(min_size=1, max_size=12).filter(lambda b: b"\n" not in b),
            )
        )
        parts = draw(st.lists(children, max_size=4))
        quoted = b'"' + boundary + b'"' if draw(st.booleans()) else boundary
        extra = b"; report-type=delivery-status" if subtype == "report" else b""
        head = b"Content-Type: multipart/" + subtype.encode() + b"; boundary=" + quoted + extra
        body = draw(st.sampled_from([b"", b"preamble\r\n"]))
        for part in parts:
            body += b"--" + boundary + draw(st.sampled_from([b"\r\n", b"  \r\n", b"\n"])) + part
            body += b"\r\n"
        if draw(st.integers(0, 3)):  # sometimes the close delimiter is missing
            body += b"--" + boundary + b"--\r\n"
        body += draw(st.sampled_from([b"", b"epilogue\r\n", b"--" + boundary + b"\r\n"]))
        return head + b"\r\n\r\n" + body

    return build()


@st.composite
def embedded_message(draw: st.DrawFn, inner: st.SearchStrategy[bytes]) -> bytes:
    encoding = draw(st.sampled_from([b"", b"base64", b"quoted-printable", b"7bit"]))
    message = draw(inner)
    head = b"Content-Type: message/rfc822\r\n"
    if encoding:
        head += b"Content-Transfer-Encoding: " + encoding + b"\r\n"
        if encoding in (b"base64", b"quoted-printable"):
            message = _transfer_encode(message, encoding.decode())
    if draw(st.booleans()):
        head += b"Content-Disposition: attachment\r\n"
    return head + b"\r\n" + message


SENDERS = (
    MEMBER.encode(),
    b"Member <" + MEMBER.encode() + b">",
    b"=?utf-8?q?M=C3=A9mber?= <MEMBER@EXAMPLE.COM>",
    b"=?unicode-escape?q?\\ud800?= <" + MEMBER.encode() + b">",
    b"\xe9 <" + MEMBER.encode() + b">",
    b"MAILER-DAEMON@example.com",
    b"",
    b"<>",
    b"\x00@\x00",
)


@st.composite
def top_headers(draw: st.DrawFn, human: bool = False) -> bytes:
    """The header lines of a message (without the Content-Type of its entity); `human`: from
    the member, without signs of automation."""
    lines = [b"From: " + draw(st.sampled_from(SENDERS[:5] if human else SENDERS))]
    subject = draw(header_value)
    prefixes = [b"", b"Re: ", b"Fwd: ", b"AW: "] + ([] if human else [b"Out of office: "])
    prefix = draw(st.sampled_from(prefixes))
    lines.append(b"Subject: " + prefix + subject)
    if draw(st.booleans()):
        lines.append(b"Message-ID: " + draw(header_value))
    if draw(st.booleans()):
        lines.append(b"In-Reply-To: <" + draw(header_value) + b">")
        lines.append(b"References: <a@b> <" + draw(header_value) + b">")
    if draw(st.booleans()):
        lines.append(b"Thread-Index: " + base64.b64encode(draw(st.binary(max_size=40))))
    if draw(st.booleans()):
        lines.append(b"Date: " + draw(header_value))
    if not human and draw(st.integers(0, 6)) == 0:
        lines.append(draw(st.sampled_from([b"Auto-Submitted: auto-replied", b"Precedence: bulk"])))
    for _ in range(draw(st.integers(0, 3))):  # garbage: not a header, a stray fold, NULs
        lines.append(
            draw(
                st.one_of(
                    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b" ")),
                    st.sampled_from([b" folded", b"\tfolded", b"X-Nul: \x00\x00", b": empty"]),
                    header_value.map(lambda v: b"X-Random: " + v),
                )
            )
        )
    order = draw(st.permutations(range(len(lines))))
    return b"".join(lines[i] + b"\r\n" for i in order)


entities = st.recursive(
    leaf(),
    lambda children: st.one_of(
        multipart(children),
        embedded_message(st.builds(lambda h, e: h + e, top_headers(), children)),
    ),
    max_leaves=8,
)


@st.composite
def messages(draw: st.DrawFn, human: bool = False) -> bytes:
    raw = draw(top_headers(human)) + draw(st.sampled_from([b"MIME-Version: 1.0\r\n", b""]))
    raw += draw(entities)
    if draw(st.integers(0, 4)) == 0:
        raw = raw.replace(b"\r\n", b"\n")  # as stored in mbox files
    return raw


# The properties ------------------------------------------------------------------------


def clean(value: str | None) -> bool:
    """Storable: valid Unicode (no lone surrogates) and no NUL."""
    if value is None:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def stored_strings(parsed: ParsedMessage) -> dict[str, str | None]:
    """Every string of a parsed message that processing writes to the database or mails."""
    strings: dict[str, str | None] = {
        "text": parsed.text,
        "quoted": parsed.quoted,
        "subject": parsed.subject,
        "from_address": parsed.from_address,
        "from_name": parsed.from_name,
        "message_id": parsed.message_id,
        "conversation": parsed.conversation,
        "classification.detail": parsed.classification.detail,
    }
    for i, ref in enumerate(parsed.references):
        strings[f"references[{i}]"] = ref
    for i, attachment in enumerate(parsed.attachments):
        strings[f"attachments[{i}].filename"] = attachment.filename
        strings[f"attachments[{i}].content_type"] = attachment.content_type
    return strings


@FUZZ
@given(messages())
def test_parsing_any_message_raises_nothing_else_and_yields_storable_text(raw: bytes) -> None:
    over = check_limits(raw)
    assert over is None or over.reason in REASONS
    try:
        parsed = parse_message(raw)
    except UnparseableMessage as exc:
        assert clean(str(exc)) and exc.reason
        return
    assert isinstance(parsed.classification, Classification)
    dirty = {name: value for name, value in stored_strings(parsed).items() if not clean(value)}
    assert not dirty
    assert all(isinstance(a.data, bytes) for a in parsed.attachments)


@FUZZ
@given(messages())
def test_reply_extraction_and_classification_never_raise(raw: bytes) -> None:
    reply = extract_reply_parts(raw)
    assert clean(reply.text) and clean(reply.quoted)
    headers = header_message(raw)
    assert isinstance(headers, Message)
    assert classify_message(headers).kind in ("human", "auto_reply", "bounce")


@QUICK
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=400))
def test_trimming_any_text_keeps_it_storable(text: str) -> None:
    reply = trim_quoted_reply(text)
    assert "\x00" not in reply.text and "\x00" not in reply.quoted
    assert isinstance(reply.confident, bool)


@QUICK
@given(
    st.lists(
        st.one_of(
            st.text(max_size=20),
            st.sampled_from(
                ["<div>", "</div>", "<blockquote>", "<br>", "<b>", "</p>", "<a href='x'>", "&#0;"]
            ),
            st.sampled_from(["<div class=gmail_quote>", "<li>", "<pre>", "<!--", "<![CDATA["]),
        ),
        max_size=30,
    ).map("".join)
)
def test_html_conversion_never_raises(markup: str) -> None:
    assert isinstance(html_to_text(markup), str)


@QUICK
@given(header_value, st.sampled_from([b"", b"Re: ", b"Fwd: "]))
def test_any_subject_makes_a_title_that_can_go_into_a_mail_we_send(
    value: bytes, prefix: bytes
) -> None:
    raw = b"From: " + MEMBER.encode() + b"\r\nSubject: " + prefix + value + b"\r\n\r\nHi\r\n"
    title = thread_title(parse_message(raw).subject)
    assert clean(title) and "=?" not in title
    message = EmailMessage()  # as the posted-as receipt and the digest put it
    message["Subject"] = f"Posted to {title}: please check"
    message.set_content("x")
    assert message.as_bytes()
