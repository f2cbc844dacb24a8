"""Forwarded mail: finding the forwarded message in each client's shape, and rendering it.

Messages are built with the stdlib `email` package in the shapes real clients send (Gmail,
Apple Mail, Thunderbird, Outlook, Yahoo, mutt; English, German, French, Spanish, Dutch), plus
real forwards from the shared corpus. Every positive case checks what a member sees in the
archive: the forwarded text is there, its sender/date/subject are shown, the note is kept.
"""

from __future__ import annotations

import json
import os
import time
from email.header import Header
from email.message import EmailMessage, Message
from email.policy import SMTP
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.render import render_markdown
from smtp.extract import extract_reply
from smtp.forward import Forward, _find, find_forward, forward_markdown

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
HOSTILE = SHARED / "hostile"
REPLY_CASES = SHARED / "replies" / "cases.jsonl"

JANE = "Jane Doe <jane@example.org>"


# --- message builders -----------------------------------------------------------------------


def _headers(msg: Message, subject: str) -> None:
    msg["From"] = "Ana Lima <ana@example.com>"
    msg["To"] = "launch@team.tidings.test"
    msg["Subject"] = subject
    msg["Message-ID"] = "<fwd-1@example.com>"


def plain(subject: str, body: str) -> bytes:
    msg = EmailMessage()
    _headers(msg, subject)
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP)


def alternative(subject: str, text: str, html: str) -> bytes:
    msg = EmailMessage()
    _headers(msg, subject)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg.as_bytes(policy=SMTP)


def html_only(subject: str, html: str) -> bytes:
    msg = EmailMessage()
    _headers(msg, subject)
    msg.set_content(html, subtype="html")
    return msg.as_bytes(policy=SMTP)


def original(text: str = "Hi all,\n\nWe launch on Thursday.\n") -> EmailMessage:
    """The message being forwarded, as the original sender's client wrote it."""
    msg = EmailMessage()
    msg["From"] = JANE
    msg["To"] = "Team <team@example.org>"
    msg["Date"] = "Mon, 02 Nov 2026 10:00:00 +0100"
    msg["Subject"] = "Launch plan"
    msg.set_content(text)
    return msg


def attached(subject: str, note: str | None, inner: Message) -> bytes:
    """Outlook's / Thunderbird's "forward as attachment": the original as message/rfc822."""
    msg = EmailMessage()
    _headers(msg, subject)
    if note is not None:
        msg.set_content(note)
    msg.add_attachment(inner)
    return msg.as_bytes(policy=SMTP)


def must_find(raw: bytes) -> Forward:
    found = find_forward(raw)
    assert found is not None, "not recognised as a forward"
    return found


def assert_shown(fwd: Forward, *, body: str, sender: str = JANE) -> str:
    """The rendered update shows the sender with its address, and the forwarded text inside
    a blockquote under the "Forwarded message" marker; returns the rendered HTML."""
    html = str(render_markdown(forward_markdown(fwd)))
    assert "<strong>Forwarded message</strong>" in html
    shown = sender.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert shown in html
    quote = html[html.index("<blockquote>") :]
    assert body in quote
    return html


# --- inline forwards: plain text, each client ----------------------------------------------

GMAIL_TEXT = (
    "FYI, this is the plan for next week.\n\n"
    "-- \nAna Lima\nProduct\n\n"
    "---------- Forwarded message ---------\n"
    "From: Jane Doe <jane@example.org>\n"
    "Date: Mon, Nov 2, 2026 at 10:00 AM\n"
    "Subject: Launch plan\n"
    "To: Team <team@example.org>\n\n\n"
    "Hi all,\n\nWe launch on Thursday.\n"
)

