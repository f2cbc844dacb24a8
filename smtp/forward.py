"""Forwarded mail: find the forwarded message in a raw message and render it as an update body.

Reply extraction (`smtp.extract`) treats a forwarded block as quoted history and keeps only the
note above it. A forward posted to a team address starts a new thread, and there the forwarded
message *is* the content, so `find_forward` pulls it out (with the note and the original
From/Date/Subject as shown) and `forward_markdown` renders it as a clearly marked blockquote.

Two shapes are recognised:

* **An embedded message** (a `message/rfc822` or `message/global` part, attached or inline,
  whatever the subject). Its headers and its own text are the forwarded message; the outer
  message's own text is the note. Parts inside a `multipart/report` (bounces, read receipts,
  abuse reports) or a `multipart/digest` are not forwards.
* **An inline forward**: a forward subject prefix *and* a forward marker line in the text (see
  `FORWARD_SUBJECT_PREFIXES` and `_marker`), followed by the header block the client writes.

The MIME tree, part decoding and the HTML conversion are the ones reply extraction uses, with
two differences: forwarded HTML is converted *without* stopping at a client's quote container
or `<hr>`, because in a forward that container holds the message being shared; and a leading
mbox "From " line (common in attached .eml files) is skipped instead of hiding the headers.

Pure: no I/O, no clock. Nothing here raises on hostile input; every loop is bounded (parts by
`smtp.extract`'s part budget and depth cap, nested forwards by `_MAX_CHAIN`, the marker search by
the trimmer's scan region).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email
import quopri
import re
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import Message

from smtp import reply_patterns as rp
from smtp.classify import decode_words
from smtp.extract import MAX_PARTS, decode_bytes, is_attachment, parse_mime, part_text
from smtp.htmltext import (
    FEED_CHUNK,
    QUOTE_CONTAINERS,
    HtmlConverter,
    flatten_markup,
    html_to_text,
    markup_offset,
)
from smtp.trim import for_matching, split_scan_region, trim_quoted_reply


@dataclass(frozen=True)
class Forward:
    note: str  # what the forwarder wrote above the forwarded message ('' if nothing)
    sender: str  # the original From as shown, '' if unknown
    date: str  # the original date as shown, '' if unknown
    subject: str  # the original subject, '' if unknown
    body: str  # the forwarded message's text (plain text; from HTML when that's all there is)


# A bare re-forward (a forwarded message that is itself only an attached message) is followed
# this many levels down at most; `smtp.extract` caps the MIME depth of one parse as well.
_MAX_CHAIN = 8
# Marker and header lines are short; longer lines are never tested (keeps hostile input cheap).
_MAX_MARKER_LINE = 400
# Blank lines allowed between a marker and its header block (Apple Mail leaves one).
_MAX_GAP = 3
# Lines looked at in a header block: real ones have four to eight fields.
_MAX_HEADER_LINES = 20
# Quote levels counted on one line; deeper nesting reads as this deep.
_MAX_LEVEL = 32

# Subject prefixes that mark a forward, as mail clients write them. "VS:" is Danish and
# Norwegian (videresend) but a *reply* in Finnish Outlook; that is harmless because an inline
# forward also needs a marker line in the text.
FORWARD_SUBJECT_PREFIXES: tuple[str, ...] = (
    "Fwd",
    "Fw",
    "WG",  # de
    "TR",  # fr
    "RV",  # es
    "Doorst",  # nl
    "VS",  # da, no
    "VB",  # sv
    "VL",  # fi
    "ENC",  # pt
    "I",  # it
    "PD",  # pl
    "PŘ",  # cs
    "TOV",  # hu
    "İLT",  # tr
    "ILT",
    "ΠΡΘ",  # el
    "Пересл",  # ru
    "转发",  # zh-Hans
    "轉寄",  # zh-Hant
    "転送",  # ja
    "전달",  # ko
)


def _alternation(words: tuple[str, ...] | list[str]) -> str:
    # Longest first, so "Fwd" is tried before "Fw" and "Doorst" before "Do...".
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


_FORWARD_SUBJECT = re.compile(
    # Optional list tags ("[team] Fwd: ..."), then Netscape's "[Fwd: subject]" bracket.
    r"^\s*(?:\[[^\[\]]{0,80}\]\s*)*\[?\s*(?:"
    + _alternation(FORWARD_SUBJECT_PREFIXES)
    + r")\s*(?:\[\d+\])?\s*[:：]",
    re.IGNORECASE,
)

# Separator phrases that name a *forwarded* message: after one of them a header block is
# optional. The other phrases in `rp.ORIGINAL_MESSAGE_PHRASES` ("Original Message", ...) also
# start quoted replies, so they count only with a header block under them.
_FORWARD_PHRASES: tuple[str, ...] = (
    "Forwarded message",
    "Weitergeleitete Nachricht",
    "Message transféré",
    "Message transfere",
    "Mensaje reenviado",
    "Mensagem encaminhada",
    "Mensagem reencaminhada",
    "Messaggio inoltrato",
    "Doorgestuurd bericht",
    "Vidarebefordrat meddelande",
    "Videresendt meddelelse",
    "Videresendt melding",
    "Välitetty viesti",
    "Przekazana wiadomość",
    "Přeposlaná zpráva",
    "Пересылаемое сообщение",
    "Пересланное сообщение",
    "Továbbított üzenet",
    "İletilen ileti",
    "Προωθημένο μήνυμα",
    "转发的邮件",
    "轉寄的郵件",
    "転送されたメッセージ",
    "전달된 메시지",
)
_FORWARD_PHRASE_KEYS = frozenset(p.casefold() for p in _FORWARD_PHRASES)
_SEPARATOR = re.compile(
    r"^[-_=*]{2,}\s*(?P<phrase>"
    + _alternation(rp.ORIGINAL_MESSAGE_PHRASES + _FORWARD_PHRASES)
    + r")\s*[:：]?\s*[-_=*]{2,}$",
    re.IGNORECASE,
)
# Apple Mail's "Begin forwarded message:" and its translations.
_INTRO = re.compile(r"^(?:" + _alternation(rp.FORWARD_INTROS) + r")\s*[:：]?$", re.IGNORECASE)
# mutt: "----- Forwarded message from Jane <jane@example.org> -----" ... "----- End forwarded
# message -----".
_MUTT = re.compile(
    r"^-{2,}\s*Forwarded message from\s+(?P<sender>.{1,300}?)\s*-{2,}$", re.IGNORECASE
)
_MUTT_END = re.compile(r"^-{2,}\s*End (?:of )?forwarded message\s*-{2,}$", re.IGNORECASE)
# Lotus Notes: "----- Forwarded by Jane Doe/Org on 02/11/2026 10:00 -----".
_NOTES = re.compile(r"^-{2,}\s*Forwarded by\s.{1,300}?-{2,}$", re.IGNORECASE)
# A bare rule (Outlook's line of underscores, "-----", "=====") counts with a header block.
_RULE = re.compile(r"^(?:[-_=*]\s*){4,}$")

# Header block fields. The From names come from the trimmer's table; date and subject names
# are picked out of its other fields, which lump all kinds together.
_FROM_NAMES = frozenset(n.casefold() for n in rp.HEADER_FROM_FIELDS)
_DATE_FIELDS: tuple[str, ...] = (
    "Date", "Sent", "Datum", "Gesendet", "Envoyé", "Envoyé le", "Data", "Inviato", "Fecha",
    "Enviado", "Enviado el", "Enviada em", "Enviat", "Enviat el", "Verzonden", "Skickat",
    "Sendt", "Dato", "Lähetetty", "Päivämäärä", "Wysłano", "Odesláno", "Отправлено", "Дата",
    "Надіслано", "Gönderildi", "Tarih", "Elküldve", "Dátum", "Trimis", "Στάλθηκε", "Đã gửi",
    "Dikirim", "보낸 날짜", "送信日時", "日付", "发送时间", "日期", "傳送時間", "تم الإرسال",
    "التاريخ",
)  # fmt: skip
_SUBJECT_FIELDS: tuple[str, ...] = (
    "Subject", "Betreff", "Objet", "Sujet", "Oggetto", "Asunto", "Assunto", "Assumpte",
    "Onderwerp", "Ämne", "Emne", "Aihe", "Temat", "Předmět", "Тема", "Konu", "Tárgy",
    "Subiect", "Θέμα", "Chủ đề", "Perihal", "Subjek", "제목", "件名", "主题", "主旨", "الموضوع",
)  # fmt: skip
_DATE_NAMES = frozenset(n.casefold() for n in _DATE_FIELDS)
_SUBJECT_NAMES = frozenset(n.casefold() for n in _SUBJECT_FIELDS)
_KNOWN_NAMES = (
    _FROM_NAMES
    | _DATE_NAMES
    | _SUBJECT_NAMES
    | frozenset(n.casefold() for n in rp.HEADER_OTHER_FIELDS)
)
# "From: x", "**From:** x" (HTML bold), "*From:* x", "De : x" (French spacing), "件名：x".
_FIELD = re.compile(
    r"^\s*[*_]*\s*(?P<name>[^:：*_<>@\[\]()]{1,30}?)\s*[*_]*\s*[:：][*_]*(?P<value>.*)$"
)
# Fields no table knows ("Organization:", "Reply-To:") inside a block that started with a known
# one.
_GENERIC_NAME = re.compile(r"^[A-Za-z][A-Za-z-]{1,30}$")
# Address decorations left by HTML conversion and by Outlook's plain text.
_MD_LINK = re.compile(r"\[(?P<label>[^\[\]]{0,300})\]\((?:mailto:)?(?P<target>[^()\s]{1,300})\)")
_MAILTO = re.compile(r"\[mailto:(?P<addr>[^\[\]\s]{1,300})\]", re.IGNORECASE)
_QUOTE_MARK = re.compile(r"[ \t]*>")
_SIGNATURE = re.compile(r"^--[ \t]*(?:\n|$)")

_RULE_LINE = "_" * 32


# --- MIME -----------------------------------------------------------------------------------


def _tree(raw: bytes) -> Message | None:
    """The message tree as reply extraction builds it, or the stdlib's when that fails."""
    if raw.startswith(b"From "):
        # An mbox "From " line (saved mail, attached .eml files) is not a header; left in, it
        # would make the whole message read as a header-less body.
        newline = raw.find(b"\n")
        raw = raw[newline + 1 :] if newline >= 0 else b""
    try:
        return parse_mime(raw, [MAX_PARTS])
    except Exception:
        pass
    try:
        return email.message_from_bytes(raw, policy=policy.compat32)
    except Exception:
        return None


