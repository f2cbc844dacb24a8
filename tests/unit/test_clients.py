"""Reply extraction from whole raw messages, built the way real mail clients send them.

Every case is written here: a raw RFC 822 reply as a given client produces it in a given
language (headers with the client's localised reply prefix, MIME structure, charset, transfer
encoding, quote structure and attribution wording) and the text the member newly wrote. The
project's conventions: greeting and sign-off stay; quoted history, attribution lines, header
blocks, `-- ` signatures, app footers and legal notices go; format=flowed is unwrapped; HTML-only
mail becomes Markdown-ish text; an inline reply keeps the one quoted line each answer answers.
"""

from __future__ import annotations

import base64
import html
import quopri
import re
import zlib
from email.header import Header
from email.utils import formataddr

import pytest

from smtp import extract_reply

# Building blocks ---------------------------------------------------------------------------

Person = tuple[str, str]


def _codec(content_type: str) -> str:
    match = re.search(r'charset="?([^";\s]+)', content_type, re.IGNORECASE)
    label = match.group(1).lower() if match else "us-ascii"
    # Senders encode Shift_JIS and ks_c_5601-1987 with the vendor supersets.
    return {"shift_jis": "cp932", "ks_c_5601-1987": "cp949"}.get(label, label)


def _encode_body(text: str, codec: str, cte: str) -> bytes:
    if cte == "quoted-printable":
        lines = [quopri.encodestring(line.encode(codec)) for line in text.split("\n")]
        return b"\r\n".join(line.replace(b"\n", b"\r\n") for line in lines)
    data = text.replace("\n", "\r\n").encode(codec)
    if cte == "base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    return data


def leaf(
    content_type: str, text: str, cte: str = "quoted-printable", *, codec: str | None = None
) -> bytes:
    """A single body part: its Content-* headers, a blank line and the encoded body."""
    head = f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    return head.encode("ascii") + _encode_body(text, codec or _codec(content_type), cte)


def image_part(cid: str, name: str) -> bytes:
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )
    head = (
        f'Content-Disposition: inline;\r\n\tfilename="{name}"\r\n'
        f'Content-Type: image/png;\r\n\tname="{name}"\r\n'
        f"Content-Transfer-Encoding: base64\r\nContent-Id: <{cid}>\r\n\r\n"
    )
    return head.encode("ascii") + base64.encodebytes(png).replace(b"\n", b"\r\n")


def multi(content_type: str, boundary: str, *parts: bytes) -> bytes:
    head = f'Content-Type: {content_type};\r\n\tboundary="{boundary}"\r\n\r\n'.encode("ascii")
    sep = f"--{boundary}\r\n".encode("ascii")
    body = b"".join(sep + part + b"\r\n" for part in parts)
    return head + body + f"--{boundary}--\r\n".encode("ascii")


def _addr(person: Person, charset: str) -> str:
    return formataddr(person, charset=charset)


def _subject(text: str, charset: str) -> str:
    if text.isascii():
        return text
    return Header(text, charset, header_name="Subject").encode().replace("\n", "\r\n")


def message(
    *,
    frm: Person,
    to: Person,
    subject: str,
    date: str,
    mid: str,
    body: bytes,
    extra: tuple[tuple[str, str], ...] = (),
    hcharset: str = "utf-8",
) -> bytes:
    """A whole message: envelope headers (RFC 2047-encoded) on top of a body part."""
    seed = zlib.crc32((subject + frm[1] + mid).encode())
    parent = f"<{seed:08x}.parent@{to[1].split('@')[1]}>"
    domain = mid.split("@")[-1]
    headers = [
        ("From", _addr(frm, hcharset)),
        ("To", _addr(to, hcharset)),
        ("Subject", _subject(subject, hcharset)),
        ("Date", date),
        ("Message-ID", f"<{mid.split('@')[0]}{seed:x}@{domain}>"),
        ("In-Reply-To", parent),
        ("References", parent),
        *extra,
    ]
    if not any(name == "MIME-Version" for name, _ in extra):
        headers.append(("MIME-Version", "1.0"))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return head.encode("ascii") + body


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _quote(text: str, blank: str = ">") -> str:
    return "\n".join(f"> {line}" if line else blank for line in text.split("\n"))


def _divs(text: str) -> str:
    return "".join(
        f"<div>{_esc(line)}</div>" if line else "<div><br></div>" for line in text.split("\n")
    )


def _mso(text: str) -> str:
    return "".join(
        f"<p class=MsoNormal>{_esc(line)}<o:p></o:p></p>"
        if line
        else "<p class=MsoNormal><o:p>&nbsp;</o:p></p>"
        for line in text.split("\n")
    )


def _brs(text: str) -> str:
    return "<br>".join(_esc(line) for line in text.split("\n"))


def flow(text: str, width: int = 72) -> str:
    """RFC 3676 format=flowed: long lines soft-wrapped, each continued line ending in a space."""
    out: list[str] = []
    for line in text.split("\n"):
        if line == "-- " or len(line) <= width:
            out.append(line)
            continue
        prefix = ""
        if line.startswith(">"):
            body = line.lstrip(">")
            prefix = ">" * (len(line) - len(body)) + " "
            line = body.lstrip(" ")
        current = ""
        for word in line.split(" "):
            if current and len(prefix) + len(current) + len(word) > width:
                out.append(prefix + current)
                current = ""
            current += word + " "
        out.append(prefix + current.rstrip(" "))
    return "\n".join(out)


# Clients -----------------------------------------------------------------------------------


def gmail(
    *,
    frm: Person,
    to: Person,
    subject: str,
    attr: str,
    new: str,
    quoted: str,
    sig: str = "",
    cte: str = "quoted-printable",
    direction: str = "ltr",
    date: str = "Mon, 4 Mar 2024 09:02:11 +0100",
) -> bytes:
    """Gmail web: multipart/alternative, UTF-8, `gmail_quote` + `gmail_attr`, `-- ` sig."""
    sig_plain = f"-- \n{sig}\n\n" if sig else ""
    plain = f"{new}\n\n{sig_plain}{attr}\n\n{_quote(quoted)}\n"
    sig_html = (
        f'<br clear="all"><div><br></div><span class="gmail_signature_prefix">-- </span><br>'
        f'<div dir="{direction}" class="gmail_signature">{_divs(sig)}</div>'
        if sig
        else ""
    )
    markup = (
        f'<div dir="{direction}">{_divs(new)}{sig_html}</div><br><div class="gmail_quote">'
        f'<div dir="{direction}" class="gmail_attr">{_esc(attr)}<br></div>'
        '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px '
        f'solid rgb(204,204,204);padding-left:1ex"><div dir="{direction}">{_divs(quoted)}'
        "</div></blockquote></div>\n"
    )
    body = multi(
        "multipart/alternative",
        f"000000000000{zlib.crc32(new.encode()):08x}0613e5b2",
        leaf('text/plain; charset="UTF-8"', plain, cte),
        leaf('text/html; charset="UTF-8"', markup, cte),
    )
    return message(
        frm=frm,
        to=to,
        subject=f"Re: {subject}",
        date=date,
        body=body,
        mid="CAJx9kQ+Tid7Vz1@mail.gmail.com",
    )


def gmail_forward(*, frm: Person, to: Person, subject: str, note: str, forwarded: str) -> bytes:
    header = (
        "---------- Forwarded message ---------\n"
        "From: Jonas Weber <jonas@example.de>\n"
        "Date: Mon, Mar 4, 2024 at 8:15 AM\n"
        f"Subject: {subject}\n"
        f"To: {to[0]} <{to[1]}>\n"
    )
    plain = f"{note}\n\n{header}\n\n{forwarded}\n"
    markup = (
        f'<div dir="ltr">{_divs(note)}<br><div class="gmail_quote"><div dir="ltr" '
        f'class="gmail_attr">{_brs(_esc(header))}</div><br><br>{_divs(forwarded)}</div></div>'
    )
    body = multi(
        "multipart/alternative",
        "000000000000b7c41d0612e3f0a1",
        leaf('text/plain; charset="UTF-8"', plain),
        leaf('text/html; charset="UTF-8"', markup),
    )
    return message(
        frm=frm,
        to=to,
        subject=f"Fwd: {subject}",
        date="Mon, 4 Mar 2024 10:30:00 +0100",
        mid="CAF7fwd+Q1@mail.gmail.com",
        body=body,
    )


OUTLOOK_STYLE = (
    "<style><!--\n/* Font Definitions */\n@font-face {font-family:Aptos;}\n"
    "p.MsoNormal, li.MsoNormal, div.MsoNormal {margin:0cm;font-size:12.0pt;}\n--></style>"
)


def outlook(
    *,
    frm: Person,
    to: Person,
    subject: str,
    prefix: str,
    new: str,
    fields: tuple[tuple[str, str], ...],
    quoted: str,
    lang: str,
    charset: str = "utf-8",
    codec: str | None = None,
    cte: str = "quoted-printable",
    original: str = "",
    disclaimer: str = "",
    html_only: bool = False,
    date: str = "Mon, 4 Mar 2024 09:02:11 +0100",
) -> bytes:
    """Outlook for Windows (Word editor): localised From/Sent/To/Subject block under a
    border-top div in HTML; in text the same block, after "-----Original Message-----" in
    Outlook 2010 and older."""
    block = "\n".join(f"{name} {value}" for name, value in fields)
    block = block.replace("\n", " \n", 1)  # Outlook leaves a space after the From line
    sep = f"-----{original}-----\n" if original else ""
    tail = f"\n\n{disclaimer}" if disclaimer else ""
    plain = f"{new}{tail}\n\n{sep}{block}\n\n{quoted}\n"
    bold = "<br>\n".join(f"<b>{_esc(name)}</b> {_esc(value)}" for name, value in fields)
    bold = bold.replace(" :</b>", "&nbsp;:</b>")
    notice = f"<p class=MsoNormal><span style='font-size:8.0pt'>{_esc(disclaimer)}</span></p>"
    markup = (
        '<html xmlns:o="urn:schemas-microsoft-com:office:office" '
        'xmlns:w="urn:schemas-microsoft-com:office:word"><head>'
        f'<meta http-equiv=Content-Type content="text/html; charset={charset}">'
        '<meta name=Generator content="Microsoft Word 15 (filtered medium)">'
        f'{OUTLOOK_STYLE}</head><body lang={lang} link="#0563C1" vlink="#954F72" '
        "style='word-wrap:break-word'><div class=WordSection1>"
        f"{_mso(new)}{notice if disclaimer else ''}<p class=MsoNormal><o:p>&nbsp;</o:p></p>"
        + (f"<div><p class=MsoNormal>{sep.strip()}</p></div>" if sep else "")
        + "<div style='border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm'>"
        f"<p class=MsoNormal>{bold}<o:p></o:p></p></div>"
        f"<p class=MsoNormal><o:p>&nbsp;</o:p></p>{_mso(quoted)}</div></body></html>"
    )
    html_part = leaf(f'text/html; charset="{charset}"', markup, cte, codec=codec)
    if html_only:
        body = html_part
    else:
        body = multi(
            "multipart/alternative",
            "----=_NextPart_000_0041_01DA6E13.BE1A5C60",
            leaf(f'text/plain; charset="{charset}"', plain, cte, codec=codec),
            html_part,
        )
    extra = (
        ("X-Mailer", "Microsoft Outlook 16.0"),
        ("Thread-Index", "AQHabcdEfGhIjKlMnOpQrStUvWxYzA=="),
        ("Content-Language", lang.lower()),
    )
    return message(
        frm=frm,
        to=to,
        subject=f"{prefix} {subject}",
        date=date,
        body=body,
        extra=extra,
        mid="000001da6e0b$5c3d2a10$14b77e30$@" + frm[1].split("@")[1],
        hcharset=charset,
    )