# (client, subject, text, note, date, subject of the original, a line of its body)
PLAIN_CASES: list[tuple[str, str, str, str, str, str, str]] = [
    (
        "gmail",
        "Fwd: Launch plan",
        GMAIL_TEXT,
        "FYI, this is the plan for next week.",
        "Mon, Nov 2, 2026 at 10:00 AM",
        "Launch plan",
        "We launch on Thursday.",
    ),
    (
        "apple-mail",
        "Fwd: Launch plan",
        "See below.\n\nBegin forwarded message:\n\n"
        "From: Jane Doe <jane@example.org>\n"
        "Subject: Launch plan\n"
        "Date: 2 November 2026 at 10:00:00 CET\n"
        "To: Team <team@example.org>\n\n"
        "Hi all,\n\nWe launch on Thursday.\n",
        "See below.",
        "2 November 2026 at 10:00:00 CET",
        "Launch plan",
        "We launch on Thursday.",
    ),
    (
        "apple-mail-quoted",
        "Fwd: Launch plan",
        "See below.\n\n> Begin forwarded message:\n>\n"
        "> From: Jane Doe <jane@example.org>\n"
        "> Subject: Launch plan\n"
        "> Date: 2 November 2026 at 10:00:00 CET\n"
        "> To: Team <team@example.org>\n>\n"
        "> Hi all,\n>\n> We launch on Thursday.\n",
        "See below.",
        "2 November 2026 at 10:00:00 CET",
        "Launch plan",
        "We launch on Thursday.",
    ),
    (
        "thunderbird",
        "Fwd: Launch plan",
        "FYI\n\n\n-------- Forwarded Message --------\n"
        "Subject: \tLaunch plan\n"
        "Date: \tMon, 2 Nov 2026 10:00:00 +0100\n"
        "From: \tJane Doe <jane@example.org>\n"
        "To: \tTeam <team@example.org>\n\n\n\n"
        "Hi all,\n\nWe launch on Thursday.\n",
        "FYI",
        "Mon, 2 Nov 2026 10:00:00 +0100",
        "Launch plan",
        "We launch on Thursday.",
    ),
    (
        "outlook",
        "FW: Launch plan",
        "Please review.\n\n"
        "________________________________\n"
        "From: Jane Doe <jane@example.org>\n"
        "Sent: Monday, November 2, 2026 10:00 AM\n"
        "To: Team <team@example.org>\n"
        "Subject: Launch plan\n\n"
        "Hi all,\n\nWe launch on Thursday.\n",
        "Please review.",
        "Monday, November 2, 2026 10:00 AM",
        "Launch plan",
        "We launch on Thursday.",
    ),
    (
        "outlook-original-message",
        "FW: Launch plan",
        "Please review.\n\n"
        "-----Original Message-----\n"
        "From: Jane Doe [mailto:jane@example.org]\n"
        "Sent: Monday, November 2, 2026 10:00 AM\n"
        "To: Team\n"
        "Subject: Launch plan\n\n"
        "Hi all,\n\nWe launch on Thursday.\n",
        "Please review.",
        "Monday, November 2, 2026 10:00 AM",
        "Launch plan",
        "We launch on Thursday.",
    ),
    (
        "outlook-de",
        "WG: Startplan",
        "Bitte ansehen.\n\n"
        "________________________________\n"
        "Von: Jane Doe <jane@example.org>\n"
        "Gesendet: Montag, 2. November 2026 10:00\n"
        "An: Team <team@example.org>\n"
        "Betreff: Startplan\n\n"
        "Hallo zusammen,\n\nwir starten am Donnerstag.\n",
        "Bitte ansehen.",
        "Montag, 2. November 2026 10:00",
        "Startplan",
        "wir starten am Donnerstag.",
    ),
    (
        "gmail-de",
        "WG: Startplan",
        "Zur Info.\n\n"
        "---------- Weitergeleitete Nachricht ---------\n"
        "Von: Jane Doe <jane@example.org>\n"
        "Date: Mo., 2. Nov. 2026 um 10:00 Uhr\n"
        "Subject: Startplan\n"
        "To: <team@example.org>\n\n\n"
        "Hallo zusammen,\n\nwir starten am Donnerstag.\n",
        "Zur Info.",
        "Mo., 2. Nov. 2026 um 10:00 Uhr",
        "Startplan",
        "wir starten am Donnerstag.",
    ),
    (
        "thunderbird-de",
        "WG: Startplan",
        "Zur Info.\n\n-------- Weitergeleitete Nachricht --------\n"
        "Betreff: \tStartplan\n"
        "Datum: \tMon, 2 Nov 2026 10:00:00 +0100\n"
        "Von: \tJane Doe <jane@example.org>\n"
        "An: \tteam@example.org\n\n"
        "Hallo zusammen,\n\nwir starten am Donnerstag.\n",
        "Zur Info.",
        "Mon, 2 Nov 2026 10:00:00 +0100",
        "Startplan",
        "wir starten am Donnerstag.",
    ),
    (
        "outlook-fr",
        "TR: Plan de lancement",
        "Pour info.\n\n"
        "________________________________\n"
        "De : Jane Doe <jane@example.org>\n"
        "Envoyé : lundi 2 novembre 2026 10:00\n"
        "À : Équipe <team@example.org>\n"
        "Objet : Plan de lancement\n\n"
        "Bonjour à tous,\n\nnous lançons jeudi.\n",
        "Pour info.",
        "lundi 2 novembre 2026 10:00",
        "Plan de lancement",
        "nous lançons jeudi.",
    ),
    (
        "gmail-fr",
        "TR: Plan de lancement",
        "Pour info.\n\n"
        "---------- Message transféré ---------\n"
        "De : Jane Doe <jane@example.org>\n"
        "Date: lun. 2 nov. 2026 à 10:00\n"
        "Subject: Plan de lancement\n"
        "To: <team@example.org>\n\n\n"
        "Bonjour à tous,\n\nnous lançons jeudi.\n",
        "Pour info.",
        "lun. 2 nov. 2026 à 10:00",
        "Plan de lancement",
        "nous lançons jeudi.",
    ),
    (
        "thunderbird-fr",
        "TR: Plan de lancement",
        "Pour info.\n\n-------- Message transféré --------\n"
        "Sujet : \tPlan de lancement\n"
        "Date : \tMon, 2 Nov 2026 10:00:00 +0100\n"
        "De : \tJane Doe <jane@example.org>\n"
        "Pour : \tteam@example.org\n\n"
        "Bonjour à tous,\n\nnous lançons jeudi.\n",
        "Pour info.",
        "Mon, 2 Nov 2026 10:00:00 +0100",
        "Plan de lancement",
        "nous lançons jeudi.",
    ),
    (
        "gmail-es",
        "RV: Plan de lanzamiento",
        "Para que lo veáis.\n\n"
        "---------- Mensaje reenviado ---------\n"
        "De: Jane Doe <jane@example.org>\n"
        "Date: lun, 2 nov 2026 a las 10:00\n"
        "Subject: Plan de lanzamiento\n"
        "To: <team@example.org>\n\n\n"
        "Hola a todos,\n\nlanzamos el jueves.\n",
        "Para que lo veáis.",
        "lun, 2 nov 2026 a las 10:00",
        "Plan de lanzamiento",
        "lanzamos el jueves.",
    ),
    (
        "outlook-nl",
        "Doorst: Lanceerplan",
        "Ter info.\n\n"
        "________________________________\n"
        "Van: Jane Doe <jane@example.org>\n"
        "Verzonden: maandag 2 november 2026 10:00\n"
        "Aan: Team <team@example.org>\n"
        "Onderwerp: Lanceerplan\n\n"
        "Hallo allemaal,\n\nwe lanceren donderdag.\n",
        "Ter info.",
        "maandag 2 november 2026 10:00",
        "Lanceerplan",
        "we lanceren donderdag.",
    ),
    (
        "yahoo",
        "Fwd: Launch plan",
        "Look at this.\n\n\n----- Forwarded Message -----\n"
        "From: Jane Doe <jane@example.org>\n"
        "To: Team <team@example.org>\n"
        "Sent: Monday, November 2, 2026, 10:00:00 AM GMT+1\n"
        "Subject: Launch plan\n\n"
        "Hi all,\n\nWe launch on Thursday.\n",
        "Look at this.",
        "Monday, November 2, 2026, 10:00:00 AM GMT+1",
        "Launch plan",
        "We launch on Thursday.",
    ),
]