def _children(part: Message) -> list[Message]:
    payload = part.get_payload()
    return [c for c in payload if isinstance(c, Message)] if isinstance(payload, list) else []


def _header(msg: Message, name: str) -> str:
    """A header as a person reads it: 8-bit bytes and RFC 2047 words decoded, unfolded."""
    try:
        values = [v for k, v in msg.raw_items() if isinstance(k, str) and k.strip().lower() == name]
    except Exception:
        return ""
    if not values:
        return ""
    value = values[0] if isinstance(values[0], str) else str(values[0])
    try:
        # The parser keeps undecodable 8-bit header bytes as surrogate escapes; decode them with
        # the same charset guessing as bodies (UTF-8, else windows-1252) instead of dropping them.
        value = decode_bytes(value.encode("utf-8", "surrogateescape"), None)
    except UnicodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return " ".join(decode_words(value).replace("\x00", "").split())


def _embedded(msg: Message) -> Message | None:
    """The first message embedded in `msg` (or `msg`'s own payload when it is one)."""
    queue = [msg]
    seen = 0
    while queue and seen < MAX_PARTS:
        part = queue.pop(0)
        seen += 1
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            inner = _inner_message(part)
            if inner is not None:
                return inner
            continue
        if ctype in ("multipart/report", "multipart/digest"):
            # A bounce, read receipt or abuse report quotes the message it is about; a digest
            # is a bundle of list mail. Neither is a person forwarding something.
            continue
        if part.is_multipart():
            queue = _children(part) + queue
    return None


