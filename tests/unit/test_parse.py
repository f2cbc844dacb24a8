"""Parsing raw mail into what processing needs."""

from __future__ import annotations

import time
from email.message import EmailMessage

import pytest

from smtp.parse import header_message, message_id_of, parse_message, sender_address, thread_title


@pytest.mark.parametrize(
    "subject, title",
    [
        ("Re: Weekly plan", "Weekly plan"),
        ("RE: Fwd: AW: SV: Antw: Weekly plan", "Weekly plan"),
        ("Re[2]: Weekly plan", "Weekly plan"),
        ("  ", "(no subject)"),
        ("Regarding the plan", "Regarding the plan"),
        ("RE : Weekly plan", "Weekly plan"),
        ("[eng] Re: Weekly plan", "Weekly plan"),
        ("Re: [eng] Weekly plan", "Weekly plan"),
        ("[eng] Weekly plan", "Weekly plan"),
        ("Plan [draft]", "Plan [draft]"),
    ],
)
def test_thread_title_strips_reply_prefixes_and_list_tags(subject: str, title: str) -> None:
    assert thread_title(subject) == title


@pytest.mark.parametrize(
    "subject, is_reply",
    [("[eng] Re: Weekly plan", True), ("Antw: Weekly plan", True), ("[eng] Weekly plan", False)],
)
def test_replies_are_recognised_behind_list_tags(subject: str, is_reply: bool) -> None:
    raw = f"From: a@example.com\r\nSubject: {subject}\r\n\r\nText\r\n".encode()
    assert parse_message(raw).is_reply is is_reply


def test_headers_of_encoded_sender() -> None:
    raw = (
        b"From: =?utf-8?q?J=C3=BCrgen?= <Juergen@Example.COM>\r\n"
        b"Message-ID: <m1@example.com>\r\nSubject: x\r\n\r\nbody\r\n"
    )
    headers = header_message(raw)
    assert sender_address(headers) == "juergen@example.com"
    assert message_id_of(headers) == "<m1@example.com>"