@pytest.mark.parametrize(
    ("subject", "text", "note", "date", "original_subject", "line"),
    [case[1:] for case in PLAIN_CASES],
    ids=[case[0] for case in PLAIN_CASES],
)
def test_inline_forward_from_each_client(
    subject: str, text: str, note: str, date: str, original_subject: str, line: str
) -> None:
    fwd = must_find(plain(subject, text))
    assert fwd.note == note
    assert fwd.sender == JANE
    assert fwd.date == date
    assert fwd.subject == original_subject
    assert line in fwd.body
    # Neither the separator nor the header block is repeated in the forwarded text.
    assert "From:" not in fwd.body and "Von:" not in fwd.body and "De :" not in fwd.body
    html = assert_shown(fwd, body=line)
    assert html.index(note) < html.index("Forwarded message")
    assert f"Subject: {original_subject}" in html


@pytest.mark.parametrize(
    "subject",
    [
        "Fwd: Launch plan",
        "FWD: Launch plan",
        "Fw: Launch plan",
        "[launch] Fwd: Launch plan",
        "[Fwd: Launch plan]",
        "Fwd[2]: Launch plan",
        "TR : Plan",
        "I: Piano di lancio",
        "ENC: Plano",
        "VB: Plan",
        "PD: Plan",
        "转发：计划",
    ],
)
def test_forward_subject_prefixes(subject: str) -> None:
    fwd = must_find(plain(subject, GMAIL_TEXT))
    assert fwd.body == "Hi all,\n\nWe launch on Thursday."


@pytest.mark.parametrize("subject", ["Re: Fwd: Launch plan", "AW: WG: Startplan", "Launch plan"])
def test_a_reply_to_a_forward_is_not_a_forward(subject: str) -> None:
    # Answering a forwarded thread is a reply in that thread: its quoted forward is history.
    assert find_forward(plain(subject, GMAIL_TEXT)) is None


def test_gmail_forward_without_a_note_keeps_the_whole_message() -> None:
    text = GMAIL_TEXT[GMAIL_TEXT.index("----------") :]
    fwd = must_find(plain("Fwd: Launch plan", text))
    assert fwd.note == ""
    assert fwd.body == "Hi all,\n\nWe launch on Thursday."
    markdown = forward_markdown(fwd)
    assert markdown.startswith("**Forwarded message** from Jane Doe &lt;jane@example.org&gt;")
    assert "> Hi all,\n>\n> We launch on Thursday." in markdown


def test_the_forwarders_signature_stays_out_of_the_note() -> None:
    fwd = must_find(plain("Fwd: Launch plan", GMAIL_TEXT))
    assert "Ana Lima" not in fwd.note and "Product" not in fwd.note
    assert "FYI" in forward_markdown(fwd)


def test_mutt_forward_names_the_sender_on_its_marker_line() -> None:
    text = (
        "Forwarding for the record.\n\n"
        "----- Forwarded message from Jane Doe <jane@example.org> -----\n\n"
        "Date: Mon, 2 Nov 2026 10:00:00 +0100\n"
        "From: Jane Doe <jane@example.org>\n"
        "To: team@example.org\n"
        "Subject: Launch plan\n\n"
        "We launch on Thursday.\n\n"
        "----- End forwarded message -----\n"
    )
    fwd = must_find(plain("Fwd: Launch plan", text))
    assert fwd.note == "Forwarding for the record."
    assert fwd.body == "We launch on Thursday."  # the end marker is not part of the message
    assert_shown(fwd, body="We launch on Thursday.")


def test_text_written_under_a_quoted_forward_belongs_to_the_note() -> None:
    text = (
        "Hello\n\nBegin forwarded message:\n\n"
        '> From: "Jane Doe" <jane@example.org>\n'
        "> Date: 2 November 2026 10:00:00 CET\n"
        "> Subject: Launch plan\n>\n"
        "> We launch on Thursday.\n\n"
        "What do you all think?\n"
    )
    fwd = must_find(plain("Fwd: Launch plan", text))
    assert fwd.note == "Hello\n\nWhat do you all think?"
    assert fwd.body == "We launch on Thursday."
    assert fwd.sender == '"Jane Doe" <jane@example.org>'