def _inner_message(part: Message) -> Message | None:
    """The message inside a message/* part, undoing a transfer encoding that hides it."""
    children = _children(part)
    payload = part.get_payload()
    if children:
        inner = children[0]
        if inner.keys() or not isinstance(inner.get_payload(), str):
            return inner
        # No header at all: the parser saw the still-encoded text (base64 or quoted-printable
        # message/rfc822, which RFC 2046 forbids but some clients send).
        payload = inner.get_payload()
    elif part.get_content_type() != "message/global" or not isinstance(payload, str):
        # A message/rfc822 left as text lies beyond the parser's depth cap: not followed.
        return None
    if not isinstance(payload, str):
        return None
    data = payload.encode("utf-8", "surrogateescape")
    encoding = str(part.get("Content-Transfer-Encoding", "") or "").strip().lower()
    try:
        if encoding == "base64":
            data = base64.b64decode(data)
        elif encoding == "quoted-printable":
            data = quopri.decodestring(data)
    except (binascii.Error, ValueError):
        return None
    return _tree(data) if data.strip() else None


def _readable(msg: Message, html_text: Callable[[str], str] | None = None) -> str:
    """A message's own text: text/plain parts, else its HTML as text (by default keeping
    quote containers, see `_html_text`); embedded messages and attachments are not its own
    text."""
    convert = html_text or _html_text
    plain: list[str] = []
    html: list[str] = []
    queue = [msg]
    seen = 0
    while queue and seen < MAX_PARTS:
        part = queue.pop(0)
        seen += 1
        ctype = part.get_content_type()
        if ctype.startswith("message/"):
            continue
        if part.is_multipart():
            queue = _children(part) + queue
            continue
        if is_attachment(part):
            continue
        if ctype == "text/plain":
            plain.append(part_text(part))
        elif ctype == "text/html":
            html.append(part_text(part))
    text = "\n".join(p for p in plain if p.strip())
    if text.strip():
        return text.replace("\x00", "")
    return "\n".join(convert(h) for h in html).replace("\x00", "")