def outlook_web(
    *,
    frm: Person,
    to: Person,
    subject: str,
    prefix: str,
    new_html: str,
    new_plain: str,
    fields: tuple[tuple[str, str], ...],
    quoted: str,
    html_only: bool = False,
) -> bytes:
    """Outlook on the web / new Outlook: `appendonsend` + `divRplyFwdMsg`, rule of underscores."""
    block = "\n".join(f"{name} {value}" for name, value in fields)
    plain = f"{new_plain}\n\n________________________________\n{block}\n\n{quoted}\n"
    bold = "<br>\n".join(f"<b>{_esc(name)}</b> {_esc(value)}" for name, value in fields)
    markup = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        '<style type="text/css" style="display:none;"> P {margin-top:0;margin-bottom:0;} '
        '</style></head><body dir="ltr">'
        f"{new_html}"
        '<div id="appendonsend"></div><hr style="display:inline-block;width:98%" tabindex="-1">'
        '<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri, sans-serif" style="font-size:'
        f'11pt" color="#000000">{bold}</font><div>&nbsp;</div></div>'
        f"<div>{_brs(quoted)}</div></body></html>"
    )
    html_part = leaf('text/html; charset="utf-8"', markup)
    if html_only:
        body = html_part
    else:
        body = multi(
            "multipart/alternative",
            "_000_AM9PR07MB7219B1C3D0E5F6A7B8C9AM9PR07MB7219eurp_",
            leaf('text/plain; charset="utf-8"', plain, "base64"),
            leaf('text/html; charset="utf-8"', markup, "base64"),
        )
    extra = (
        ("Thread-Topic", subject),
        ("Thread-Index", "AQHabc1234567890abcdefghijklmn=="),
        ("Accept-Language", "en-US"),
        ("X-MS-Has-Attach", ""),
        ("X-MS-TNEF-Correlator", ""),
    )
    if not subject.isascii():
        extra = extra[1:]
    return message(
        frm=frm,
        to=to,
        subject=f"{prefix} {subject}",
        date="Mon, 4 Mar 2024 08:02:11 +0000",
        mid="AM9PR07MB7219B1C3D0E5F6A7B8C9@AM9PR07MB7219.eurprd07.prod.outlook.com",
        body=body,
        extra=extra,
    )


def apple_mail(
    *,
    frm: Person,
    to: Person,
    subject: str,
    attr: str,
    new: str,
    quoted: str,
    footer: str = "",
    ios: bool = False,
    image: bool = False,
) -> bytes:
    """Apple Mail (macOS) and Mail on iOS: quoted attribution in text, `blockquote
    type="cite"` in HTML, multipart/related when an inline image is attached."""
    foot = f"{footer}\n\n" if footer else ""
    plain = f"{new}\n\n{foot}> {attr}\n> \n> \ufeff{_quote(quoted, '> ')[2:]}\n"
    img = '<div><img apple-inline="yes" src="cid:8F4E2B1A-1C3D@home" alt=""></div>'
    if ios:
        foot_html = f'<div dir="ltr"><br><div dir="ltr">{_esc(footer)}</div></div>'
        markup = (
            '<html><head><meta http-equiv="content-type" content="text/html; charset=utf-8">'
            f'</head><body dir="auto"><div dir="ltr">{_brs(new)}</div>'
            f"{img if image else ''}{foot_html if footer else ''}"
            f'<div dir="ltr"><br><blockquote type="cite">{_esc(attr)}<br><br></blockquote></div>'
            f'<blockquote type="cite"><div dir="ltr">\ufeff{_divs(quoted)}</div></blockquote>'
            "</body></html>"
        )
    else:
        markup = (
            '<html><head><meta http-equiv="content-type" content="text/html; charset=utf-8">'
            '</head><body style="overflow-wrap: break-word; -webkit-nbsp-mode: space; '
            f'line-break: after-white-space;">{_divs(new)}{img if image else ""}'
            f'<div><br><blockquote type="cite"><div>{_esc(attr)}</div><br '
            f'class="Apple-interchange-newline"><div><div>{_divs(quoted)}</div></div>'
            "</blockquote></div><br></body></html>"
        )
    html_part = leaf("text/html;\r\n\tcharset=utf-8", markup)
    if image:
        html_part = multi(
            'multipart/related;\r\n\ttype="text/html"',
            "Apple-Mail=_B2C3D4E5-F6A7-4B8C-9D0E-1F2A3B4C5D6E",
            html_part,
            image_part("8F4E2B1A-1C3D@home", "IMG_0412.png"),
        )
    body = multi(
        "multipart/alternative",
        "Apple-Mail=_A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C5D",
        leaf("text/plain;\r\n\tcharset=utf-8", plain),
        html_part,
    )
    if ios:
        extra = (("MIME-Version", "1.0 (1.0)"), ("X-Mailer", "iPhone Mail (21D61)"))
    else:
        extra = (
            ("MIME-Version", "1.0 (Mac OS X Mail 16.0 \\(3774.400.31\\))"),
            ("X-Mailer", "Apple Mail (2.3774.400.31)"),
        )
    return message(
        frm=frm,
        to=to,
        subject=f"Re: {subject}",
        date="Mon, 4 Mar 2024 09:02:11 +0100",
        mid="8C1F0E2A-4B3D-4E5F-9A6B-7C8D9E0F1A2B@" + frm[1].split("@")[1],
        body=body,
        extra=extra,
    )


def thunderbird(
    *,
    frm: Person,
    to: Person,
    subject: str,
    text: str,
    lang: str,
    charset: str = "UTF-8",
    html_markup: str = "",
) -> bytes:
    """Thunderbird: text/plain; format=flowed, 8bit (or HTML only when so configured)."""
    if html_markup:
        body = leaf(f"text/html; charset={charset}", html_markup, "8bit")
    else:
        body = leaf(f"text/plain; charset={charset}; format=flowed", flow(text), "8bit")
    extra = (
        (
            "User-Agent",
            "Mozilla Thunderbird",
        ),
        ("Content-Language", lang),
    )
    return message(
        frm=frm,
        to=to,
        subject=f"Re: {subject}",
        date="Mon, 4 Mar 2024 09:02:11 +0100",
        mid="3b9f1c2e-7d4a-4f0e-9c1b-5a6d7e8f9012@" + frm[1].split("@")[1],
        body=body,
        extra=extra,
        hcharset=charset.lower(),
    )


def yahoo(
    *, frm: Person, to: Person, subject: str, attr: str, new: str, quoted: str, footer: str = ""
) -> bytes:
    """Yahoo Mail: unquoted, indented history after an indented attribution; `yahoo_quoted`."""
    foot = f"{footer}\n\n" if footer else ""
    indented = "\n".join(f" {line}" for line in quoted.split("\n"))
    plain = f"{new}\n\n{foot}    {attr}  \n \n{indented}\n  \n"
    markup = (
        '<html><head></head><body><div class="ydp5e1f3a2byahoo-style-wrap" style="font-family:'
        f'Helvetica Neue, Helvetica, Arial, sans-serif;font-size:13px;">{_divs(new)}</div>'
        '<div id="yahoo_quoted_8812340651" class="yahoo_quoted"><div style="font-family:'
        f"'Helvetica Neue', Helvetica, Arial, sans-serif;font-size:13px;color:#26282a;\">"
        f"<div>{_esc(attr)}</div><div><br></div><div><br></div>"
        f'<div><div dir="ltr">{_divs(quoted)}</div></div></div></div></body></html>'
    )
    body = multi(
        "multipart/alternative",
        "----=_Part_2134567_1123581321.1709539331123",
        leaf("text/plain; charset=UTF-8", plain),
        leaf("text/html; charset=UTF-8", markup),
    )
    return message(
        frm=frm,
        to=to,
        subject=f"Re: {subject}",
        date="Mon, 4 Mar 2024 08:02:11 +0000 (UTC)",
        mid="1523456789.2134567.1709539331123@mail.yahoo.com",
        body=body,
        extra=(("X-Mailer", "WebService/1.1.22129 YMailNorrin"),),
    )


def proton(
    *, frm: Person, to: Person, subject: str, attr: str, new: str, quoted: str, footer: str = ""
) -> bytes:
    """Proton Mail: `protonmail_signature_block` then `protonmail_quote`."""
    foot = f"{footer}\n\n" if footer else ""
    plain = f"{new}\n\n{foot}{attr}\n\n{_quote(quoted)}\n"
    markup = (
        '<div style="font-family: Arial, sans-serif; font-size: 14px;">'
        f'{_divs(new)}</div><div style="font-family: Arial, sans-serif; font-size: 14px;">'
        '<br></div><div class="protonmail_signature_block" style="font-family: Arial, '
        'sans-serif; font-size: 14px;"><div class="protonmail_signature_block-proton">'
        f'{_esc(footer)}</div></div><div class="protonmail_quote">{_esc(attr)}<br><br>'
        f'<blockquote class="protonmail_quote" type="cite">{_divs(quoted)}</blockquote><br>'
        "</div>"
    )
    body = multi(
        "multipart/alternative",
        "b1_Zx3kP9qWmLrT8vY2nB5cD7fG1hJ4",
        leaf("text/plain; charset=utf-8", plain, "base64"),
        leaf("text/html; charset=utf-8", markup, "base64"),
    )
    return message(
        frm=frm,
        to=to,
        subject=f"Re: {subject}",
        date="Mon, 4 Mar 2024 08:02:11 +0000",
        mid="Xk2Pq8Wm3LrT9vY1nB6cD0fG=@proton.me",
        body=body,
    )


def outlook_mobile(
    *,
    frm: Person,
    to: Person,
    subject: str,
    new: str,
    footer: str,
    fields: tuple[tuple[str, str], ...],
    quoted: str,
    prefix: str = "Re:",
) -> bytes:
    """Outlook for iOS/Android: "Get Outlook for iOS<https://aka.ms/o0ukef>" then a rule."""
    block = "\n".join(f"{name} {value}" for name, value in fields)
    plain = f"{new}\n\n{footer}\n________________________________\n{block}\n\n{quoted}\n"
    link = re.sub(r"<(https://[^>]+)>", "", footer)
    bold = "<br>".join(f"<b>{_esc(name)}</b> {_esc(value)}" for name, value in fields)
    markup = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        f'</head><body><div dir="ltr">{_brs(new)}</div><div><br></div>'
        f'<div class="ms-outlook-mobile-signature"><div dir="ltr">{_esc(link)}</div></div>'
        '<div id="ms-outlook-mobile-body-separator-line" dir="ltr"><hr style="display:inline-'
        'block;width:98%" tabindex="-1"></div><div id="divRplyFwdMsg" dir="ltr"><font face='
        f'"Calibri, sans-serif" style="font-size:11pt" color="#000000">{bold}</font><div>'
        f"&nbsp;</div></div><div>{_brs(quoted)}</div></body></html>"
    )
    body = multi(
        "multipart/alternative",
        "_000_DB9PR02MB7420C5B8E1A4D2F3B6C7DB9PR02MB7420eurp_",
        leaf('text/plain; charset="utf-8"', plain, "base64"),
        leaf('text/html; charset="utf-8"', markup, "base64"),
    )
    return message(
        frm=frm,
        to=to,
        subject=f"{prefix} {subject}",
        date="Mon, 4 Mar 2024 08:02:11 +0000",
        mid="DB9PR02MB7420C5B8E1A4D2F3B6C7@DB9PR02MB7420.eurprd02.prod.outlook.com",
        body=body,
    )


