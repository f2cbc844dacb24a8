"""Parsing raw mail into what processing needs."""

from __future__ import annotations

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