# --- HTML -----------------------------------------------------------------------------------


class _ForwardConverter(HtmlConverter):
    """Reply extraction's HTML converter, minus its quote removal: in a forward, the client's
    quote container and the `<hr>` above it hold the message being shared."""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "hr":
            # Outlook puts an <hr> above the forwarded header block; its plain text has a line
            # of underscores there, which is what the marker search knows.
            if not self.done and self.skip_depth == 0:
                self._ensure_newline()
                self._write(_RULE_LINE)
                self._newline()
            return
        kept = [
            (name, value)
            for name, value in attrs
            if not (
                name in ("class", "id")
                and value
                and any(c in value.lower() for c in QUOTE_CONTAINERS)
            )
        ]
        super().handle_starttag(tag, kept)
        if self.done and self.stopped_at is None:
            # The element budget ran out. The base class drops the rest when that happens
            # inside a <blockquote> (history, for a reply); here it is content: keep its text.
            self.stopped_at = self.getpos()


def _html_text(markup: str) -> str:
    """`smtp.htmltext.html_to_text` with `_ForwardConverter`; never raises."""
    converter = _ForwardConverter()
    try:
        for start in range(0, len(markup), FEED_CHUNK):
            converter.feed(markup[start : start + FEED_CHUNK])
            if converter.done:
                break
        else:
            converter.close()
    except Exception:  # a broken body must still yield the text converted so far
        converter.done = True
    text = converter.text()
    if converter.stopped_at is not None:
        rest = flatten_markup(markup[markup_offset(markup, converter.stopped_at) :]).strip()
        text = f"{text}\n{rest}" if rest else text
    return text


# --- inline forwards ------------------------------------------------------------------------


def _level(line: str) -> int:
    """How many `>` quote marks start a line."""
    level = 0
    pos = 0
    while level < _MAX_LEVEL:
        match = _QUOTE_MARK.match(line, pos)
        if match is None:
            break
        level += 1
        pos = match.end()
    return level


def _unquote(line: str, levels: int) -> str:
    """A line without its first `levels` quote marks (and the space after each)."""
    for _ in range(levels):
        match = _QUOTE_MARK.match(line)
        if match is None:
            break
        line = line[match.end() :]
        if line.startswith(" "):
            line = line[1:]
    return line


def _is_blank(line: str) -> bool:
    # A quoted empty line (">", "> >") separates paragraphs like an empty one.
    return not line.replace(">", "").strip()


def _marker(content: str) -> tuple[str, str] | None:
    """(kind, sender) when a line starts a forwarded block: kind "forward" needs nothing
    under it, "headers" only counts with a header block under it."""
    if len(content) > _MAX_MARKER_LINE:
        return None
    separator = _SEPARATOR.match(content)
    if separator:
        phrase = " ".join(separator.group("phrase").split()).casefold()
        return ("forward" if phrase in _FORWARD_PHRASE_KEYS else "headers"), ""
    if _INTRO.match(content) or _NOTES.match(content):
        return "forward", ""
    mutt = _MUTT.match(content)
    if mutt:
        return "forward", mutt.group("sender")
    if _RULE.match(content):
        return "headers", ""
    return None


