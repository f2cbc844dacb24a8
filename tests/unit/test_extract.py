"""Body selection and decoding from raw RFC 822 messages, HTML conversion, robustness."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp.extract import extract_reply, extract_reply_parts
from smtp.htmltext import html_to_text

HEAD = b"From: Ana <ana@example.com>\r\nTo: team@tidings.test\r\nSubject: Re: check-in\r\n"


def _multipart(plain: bytes, html: bytes, plain_headers: bytes, html_headers: bytes) -> bytes:
    return (
        HEAD + b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
        b"--b1\r\n" + plain_headers + b"\r\n" + plain + b"\r\n"
        b"--b1\r\n" + html_headers + b"\r\n" + html + b"\r\n--b1--\r\n"
    )


GMAIL_ALT = _multipart(
    b"Done =E2=80=94 merged.\r\n\r\nOn Mon, Mar 4, 2024 at 9:00 AM Bo <bo@example.com> wrote:=\r\n"
    b"\r\n> Merge?\r\n",
    b'<div dir="ltr">Done \xe2\x80\x94 merged.</div><div class="gmail_quote">On Mon wrote:'
    b"<blockquote>Merge?</blockquote></div>",
    b"Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Type: text/html; charset=UTF-8\r\n",
)

OUTLOOK_HTML_ONLY = (
    HEAD + b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=windows-1252\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(
        b'<html><head><style>p{margin:0}</style></head><body><p class="MsoNormal">'
        b"Caf\xe9 is booked.</p><p class=MsoNormal>&nbsp;</p><p class=MsoNormal>Thanks,</p>"
        b'<p class=MsoNormal>Lea</p><div id="divRplyFwdMsg"><b>From:</b> Bo</div>'
        b"<div>Can you book?</div></body></html>"
    )
)

MISLABELLED_1252 = (
    HEAD + b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\n"
    b"It\x92s \x93done\x94.\r\n\r\nOn Mon, 4 Mar 2024, Bo <bo@example.com> wrote:\r\n> ?\r\n"
)

SHIFT_JIS = (
    HEAD
    + b"Content-Type: text/plain; charset=Shift_JIS\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    + "了解しました。\r\n\r\n2024年3月4日(月) 9:00 Bo <bo@example.com>:\r\n> 確認?\r\n".encode(
        "cp932"
    )
)

FLOWED = (
    HEAD + b"Content-Type: text/plain; charset=utf-8; format=flowed\r\n\r\n"
    b"This paragraph was typed as one long line and wrapped by the \r\n"
    b"client when it was sent.\r\n\r\nOn Mon, 4 Mar 2024, Bo <bo@example.com> wrote:\r\n> Hi\r\n"
)

APPLE_PLAIN = (
    HEAD + b"Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
    b"Line one stays.\r\nLine two stays.\r\n\r\nSent from my iPad\r\n\r\n"
    b"> On Mar 4, 2024, at 09:00, Bo <bo@example.com> wrote:\r\n>\r\n> Status?\r\n"
)

RAW_CASES: list[tuple[str, bytes, str]] = [
    ("gmail-multipart-qp", GMAIL_ALT, "Done — merged."),
    ("outlook-html-base64-cp1252", OUTLOOK_HTML_ONLY, "Café is booked.\n\nThanks,\nLea"),
    ("mislabelled-windows-1252", MISLABELLED_1252, "It’s “done”."),
    ("shift-jis", SHIFT_JIS, "了解しました。"),
    (
        "format-flowed",
        FLOWED,
        "This paragraph was typed as one long line and wrapped by the client when it was sent.",
    ),
    ("apple-mail-ipad", APPLE_PLAIN, "Line one stays.\nLine two stays."),
]


@pytest.mark.parametrize(("name", "raw", "expected"), RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_raw_messages(name: str, raw: bytes, expected: str) -> None:
    assert extract_reply(raw) == expected


def test_str_body_and_parts_agree() -> None:
    body = "Yes.\n\nOn Mon, 4 Mar 2024, Bo <bo@example.com> wrote:\n> ?\n"
    assert extract_reply(body) == extract_reply_parts(body).text == "Yes."


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (
            "<p>Plan:</p><ul><li>ship <b>importer</b></li><li>see "
            '<a href="https://x.example/doc">doc</a></li></ul>',
            "Plan:\n\n- ship **importer**\n- see [doc](https://x.example/doc)",
        ),
        (
            '<div style="display:none">preheader junk</div><div>Visible</div>'
            '<img src="https://t.example/p.gif" width="1" height="1"><script>x()</script>',
            "Visible",
        ),
        (
            '<div>Top</div><div class="moz-cite-prefix">On X wrote:</div>'
            "<blockquote>q</blockquote>",
            "Top",
        ),
        ('<div>Top</div><div class="yahoo_quoted">old</div>', "Top"),
        ('<div>Top</div><div class="protonmail_quote">old</div>', "Top"),
        ('<div>Top</div><div id="OLK_SRC_BODY_SECTION">old</div>', "Top"),
        ("<div>Top</div><hr><b>From:</b> old", "Top"),
        ("<blockquote>question?</blockquote><div>answer</div>", "> question?\nanswer"),
        (
            "<ul><li><div>ship <b>importer</b></div></li><li><p>fix bug</p></li></ul>",
            "- ship **importer**\n- fix bug",
        ),
        (
            '<div class="moz-cite-prefix">On 3/4/24 8:15 AM, Bo wrote:<br></div>'
            '<blockquote type="cite">q</blockquote><p>answer</p>',
            "On 3/4/24 8:15 AM, Bo wrote:\n> q\n\nanswer",
        ),
    ],
)
def test_html_to_text(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\x01\x02",
        b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\nbroken',
        b"Subject: =?utf-8?B?broken?=\r\nContent-Type: text/plain; charset=bogus-9\r\n\r\nHi\xff",
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!",
        b"Content-Type: text/html\r\n\r\n<div><b><i>unclosed",
        b"Content-Type: multipart/alternative\r\n\r\nno boundary at all",
    ],
)
def test_broken_mime_never_raises(raw: bytes) -> None:
    assert isinstance(extract_reply(raw), str)


def test_broken_charset_still_returns_text() -> None:
    raw = b"Content-Type: text/plain; charset=bogus-9\r\n\r\nHello there\r\n"
    assert extract_reply(raw) == "Hello there"


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600))
def test_property_raw_bytes_never_raise(raw: bytes) -> None:
    text = extract_reply(HEAD + b"\r\n" + raw)
    assert "\x00" not in text


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_property_html_never_raises(fragment: str) -> None:
    assert "\x00" not in extract_reply("<div>" + fragment + "</div>")


def _raw_base64(body: str, ctype: str = "text/plain") -> bytes:
    return (
        HEAD
        + f"Content-Type: {ctype}; charset=utf-8\r\n".encode()
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(body.encode("utf-8"))
    )


def test_large_base64_reply_is_trimmed() -> None:
    body = "Yes.\n\nOn Mon, 4 Mar 2024, Bo <bo@example.com> wrote:\n" + "> old line\n" * 80_000
    reply = extract_reply_parts(_raw_base64(body))
    assert reply.text == "Yes."
    assert reply.confident


def test_large_8bit_body_is_kept_whole() -> None:
    body = "On 1 2 3 4 5\n" * 50_000 + "ok\n\n\n" * 50_000
    raw = HEAD + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body.encode()
    assert extract_reply(raw).split() == body.split()


def test_many_mime_parts_keep_the_first_ones() -> None:
    part = b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nA line in a part.\r\n"
    raw = HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + part * 20_000 + b"--b--"
    text = extract_reply(raw)
    assert text.startswith("A line in a part.")
    assert 0 < text.count("A line in a part.") <= 100


def test_deep_blockquote_nesting() -> None:
    html = "<div>Yes.</div>" + "<blockquote>q " * 60_000
    assert extract_reply(html) == "Yes."
    assert extract_reply(_raw_base64(html, "text/html")) == "Yes."


def test_huge_html_keeps_its_text_past_the_element_budget() -> None:
    html = "<html><body>" + "<div>word\n" * 100_000 + "</body></html>"
    text = extract_reply(html)
    assert text.split() == ["word"] * 100_000


def test_budget_running_out_inside_a_blockquote_drops_the_history() -> None:
    html = "<div>New</div><blockquote type=cite>" + "<div>old</div>" * 5_000 + "</blockquote>"
    assert extract_reply(html) == "New"


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400))
def test_property_raw_plain_lines_come_from_the_body(body: str) -> None:
    raw = HEAD + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body.encode("utf-8")
    text = extract_reply(raw)
    assert "\x00" not in text
    source = body.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped:
            assert stripped in source or stripped.lstrip("> ").strip() in source