def windows_mail(
    *,
    frm: Person,
    to: Person,
    subject: str,
    prefix: str,
    new: str,
    footer: str,
    fields: tuple[tuple[str, str], ...],
    quoted: str,
) -> bytes:
    """Mail for Windows 10: "Sent from Mail<link> for Windows" and `Name<mailto:addr>` fields."""
    block = "\n".join(f"{name} {value}" for name, value in fields)
    plain = f"{new}\n\n{footer}\n\n{block}\n\n{quoted}\n"
    markup = (
        '<html xmlns:o="urn:schemas-microsoft-com:office:office"><head><meta http-equiv='
        '"Content-Type" content="text/html; charset=utf-8"><meta name=Generator content='
        f'"Microsoft Word 15 (filtered medium)">{OUTLOOK_STYLE}</head><body lang=EN-US>'
        f"<div class=WordSection1>{_mso(new)}<p class=MsoNormal><o:p>&nbsp;</o:p></p>"
        f"<p class=MsoNormal>{_esc(re.sub(r'<[^>]+>', '', footer))}</p>"
        "<p class=MsoNormal><o:p>&nbsp;</o:p></p><div style='mso-element:para-border-div;"
        "border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm'>"
        f"<p class=MsoNormal>{'<br>'.join(_esc(line) for line in block.split(chr(10)))}</p>"
        f"</div><p class=MsoNormal><o:p>&nbsp;</o:p></p>{_mso(quoted)}</div></body></html>"
    )
    body = multi(
        "multipart/alternative",
        "_A1F2B3C4-D5E6-47F8-9A0B-1C2D3E4F5A6B_",
        leaf('text/plain; charset="utf-8"', plain),
        leaf('text/html; charset="utf-8"', markup),
    )
    return message(
        frm=frm,
        to=to,
        subject=f"{prefix} {subject}",
        date="Mon, 4 Mar 2024 09:02:11 +0100",
        mid="5f3e2d1c.1c69fb81.9a2b3.4c5d@mx.google.com",
        body=body,
    )


# People ------------------------------------------------------------------------------------

JONAS = ("Jonas Weber", "jonas@example.de")
MARCUS = ("Marcus Lee", "marcus@example.com")
KATRIN = ("Katrin Schulz", "katrin@example.de")
JEAN = ("Jean Dupont", "jean@example.fr")
CLAIRE = ("Claire Martin", "claire@example.fr")
ANA = ("Ana García", "ana@example.es")
LUCIA = ("Lucía Fernández", "lucia@example.es")
MARCO = ("Marco Rossi", "marco@example.it")
GIULIA = ("Giulia Bianchi", "giulia@example.it")
JOAO = ("João Silva", "joao@example.com.br")
ANA_BR = ("Ana Souza", "ana@example.com.br")
JAN_NL = ("Jan de Vries", "jan@example.nl")
SANNE = ("Sanne Bakker", "sanne@example.nl")
ERIK = ("Erik Johansson", "erik@example.se")
ANNA = ("Anna Lindberg", "anna@example.se")
METTE = ("Mette Hansen", "mette@example.dk")
LARS = ("Lars Nielsen", "lars@example.dk")
OLA = ("Ola Nordmann", "ola@example.no")
KARI = ("Kari Hansen", "kari@example.no")
MATTI = ("Matti Virtanen", "matti@example.fi")
LIISA = ("Liisa Korhonen", "liisa@example.fi")
JAN_PL = ("Jan Kowalski", "jan@example.pl")
PIOTR = ("Piotr Nowak", "piotr@example.pl")
JAN_CZ = ("Jan Novák", "jan@example.cz")
PETR = ("Petr Dvořák", "petr@example.cz")
IVAN = ("Иван Петров", "ivan@example.ru")
OLGA = ("Ольга Смирнова", "olga@example.ru")
OLENA = ("Олена Коваленко", "olena@example.ua")
TARAS = ("Тарас Шевчук", "taras@example.ua")
MEHMET = ("Mehmet Yılmaz", "mehmet@example.com.tr")
AYSE = ("Ayşe Demir", "ayse@example.com.tr")
TARO = ("山田太郎", "taro@example.jp")
HANAKO = ("佐藤花子", "hanako@example.jp")
WEI = ("张伟", "zhangwei@example.cn")
LINA = ("李娜", "lina@example.cn")
MINSU = ("김민수", "minsu@example.kr")
JIYOUNG = ("박지영", "jiyoung@example.kr")
JOAN = ("Joan Puig", "joan@example.cat")
MONTSE = ("Montse Vidal", "montse@example.cat")
DANA = ("דנה לוי", "dana@example.co.il")
YOSSI = ("יוסי כהן", "yossi@example.co.il")
AHMED = ("أحمد علي", "ahmed@example.com")
SARA = ("سارة حسن", "sara@example.com")