def _field(line: str, *, first: bool) -> tuple[str, str] | None:
    """(name, value) of a header line; the first line of a block must be a known field."""
    if len(line) > _MAX_MARKER_LINE * 4:
        return None
    match = _FIELD.match(line)
    if match is None:
        return None
    name = " ".join(match.group("name").split())
    key = name.casefold()
    if key in _KNOWN_NAMES or (not first and _GENERIC_NAME.match(name)):
        return key, match.group("value").strip()
    return None


@dataclass
class _Headers:
    values: dict[str, str]  # "from" / "date" / "subject" -> value as shown
    fields: int  # header lines recognised
    end: int  # index of the first line after the block


def _parse_headers(lines: list[str], start: int) -> _Headers:
    """The header block at the top of a forwarded block (blank lines before it skipped)."""
    i = start
    while i < len(lines) and i < start + _MAX_GAP and _is_blank(lines[i]):
        i += 1
    values: dict[str, str] = {}
    fields = 0
    last: str | None = None
    limit = min(len(lines), i + _MAX_HEADER_LINES)
    end = start
    while i < limit and not _is_blank(lines[i]):
        line = lines[i]
        field = _field(line, first=fields == 0)
        if field is not None:
            key, value = field
            fields += 1
            last = None
            for canonical, names in (
                ("from", _FROM_NAMES),
                ("date", _DATE_NAMES),
                ("subject", _SUBJECT_NAMES),
            ):
                if key in names and canonical not in values:
                    values[canonical] = value
                    last = canonical
        elif fields and _continues(lines, i, limit):
            # A wrapped value ("Subject: Some subject that\nspans over 2 lines").
            if last is not None:
                values[last] = f"{values[last]} {line.strip()}"
        else:
            break
        i += 1
        end = i
    return _Headers(values, fields, end if fields else start)


def _continues(lines: list[str], i: int, limit: int) -> bool:
    """Whether a non-field line inside a header block wraps the field above it: it is
    indented, or another field follows before the block's blank line."""
    if lines[i][:1] in (" ", "\t"):
        return True
    for j in range(i + 1, limit):
        if _is_blank(lines[j]):
            return False
        if _field(lines[j], first=False) is not None:
            return True
    return False


def _clean_value(value: str) -> str:
    """A header value without the Markdown and Outlook decorations around addresses."""

    def link(match: re.Match[str]) -> str:
        label, target = match.group("label").strip(), match.group("target")
        if target in label or target in value.replace(match.group(0), ""):
            return label
        return f"{label} <{target}>"

    value = _MD_LINK.sub(link, value)
    value = _MAILTO.sub(lambda m: f"<{m.group('addr')}>", value)
    value = value.replace("**", "")
    return " ".join(value.split()).strip("*")


@dataclass
class _Inline:
    before: list[str]  # lines above the marker
    after: list[str]  # lines below the forwarded block (text written under a quoted forward)
    headers: dict[str, str]
    body: list[str]


def _inline(text: str) -> _Inline | None:
    """The first forward marker in the scanned top of `text` and the block under it."""
    head, _ = split_scan_region(text)
    lines = text.split("\n")
    scanned = head.count("\n") + (0 if head.endswith("\n") else 1)
    for i in range(min(scanned, len(lines))):
        line = lines[i]
        if _is_blank(line) or len(line) > _MAX_MARKER_LINE:
            continue
        found = _starts_at(lines, i)
        if found is not None:
            return found
    return None


def _starts_at(lines: list[str], i: int) -> _Inline | None:
    """The forwarded block starting on line `i` (a marker, or a bare header block), if any."""
    level = _level(lines[i])
    content = for_matching(_unquote(lines[i], level)).strip()
    marker = _marker(content)
    if marker is None:
        field = _field(content, first=True)
        if field is None or field[0] not in _FROM_NAMES:
            return None
    return _block(lines, i, level, marker)