def test_inline_forward_of_a_forward_with_a_note_in_between_keeps_both() -> None:
    inner = GMAIL_TEXT[GMAIL_TEXT.index("----------") :]
    text = (
        "Ana's note.\n\n---------- Forwarded message ---------\n"
        "From: Bo Chen <bo@example.org>\nDate: Tue, Nov 3, 2026 at 9:00 AM\n"
        "Subject: Fwd: Launch plan\nTo: <ana@example.com>\n\n\n"
        "Bo's comment on it.\n\n" + inner
    )
    fwd = must_find(plain("Fwd: Fwd: Launch plan", text))
    assert fwd.note == "Ana's note."
    assert fwd.sender == "Bo Chen <bo@example.org>"
    # Bo wrote something, so his message is the content, with Jane's inside it.
    assert fwd.body.startswith("Bo's comment on it.")
    assert "We launch on Thursday." in fwd.body


def test_inline_bare_reforward_shows_the_innermost_message() -> None:
    inner = GMAIL_TEXT[GMAIL_TEXT.index("----------") :]
    text = (
        "Ana's note.\n\n---------- Forwarded message ---------\n"
        "From: Bo Chen <bo@example.org>\nDate: Tue, Nov 3, 2026 at 9:00 AM\n"
        "Subject: Fwd: Launch plan\nTo: <ana@example.com>\n\n\n" + inner
    )
    fwd = must_find(plain("Fwd: Fwd: Launch plan", text))
    assert fwd.note == "Ana's note."
    assert fwd.sender == JANE
    assert fwd.body == "Hi all,\n\nWe launch on Thursday."


def test_wrapped_subject_in_the_header_block_is_joined() -> None:
    text = (
        "---------- Forwarded message ----------\n"
        "From: Jane Doe <jane@example.org>\n"
        "Date: Thu, Jan 28, 2026 at 4:00 PM\n"
        "Subject: A subject that\nspans two lines\n"
        "To: team@example.org\n\n\n"
        "Body text.\n"
    )
    fwd = must_find(plain("Fwd: A subject that spans two lines", text))
    assert fwd.subject == "A subject that spans two lines"
    assert fwd.body == "Body text."


def test_quoted_history_inside_the_forwarded_message_is_kept() -> None:
    text = (
        "FYI\n\n---------- Forwarded message ---------\n"
        "From: Jane Doe <jane@example.org>\nDate: Mon, Nov 2, 2026 at 10:00 AM\n"
        "Subject: Re: Launch plan\nTo: <team@example.org>\n\n\n"
        "Agreed, Thursday it is.\n\n"
        "On Sun, Nov 1, 2026 at 9:00 PM Bo Chen <bo@example.org> wrote:\n"
        "> Can we launch on Thursday?\n"
    )
    fwd = must_find(plain("Fwd: Re: Launch plan", text))
    assert "> Can we launch on Thursday?" in fwd.body
    html = assert_shown(fwd, body="Agreed, Thursday it is.")
    # The old question shows as a quote inside the forwarded quote.
    assert html.count("<blockquote>") == 2
    assert "Can we launch on Thursday?" in html


def test_a_trailing_quoted_copy_of_the_same_text_is_dropped() -> None:
    text = (
        "FYI\n\n---------- Forwarded message ---------\n"
        "From: Jane Doe <jane@example.org>\nSubject: Launch plan\n\n"
        "We launch on Thursday.\nBring snacks.\n\n"
        "> We launch on Thursday.\n> Bring snacks.\n"
    )
    fwd = must_find(plain("Fwd: Launch plan", text))
    assert fwd.body == "We launch on Thursday.\nBring snacks."
    assert forward_markdown(fwd).count("Bring snacks.") == 1


# --- inline forwards: HTML-only ------------------------------------------------------------

GMAIL_HTML = (
    '<div dir="ltr">FYI, this is the plan.<br clear="all"><div><br></div>'
    '<span class="gmail_signature_prefix">-- </span><br>'
    '<div dir="ltr" class="gmail_signature">Ana Lima<br>Product</div><br>'
    '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
    "---------- Forwarded message ---------<br>"
    'From: <strong class="gmail_sendername" dir="auto">Jane Doe</strong> '
    '<span dir="auto">&lt;<a href="mailto:jane@example.org">jane@example.org</a>&gt;</span><br>'
    "Date: Mon, Nov 2, 2026 at 10:00 AM<br>Subject: Launch plan<br>"
    'To: Team &lt;<a href="mailto:team@example.org">team@example.org</a>&gt;<br></div><br><br>'
    '<div dir="ltr">Hi all,<div><br></div><div>We launch on <b>Thursday</b>.</div>'
    '<div>Details: <a href="https://example.org/plan">the plan</a></div></div></div></div>'
)


def test_html_only_gmail_forward_keeps_the_forwarded_message() -> None:
    fwd = must_find(html_only("Fwd: Launch plan", GMAIL_HTML))
    assert fwd.note == "FYI, this is the plan."
    assert fwd.sender == JANE  # Gmail's <strong> around the name is not part of it
    assert fwd.date == "Mon, Nov 2, 2026 at 10:00 AM"
    assert fwd.subject == "Launch plan"
    assert "We launch on **Thursday**." in fwd.body
    assert "[the plan](https://example.org/plan)" in fwd.body
    html = assert_shown(fwd, body="<strong>Thursday</strong>")
    assert 'href="https://example.org/plan"' in html


def test_gmail_alternative_prefers_the_plain_text_part() -> None:
    fwd = must_find(alternative("Fwd: Launch plan", GMAIL_TEXT, GMAIL_HTML))
    assert fwd.body == "Hi all,\n\nWe launch on Thursday."
    assert fwd.note == "FYI, this is the plan for next week."