def test_latin1_body_and_attachment() -> None:
    raw = (
        b"From: a@example.com\r\nTo: eng@t.test\r\nSubject: caf\xe9\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
        b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        b"Caf\xe9 is open.\r\n--B\r\nContent-Type: text/csv; name=a.csv\r\n"
        b"Content-Disposition: attachment; filename=a.csv\r\n\r\nx,y\r\n--B--\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.text == "Café is open."
    assert [(a.filename, a.data.strip()) for a in parsed.attachments] == [("a.csv", b"x,y")]
    assert parsed.classification.kind == "human"


def test_message_without_headers_or_body_does_not_crash() -> None:
    parsed = parse_message(b"\r\n")
    assert parsed.from_address == "" and parsed.text == ""


# Found by tests/unit/test_fuzz_ingest.py and tests/e2e/test_fuzz_store.py ----------------


def test_nul_and_8bit_header_bytes_never_reach_the_database() -> None:
    raw = (
        b"From: J\xc3\xbcrgen <j\xc3\xbcrgen@example.com\x00>\r\nSubject: caf\xe9\x00 \r\n"
        b"Message-ID: <\xe9\x00@example.com>\r\nReferences: <r\x00@example.com>\r\n"
        b"\r\nHi\x00 there\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.from_address == "jürgen@example.com"
    assert (parsed.from_name, parsed.subject) == ("Jürgen", "café ")
    assert parsed.message_id == "<é@example.com>" and parsed.references == ["<r@example.com>"]
    assert parsed.text == "Hi there"


@pytest.mark.parametrize(
    "charset, body, text",
    [
        # Escape codecs are not charsets: they would make a NUL and a lone surrogate here.
        (b"unicode-escape", rb"C:\new \ud800 \x00 done", r"C:\new \ud800 \x00 done"),
        (b"raw-unicode-escape", rb"a \ud800", r"a \ud800"),
        # UTF-7 can encode a lone surrogate; such a body is read as UTF-8 instead.
        (b"utf-7", b"a +2AA- b", "a +2AA- b"),
        (b"utf-7", b"a +AOk- b", "a é b"),
        # Bytes-to-bytes codecs are not charsets either; this one used to make the whole raw
        # message, headers and all, the posted text.
        (b"hex", b"caf\xe9 \x81", "café \ufffd"),
    ],
)
def test_a_charset_that_is_not_one_cannot_corrupt_the_text(
    charset: bytes, body: bytes, text: str
) -> None:
    raw = (
        b"From: a@example.com\r\nSubject: s\r\nContent-Type: text/plain; charset="
        + charset
        + b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + body
        + b"\r\n"
    )
    assert parse_message(raw).text == text


def test_encoded_words_in_bogus_charsets_are_decoded_and_titles_can_be_mailed() -> None:
    # A title with an encoded word the email package cannot decode, next to non-ASCII text,
    # made every mail with it in the Subject (posted-as receipts, digests) fail to render.
    raw = (
        b"From: =?bogus?q?J=C3=BCrgen?= <a@example.com>\r\n"
        b"Subject: =?base64?Q?=E2=80=AB=D7=A9=D7=9C=D7=95=D7=9D?= =?x?B?4oCr?= \xc2\xa7 "
        b"=?utf-8?B?PT91bmtub3duP1E/PUUyPz0=?=\r\n\r\nHi\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.from_name == "Jürgen"
    assert "=?" not in parsed.subject and parsed.subject.startswith("\u202bשלום\u202b §")
    message = EmailMessage()
    message["Subject"] = f"Posted to {thread_title(parsed.subject)}: please check"
    message.set_content("x")
    assert message.as_bytes()


@pytest.mark.parametrize(
    "raw",
    [
        # A multipart whose start delimiter never comes, in a message with no epilogue or
        # that is not a multipart itself: mail-parser's epilogue recovery raised.
        b"From: a@example.com\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=O\r\n\r\n"
        b"--O\r\nContent-Type: text/plain\r\n\r\nThe text.\r\n"
        b"--O\r\nContent-Type: multipart/alternative; boundary=I\r\n\r\nno delimiter\r\n",
        b"From: a@example.com\r\nSubject: s\r\nContent-Type: message/rfc822\r\n\r\n"
        b"Subject: inner\r\nContent-Type: multipart/mixed; boundary=O\r\n\r\n"
        b"--O\r\nContent-Type: text/plain\r\n\r\nThe text.\r\n"
        b"--O\r\nContent-Type: multipart/alternative; boundary=I\r\n\r\nno delimiter\r\n--O--\r\n",
    ],
)
def test_mime_mail_parser_chokes_on_is_still_read(raw: bytes) -> None:
    assert "The text." in parse_message(raw).text


@pytest.mark.parametrize("charset", [b'"\xe9"', b"bogus"])
def test_an_attached_message_with_8bit_text_in_an_unknown_charset_is_kept(charset: bytes) -> None:
    # A non-ASCII label made mail-parser raise; an unknown one made the attachment vanish.
    raw = (
        b"From: a@example.com\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=O\r\n\r\n"
        b"--O\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        b"--O\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=a.eml"
        b"\r\n\r\nSubject: inner\r\nContent-Type: text/plain; charset=" + charset + b"\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xe9\r\n--O--\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.text.startswith("See attached.")
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("a.eml", "message/rfc822")
    ]
    assert parsed.attachments[0].data.startswith(b"Subject: inner\n")


def test_a_subject_of_many_unfinished_encoded_words_is_read_in_linear_time() -> None:
    # The stdlib's encoded-word pattern (which classification used) is quadratic on this:
    # 42 s for a 96 KB subject, within the 100,000-character line limit.
    subject = b"=?a?q?x " * 12_000
    folded = b"\r\n ".join(subject[i : i + 800] for i in range(0, len(subject), 800))
    raw = b"From: a@example.com\r\nSubject: " + folded + b"\r\n\r\nHi\r\n"
    started = time.perf_counter()
    parsed = parse_message(raw)
    assert time.perf_counter() - started < 5
    assert parsed.subject.startswith("= ?a?q?x = ?a?q?x")