def _block(lines: list[str], i: int, level: int, marker: tuple[str, str] | None) -> _Inline | None:
    """The forwarded block that a marker on line `i` starts, or that starts on line `i` when
    there is no marker (a bare header block)."""
    start = i if marker is None else i + 1
    # Apple Mail quotes what follows an unquoted "Begin forwarded message:" one level deeper;
    # a quoted marker has its block at its own level.
    depth = level
    if marker is not None:
        reach = min(len(lines), start + _MAX_GAP + 1)
        nxt = next((j for j in range(start, reach) if not _is_blank(lines[j])), -1)
        if nxt >= 0 and _level(lines[nxt]) == level + 1:
            depth = level + 1

    def inside(line: str) -> bool:
        return _is_blank(line) or _level(line) >= depth

    # Only a window is read to decide whether this marker counts, so that many marker-like
    # lines cost a window each, not a pass over the rest of the text each.
    limit = min(len(lines), start + _MAX_GAP + _MAX_HEADER_LINES)
    end = start
    while end < limit and inside(lines[end]):
        end += 1
    window = [for_matching(_unquote(line, depth)) for line in lines[start:end]]
    headers = _parse_headers(window, 0)
    if marker is None:
        # Outlook (mobile, some web versions) writes the header block with no line above it;
        # without a marker only a full block counts: From plus two more fields.
        if "from" not in headers.values or headers.fields < 3:
            return None
    elif marker[0] == "headers" and headers.fields < 2:
        return None
    if end == limit:
        while end < len(lines) and inside(lines[end]):
            end += 1
    values = {k: _clean_value(v) for k, v in headers.values.items()}
    if marker is not None and marker[1] and "from" not in values:
        values["from"] = _clean_value(marker[1])
    block = [_unquote(line, depth) for line in lines[start:end]]
    body = block[headers.end :]
    after = lines[end:]
    for j, line in enumerate(body):
        if _MUTT_END.match(line.strip()):
            body, after = body[:j], body[j + 1 :] + after
            break
    return _Inline(before=lines[:i], after=after, headers=values, body=body)


# --- assembly -------------------------------------------------------------------------------


def _squash(text: str) -> str:
    return " ".join(text.split())


def _tidy_body(text: str) -> str:
    """The forwarded text without surrounding blank lines, and without a trailing `>`-quoted
    copy of itself (some clients append the message again as a quote); other quoted history
    is content and stays."""
    lines = [line.rstrip() for line in text.replace("\x00", "").split("\n")]
    cut = len(lines)
    while cut > 0 and (not lines[cut - 1].strip() or lines[cut - 1].lstrip().startswith(">")):
        cut -= 1
    quoted = _squash("\n".join(_unquote(line, 1) for line in lines[cut:]))
    above = lines[:cut]
    if quoted and any(line.strip() for line in above):
        if _squash("\n".join(above)) == quoted:
            lines = above
        else:
            # "...text\n\nOn <date>, Jane wrote:\n> ...text" (attribution above the copy).
            last = max(j for j, line in enumerate(above) if line.strip())
            if above[last].endswith((":", "：")) and _squash("\n".join(above[:last])) == quoted:
                lines = above[:last]
    return "\n".join(lines).strip("\n")


def _note(text: str) -> str:
    """The forwarder's own words, without signature, footer or quoted history."""
    if not text.strip():
        return ""
    # The trimmer does not raise on text, but a failure must keep the note rather than lose it.
    with contextlib.suppress(Exception):
        text = trim_quoted_reply(text).text
    text = text.replace("\x00", "").strip()
    # The trimmer cuts at a signature delimiter only below some text; a note that starts with
    # one ("-- \nJane Doe", all a forward-as-attachment often has) is only a signature.
    return "" if _SIGNATURE.match(text) else text


def _from_inline(found: _Inline) -> Forward:
    note = "\n".join(found.before).rstrip()
    after = "\n".join(found.after).strip("\n")
    if after.strip():
        note = f"{note}\n\n{after}" if note.strip() else after
    headers, body = found.headers, found.body
    for _ in range(_MAX_CHAIN):
        # A bare re-forward ("Fwd: Fwd:" with nothing written in between): the content is the
        # innermost message, as for embedded messages.
        first = next((j for j, line in enumerate(body) if not _is_blank(line)), -1)
        if first < 0 or len(body[first]) > _MAX_MARKER_LINE:
            break
        nested = _starts_at(body, first)
        if nested is None or any(not _is_blank(line) for line in nested.after):
            break
        headers, body = nested.headers, nested.body
    return Forward(
        note=_note(note),
        sender=headers.get("from", ""),
        date=headers.get("date", ""),
        subject=headers.get("subject", ""),
        body=_tidy_body("\n".join(body)),
    )