APPLE_HTML = (
    '<html><head><meta http-equiv="content-type" content="text/html; charset=utf-8"></head>'
    '<body style="overflow-wrap: break-word;"><div>See below.</div><div><br>'
    '<blockquote type="cite"><div>Begin forwarded message:</div>'
    '<br class="Apple-interchange-newline">'
    '<div style="margin: 0px;"><span style="font-family: Helvetica;"><b>From: </b></span>'
    '<span style="font-family: Helvetica;">Jane Doe &lt;'
    '<a href="mailto:jane@example.org">jane@example.org</a>&gt;<br></span></div>'
    '<div style="margin: 0px;"><span><b>Subject: </b></span><span><b>Launch plan</b><br>'
    "</span></div>"
    '<div style="margin: 0px;"><span><b>Date: </b></span>'
    "<span>2 November 2026 at 10:00:00 CET<br></span></div>"
    '<div style="margin: 0px;"><span><b>To: </b></span><span>team@example.org<br></span></div>'
    "<br><div><div>Hi all,</div><div><br></div><div>We launch on Thursday.</div></div>"
    "</blockquote></div><br></body></html>"
)

OUTLOOK_WEB_HTML = (
    '<html><body><div dir="ltr">Please review.</div>'
    '<div id="appendonsend"></div><hr style="display:inline-block;width:98%" tabindex="-1">'
    '<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri, sans-serif" style="font-size:11pt">'
    "<b>From:</b> Jane Doe &lt;jane@example.org&gt;<br><b>Sent:</b> Monday, November 2, 2026 "
    "10:00 AM<br><b>To:</b> Team &lt;team@example.org&gt;<br><b>Subject:</b> Launch plan</font>"
    "<div>&nbsp;</div></div><div>Hi all,</div><div>We launch on Thursday.</div></body></html>"
)

OUTLOOK_DESKTOP_HTML = (
    "<html><head><style>p.MsoNormal{margin:0cm}</style></head><body>"
    '<div class="WordSection1"><p class="MsoNormal">Please review.</p>'
    '<p class="MsoNormal">&nbsp;</p><div id="mail-editor-reference-message-container"><div>'
    '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">'
    '<p class="MsoNormal"><b>From:</b> Jane Doe &lt;jane@example.org&gt;<br>'
    "<b>Sent:</b> Monday, November 2, 2026 10:00 AM<br><b>To:</b> Team &lt;team@example.org&gt;"
    "<br><b>Subject:</b> Launch plan</p></div></div>"
    '<p class="MsoNormal">&nbsp;</p><p class="MsoNormal">Hi all,</p>'
    '<p class="MsoNormal">We launch on Thursday.</p></div></div></body></html>'
)

THUNDERBIRD_HTML = (
    '<html><head><meta http-equiv="content-type" content="text/html; charset=UTF-8"></head>'
    '<body><p>FYI<br></p><div class="moz-forward-container"><br><br>'
    "-------- Forwarded Message --------"
    '<table class="moz-email-headers-table" cellspacing="0" cellpadding="0" border="0"><tbody>'
    '<tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">Subject: </th>'
    "<td>Launch plan</td></tr>"
    '<tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">Date: </th>'
    "<td>Mon, 2 Nov 2026 10:00:00 +0100</td></tr>"
    '<tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">From: </th>'
    '<td>Jane Doe <a class="moz-txt-link-rfc2396E" href="mailto:jane@example.org">'
    "&lt;jane@example.org&gt;</a></td></tr>"
    '<tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">To: </th>'
    '<td><a class="moz-txt-link-abbreviated" href="mailto:team@example.org">'
    "team@example.org</a></td></tr></tbody></table><br><br>"
    "Hi all,<br>We launch on Thursday.<br></div></body></html>"
)


@pytest.mark.parametrize(
    ("subject", "markup", "note", "date"),
    [
        ("Fwd: Launch plan", APPLE_HTML, "See below.", "2 November 2026 at 10:00:00 CET"),
        (
            "FW: Launch plan",
            OUTLOOK_WEB_HTML,
            "Please review.",
            "Monday, November 2, 2026 10:00 AM",
        ),
        (
            "FW: Launch plan",
            OUTLOOK_DESKTOP_HTML,
            "Please review.",
            "Monday, November 2, 2026 10:00 AM",
        ),
        ("Fwd: Launch plan", THUNDERBIRD_HTML, "FYI", "Mon, 2 Nov 2026 10:00:00 +0100"),
    ],
    ids=["apple-mail", "outlook-web", "outlook-desktop", "thunderbird"],
)
def test_html_only_forward_from_each_client(
    subject: str, markup: str, note: str, date: str
) -> None:
    fwd = must_find(html_only(subject, markup))
    assert fwd.note == note
    assert fwd.sender == JANE
    assert fwd.date == date
    assert fwd.subject == "Launch plan"
    assert "We launch on Thursday." in fwd.body
    assert "Subject" not in fwd.body
    assert_shown(fwd, body="We launch on Thursday.")


# --- message/rfc822 ------------------------------------------------------------------------


def test_attached_message_with_a_note() -> None:
    fwd = must_find(attached("FW: Launch plan", "Please review the attached.\n", original()))
    assert fwd.note == "Please review the attached."
    assert fwd.sender == JANE
    assert fwd.date == "Mon, 02 Nov 2026 10:00:00 +0100"
    assert fwd.subject == "Launch plan"
    assert fwd.body == "Hi all,\n\nWe launch on Thursday."
    assert_shown(fwd, body="We launch on Thursday.")


def test_attached_message_without_a_note() -> None:
    fwd = must_find(attached("Launch plan", None, original()))
    assert fwd.note == ""
    assert forward_markdown(fwd).startswith("**Forwarded message** from Jane Doe")
    assert_shown(fwd, body="We launch on Thursday.")