def _fields(*pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple(zip(pairs[::2], pairs[1::2], strict=True))


def _who(person: Person) -> str:
    return f"{person[0]} <{person[1]}>"


CASES: list = []
# The same messages with the text/plain alternative relabelled, so only the HTML is read: the
# HTML a client sends must give the same new text as its plain-text alternative.
HTML_CASES: list = []


def case(name: str, raw: bytes, expected: str) -> None:
    CASES.append(pytest.param(raw, expected, id=name))
    if b"Content-Type: text/plain" in raw and b"Content-Type: text/html" in raw:
        html_only = raw.replace(b"Content-Type: text/plain", b"Content-Type: text/x-plain")
        HTML_CASES.append(pytest.param(html_only, expected, id=name))


# Gmail (web), one per language -------------------------------------------------------------

EN_NEW = (
    "Hi Jonas,\n\nShipped the billing export on Tuesday and started on the SSO spike.\n"
    "Blocked on the staging certificate — can you renew it?\n\nThanks,\nMarcus"
)
case(
    "gmail-en-signature",
    gmail(
        frm=MARCUS,
        to=JONAS,
        subject="What did you work on this week?",
        new=EN_NEW,
        attr="On Mon, Mar 4, 2024 at 8:15 AM Jonas Weber <jonas@example.de> wrote:",
        quoted="Hi Marcus,\n\nWhat did you work on this week?\n\nJonas",
        sig="Marcus Lee\nStaff Engineer, Tidings\n+1 415 555 0100",
    ),
    EN_NEW,
)

DE_NEW = (
    "Hallo Jonas,\n\ndiese Woche habe ich den Export fertiggestellt und die Übersetzungen "
    "geprüft.\nNächste Woche: Lasttests.\n\nViele Grüße\nKatrin"
)
case(
    "gmail-de",
    gmail(
        frm=KATRIN,
        to=JONAS,
        subject="Woran hast du diese Woche gearbeitet?",
        new=DE_NEW,
        attr="Am Mo., 4. März 2024 um 08:15 Uhr schrieb Jonas Weber <jonas@example.de>:",
        quoted="Hallo Katrin,\n\nworan hast du diese Woche gearbeitet?\n\nJonas",
    ),
    DE_NEW,
)

FR_NEW = (
    "Bonjour Jean,\n\nCette semaine : migration de la base terminée, tests de charge en cours.\n"
    "Je serai absente vendredi.\n\nBonne journée,\nClaire"
)
case(
    "gmail-fr",
    gmail(
        frm=CLAIRE,
        to=JEAN,
        subject="Point hebdomadaire",
        new=FR_NEW,
        attr="Le lun. 4 mars 2024 à 08:15, Jean Dupont <jean@example.fr> a écrit :",
        quoted="Bonjour Claire,\n\nSur quoi as-tu travaillé cette semaine ?\n\nJean",
    ),
    FR_NEW,
)

ES_NEW = (
    "Hola Ana:\n\nEsta semana terminé la integración con el calendario y revisé las "
    "traducciones.\n¿Nos vemos el jueves?\n\nSaludos,\nLucía"
)
case(
    "gmail-es",
    gmail(
        frm=LUCIA,
        to=ANA,
        subject="¿En qué trabajaste esta semana?",
        new=ES_NEW,
        attr="El lun, 4 mar 2024 a las 8:15, Ana García (<ana@example.es>) escribió:",
        quoted="Hola Lucía:\n\n¿En qué trabajaste esta semana?\n\nAna",
    ),
    ES_NEW,
)

IT_NEW = (
    "Ciao Marco,\n\nquesta settimana ho chiuso i ticket del modulo fatture.\n"
    "Lunedì inizio con i test di carico.\n\nGrazie,\nGiulia"
)
case(
    "gmail-it",
    gmail(
        frm=GIULIA,
        to=MARCO,
        subject="Aggiornamento settimanale",
        new=IT_NEW,
        attr="Il giorno lun 4 mar 2024 alle ore 08:15 Marco Rossi <marco@example.it> ha scritto:",
        quoted="Ciao Giulia,\n\nsu cosa hai lavorato questa settimana?\n\nMarco",
    ),
    IT_NEW,
)

PT_NEW = (
    "Oi João,\n\nEssa semana terminei a migração do banco e comecei a revisar os relatórios.\n"
    "Nenhum bloqueio por enquanto.\n\nAbraços,\nAna"
)
case(
    "gmail-pt-br",
    gmail(
        frm=ANA_BR,
        to=JOAO,
        subject="No que você trabalhou esta semana?",
        new=PT_NEW,
        attr="Em seg., 4 de mar. de 2024 às 08:15, João Silva <joao@example.com.br> escreveu:",
        quoted="Oi Ana,\n\nNo que você trabalhou esta semana?\n\nJoão",
    ),
    PT_NEW,
)

NL_NEW = (
    "Hoi Jan,\n\nDeze week heb ik de koppeling met het boekhoudpakket afgerond.\n"
    "Volgende week pak ik de rapportages op.\n\nGroet,\nSanne"
)
case(
    "gmail-nl",
    gmail(
        frm=SANNE,
        to=JAN_NL,
        subject="Waar heb je deze week aan gewerkt?",
        new=NL_NEW,
        attr="Op ma 4 mrt 2024 om 08:15 schreef Jan de Vries <jan@example.nl>:",
        quoted="Hoi Sanne,\n\nWaar heb je deze week aan gewerkt?\n\nJan",
    ),
    NL_NEW,
)

SV_NEW = (
    "Hej Erik,\n\nDen här veckan blev importen klar och jag har börjat på rapporterna.\n"
    "Inga hinder just nu.\n\nHälsningar,\nAnna"
)
case(
    "gmail-sv",
    gmail(
        frm=ANNA,
        to=ERIK,
        subject="Vad har du jobbat med den här veckan?",
        new=SV_NEW,
        attr="Den mån 4 mars 2024 kl 08:15 skrev Erik Johansson <erik@example.se>:",
        quoted="Hej Anna,\n\nVad har du jobbat med den här veckan?\n\nErik",
    ),
    SV_NEW,
)

DA_NEW = (
    "Hej Mette\n\nJeg har færdiggjort eksporten og rettet to fejl i kalenderen.\n"
    "Næste uge: test på mobil.\n\nVh\nLars"
)
case(
    "gmail-da",
    gmail(
        frm=LARS,
        to=METTE,
        subject="Hvad har du arbejdet på i denne uge?",
        new=DA_NEW,
        attr="Den man. 4. mar. 2024 kl. 08.15 skrev Mette Hansen <mette@example.dk>:",
        quoted="Hej Lars\n\nHvad har du arbejdet på i denne uge?\n\nMette",
    ),
    DA_NEW,
)

NB_NEW = (
    "Hei Ola,\n\nDenne uka har jeg fullført importen og begynt på rapportene.\n"
    "Ingen hindringer.\n\nHilsen\nKari"
)
case(
    "gmail-nb",
    gmail(
        frm=KARI,
        to=OLA,
        subject="Hva har du jobbet med denne uka?",
        new=NB_NEW,
        attr="man. 4. mar. 2024 kl. 08:15 skrev Ola Nordmann <ola@example.no>:",
        quoted="Hei Kari,\n\nHva har du jobbet med denne uka?\n\nOla",
    ),
    NB_NEW,
)

FI_NEW = (
    "Hei Matti,\n\nTällä viikolla sain tuonnin valmiiksi ja aloitin raporttien parissa.\n"
    "Ei esteitä.\n\nTerveisin\nLiisa"
)
case(
    "gmail-fi",
    gmail(
        frm=LIISA,
        to=MATTI,
        subject="Mitä teit tällä viikolla?",
        new=FI_NEW,
        attr="ma 4. maalisk. 2024 klo 8.15 Matti Virtanen (matti@example.fi) kirjoitti:",
        quoted="Hei Liisa,\n\nMitä teit tällä viikolla?\n\nMatti",
    ),
    FI_NEW,
)

PL_NEW = (
    "Cześć Janie,\n\nW tym tygodniu skończyłem eksport i poprawiłem błędy w kalendarzu.\n"
    "W przyszłym tygodniu testy wydajności.\n\nPozdrawiam,\nPiotr"
)
case(
    "gmail-pl",
    gmail(
        frm=PIOTR,
        to=JAN_PL,
        subject="Nad czym pracowałeś w tym tygodniu?",
        new=PL_NEW,
        attr="pon., 4 mar 2024 o 08:15 Jan Kowalski <jan@example.pl> napisał(a):",
        quoted="Cześć Piotrze,\n\nNad czym pracowałeś w tym tygodniu?\n\nJan",
    ),
    PL_NEW,
)

CS_NEW = (
    "Ahoj Jane,\n\ntento týden jsem dokončil export a opravil chyby v kalendáři.\n"
    "Příští týden zátěžové testy.\n\nDíky,\nPetr"
)
case(
    "gmail-cs",
    gmail(
        frm=PETR,
        to=JAN_CZ,
        subject="Na čem jsi tento týden pracoval?",
        new=CS_NEW,
        attr="po 4. 3. 2024 v 8:15 odesílatel Jan Novák <jan@example.cz> napsal:",
        quoted="Ahoj Petře,\n\nna čem jsi tento týden pracoval?\n\nJan",
    ),
    CS_NEW,
)

RU_NEW = (
    "Привет, Иван!\n\nНа этой неделе закончила экспорт и исправила ошибки в календаре.\n"
    "На следующей — нагрузочное тестирование.\n\nСпасибо,\nОльга"
)
case(
    "gmail-ru-base64",
    gmail(
        frm=OLGA,
        to=IVAN,
        subject="Над чем ты работала на этой неделе?",
        new=RU_NEW,
        attr="пн, 4 мар. 2024 г. в 08:15, Иван Петров <ivan@example.ru>:",
        quoted="Привет, Ольга!\n\nНад чем ты работала на этой неделе?\n\nИван",
        cte="base64",
    ),
    RU_NEW,
)

UK_NEW = (
    "Привіт, Олено!\n\nЦього тижня завершив експорт і виправив помилки в календарі.\n"
    "Наступного тижня — тестування.\n\nДякую,\nТарас"
)
case(
    "gmail-uk-base64",
    gmail(
        frm=TARAS,
        to=OLENA,
        subject="Над чим ти працював цього тижня?",
        new=UK_NEW,
        attr="пн, 4 бер. 2024 р. о 08:15 Олена Коваленко <olena@example.ua> пише:",
        quoted="Привіт, Тарасе!\n\nНад чим ти працював цього тижня?\n\nОлена",
        cte="base64",
    ),
    UK_NEW,
)

TR_NEW = (
    "Merhaba Mehmet,\n\nBu hafta dışa aktarma özelliğini bitirdim ve takvim hatalarını "
    "düzelttim.\nGelecek hafta yük testleri var.\n\nTeşekkürler,\nAyşe"
)
case(
    "gmail-tr",
    gmail(
        frm=AYSE,
        to=MEHMET,
        subject="Bu hafta neler yaptın?",
        new=TR_NEW,
        attr="Pzt, 4 Mar 2024 tarihinde 08:15 saatinde Mehmet Yılmaz "
        "<mehmet@example.com.tr> şunu yazdı:",
        quoted="Merhaba Ayşe,\n\nBu hafta neler yaptın?\n\nMehmet",
    ),
    TR_NEW,
)

JA_NEW = (
    "山田さん\n\nお疲れ様です。\n今週はエクスポート機能を完成させ、カレンダーの不具合を"
    "修正しました。\n来週は負荷テストを行います。\n\nよろしくお願いします。\n佐藤"
)
case(
    "gmail-ja-base64",
    gmail(
        frm=HANAKO,
        to=TARO,
        subject="今週の進捗",
        new=JA_NEW,
        attr="2024年3月4日(月) 8:15 山田太郎 <taro@example.jp>:",
        quoted="佐藤さん\n\n今週の進捗を教えてください。\n\n山田",
        cte="base64",
    ),
    JA_NEW,
)

ZH_NEW = (
    "张伟你好，\n\n本周完成了导出功能，并修复了日历中的两个问题。\n下周开始压力测试。\n\n"
    "谢谢，\n李娜"
)
case(
    "gmail-zh-cn-base64",
    gmail(
        frm=LINA,
        to=WEI,
        subject="本周进展",
        new=ZH_NEW,
        attr="张伟 <zhangwei@example.cn> 于2024年3月4日周一 08:15写道：",
        quoted="李娜你好，\n\n请回复本周的工作进展。\n\n张伟",
        cte="base64",
    ),
    ZH_NEW,
)

KO_NEW = (
    "민수 님, 안녕하세요.\n\n이번 주에는 내보내기 기능을 완료하고 캘린더 버그를 수정했습니다.\n"
    "다음 주에는 부하 테스트를 진행합니다.\n\n감사합니다.\n지영 드림"
)
case(
    "gmail-ko-base64",
    gmail(
        frm=JIYOUNG,
        to=MINSU,
        subject="이번 주 진행 상황",
        new=KO_NEW,
        attr="2024년 3월 4일 (월) 오전 8:15, 김민수 <minsu@example.kr>님이 작성:",
        quoted="지영 님,\n\n이번 주 진행 상황을 알려 주세요.\n\n민수",
        cte="base64",
    ),
    KO_NEW,
)

CA_NEW = (
    "Hola Joan,\n\nAquesta setmana he acabat l'exportació i he corregit dos errors del "
    "calendari.\nLa setmana vinent, proves de càrrega.\n\nGràcies,\nMontse"
)
case(
    "gmail-ca",
    gmail(
        frm=MONTSE,
        to=JOAN,
        subject="En què has treballat aquesta setmana?",
        new=CA_NEW,
        attr="El dl., 4 de març 2024 a les 8:15, Joan Puig <joan@example.cat> va escriure:",
        quoted="Hola Montse,\n\nEn què has treballat aquesta setmana?\n\nJoan",
    ),
    CA_NEW,
)

HE_NEW = (
    "היי דנה,\n\nהשבוע סיימתי את הייצוא ותיקנתי שתי תקלות ביומן.\nבשבוע הבא: בדיקות עומס."
    "\n\nתודה,\nיוסי"
)
case(
    "gmail-he-rtl-base64",
    gmail(
        frm=YOSSI,
        to=DANA,
        subject="על מה עבדת השבוע?",
        new=HE_NEW,
        attr="\u202bבתאריך יום ב׳, 4 במרץ 2024 ב-8:15 מאת \u202aדנה לוי\u202c\u200f "
        "<\u202adana@example.co.il\u202c\u200f>:\u202c",
        quoted="היי יוסי,\n\nעל מה עבדת השבוע?\n\nדנה",
        cte="base64",
        direction="rtl",
    ),
    HE_NEW,
)

FWD_NOTE = "Hi Lucía,\n\nFYI — can you pick this one up? Details below.\n\nThanks,\nMarcus"
case(
    "gmail-en-forward-with-note",
    gmail_forward(
        frm=MARCUS,
        to=LUCIA,
        subject="Staging certificate expires Friday",
        note=FWD_NOTE,
        forwarded="Hi Marcus,\n\nthe staging certificate expires on Friday.\n\nJonas",
    ),
    FWD_NOTE,
)


# Outlook for Windows -----------------------------------------------------------------------

OL_EN_NEW = (
    "Hi Jonas,\n\nAll three migrations are done; the last one finished overnight.\n"
    "Next week I'm on support rotation.\n\nThanks,\nMarcus"
)
case(
    "outlook-en-disclaimer",
    outlook(
        frm=MARCUS,
        to=JONAS,
        subject="Weekly check-in",
        prefix="RE:",
        lang="EN-US",
        new=OL_EN_NEW,
        disclaimer="This email and any attachments are confidential and intended solely for "
        "the addressee. If you have received it in error, please notify the sender and "
        "delete it.",
        fields=_fields(
            "From:",
            _who(JONAS),
            "Sent:",
            "Monday, March 4, 2024 8:15 AM",
            "To:",
            _who(MARCUS),
            "Subject:",
            "Weekly check-in",
        ),
        quoted="Hi Marcus,\n\nWhat did you work on this week?\n\nJonas",
    ),
    OL_EN_NEW,
)

OL_DE_NEW = (
    "Hallo Jonas,\n\nder Rollout ist abgeschlossen, die Kunden sind informiert.\n"
    "Morgen bin ich im Homeoffice.\n\nGruß\nKatrin"
)
case(
    "outlook-de-iso-8859-1-disclaimer",
    outlook(
        frm=KATRIN,
        to=JONAS,
        subject="Wochenstatus",
        prefix="AW:",
        lang="DE",
        new=OL_DE_NEW,
        charset="iso-8859-1",
        disclaimer="Diese E-Mail enthält vertrauliche und/oder rechtlich geschützte "
        "Informationen. Wenn Sie nicht der richtige Adressat sind, informieren Sie bitte "
        "sofort den Absender und vernichten Sie diese E-Mail.",
        fields=_fields(
            "Von:",
            _who(JONAS),
            "Gesendet:",
            "Montag, 4. März 2024 08:15",
            "An:",
            _who(KATRIN),
            "Betreff:",
            "Wochenstatus",
        ),
        quoted="Hallo Katrin,\n\nwie ist der Stand beim Rollout?\n\nJonas",
    ),
    OL_DE_NEW,
)

OL_FR_NEW = "Bonjour Jean,\n\nC’est noté, je m’en occupe cette semaine.\n\nCordialement,\nClaire"
case(
    "outlook-fr-html-only-windows-1252-base64",
    outlook(
        frm=CLAIRE,
        to=JEAN,
        subject="Point hebdo",
        prefix="RE :",
        lang="FR",
        new=OL_FR_NEW,
        charset="windows-1252",
        cte="base64",
        html_only=True,
        fields=_fields(
            "De :",
            _who(JEAN),
            "Envoyé :",
            "lundi 4 mars 2024 08:15",
            "À :",
            _who(CLAIRE),
            "Objet :",
            "Point hebdo",
        ),
        quoted="Bonjour Claire,\n\nPeux-tu reprendre le dossier Durand ?\n\nJean",
    ),
    OL_FR_NEW,
)

# Outlook 2010 in a Western locale declares iso-8859-1 but writes Word's windows-1252 quotes,
# dashes and the euro sign.
OL_FR_1252 = (
    "Bonjour Jean,\n\nLe devis est validé : 1 200 € HT – c’est « bon » pour moi.\n"
    "Le client a dit “go” ce matin.\n\nCordialement,\nClaire"
)
case(
    "outlook-2010-fr-windows-1252-declared-iso-8859-1",
    outlook(
        frm=CLAIRE,
        to=JEAN,
        subject="Devis Durand",
        prefix="RE:",
        lang="FR",
        new=OL_FR_1252,
        charset="iso-8859-1",
        codec="cp1252",
        original="Message d'origine",
        fields=_fields(
            "De :",
            "Jean Dupont [mailto:jean@example.fr]",
            "Envoyé :",
            "lundi 4 mars 2024 08:15",
            "À :",
            "Claire Martin",
            "Objet :",
            "Devis Durand",
        ),
        quoted="Bonjour Claire,\n\nLe devis te convient ?\n\nJean",
    ),
    OL_FR_1252,
)


def outlook_case(
    name: str,
    *,
    me: Person,
    them: Person,
    subject: str,
    prefix: str,
    lang: str,
    new: str,
    labels: tuple[str, str, str, str],
    sent: str,
    quoted: str,
    **options: str,
) -> None:
    """One Outlook for Windows reply: labels are the localised From/Sent/To/Subject names."""
    fields = _fields(
        labels[0], _who(them), labels[1], sent, labels[2], _who(me), labels[3], subject
    )
    raw = outlook(
        frm=me,
        to=them,
        subject=subject,
        prefix=prefix,
        lang=lang,
        new=new,
        fields=fields,
        quoted=quoted,
        **options,  # type: ignore[arg-type]
    )
    case(name, raw, new)


outlook_case(
    "outlook-2010-es-original-message",
    me=LUCIA,
    them=ANA,
    subject="Resumen semanal",
    prefix="RE:",
    lang="ES",
    new="Hola Ana:\n\nTe paso el resumen el viernes; hoy sigo con las facturas.\n\n"
    "Un saludo,\nLucía",
    labels=("De:", "Enviado el:", "Para:", "Asunto:"),
    sent="lunes, 04 de marzo de 2024 8:15",
    quoted="Hola Lucía:\n\n¿Me mandas el resumen?\n\nAna",
    charset="iso-8859-1",
    original="Mensaje original",
)
outlook_case(
    "outlook-it",
    me=GIULIA,
    them=MARCO,
    subject="Aggiornamento settimanale",
    prefix="R:",
    lang="IT",
    new="Ciao Marco,\n\nho finito la revisione dei contratti, domani li invio.\n\nGrazie,\nGiulia",
    labels=("Da:", "Inviato:", "A:", "Oggetto:"),
    sent="lunedì 4 marzo 2024 08:15",
    quoted="Ciao Giulia,\n\nA che punto sei con i contratti?\n\nMarco",
)
outlook_case(
    "outlook-2010-it-messaggio-originale-windows-1252",
    me=GIULIA,
    them=MARCO,
    subject="Fatture marzo",
    prefix="R:",
    lang="IT",
    new="Ciao Marco,\n\nsì, le fatture di marzo sono già partite.\n\nCiao,\nGiulia",
    labels=("Da:", "Inviato:", "A:", "Oggetto:"),
    sent="lunedì 4 marzo 2024 08:15",
    quoted="Le fatture sono partite?",
    charset="windows-1252",
    original="Messaggio originale",
)
outlook_case(
    "outlook-pt-br",
    me=ANA_BR,
    them=JOAO,
    subject="Status semanal",
    prefix="RE:",
    lang="PT-BR",
    new="Oi João,\n\nO relatório está pronto, envio ainda hoje.\n\nAbraços,\nAna",
    labels=("De:", "Enviada em:", "Para:", "Assunto:"),
    sent="segunda-feira, 4 de março de 2024 08:15",
    quoted="Oi Ana,\n\nComo está o relatório?\n\nJoão",
)
outlook_case(
    "outlook-nl",
    me=SANNE,
    them=JAN_NL,
    subject="Weekupdate",
    prefix="RE:",
    lang="NL",
    new="Hoi Jan,\n\nDe demo staat klaar op de testomgeving.\n\nGroeten,\nSanne",
    labels=("Van:", "Verzonden:", "Aan:", "Onderwerp:"),
    sent="maandag 4 maart 2024 08:15",
    quoted="Hoi Sanne,\n\nStaat de demo al klaar?\n\nJan",
)
outlook_case(
    "outlook-sv-iso-8859-1",
    me=ANNA,
    them=ERIK,
    subject="Veckostatus",
    prefix="SV:",
    lang="SV",
    new="Hej Erik,\n\nJag är klar med granskningen, ändringarna är inlagda.\n\nMvh\nAnna",
    labels=("Från:", "Skickat:", "Till:", "Ämne:"),
    sent="den 4 mars 2024 08:15",
    quoted="Hej Anna,\n\nHur går granskningen?\n\nErik",
    charset="iso-8859-1",
)
outlook_case(
    "outlook-da",
    me=LARS,
    them=METTE,
    subject="Ugestatus",
    prefix="SV:",
    lang="DA",
    new="Hej Mette\n\nServeren er flyttet, og backup kører igen.\n\nVh\nLars",
    labels=("Fra:", "Sendt:", "Til:", "Emne:"),
    sent="4. marts 2024 08:15",
    quoted="Hej Lars\n\nEr serveren flyttet?\n\nMette",
    charset="iso-8859-1",
)
outlook_case(
    "outlook-nb",
    me=KARI,
    them=OLA,
    subject="Ukestatus",
    prefix="SV:",
    lang="NB",
    new="Hei Ola,\n\nTestene er grønne, vi kan rulle ut på torsdag.\n\nHilsen\nKari",
    labels=("Fra:", "Sendt:", "Til:", "Emne:"),
    sent="mandag 4. mars 2024 08:15",
    quoted="Hei Kari,\n\nEr testene grønne?\n\nOla",
)
outlook_case(
    "outlook-fi",
    me=LIISA,
    them=MATTI,
    subject="Viikkokatsaus",
    prefix="VS:",
    lang="FI",
    new="Hei Matti,\n\nAsennus on valmis ja käyttäjät on ohjeistettu.\n\nTerveisin\nLiisa",
    labels=("Lähettäjä:", "Lähetetty:", "Vastaanottaja:", "Aihe:"),
    sent="maanantai 4. maaliskuuta 2024 8.15",
    quoted="Hei Liisa,\n\nOnko asennus valmis?\n\nMatti",
)
outlook_case(
    "outlook-pl-iso-8859-2",
    me=PIOTR,
    them=JAN_PL,
    subject="Status tygodniowy",
    prefix="RE:",
    lang="PL",
    new="Cześć Janie,\n\nWdrożenie zakończone, klienci zostali powiadomieni.\n\nPozdrawiam,\nPiotr",
    labels=("Od:", "Wysłane:", "Do:", "Temat:"),
    sent="poniedziałek, 4 marca 2024 08:15",
    quoted="Cześć Piotrze,\n\nJak idzie wdrożenie?\n\nJan",
    charset="iso-8859-2",
)
outlook_case(
    "outlook-cs-windows-1250",
    me=PETR,
    them=JAN_CZ,
    subject="Týdenní přehled",
    prefix="RE:",
    lang="CS",
    new="Ahoj Jane,\n\nmigrace proběhla v pořádku, zítra uklidím staré servery.\n\nDíky,\nPetr",
    labels=("Od:", "Odesláno:", "Komu:", "Předmět:"),
    sent="pondělí 4. března 2024 8:15",
    quoted="Ahoj Petře,\n\njak dopadla migrace?\n\nJan",
    charset="windows-1250",
)
outlook_case(
    "outlook-ru-koi8-r",
    me=OLGA,
    them=IVAN,
    subject="Еженедельный отчет",
    prefix="RE:",
    lang="RU",
    new="Иван, добрый день!\n\nОтчет готов, отправлю до обеда.\n\nС уважением,\nОльга",
    labels=("От:", "Отправлено:", "Кому:", "Тема:"),
    sent="4 марта 2024 г. 8:15",
    quoted="Ольга, добрый день!\n\nКогда будет отчет?\n\nИван",
    charset="koi8-r",
)
outlook_case(
    "outlook-2010-ru-windows-1251-original-message",
    me=OLGA,
    them=IVAN,
    subject="Счета за март",
    prefix="RE:",
    lang="RU",
    new="Иван, добрый день!\n\nСчета оплачены, копии во вложении.\n\nС уважением,\nОльга",
    labels=("От:", "Отправлено:", "Кому:", "Тема:"),
    sent="4 марта 2024 г. 8:15",
    quoted="Счета оплачены?",
    charset="windows-1251",
    original="Исходное сообщение",
)
outlook_case(
    "outlook-uk-windows-1251",
    me=TARAS,
    them=OLENA,
    subject="Щотижневий звіт",
    prefix="RE:",
    lang="UK",
    new="Добрий день, Олено!\n\nЗвіт готовий, надішлю після обіду.\n\nДякую,\nТарас",
    labels=("Від:", "Надіслано:", "Кому:", "Тема:"),
    sent="4 березня 2024 р. 8:15",
    quoted="Добрий день, Тарасе!\n\nКоли буде звіт?\n\nОлена",
    charset="windows-1251",
)
outlook_case(
    "outlook-tr-windows-1254",
    me=AYSE,
    them=MEHMET,
    subject="Haftalık durum",
    prefix="YNT:",
    lang="TR",
    new="Merhaba Mehmet Bey,\n\nKurulum tamamlandı, kullanıcılar bilgilendirildi.\n\n"
    "Saygılarımla,\nAyşe",
    labels=("Kimden:", "Gönderildi:", "Kime:", "Konu:"),
    sent="4 Mart 2024 Pazartesi 08:15",
    quoted="Merhaba Ayşe Hanım,\n\nKurulum ne durumda?\n\nMehmet",
    charset="windows-1254",
)
outlook_case(
    "outlook-ja-iso-2022-jp",
    me=HANAKO,
    them=TARO,
    subject="週次報告",
    prefix="RE:",
    lang="JA",
    new="山田さん\n\nお疲れ様です。佐藤です。\n報告書は本日中に送付いたします。\n\n"
    "よろしくお願いいたします。\n佐藤",
    labels=("差出人:", "送信日時:", "宛先:", "件名:"),
    sent="2024年3月4日 8:15",
    quoted="佐藤さん\n\n報告書の状況を教えてください。\n\n山田",
    charset="iso-2022-jp",
    cte="7bit",
)
outlook_case(
    "outlook-zh-cn-gb2312-base64",
    me=LINA,
    them=WEI,
    subject="每周进展",
    prefix="答复:",
    lang="ZH-CN",
    new="张伟你好，\n\n报告已经完成，下午发给你。\n\n谢谢，\n李娜",
    labels=("发件人:", "发送时间:", "收件人:", "主题:"),
    sent="2024年3月4日 8:15",
    quoted="李娜你好，\n\n报告什么时候能完成？\n\n张伟",
    charset="gb2312",
    cte="base64",
)
outlook_case(
    "outlook-ko-ks_c_5601-1987-base64",
    me=JIYOUNG,
    them=MINSU,
    subject="주간 보고",
    prefix="회신:",
    lang="KO",
    new="민수 님,\n\n보고서는 오늘 오후에 보내 드리겠습니다.\n\n감사합니다.\n지영 드림",
    labels=("보낸 사람:", "보낸 날짜:", "받는 사람:", "제목:"),
    sent="2024년 3월 4일 월요일 오전 8:15",
    quoted="지영 님,\n\n보고서는 언제 받을 수 있을까요?\n\n민수",
    charset="ks_c_5601-1987",
    cte="base64",
)
outlook_case(
    "outlook-ca",
    me=MONTSE,
    them=JOAN,
    subject="Estat setmanal",
    prefix="RE:",
    lang="CA",
    new="Hola Joan,\n\nEl desplegament ha anat bé; demà faig la neteja.\n\nGràcies,\nMontse",
    labels=("De:", "Enviat el:", "Per a:", "Assumpte:"),
    sent="dilluns, 4 de març de 2024 8:15",
    quoted="Hola Montse,\n\nCom ha anat el desplegament?\n\nJoan",
)
outlook_case(
    "outlook-ar-windows-1256-rtl",
    me=SARA,
    them=AHMED,
    subject="التقرير الأسبوعي",
    prefix="RE:",
    lang="AR-SA",
    new="مرحبا أحمد،\n\nالتقرير جاهز وسأرسله بعد الظهر.\n\nشكرا،\nسارة",
    labels=("من:", "تم الإرسال:", "إلى:", "الموضوع:"),
    sent="الاثنين، 4 مارس، 2024 08:15 ص",
    quoted="مرحبا سارة،\n\nمتى سيكون التقرير جاهزا؟\n\nأحمد",
    charset="windows-1256",
)


# Outlook on the web ------------------------------------------------------------------------

OWA_DIV = (
    '<div class="elementToProof" style="font-family: Aptos, Aptos_EmbeddedFont, '
    'Aptos_MSFontService, Calibri, Helvetica, sans-serif; font-size: 12pt; color: rgb(0, 0, 0);">'
)


def _owa_divs(*lines: str) -> str:
    return "".join(f"{OWA_DIV}{line or '<br>'}</div>" for line in lines)


case(
    "outlook-web-en-html-only-list-bold-link",
    outlook_web(
        frm=MARCUS,
        to=JONAS,
        subject="Weekly check-in",
        prefix="RE:",
        new_html=_owa_divs("Hi Jonas,", "", "This week:")
        + "<ul><li><div>finished the <b>SSO</b> spike</div></li><li><div>reviewed "
        '<a href="https://git.example.com/tidings/pull/412">PR #412</a></div></li></ul>'
        + _owa_divs("", "Thanks,", "Marcus"),
        new_plain="",
        fields=_fields(
            "From:",
            _who(JONAS),
            "Sent:",
            "Monday, March 4, 2024 08:15",
            "To:",
            _who(MARCUS),
            "Subject:",
            "Weekly check-in",
        ),
        quoted="Hi Marcus,\nWhat did you work on this week?\nJonas",
        html_only=True,
    ),
    "Hi Jonas,\n\nThis week:\n- finished the **SSO** spike\n"
    "- reviewed [PR #412](https://git.example.com/tidings/pull/412)\n\nThanks,\nMarcus",
)

OWA_DE = (
    "Hallo Jonas,\n\nder Export läuft wieder, ich habe den Cronjob neu gestartet.\n\nGruß\nKatrin"
)
case(
    "outlook-web-de-base64",
    outlook_web(
        frm=KATRIN,
        to=JONAS,
        subject="Export hängt",
        prefix="AW:",
        new_html=_owa_divs(*OWA_DE.split("\n")),
        new_plain=OWA_DE,
        fields=_fields(
            "Von:",
            _who(JONAS),
            "Gesendet:",
            "Montag, 4. März 2024 08:15",
            "An:",
            _who(KATRIN),
            "Betreff:",
            "Export hängt",
        ),
        quoted="Hallo Katrin,\nder Export hängt seit heute Nacht.\nJonas",
    ),
    OWA_DE,
)

OWA_ES = "Hola Ana:\n\nYa está corregido en producción.\n\nSaludos,\nLucía"
case(
    "outlook-web-es-base64",
    outlook_web(
        frm=LUCIA,
        to=ANA,
        subject="Error en facturas",
        prefix="RE:",
        new_html=_owa_divs(*OWA_ES.split("\n")),
        new_plain=OWA_ES,
        fields=_fields(
            "De:",
            _who(ANA),
            "Enviado:",
            "lunes, 4 de marzo de 2024 8:15",
            "Para:",
            _who(LUCIA),
            "Asunto:",
            "Error en facturas",
        ),
        quoted="Hola Lucía:\n¿Puedes mirar el error de las facturas?\nAna",
    ),
    OWA_ES,
)


# Apple Mail (macOS) ------------------------------------------------------------------------

APPLE_EN = (
    "Hi Jonas,\n\nHere’s the dashboard after the fix — load time is down to 1.2 s.\n\n"
    "Cheers,\nMarcus"
)
case(
    "apple-mail-en-gb-related-inline-image",
    apple_mail(
        frm=MARCUS,
        to=JONAS,
        subject="Dashboard load time",
        new=APPLE_EN,
        image=True,
        attr="On 4 Mar 2024, at 08:15, Jonas Weber <jonas@example.de> wrote:",
        quoted="Hi Marcus,\n\nIs the dashboard faster now?\n\nJonas",
    ),
    APPLE_EN,
)
APPLE_CASES = [
    (
        "de",
        KATRIN,
        JONAS,
        "Release-Termin",
        "Am 04.03.2024 um 08:15 schrieb Jonas Weber <jonas@example.de>:",
        "Hallo Jonas,\n\nDonnerstag passt, ich bereite die Notizen vor.\n\nLG Katrin",
    ),
    (
        "it",
        GIULIA,
        MARCO,
        "Riunione di giovedì",
        "Il giorno 4 mar 2024, alle ore 08:15, Marco Rossi <marco@example.it> ha scritto:",
        "Ciao Marco,\n\nper me va bene giovedì alle 10.\n\nA presto,\nGiulia",
    ),
    (
        "nl",
        SANNE,
        JAN_NL,
        "Planning volgende sprint",
        "Op 4 mrt 2024 om 08:15 heeft Jan de Vries <jan@example.nl> het volgende geschreven:",
        "Hoi Jan,\n\nIk heb de planning bijgewerkt in het bord.\n\nGroet,\nSanne",
    ),
    (
        "pl",
        PIOTR,
        JAN_PL,
        "Plan na sprint",
        "Wiadomość napisana przez Jan Kowalski <jan@example.pl> w dniu 4 mar 2024, o godz. 08:15:",
        "Cześć Janie,\n\nPlan wygląda dobrze, dopisałem dwa zadania.\n\nPozdrawiam,\nPiotr",
    ),
    (
        "ja",
        HANAKO,
        TARO,
        "来週の予定",
        "2024/03/04 8:15、山田太郎 <taro@example.jp>のメール:",
        "山田さん\n\n承知しました。木曜日の10時でお願いします。\n\n佐藤",
    ),
]
for lang, me, them, subject, attr, new in APPLE_CASES:
    case(
        f"apple-mail-{lang}",
        apple_mail(
            frm=me,
            to=them,
            subject=subject,
            attr=attr,
            new=new,
            quoted=f"{them[0]}:\n\n{subject}?",
        ),
        new,
    )


# Mail on iOS: the localised "Sent from my iPhone" and the quoted attribution ---------------

IOS_CASES = [
    (
        "en",
        MARCUS,
        JONAS,
        "Sent from my iPhone",
        "On Mar 4, 2024, at 8:15 AM, Jonas Weber <jonas@example.de> wrote:",
        "Yes, Thursday works. I’ll bring the numbers.\n\nMarcus",
    ),
    (
        "de",
        KATRIN,
        JONAS,
        "Von meinem iPhone gesendet",
        "Am 04.03.2024 um 08:15 schrieb Jonas Weber <jonas@example.de>:",
        "Passt, bin um 10 da.\n\nLG Katrin",
    ),
    (
        "fr",
        CLAIRE,
        JEAN,
        "Envoyé de mon iPhone",
        "Le 4 mars 2024 à 08:15, Jean Dupont <jean@example.fr> a écrit :",
        "Oui, c’est bon pour jeudi.\n\nClaire",
    ),
    (
        "es",
        LUCIA,
        ANA,
        "Enviado desde mi iPhone",
        "El 4 mar 2024, a las 8:15, Ana García <ana@example.es> escribió:",
        "Perfecto, nos vemos el jueves.",
    ),
    (
        "it",
        GIULIA,
        MARCO,
        "Inviato da iPhone",
        "Il giorno 4 mar 2024, alle ore 08:15, Marco Rossi <marco@example.it> ha scritto:",
        "Va bene, ci sentiamo dopo.",
    ),
    (
        "pt-br",
        ANA_BR,
        JOAO,
        "Enviado do meu iPhone",
        "Em 4 de mar. de 2024, à(s) 08:15, João Silva <joao@example.com.br> escreveu:",
        "Combinado, te mando à tarde.",
    ),
    (
        "nl",
        SANNE,
        JAN_NL,
        "Verstuurd vanaf mijn iPhone",
        "Op 4 mrt 2024 om 08:15 heeft Jan de Vries <jan@example.nl> het volgende geschreven:",
        "Prima, tot donderdag!",
    ),
    (
        "sv",
        ANNA,
        ERIK,
        "Skickat från min iPhone",
        "4 mars 2024 kl. 08:15 skrev Erik Johansson <erik@example.se>:",
        "Låter bra, vi ses på torsdag.",
    ),
    (
        "da",
        LARS,
        METTE,
        "Sendt fra min iPhone",
        "Den 4. mar. 2024 kl. 08.15 skrev Mette Hansen <mette@example.dk>:",
        "Det lyder godt. Vi ses torsdag.",
    ),
    (
        "nb",
        KARI,
        OLA,
        "Sendt fra min iPhone",
        "4. mar. 2024 kl. 08:15 skrev Ola Nordmann <ola@example.no>:",
        "Høres bra ut, vi ses torsdag.",
    ),
    (
        "fi",
        LIISA,
        MATTI,
        "Lähetetty iPhonesta",
        "Matti Virtanen <matti@example.fi> kirjoitti 4.3.2024 kello 8.15:",
        "Sopii, nähdään torstaina.",
    ),
    (
        "pl",
        PIOTR,
        JAN_PL,
        "Wysłane z iPhone'a",
        "Wiadomość napisana przez Jan Kowalski <jan@example.pl> w dniu 4 mar 2024, o godz. 08:15:",
        "Pasuje, do zobaczenia w czwartek.",
    ),
    (
        "cs",
        PETR,
        JAN_CZ,
        "Odesláno z iPhonu",
        "4. 3. 2024 v 8:15, Jan Novák <jan@example.cz>:",
        "Platí, uvidíme se ve čtvrtek.",
    ),
    (
        "ru",
        OLGA,
        IVAN,
        "Отправлено с iPhone",
        "4 марта 2024 г., в 08:15, Иван Петров <ivan@example.ru> написал(а):",
        "Договорились, до четверга.",
    ),
    (
        "uk",
        TARAS,
        OLENA,
        "Надіслано з iPhone",
        "4 бер. 2024 р. о 08:15 Олена Коваленко <olena@example.ua> написав(ла):",
        "Домовились, до четверга.",
    ),
    (
        "tr",
        AYSE,
        MEHMET,
        "iPhone'umdan gönderildi",
        "4 Mar 2024 tarihinde 08:15 saatinde Mehmet Yılmaz <mehmet@example.com.tr> şunu yazdı:",
        "Tamam, perşembe görüşürüz.",
    ),
    (
        "ja",
        HANAKO,
        TARO,
        "iPhoneから送信",
        "2024/03/04 8:15、山田太郎 <taro@example.jp>のメール:",
        "承知しました。木曜日に伺います。",
    ),
    (
        "zh-cn",
        LINA,
        WEI,
        "发自我的iPhone",
        "在 2024年3月4日，08:15，张伟 <zhangwei@example.cn> 写道：",
        "好的，周四见。",
    ),
    (
        "ko",
        JIYOUNG,
        MINSU,
        "나의 iPhone에서 보냄",
        "2024. 3. 4. 오전 8:15, 김민수 <minsu@example.kr> 작성:",
        "네, 목요일에 뵙겠습니다.",
    ),
    (
        "ca",
        MONTSE,
        JOAN,
        "Enviat des del meu iPhone",
        "El 4 de març 2024, a les 8:15, Joan Puig <joan@example.cat> va escriure:",
        "D’acord, ens veiem dijous.",
    ),
    (
        "he",
        YOSSI,
        DANA,
        "נשלח מה-iPhone שלי",
        "ב-4 במרץ 2024, בשעה 8:15, דנה לוי <dana@example.co.il> כתב/ה:",
        "מעולה, נתראה ביום חמישי.",
    ),
]
for lang, me, them, footer, attr, new in IOS_CASES:
    case(
        f"ios-mail-{lang}",
        apple_mail(
            frm=me,
            to=them,
            subject="Thursday",
            attr=attr,
            new=new,
            footer=footer,
            ios=True,
            quoted=f"{them[0]}\n\nThursday 10:00?",
        ),
        new,
    )


# Thunderbird: format=flowed, attribution without address, `-- ` signature ------------------

case(
    "thunderbird-en-inline-reply",
    thunderbird(
        frm=MARCUS,
        to=JONAS,
        subject="Thursday demo",
        lang="en-US",
        text="On 3/4/24 8:15 AM, Jonas Weber wrote:\n> Hi Marcus,\n>\n"
        "> Two questions before Thursday:\n>\n> Is the demo ready on staging?\n\n"
        "Yes, since last night.\n\n> Can you take the meeting notes?\n\n"
        "Sure, I'll share them in the channel afterwards.\n\n> Thanks,\n> Jonas\n\n"
        "-- \nMarcus Lee\nStaff Engineer, Tidings\n",
    ),
    "> Is the demo ready on staging?\n\nYes, since last night.\n\n"
    "> Can you take the meeting notes?\n\nSure, I'll share them in the channel afterwards.",
)

TB_DE = (
    "Hallo Jonas,\n\nich habe diese Woche die Importfunktion fertiggestellt, die Tests für die "
    "Kalenderansicht ergänzt und mit dem Support zwei Kundenprobleme geklärt. Nächste Woche "
    "kümmere ich mich um die Lasttests.\n\nViele Grüße\nKatrin"
)
case(
    "thunderbird-de-bottom-posted-flowed",
    thunderbird(
        frm=KATRIN,
        to=JONAS,
        subject="Woran hast du diese Woche gearbeitet?",
        lang="de-DE",
        text="Am 04.03.24 um 08:15 schrieb Jonas Weber:\n> Hallo Katrin,\n>\n"
        "> woran hast du diese Woche gearbeitet?\n>\n> Jonas\n\n"
        f"{TB_DE}\n\n-- \nKatrin Schulz\nTidings GmbH\n",
    ),
    TB_DE,
)

TB_TOP_POSTS = [
    (
        "fr",
        CLAIRE,
        JEAN,
        "Le 04/03/2024 à 08:15, Jean Dupont a écrit :",
        "Bonjour Jean,\n\nJe confirme : la mise en production est prévue jeudi à 14 h, après "
        "la validation du client. J'ai prévenu le support et préparé la note de version.\n\n"
        "Bonne journée,\nClaire",
    ),
    (
        "nl",
        SANNE,
        JAN_NL,
        "Op 04-03-2024 om 08:15 schreef Jan de Vries:",
        "Hoi Jan,\n\nDe release staat gepland voor donderdag om 14.00 uur, na akkoord van de "
        "klant. Support is op de hoogte en de release notes zijn klaar.\n\nGroet,\nSanne",
    ),
    (
        "sv",
        ANNA,
        ERIK,
        "Den 2024-03-04 kl. 08:15, skrev Erik Johansson:",
        "Hej Erik,\n\nReleasen är planerad till torsdag kl. 14 efter att kunden har godkänt "
        "den. Supporten är informerad och releaseanteckningarna är klara.\n\nHälsningar,\nAnna",
    ),
    (
        "pl",
        PIOTR,
        JAN_PL,
        "W dniu 4.03.2024 o 08:15, Jan Kowalski pisze:",
        "Cześć Janie,\n\nPotwierdzam: wdrożenie jest zaplanowane na czwartek o 14:00, po "
        "akceptacji klienta. Wsparcie zostało poinformowane, a notatki do wydania są "
        "gotowe.\n\nPozdrawiam,\nPiotr",
    ),
    (
        "cs",
        PETR,
        JAN_CZ,
        "Dne 04. 03. 24 v 8:15 Jan Novák napsal(a):",
        "Ahoj Jane,\n\npotvrzuji: nasazení je naplánované na čtvrtek ve 14:00, po schválení "
        "zákazníkem. Podpora je informovaná a poznámky k vydání jsou připravené.\n\nDíky,\nPetr",
    ),
    (
        "ru",
        OLGA,
        IVAN,
        "04.03.2024 08:15, Иван Петров пишет:",
        "Иван, привет!\n\nПодтверждаю: выкладка запланирована на четверг в 14:00, после "
        "согласования с заказчиком. Поддержка предупреждена, заметки к релизу готовы.\n\n"
        "Спасибо,\nОльга",
    ),
    (
        "uk",
        TARAS,
        OLENA,
        "04.03.2024 08:15, Олена Коваленко пише:",
        "Привіт, Олено!\n\nПідтверджую: розгортання заплановане на четвер о 14:00, після "
        "погодження із замовником. Підтримку попереджено, нотатки до релізу готові.\n\n"
        "Дякую,\nТарас",
    ),
    (
        "tr",
        AYSE,
        MEHMET,
        "4.03.2024 08:15 tarihinde Mehmet Yılmaz yazdı:",
        "Merhaba Mehmet,\n\nOnaylıyorum: yayın, müşteri onayından sonra perşembe saat 14:00 "
        "için planlandı. Destek ekibi bilgilendirildi ve sürüm notları hazır.\n\n"
        "Teşekkürler,\nAyşe",
    ),
    (
        "ja",
        HANAKO,
        TARO,
        "2024/03/04 8:15 に 山田太郎 さんは書きました:",
        "山田さん\n\nリリースは顧客の承認後、木曜日の14時に予定しています。サポートへの"
        "連絡とリリースノートの準備は完了しています。\n\nよろしくお願いします。\n佐藤",
    ),
    (
        "ca",
        MONTSE,
        JOAN,
        "El 4/3/24 a les 8:15, Joan Puig ha escrit:",
        "Hola Joan,\n\nConfirmo: el desplegament està previst per dijous a les 14:00, després "
        "de la validació del client. Suport ja ho sap i les notes de la versió estan "
        "llestes.\n\nGràcies,\nMontse",
    ),
]
for lang, me, them, attr, new in TB_TOP_POSTS:
    case(
        f"thunderbird-{lang}-top-posted-signature",
        thunderbird(
            frm=me,
            to=them,
            subject="Release",
            lang=lang,
            text=f"{new}\n\n-- \n{me[0]}\n{me[1]}\n\n{attr}\n> {them[0]}:\n>\n> Release?\n",
        ),
        new,
    )

TB_KO = "민수 님,\n\n배포는 목요일 오후 2시로 확정되었습니다.\n\n지영 드림"
case(
    "thunderbird-68-ko-euc-kr",
    thunderbird(
        frm=JIYOUNG,
        to=MINSU,
        subject="배포 일정",
        lang="ko-KR",
        charset="EUC-KR",
        text=f"{TB_KO}\n\n2024-03-04 오전 8:15에 김민수 이(가) 쓴 글:\n> 지영 님,\n>\n"
        "> 배포 일정이 확정되었나요?\n",
    ),
    TB_KO,
)

case(
    "thunderbird-en-html-only-bottom-posted",
    thunderbird(
        frm=MARCUS,
        to=JONAS,
        subject="What did you work on this week?",
        lang="en-US",
        text="",
        html_markup='<!DOCTYPE html>\n<html>\n  <head>\n    <meta http-equiv="Content-Type" '
        'content="text/html; charset=UTF-8">\n  </head>\n  <body>\n    <div '
        'class="moz-cite-prefix">On 3/4/24 8:15 AM, Jonas Weber wrote:<br>\n    </div>\n'
        '    <blockquote type="cite" cite="mid:CAJx9kQ+parent@mail.gmail.com">Hi Marcus,<br>'
        "<br>What did you work on this week?<br><br>Jonas<br>\n    </blockquote>\n"
        "    <p>Finished the importer and fixed the time zone bug.</p>\n    <p>Marcus<br>\n"
        '    </p>\n    <pre class="moz-signature" cols="72">-- \nMarcus Lee\nTidings</pre>\n'
        "  </body>\n</html>\n",
    ),
    "Finished the importer and fixed the time zone bug.\n\nMarcus",
)


# Yahoo Mail --------------------------------------------------------------------------------

YAHOO_CASES = [
    (
        "en-mobile",
        MARCUS,
        JONAS,
        "Sent from Yahoo Mail for iPhone",
        "On Monday, March 4, 2024, 8:15 AM, Jonas Weber <jonas@example.de> wrote:",
        "Works for me, see you Thursday.\n\nMarcus",
    ),
    (
        "en",
        MARCUS,
        JONAS,
        "",
        "On Monday, March 4, 2024 at 08:15:12 AM GMT+1, Jonas Weber <jonas@example.de> wrote:",
        "Hi Jonas,\n\nThe invoices went out this morning.\n\nThanks,\nMarcus",
    ),
    (
        "de",
        KATRIN,
        JONAS,
        "",
        "Am Montag, 4. März 2024 um 08:15:12 MEZ hat Jonas Weber <jonas@example.de> "
        "Folgendes geschrieben:",
        "Hallo Jonas,\n\ndie Rechnungen sind heute früh raus.\n\nGrüße\nKatrin",
    ),
    (
        "fr",
        CLAIRE,
        JEAN,
        "",
        "Le lundi 4 mars 2024 à 08:15:12 UTC+1, Jean Dupont <jean@example.fr> a écrit :",
        "Bonjour Jean,\n\nLes factures sont parties ce matin.\n\nBonne journée,\nClaire",
    ),
    (
        "es",
        LUCIA,
        ANA,
        "",
        "El lunes, 4 de marzo de 2024, 08:15:12 CET, Ana García <ana@example.es> escribió:",
        "Hola Ana:\n\nLas facturas salieron esta mañana.\n\nSaludos,\nLucía",
    ),
    (
        "it",
        GIULIA,
        MARCO,
        "",
        "Il lunedì 4 marzo 2024, 08:15:12 CET, Marco Rossi <marco@example.it> ha scritto:",
        "Ciao Marco,\n\nle fatture sono partite stamattina.\n\nCiao,\nGiulia",
    ),
    (
        "pt-br",
        ANA_BR,
        JOAO,
        "",
        "Em segunda-feira, 4 de março de 2024 08:15:12 BRT, João Silva "
        "<joao@example.com.br> escreveu:",
        "Oi João,\n\nAs notas fiscais saíram hoje cedo.\n\nAbraços,\nAna",
    ),
]
for lang, me, them, footer, attr, new in YAHOO_CASES:
    case(
        f"yahoo-{lang}",
        yahoo(
            frm=me,
            to=them,
            subject="Invoices",
            attr=attr,
            new=new,
            footer=footer,
            quoted=f"{them[0]}:\n\nInvoices?",
        ),
        new,
    )


# Proton Mail -------------------------------------------------------------------------------

PROTON_EN = "Hi Jonas,\n\nKeys are rotated, the old ones are revoked.\n\nBest,\nMarcus"
case(
    "protonmail-en-footer-base64",
    proton(
        frm=MARCUS,
        to=JONAS,
        subject="Key rotation",
        new=PROTON_EN,
        footer="Sent with Proton Mail secure email.",
        attr="On Monday, March 4th, 2024 at 08:15, Jonas Weber <jonas@example.de> wrote:",
        quoted="Hi Marcus,\n\nAre the keys rotated?\n\nJonas",
    ),
    PROTON_EN,
)
PROTON_DE = "Hallo Jonas,\n\ndie Schlüssel sind getauscht.\n\nViele Grüße\nKatrin"
case(
    "protonmail-de-base64",
    proton(
        frm=KATRIN,
        to=JONAS,
        subject="Schlüsseltausch",
        new=PROTON_DE,
        attr="Am Montag, 4. März 2024 um 08:15 schrieb Jonas Weber <jonas@example.de>:",
        quoted="Hallo Katrin,\n\nsind die Schlüssel getauscht?\n\nJonas",
    ),
    PROTON_DE,
)


# Outlook for iOS / Android -----------------------------------------------------------------

MOBILE_CASES = [
    (
        "en-ios",
        MARCUS,
        JONAS,
        "RE:",
        "Get Outlook for iOS<https://aka.ms/o0ukef>",
        ("From:", "Sent:", "To:", "Subject:"),
        "Monday, March 4, 2024 8:15:12 AM",
        "On my way, 5 minutes late.",
    ),
    (
        "en-android",
        MARCUS,
        JONAS,
        "Re:",
        "Get Outlook for Android<https://aka.ms/AAb9ysg>",
        ("From:", "Sent:", "To:", "Subject:"),
        "Monday, March 4, 2024 8:15:12 AM",
        "Approved, go ahead.\n\nMarcus",
    ),
    (
        "de-ios",
        KATRIN,
        JONAS,
        "AW:",
        "Outlook für iOS<https://aka.ms/o0ukef> herunterladen",
        ("Von:", "Gesendet:", "An:", "Betreff:"),
        "Montag, März 4, 2024 8:15:12 AM",
        "Freigegeben, leg los.",
    ),
    (
        "fr-android",
        CLAIRE,
        JEAN,
        "RE :",
        "Télécharger Outlook pour Android<https://aka.ms/AAb9ysg>",
        ("De :", "Envoyé :", "À :", "Objet :"),
        "lundi 4 mars 2024 8:15:12 AM",
        "Validé, tu peux y aller.",
    ),
    (
        "es-ios",
        LUCIA,
        ANA,
        "RE:",
        "Obtener Outlook para iOS<https://aka.ms/o0ukef>",
        ("De:", "Enviado:", "Para:", "Asunto:"),
        "lunes, marzo 4, 2024 8:15:12 a. m.",
        "Aprobado, adelante.",
    ),
]
for lang, me, them, prefix, footer, labels, sent, new in MOBILE_CASES:
    case(
        f"outlook-mobile-{lang}",
        outlook_mobile(
            frm=me,
            to=them,
            subject="Budget",
            prefix=prefix,
            new=new,
            footer=footer,
            fields=_fields(
                labels[0],
                _who(them),
                labels[1],
                sent,
                labels[2],
                _who(me),
                labels[3],
                "Budget",
            ),
            quoted=f"{me[0].split()[0]},\nBudget OK?\n{them[0]}",
        ),
        new,
    )


# Mail for Windows 10 -----------------------------------------------------------------------

WIN_EN = "Hi Jonas,\n\nThe laptop is ready for pickup.\n\nMarcus"
case(
    "windows-mail-en",
    windows_mail(
        frm=MARCUS,
        to=JONAS,
        subject="Laptop",
        prefix="RE:",
        new=WIN_EN,
        footer="Sent from Mail<https://go.microsoft.com/fwlink/?LinkId=550986> for Windows",
        fields=_fields(
            "From:",
            "Jonas Weber<mailto:jonas@example.de>",
            "Sent:",
            "Monday, March 4, 2024 08:15",
            "To:",
            "Marcus Lee<mailto:marcus@example.com>",
            "Subject:",
            "Laptop",
        ),
        quoted="Is the laptop ready?",
    ),
    WIN_EN,
)
WIN_DE = "Hallo Jonas,\n\nder Laptop kann abgeholt werden.\n\nKatrin"
case(
    "windows-mail-de",
    windows_mail(
        frm=KATRIN,
        to=JONAS,
        subject="Laptop",
        prefix="AW:",
        new=WIN_DE,
        footer="Gesendet von Mail<https://go.microsoft.com/fwlink/?LinkId=550986> für Windows",
        fields=_fields(
            "Von:",
            "Jonas Weber<mailto:jonas@example.de>",
            "Gesendet:",
            "Montag, 4. März 2024 08:15",
            "An:",
            "Katrin Schulz<mailto:katrin@example.de>",
            "Betreff:",
            "Laptop",
        ),
        quoted="Ist der Laptop fertig?",
    ),
    WIN_DE,
)


# Legacy CJK charsets and Chinese clients ---------------------------------------------------

# Japanese Windows senders label cp932 text "Shift_JIS" (circled digits, wave dash).
SJIS_NEW = (
    "山田様\n\nお世話になっております。佐藤です。\n①資料は本日送付済みです。\n"
    "②打ち合わせは 10:00～11:00 で問題ありません。\n\nよろしくお願いいたします。\n佐藤"
)
case(
    "outlook-mac-ja-shift-jis-plain",
    message(
        frm=HANAKO,
        to=TARO,
        subject="RE: 打ち合わせの件",
        date="Mon, 4 Mar 2024 09:02:11 +0900",
        mid="D9A1B2C3.4E5F%hanako@example.jp",
        hcharset="shift_jis",
        extra=(("User-Agent", "Microsoft-MacOutlook/16.82.24021116"), ("Thread-Topic", "RE")),
        body=leaf(
            'text/plain; charset="Shift_JIS"',
            f"{SJIS_NEW}\n\n差出人: 山田太郎 <taro@example.jp>\n日付: 2024年3月4日 月曜日 8:15\n"
            "宛先: 佐藤花子 <hanako@example.jp>\n件名: 打ち合わせの件\n\n佐藤様\n\n"
            "資料の送付と打ち合わせの時間をご確認ください。\n\n山田\n",
            "8bit",
        ),
    ),
    SJIS_NEW,
)

FOX_NEW = "张伟你好：\n\n测试环境已经部署好了，明天可以开始验收。\n\n李娜"
case(
    "foxmail-zh-cn-gbk-base64",
    message(
        frm=LINA,
        to=WEI,
        subject="回复: 测试环境",
        date="Mon, 4 Mar 2024 09:02:11 +0800",
        mid="202403040902114521587@example.cn",
        hcharset="gbk",
        extra=(("X-Mailer", "Foxmail 7.2.25.375[cn]"),),
        body=multi(
            "multipart/alternative",
            "----=_001_NextPart314159265358_=----",
            leaf(
                'text/plain; charset="gbk"',
                f"{FOX_NEW}\n \n发件人： 张伟\n发送时间： 2024-03-04 08:15\n收件人： 李娜\n"
                "主题： 测试环境\n李娜你好，\n\n测试环境什么时候能好？\n\n张伟\n",
                "base64",
            ),
            leaf(
                'text/html; charset="gbk"',
                f'<html><head><meta content="text/html; charset=gbk"></head><body>'
                f'<div>{_brs(FOX_NEW)}</div><div><br></div><div style="border:none;border-top:'
                'solid #B5C4DF 1.0pt;padding:3.0pt 0cm 0cm 0cm"><div style="PADDING-RIGHT: '
                "8px; PADDING-LEFT: 8px; FONT-SIZE: 12px;FONT-FAMILY:tahoma;COLOR:#000000; "
                'BACKGROUND: #efefef; PADDING-BOTTOM: 8px; PADDING-TOP: 8px"><div><b>发件人：'
                '</b>&nbsp;<a href="mailto:zhangwei@example.cn">张伟</a></div><div><b>发送时间：'
                '</b>&nbsp;2024-03-04&nbsp;08:15</div><div><b>收件人：</b>&nbsp;<a href="'
                'mailto:lina@example.cn">李娜</a></div><div><b>主题：</b>&nbsp;测试环境</div>'
                "</div></div><div><div>李娜你好，</div><div>测试环境什么时候能好？</div>"
                "</div></body></html>",
                "base64",
            ),
        ),
    ),
    FOX_NEW,
)

QQ_NEW = "好的，收到，我今天下午处理。"
case(
    "qq-mail-zh-cn-gb18030-nbsp-in-text",
    message(
        frm=LINA,
        to=WEI,
        subject="回复：测试环境",
        date="Mon, 4 Mar 2024 09:02:11 +0800",
        mid="tencent_5F1A2B3C4D5E6F708192A3B4C5D6E7F80909@qq.com",
        hcharset="gb18030",
        extra=(("X-QQ-MIME", "TCMime 1.0 by Tencent"), ("X-Mailer", "QQMail 2.x")),
        body=multi(
            "multipart/alternative",
            "----=_NextPart_65E51E33_0A4B2C18_6F1D2E3A",
            leaf(
                'text/plain; charset="gb18030"',
                f"{QQ_NEW}\n\n\n\n\n------------------&nbsp;原始邮件&nbsp;------------------\n"
                "发件人:                                                                      "
                '                  "张伟"                                                    '
                "                                <zhangwei@example.cn&gt;;\n"
                "发送时间:&nbsp;2024年3月4日(星期一) 上午8:15\n"
                '收件人:&nbsp;"李娜"<lina@example.cn&gt;;\n\n主题:&nbsp;测试环境\n\n\n\n'
                "李娜你好，测试环境什么时候能好？\n",
                "base64",
            ),
            leaf(
                'text/html; charset="gb18030"',
                f'<meta http-equiv="Content-Type" content="text/html; charset=GB18030">'
                f'<div>{_esc(QQ_NEW)}</div><div><br></div><div style="font-size: 12px;'
                'font-family: Arial Narrow;padding:2px 0 2px 0;">------------------&nbsp;原始'
                '邮件&nbsp;------------------</div><div style="font-size: 12px;background:'
                '#efefef;padding:8px;"><div><b>发件人:</b>&nbsp;"张伟"&lt;zhangwei@example.cn'
                "&gt;;</div><div><b>发送时间:</b>&nbsp;2024年3月4日(星期一) 上午8:15</div>"
                '<div><b>收件人:</b>&nbsp;"李娜"&lt;lina@example.cn&gt;;<wbr></div><div></div>'
                "<div><b>主题:</b>&nbsp;测试环境</div></div><div><br></div>"
                "李娜你好，测试环境什么时候能好？",
                "base64",
            ),
        ),
    ),
    QQ_NEW,
)


# Apple Mail forward with a note ------------------------------------------------------------

APPLE_FWD = "Hallo Lucía,\n\nkannst du das übernehmen? Danke!\n\nKatrin"
case(
    "apple-mail-de-forward-with-note",
    message(
        frm=KATRIN,
        to=LUCIA,
        subject="WG: Zertifikat läuft ab",
        date="Mon, 4 Mar 2024 10:30:00 +0100",
        mid="F1E2D3C4-B5A6-4978-8695-A4B3C2D1E0F9@example.de",
        extra=(
            ("MIME-Version", "1.0 (Mac OS X Mail 16.0 \\(3774.400.31\\))"),
            ("X-Mailer", "Apple Mail (2.3774.400.31)"),
        ),
        body=leaf(
            "text/plain;\r\n\tcharset=utf-8",
            f"{APPLE_FWD}\n\n> Anfang der weitergeleiteten Nachricht:\n> \n"
            "> Von: Jonas Weber <jonas@example.de>\n> Betreff: Zertifikat läuft ab\n"
            "> Datum: 4. März 2024 um 08:15:00 MEZ\n> An: Katrin Schulz <katrin@example.de>\n"
            "> \n> Hallo Katrin,\n> \n> das Staging-Zertifikat läuft am Freitag ab.\n> \n"
            "> Jonas\n\n",
        ),
    ),
    APPLE_FWD,
)


# Body lines that begin like an attribution ("On Friday ...", "Le client ...") -------------

TRAP_EN = "Hi Jonas,\n\nExport is done.\nOn Friday I'm out, back on Monday.\n\nThanks,\nMarcus"
case(
    "gmail-en-body-line-starting-with-on",
    gmail(
        frm=MARCUS,
        to=JONAS,
        subject="Weekly check-in",
        new=TRAP_EN,
        attr="On Mon, Mar 4, 2024 at 8:15 AM Jonas Weber <jonas@example.de> wrote:",
        quoted="Hi Marcus,\n\nWhat did you work on this week?\n\nJonas",
    ),
    TRAP_EN,
)
TRAP_FR = "Bonjour Jean,\n\nLe client a validé la maquette hier soir.\n\nBonne journée,\nClaire"
case(
    "gmail-fr-body-line-starting-with-le",
    gmail(
        frm=CLAIRE,
        to=JEAN,
        subject="Maquette",
        new=TRAP_FR,
        attr="Le lun. 4 mars 2024 à 08:15, Jean Dupont <jean@example.fr> a écrit :",
        quoted="Bonjour Claire,\n\nDes nouvelles du client ?\n\nJean",
    ),
    TRAP_FR,
)


# The tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_client_reply(raw: bytes, expected: str) -> None:
    assert extract_reply(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), HTML_CASES)
def test_client_reply_html_alternative(raw: bytes, expected: str) -> None:
    assert extract_reply(raw) == expected