def _from_embedded(outer: Message, inner: Message) -> Forward:
    current = inner
    body = _readable(current)
    for _ in range(_MAX_CHAIN):
        if body.strip():
            break
        # A bare re-forward: the content is the message it carries.
        deeper = _embedded(current)
        if deeper is None:
            break
        current = deeper
        body = _readable(current)
    return Forward(
        # The outer message is an ordinary message around the attachment: its quoted history
        # is removed structurally, as for a reply.
        note=_note(_readable(outer, html_to_text)),
        sender=_header(current, "from"),
        date=_header(current, "date"),
        subject=_header(current, "subject"),
        body=_tidy_body(body),
    )


def _find(raw: bytes) -> Forward | None:
    msg = _tree(bytes(raw))
    if msg is None:
        return None
    if _FORWARD_SUBJECT.match(_header(msg, "subject")):
        found = _inline(_readable(msg))
        if found is not None:
            return _from_inline(found)
    inner = _embedded(msg)
    if inner is not None:
        return _from_embedded(msg, inner)
    return None


def find_forward(raw: bytes) -> Forward | None:
    """The forwarded message in a raw RFC 822 message, or None when it is not a forward.

    A forward is either a message with an embedded `message/rfc822` (or `message/global`)
    part, attached or inline, whatever its subject: sender, date, subject and body come from the
    embedded message (text/plain preferred, else its HTML as text; a bare re-forward is followed
    down to the message it carries) and the note is the outer message's own text. Or it is a
    message whose subject starts with a forward prefix (`FORWARD_SUBJECT_PREFIXES`) and whose
    text has a forward marker (Gmail, Apple Mail, Thunderbird, Outlook, Yahoo, mutt and Lotus
    separators and their translations, or an Outlook header block); the header block under the
    marker gives sender, date and subject, the rest is the body, and the text above the marker
    (plus any text written under a `>`-quoted forwarded block) is the note. An inline forward
    is preferred when a message has both.

    The note has its signature, footers and quoted history trimmed by the reply trimmer. The
    body keeps its own quoted history (it is what is being shared) but not a trailing
    `>`-quoted copy of exactly its own text.

    A subject with a forward prefix but neither a marker nor an embedded message is *not* a
    forward: there is no forwarded message to show, and no sender or date to attribute it to.
    Such a message goes through normal reply extraction, which keeps all of its text (nothing
    marks any of it as quoted), so nothing is lost and no "forwarded from unknown" header is
    invented.

    Never raises: broken MIME, bad charsets and deep nesting give a best effort or None.
    """
    try:
        return _find(raw)
    except Exception:  # the last line of defence: hostile mail must not stop processing
        return None


# --- rendering ------------------------------------------------------------------------------

# Characters Python-Markdown treats as markup inside a line (it honours a backslash before
# each). `<`, `>` and `&` become entities instead: a backslash does not stop raw HTML or an
# autolink, and "Name <addr>" must show the address rather than vanish as a tag.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()!#])")


def _escape(value: str) -> str:
    value = _squash(value.replace("\x00", ""))  # one line: a newline could start a new block
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", value)


def _blockquote(body: str) -> str:
    out: list[str] = []
    previous = 0
    for line in body.split("\n"):
        if not line.strip():
            out.append(">")
            continue
        level = _level(line)
        if level < previous and out and out[-1] != ">":
            # Markdown would continue the deeper quote lazily ("> > old\n> new" puts "new"
            # in the inner quote); an empty quoted line ends it.
            out.append(">")
        previous = level
        out.append(f"> {line}")
    return "\n".join(out)


def forward_markdown(fwd: Forward) -> str:
    """The update body for a forward: the note, then a marked header line and the forwarded
    text as a Markdown blockquote. Header values are escaped (they are shown, never rendered);
    the note and body are Markdown like any update text."""
    header = "**Forwarded message**"
    if fwd.sender.strip():
        header += f" from {_escape(fwd.sender)}"
    if fwd.date.strip():
        header += f", {_escape(fwd.date)}"
    if fwd.subject.strip():
        # The archive renders with nl2br: this shows as a second line under the header.
        header += f"\nSubject: {_escape(fwd.subject)}"
    parts = [fwd.note.strip()] if fwd.note.strip() else []
    parts.append(header)
    body = fwd.body.strip("\n")
    if body.strip():
        parts.append(_blockquote(body))
    return "\n\n".join(parts)