def test_attached_message_with_an_html_note_quoting_a_thread() -> None:
    msg = EmailMessage()
    _headers(msg, "Re: Launch plan")
    msg.set_content(
        '<div dir="ltr">Here is the mail I meant.</div><div class="gmail_quote">'
        "On Sun, Bo Chen &lt;bo@example.org&gt; wrote:<blockquote>Which mail?</blockquote></div>",
        subtype="html",
    )
    msg.add_attachment(original())
    fwd = must_find(msg.as_bytes(policy=SMTP))
    # The note is an ordinary reply around the attachment: its own quoted history goes.
    assert fwd.note == "Here is the mail I meant."
    assert_shown(fwd, body="We launch on Thursday.")


def test_attached_message_whose_note_is_only_a_signature() -> None:
    fwd = must_find(attached("Fwd: Launch plan", "-- \nAna Lima\nProduct\n", original()))
    assert fwd.note == ""
    assert "Ana Lima" not in forward_markdown(fwd)


@pytest.mark.parametrize(
    ("charset", "text"),
    [
        ("iso-8859-1", "Café à 10 h, ordre du jour : budget."),
        ("windows-1252", "Café à 10 h — ordre du jour : budget."),  # the dash is cp1252-only
    ],
)
def test_attached_message_in_a_legacy_charset(charset: str, text: str) -> None:
    inner = Message()  # compat32: headers and body encoded in the legacy charset on the wire
    inner["From"] = Header("Zoë Martin", charset).encode() + " <zoe@example.fr>"
    inner["Date"] = "Mon, 02 Nov 2026 10:00:00 +0100"
    inner["Subject"] = Header("Réunion d'équipe", charset).encode()
    inner.set_payload(text + "\n", charset=charset)
    raw = attached("TR: Réunion", "Pour info.\n", inner)
    # Really sent in that charset: the label on the part and "é" as the single byte E9.
    assert charset.encode() in raw.lower() and b"Caf=E9" in raw
    fwd = must_find(raw)
    assert fwd.sender == "Zoë Martin <zoe@example.fr>"
    assert fwd.subject == "Réunion d'équipe"
    assert fwd.body == text
    assert fwd.note == "Pour info."
    assert_shown(fwd, body=text, sender="Zoë Martin <zoe@example.fr>")


def test_attached_html_only_message_is_converted_to_text() -> None:
    inner = EmailMessage()
    inner["From"] = JANE
    inner["Subject"] = "Launch plan"
    inner.set_content(
        '<div>Hi all,</div><div>We launch on <b>Thursday</b>.</div><div class="gmail_quote">'
        "On Sun Bo wrote:<blockquote>Can we launch Thursday?</blockquote></div>",
        subtype="html",
    )
    fwd = must_find(attached("Fwd: Launch plan", "FYI\n", inner))
    assert "We launch on **Thursday**." in fwd.body
    # In a forward, the history under Gmail's quote container is content, not trimmed away.
    assert "> Can we launch Thursday?" in fwd.body
    assert_shown(fwd, body="<strong>Thursday</strong>")


def test_inline_message_rfc822_part_is_a_forward() -> None:
    msg = EmailMessage()
    _headers(msg, "Launch plan")
    msg.set_content("Look at this one.\n")
    msg.add_attachment(original(), disposition="inline")
    fwd = must_find(msg.as_bytes(policy=SMTP))
    assert fwd.note == "Look at this one."
    assert_shown(fwd, body="We launch on Thursday.")


def test_bare_reforward_is_followed_to_the_message_it_carries() -> None:
    # Bo forwarded Jane's message as an attachment with no text; Ana forwards Bo's message.
    middle = EmailMessage()
    middle["From"] = "Bo Chen <bo@example.org>"
    middle["Subject"] = "Fwd: Launch plan"
    middle.add_attachment(original())
    fwd = must_find(attached("Fwd: Launch plan", "See what Bo sent.\n", middle))
    assert fwd.sender == JANE
    assert fwd.body == "Hi all,\n\nWe launch on Thursday."


def _chain(depth: int, *, with_text: bool) -> EmailMessage:
    msg = original(f"Level {depth} text.\n")
    msg.replace_header("Subject", f"Level {depth}")
    for level in range(depth - 1, 0, -1):
        outer = EmailMessage()
        outer["From"] = f"Person {level} <p{level}@example.org>"
        outer["Subject"] = f"Level {level}"
        if with_text:
            outer.set_content(f"Level {level} text.\n")
        outer.add_attachment(msg)
        msg = outer
    return msg


def test_deeply_nested_forwards_show_the_first_forwarded_message() -> None:
    raw = attached("Fwd: Level 1", "The whole chain.\n", _chain(60, with_text=True))
    started = time.perf_counter()
    fwd = must_find(raw)
    assert time.perf_counter() - started < 2
    assert fwd.sender == "Person 1 <p1@example.org>"
    assert fwd.body == "Level 1 text."
    assert_shown(fwd, body="Level 1 text.", sender="Person 1 <p1@example.org>")


def test_deeply_nested_bare_reforwards_stop_at_a_bounded_depth() -> None:
    raw = attached("Fwd: Level 1", "The whole chain.\n", _chain(60, with_text=False))
    started = time.perf_counter()
    fwd = must_find(raw)
    assert time.perf_counter() - started < 2
    # Too deep to reach the text at the bottom: still a marked forward of the chain's top part.
    assert fwd.note == "The whole chain."
    assert fwd.subject.startswith("Level ")
    assert "**Forwarded message** from Person " in forward_markdown(fwd)


def test_thousands_of_nested_message_parts_terminate() -> None:
    # Hand-built: the stdlib generator itself cannot serialise this deep a tree.
    raw = b"Subject: Fwd: deep\r\nFrom: ana@example.com\r\n"
    inner = b"From: Jane <jane@example.org>\r\nSubject: bottom\r\n\r\nBottom text.\r\n"
    for _ in range(3000):
        inner = b"Content-Type: message/rfc822\r\nFrom: x@example.org\r\n\r\n" + inner
    started = time.perf_counter()
    fwd = find_forward(raw + inner)
    assert time.perf_counter() - started < 2
    assert fwd is not None and fwd.sender == "x@example.org"


# --- not forwards --------------------------------------------------------------------------


def test_a_normal_reply_is_not_a_forward() -> None:
    text = (
        "Sounds good, Thursday works.\n\n"
        "On Mon, Nov 2, 2026 at 10:00 AM Jane Doe <jane@example.org> wrote:\n"
        "> We launch on Thursday.\n"
    )
    raw = plain("Re: Launch plan", text)
    assert find_forward(raw) is None
    assert extract_reply(raw) == "Sounds good, Thursday works."


def test_an_outlook_reply_with_a_header_block_is_not_a_forward() -> None:
    text = (
        "Thursday works.\n\n________________________________\n"
        "From: Jane Doe <jane@example.org>\nSent: Monday, November 2, 2026 10:00 AM\n"
        "To: Team <team@example.org>\nSubject: Launch plan\n\nWe launch on Thursday.\n"
    )
    assert find_forward(plain("RE: Launch plan", text)) is None


def test_forward_subject_without_a_forwarded_block_is_not_a_forward() -> None:
    # The documented choice: nothing to attribute, so the message is an ordinary new post and
    # reply extraction keeps every word of it.
    text = "Copying the plan here:\n\nWe launch on Thursday.\nBring snacks.\n"
    raw = plain("Fwd: Launch plan", text)
    assert find_forward(raw) is None
    assert extract_reply(raw) == text.strip()


def test_a_bounce_quoting_the_original_is_not_a_forward() -> None:
    report = EmailMessage()
    report["From"] = "MAILER-DAEMON@example.net"
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report.set_content("This is the mail system. Your message could not be delivered.\n")
    report.add_attachment(original())
    report.replace_header("Content-Type", 'multipart/report; report-type="delivery-status"')
    report.set_boundary("report-boundary")
    assert find_forward(report.as_bytes(policy=SMTP)) is None


# --- rendering -----------------------------------------------------------------------------


def test_markdown_layout_note_header_and_quoted_body() -> None:
    fwd = Forward(
        note="FYI",
        sender=JANE,
        date="Mon, 2 Nov 2026 10:00",
        subject="Launch plan",
        body="line 1\nline 2",
    )
    assert forward_markdown(fwd) == (
        "FYI\n\n"
        "**Forwarded message** from Jane Doe &lt;jane@example.org&gt;, Mon, 2 Nov 2026 10:00\n"
        "Subject: Launch plan\n\n"
        "> line 1\n> line 2"
    )


def test_header_values_cannot_inject_markup() -> None:
    fwd = Forward(
        note="",
        sender="Mallory [click me](https://evil.example) <script>x()</script> <m@evil.example>",
        date="*today*",
        subject="<img src=x onerror=alert(1)> `code` _x_ \\ #1",
        body="Hello.",
    )
    html = str(render_markdown(forward_markdown(fwd)))
    header = html[: html.index("<blockquote>")]
    # No link, tag, emphasis or code span is made from what the original sender wrote ...
    for made in ("<a ", "<script", "<img", "<em>", "<code>"):
        assert made not in header
    # ... and all of it is shown as typed, so a reader sees exactly who it claims to be from.
    assert "[click me](https://evil.example)" in header
    assert "&lt;script&gt;x()&lt;/script&gt; &lt;m@evil.example&gt;" in header
    assert "*today*" in header and "`code` _x_ \\ #1" in header


def test_header_values_stay_on_their_line() -> None:
    fwd = Forward(note="", sender="Jane\n# Heading\n> quote", date="", subject="", body="Hi")
    first = forward_markdown(fwd).split("\n")[0]
    assert first == "**Forwarded message** from Jane \\# Heading &gt; quote"


def test_unknown_headers_are_left_out() -> None:
    fwd = Forward(note="", sender="", date="", subject="", body="Just this.")
    assert forward_markdown(fwd) == "**Forwarded message**\n\n> Just this."


def test_quote_levels_in_the_body_do_not_run_together() -> None:
    fwd = Forward(note="", sender=JANE, date="", subject="", body="Yes.\n> Ship it?\nDone.")
    html = str(render_markdown(forward_markdown(fwd)))
    inner = html[html.index("<blockquote>", html.index("<blockquote>") + 1) :]
    assert "Ship it?" in inner and "Done." not in inner.split("</blockquote>")[0]


# --- real messages from the shared corpus --------------------------------------------------


def corpus_file(relative: str) -> bytes:
    path = HOSTILE / relative
    if not path.is_file():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"shared corpus missing at {path}")
        pytest.skip(f"shared corpus not found at {path}")
    return path.read_bytes()


def test_corpus_gmail_inline_forward() -> None:
    fwd = must_find(corpus_file("ruby-mail/plain_emails/raw_email8.eml"))
    assert fwd.note == "We should not include these files or vcards as attachments."
    assert fwd.sender == "xxxxx xxxxxx <xxxxxxxx@xxx.com>"
    assert fwd.date == "May 8, 2005 1:17 PM"
    assert fwd.subject == "Signed email causes file attachments"
    assert "Test attachments oddly encoded with japanese charset." in fwd.body


def test_corpus_apple_mail_attached_message_with_mbox_from_line() -> None:
    fwd = must_find(corpus_file("ruby-mail/attachment_emails/attachment_message_rfc822.eml"))
    assert fwd.note == "This is the first part."
    assert fwd.sender == "Test Tester <xxxx@xxxx.com>"
    assert fwd.subject == "Another PDF"
    assert "Just attaching another PDF" in fwd.body


def test_corpus_netscape_forward_with_signature_only_note() -> None:
    fwd = must_find(corpus_file("mime-tools/mp-msg-rfc822.eml"))  # "[Fwd: Re: 34Mbit/s Netz]"
    assert fwd.note == ""
    assert fwd.sender == "deuschle@mnh.telekom.de (Guenter Deuschle)"
    assert fwd.subject == "Re: 34Mbit/s Netz"
    assert fwd.body.startswith("Hallo Herr Specht,")
    assert "Verfügung" in fwd.body  # quoted-printable iso-8859-1 decoded


def test_corpus_forward_of_a_forward() -> None:
    fwd = must_find(corpus_file("mime-tools/re-fwd.eml"))
    assert fwd.sender == "user0"
    assert fwd.subject == "hello world"
    assert fwd.body.startswith("This is the original message.")


def test_corpus_gmail_forward_of_a_forward_shows_the_innermost_message() -> None:
    fwd = must_find(corpus_file("flanker/multi-received-headers.eml"))
    assert fwd.sender == "Bob <example@example.com>"
    assert fwd.subject == "Please forward this email to me"
    assert fwd.body.startswith("Forward please")
    assert "Forwarded message" not in fwd.body


def test_corpus_base64_encoded_embedded_message() -> None:
    fwd = must_find(corpus_file("mime4j/base64encoded-rfc822message.eml"))
    assert fwd.body == "Text body"


def test_corpus_bounce_is_not_a_forward() -> None:
    assert find_forward(corpus_file("bounces/mimekit/delivery-status.eml")) is None


def reply_case(case_id: str) -> str:
    if not REPLY_CASES.is_file():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"shared corpus missing at {REPLY_CASES}")
        pytest.skip(f"shared corpus not found at {REPLY_CASES}")
    with REPLY_CASES.open(encoding="utf-8") as handle:
        for line in handle:
            case = json.loads(line)
            if case["id"] == case_id:
                return str(case["body"])
    pytest.fail(f"no case {case_id} in {REPLY_CASES}")


@pytest.mark.parametrize(
    ("case_id", "note", "sender", "subject", "body_start"),
    [
        (
            "email_reply_trimmer/forwarded_apple",
            "This email has been forwarded from Apple Mail.",
            "Foo Discourse <foo@discourse.org>",
            "This email is going to be forwarded",
            "Lorem ipsum dolor sit amet",
        ),
        (
            "email_reply_trimmer/forwarded_gmail",
            "This email has been forwarded from Gmail.",
            "Foo Discourse <foo@discourse.org>",
            "This email is going to be forwarded",
            "Lorem ipsum dolor sit amet",
        ),
        (
            "email_reply_trimmer/forwarded_message",
            "",
            "Some One <foo@bar.com>",
            "Some subject that spans over 2 lines",
            "This is a forwarded email.",
        ),
        (
            "quotequail/unwrap_05_forward",
            "Hello",
            "Some One <some@example.com>",
            "Fwd: Hottest Startups",
            "This is interesting.",
        ),
        (
            "quotequail/unwrap_19_forward",
            "Text before",
            "Foo Bar <from@example.com>",
            "Re: Some subject",
            "Text after",
        ),
    ],
)
def test_corpus_reply_cases_forwarded_bodies(
    case_id: str, note: str, sender: str, subject: str, body_start: str
) -> None:
    # These bodies are labelled for reply extraction (note only); posted as a forward, the
    # forwarded message under the note must survive.
    fwd = must_find(plain("Fwd: shared", reply_case(case_id)))
    assert fwd.note == note
    assert fwd.sender == sender
    assert fwd.subject == subject
    assert fwd.body.startswith(body_start)
    assert_shown(fwd, body=body_start, sender=sender)


def test_hostile_corpus_never_raises() -> None:
    if not HOSTILE.is_dir():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"hostile corpus missing at {HOSTILE}")
        pytest.skip(f"hostile corpus not found at {HOSTILE}")
    paths = sorted(HOSTILE.rglob("*.eml"))
    assert len(paths) > 1000
    found = 0
    started = time.perf_counter()
    for path in paths:
        raw = path.read_bytes()
        # The unguarded core: find_forward's catch-all must never be what saves the day.
        result = _find(raw)
        assert result == find_forward(raw), path
        if result is not None:
            found += 1
            assert isinstance(forward_markdown(result), str)
    assert time.perf_counter() - started < 60
    assert found > 20  # the corpus has real forwards; they are recognised


# --- robustness ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    for raw in (data, b"Subject: Fwd: x\r\n\r\n" + data):
        result = _find(raw)
        assert result is None or isinstance(forward_markdown(result), str)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("> -_:\nFromDate*Subject@<>abc\t")), max_size=400))
def test_marker_like_text_never_raises(text: str) -> None:
    raw = plain("Fwd: x", "---------- Forwarded message ---------\n" + text)
    result = _find(raw)
    assert result is not None
    assert "Forwarded message" in forward_markdown(result)
