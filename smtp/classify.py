"""Decide whether an inbound message is human mail, an auto-reply or a bounce.

Auto-replies and bounces must never become updates and must never be answered
automatically, or two robots can mail each other forever.  Everything here is pure:
the caller parses the bytes and acts on the returned :class:`Classification`.

Header access goes through :meth:`email.message.Message.raw_items` rather than
``message[name]`` because under ``policy.default`` the latter parses the header and
can raise on garbage; the raw strings behave the same under ``compat32`` and
``policy.default``.
"""

import binascii
import codecs
import email
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Literal

from smtp.dsn import field_blocks, recipient_address

Kind = Literal["human", "auto_reply", "bounce"]


@dataclass(frozen=True)
class Classification:
    """The verdict on one inbound message."""

    kind: Kind
    reason: str
    detail: str = ""
    away_until: date | None = None
    bounced_recipients: tuple[str, ...] = ()
    permanent: bool | None = None


# --- limits: the corpus holds 3 MB messages nested hundreds deep; stay bounded ---------

_MAX_PARTS = 200
_MAX_DEPTH = 20
_MAX_TEXT = 64_000

# --- data tables (extend here, not in the logic) ---------------------------------------

# Subject prefixes that auto-responders put in front of (or instead of) the subject.
# Matched case-insensitively at the start of the decoded subject, after whitespace.
OOO_SUBJECT_PREFIXES: tuple[str, ...] = (
    "out of office",
    "out of the office",
    "automatic reply",
    "auto reply",
    "auto-reply",
    "autoreply",
    "auto response",
    "auto-response",
    "autoresponse",
    "autorespons",
    "automated reply",
    "automated response",
    "away from the office",
    "on vacation",
    "vacation reply",
    "abwesenheitsnotiz",
    "abwesenheit",
    "automatische antwort",
    "abwesend",
    "absence",
    "absent",
    "réponse automatique",
    "reponse automatique",
    "message d'absence",
    "risposta automatica",
    "fuori sede",
    "fuori ufficio",
    "respuesta automática",
    "respuesta automatica",
    "fuera de la oficina",
    "resposta automática",
    "ausente",
    "afwezig",
    "automatisch antwoord",
    "frånvaro",
    "autosvar",
    "automatiskt svar",
    "fravær",
    "poissa",
    "automaattinen vastaus",
    "poza biurem",
    "odpowiedź automatyczna",
    "automatická odpověď",
    "nepřítomnost",
    "автоответ",
    "автоматический ответ",
    "自動応答",
    "自動返信",
    "不在",
    "自动回复",
    "自動回覆",
    "자동 응답",
)

# Subject markers that mean "a machine wrote this" anywhere in the subject.
AUTO_SUBJECT_MARKERS: tuple[str, ...] = ("[auto generated]", "[auto-generated]", "[autoreply]")

# Subjects of non-standard bounces (matched at the start of the decoded subject).
BOUNCE_SUBJECT_PREFIXES: tuple[str, ...] = (
    "undelivered mail returned to sender",
    "undeliverable mail",
    "undeliverable",
    "undelivered mail",
    "undeliverable message",
    "delivery status notification",
    "delivery notification",
    "delivery failure",
    "delivery failed",
    "delivery has failed",
    "delivery report",
    "mail delivery failed",
    "mail delivery failure",
    "mail delivery system",
    "mail delivery subsystem",
    "failure notice",
    "mail delivery warning",
    "delivery warning",
    "delivery delayed",
    "mail error",
    "mail system error",
    "failed mail",
    "returned mail",
    "return receipt (failure)",
    "nondeliverable mail",
    "non-deliverable",
    "non delivery",
    "non-delivery",
    "message delivery failure",
    "message not delivered",
    "message undeliverable",
    "could not send message",
    "warning: could not send message",
    "mail could not be delivered",
    "unzustellbar",
    "nicht zustellbar",
    "non remis",
    "non distribuable",
    "échec de la remise",
    "niet bestelbaar",
    "onbestelbaar",
    "mancato recapito",
    "no se puede entregar",
    "không thể",
    "配信不能",
    "未送达",
    "退信",
)

# Local parts of sender addresses used by mail systems for bounces.
BOUNCE_SENDER_LOCALPARTS: frozenset[str] = frozenset(
    {
        "mailer-daemon",
        "mailer_daemon",
        "mailerdaemon",
        "mail-daemon",
        "mdaemon",
    }
)

# Sender local parts that say "a machine sent this" without saying what kind of message;
# enough to look at the body for bounce text, not enough to call it a bounce.
# Postmaster is also a role account people write from, so it only counts this weakly.
NOREPLY_SENDER_LOCALPARTS: frozenset[str] = frozenset(
    {
        "no-reply",
        "noreply",
        "no_reply",
        "do-not-reply",
        "donotreply",
        "do_not_reply",
        "postmaster",
        "post_master",
    }
)

# Subjects of feedback (complaint) reports that do not use the ARF MIME structure.
FEEDBACK_SUBJECT_PREFIXES: tuple[str, ...] = ("complaint about message from",)

# Headers that mark mail sent by a list server, including its own notices.
LIST_HEADERS: tuple[str, ...] = (
    "list-id",
    "list-unsubscribe",
    "list-post",
    "list-subscribe",
    "list-help",
    "list-owner",
    "mailing-list",
    "x-mlserver",
    "x-ml-name",
)

# Body phrases emitted by MTAs in plain-text bounces; only trusted together with another
# automation signal, because a human may forward a bounce to ask about it.
BOUNCE_BODY_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"this is the mail system at host",
        r"this message was created automatically by mail delivery software",
        r"hi\. this is the qmail-send program",
        r"i'm afraid i wasn't able to deliver your message",
        r"delivery has failed to these recipients or groups",
        r"your message (?:did not reach|couldn't be delivered|wasn't delivered|could not be"
        r" delivered)",
        r"the following addresses? had (?:permanent )?(?:fatal )?errors",
        r"the original message was received at",
        r"delivery to the following recipients? failed",
        r"unable to deliver (?:your )?message",
        r"(?:message|mail) (?:could not|cannot) be delivered",
        r"could not be delivered to",
        r"did not reach the following recipient",
        r"recipient name is not recognized|unknown recipient",
        r"permanent(?:ly)? (?:error|failure|fatal)",
        r"undeliver(?:able|ed) (?:message|mail)",
        r"delivery (?:status notification|failure|failed|problems?)",
        r"returned mail",
        r"user unknown|unknown user|no such user|mailbox (?:unavailable|full|not found)",
        r"recipient address rejected",
    )
)

# X-Mailer values (substrings, lowercase) of known auto-responders.
AUTORESPONDER_MAILERS: tuple[str, ...] = (
    "vacation",
    "autorespond",
    "autoreply",
    "auto-reply",
    "auto reply",
    "out of office",
)

_SUBJECT_SEPARATORS = ":：-–—]）)|"

_PRECEDENCE_AUTO = {"bulk", "junk", "list", "auto_reply", "auto-reply"}
_FALSY = {"", "no", "false", "0", "off"}


# --- header helpers ---------------------------------------------------------------------


def _to_text(value: object) -> str:
    """Render a raw header value as readable text; never raises."""
    if not isinstance(value, str):
        # compat32 can hold email.header.Header objects when set programmatically.
        try:
            value = str(value)
        except Exception:
            return ""
    # Undecodable 8-bit bytes come through as surrogate escapes; make them printable.
    value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return re.sub(r"\r?\n[ \t]*|\r[ \t]*", " ", value).strip()


# An RFC 2047 encoded word. Its text stops at the next "?" or white space, which keeps the
# search linear: the stdlib's pattern (`email.header.decode_header`) lets the text run on to
# the next "?=", which is quadratic in a subject of many "=?" openings with no ending.
ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([qQbB])\?([^?\s]*)\?=")
# White space between two adjacent encoded words is not part of the text (RFC 2047 6.2).
_BETWEEN_WORDS = re.compile(r"(?<=\?=)\s+(?==\?[^?\s]*\?[qQbB]\?[^?\s]*\?=)")


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; one that cannot be decoded stays as it is."""
    if "=?" not in value:
        return value
    return ENCODED_WORD.sub(_decoded_word, _BETWEEN_WORDS.sub("", value))


def _decoded_word(match: re.Match[str]) -> str:
    charset, kind, text = match.groups()
    data = text.encode("utf-8", "surrogatepass")
    try:
        if kind in "bB":
            data = binascii.a2b_base64(data + b"=" * (-len(data.rstrip(b"=")) % 4))
        else:
            data = binascii.a2b_qp(data, header=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    return _decode_word(data, charset.split("*", 1)[0])


def _decode_word(chunk: bytes, charset: str | None) -> str:
    """One encoded word's bytes as text. A label that names no charset (unknown, a
    bytes-to-bytes codec, or an escape codec, which makes NULs and lone surrogates of plain
    ASCII), or a decoding with a lone surrogate in it (UTF-7), reads the bytes as UTF-8, else
    latin-1."""
    try:
        codec = codecs.lookup(charset or "ascii").name
    except (LookupError, ValueError):
        return _guess(chunk)
    if codec in _NOT_CHARSETS:
        return _guess(chunk)
    try:
        text = chunk.decode(codec, "replace")
    except (LookupError, TypeError, ValueError):
        return _guess(chunk)
    return text if _valid(text) else _guess(chunk)


def _guess(chunk: bytes) -> str:
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError:
        return chunk.decode("latin-1")


_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "punycode", "idna"})


def _valid(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _headers(message: Message, name: str) -> list[str]:
    """All values of header ``name`` as unfolded text."""
    wanted = name.lower()
    try:
        items = list(message.raw_items())
    except Exception:
        return []
    return [_to_text(v) for k, v in items if isinstance(k, str) and k.strip().lower() == wanted]


def _header(message: Message, name: str) -> str:
    values = _headers(message, name)
    return values[0] if values else ""


def _has_header(message: Message, name: str) -> bool:
    wanted = name.lower()
    try:
        items = list(message.raw_items())
    except Exception:
        return False
    return any(isinstance(k, str) and k.strip().lower() == wanted for k, _ in items)


def _subject(message: Message) -> str:
    return decode_words(_header(message, "subject")).strip()


def _addresses(value: str) -> list[str]:
    try:
        pairs = getaddresses([value])
    except Exception:
        return []
    return [addr.strip().lower() for _, addr in pairs if addr.strip()]


def _first_keyword(value: str) -> str:
    """The value's first token, lowercased, with comments and parameters removed."""
    value = re.sub(r"\([^)]*\)", " ", value)
    return value.split(";", 1)[0].strip().lower()


# --- structure helpers ------------------------------------------------------------------


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "text/plain"


def _param(part: Message, name: str) -> str:
    try:
        value = part.get_param(name)
    except Exception:
        return ""
    if isinstance(value, tuple):  # RFC 2231 (charset, language, text)
        value = value[2]
    return str(value or "").strip().lower()


def _walk(message: Message) -> Iterator[Message]:
    """Iterative, bounded replacement for ``Message.walk``."""
    stack: list[tuple[Message, int]] = [(message, 0)]
    seen = 0
    while stack and seen < _MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        yield part
        if depth >= _MAX_DEPTH:
            continue
        try:
            payload = part.get_payload()
        except Exception:
            continue
        if isinstance(payload, list):
            children = [p for p in payload if isinstance(p, Message)]
            stack.extend((child, depth + 1) for child in reversed(children))


def _part_text(part: Message) -> str:
    """The decoded text of a single non-multipart part, bounded."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if payload is None:
        try:
            raw = part.get_payload()
        except Exception:
            return ""
        return raw[:_MAX_TEXT] if isinstance(raw, str) else ""
    if not isinstance(payload, bytes):
        return ""
    charset = _param(part, "charset") or "utf-8"
    try:
        text = payload[:_MAX_TEXT].decode(charset, "replace")
    except (LookupError, TypeError):
        text = payload[:_MAX_TEXT].decode("latin-1")
    return text


def _unparsed_multipart(part: Message, ctype: str) -> bool:
    """A multipart whose boundary was missing or broken: its parts are just text to us."""
    if not ctype.startswith("multipart/"):
        return False
    try:
        return isinstance(part.get_payload(), str)
    except Exception:
        return False


def _body_text(message: Message) -> str:
    """The human-readable text of the message (not of attached originals)."""
    texts: list[str] = []
    for part in _walk(message):
        ctype = _content_type(part)
        # An attached original message is someone else's text; stop at it.
        if part is not message and ctype.startswith("message/"):
            break
        if ctype in ("text/plain", "text/html") or _unparsed_multipart(part, ctype):
            text = _part_text(part)
            if ctype == "text/html":
                text = re.sub(r"<[^>]*>", " ", text)
            texts.append(text)
        if sum(len(t) for t in texts) >= _MAX_TEXT:
            break
    return "\n".join(texts)[:_MAX_TEXT]


# --- bounces ----------------------------------------------------------------------------

_STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")


@dataclass
class _Recipient:
    address: str = ""
    action: str = ""
    status: str = ""


def _dsn_blocks(part: Message) -> list[list[tuple[str, str]]]:
    """Field blocks of a message/delivery-status part, whichever way it was parsed."""
    try:
        payload = part.get_payload()
    except Exception:
        return []
    if isinstance(payload, list):
        blocks: list[list[tuple[str, str]]] = []
        for sub in payload:
            if not isinstance(sub, Message):
                continue
            try:
                items = list(sub.raw_items())
            except Exception:
                continue
            blocks.append([(k.strip().lower(), _to_text(v)) for k, v in items])
            # A block with no blank line after it ends up as the next block's body.
            try:
                body = sub.get_payload()
            except Exception:
                body = None
            if isinstance(body, str) and body.strip():
                blocks.extend(field_blocks(body))
        return blocks
    return field_blocks(_part_text(part))


def _dsn_recipients(blocks: list[list[tuple[str, str]]]) -> list[_Recipient]:
    recipients: list[_Recipient] = []
    for block in blocks:
        fields = dict(reversed(block))  # first occurrence wins
        final = fields.get("final-recipient", "")
        original = fields.get("original-recipient", "")
        if not (final or original or "action" in fields):
            continue
        # Original-Recipient is the address as we sent it; Final-Recipient may be an alias
        # expansion we never heard of.
        address = recipient_address(original) or recipient_address(final)
        status_match = _STATUS_RE.search(fields.get("status", ""))
        recipients.append(
            _Recipient(
                address=address,
                action=_first_keyword(fields.get("action", "")),
                status=status_match.group(0) if status_match else "",
            )
        )
    return recipients


def _is_permanent(recipient: _Recipient) -> bool | None:
    if recipient.status:
        return {"5": True, "4": False}.get(recipient.status[0])
    if recipient.action == "failed":
        return True
    if recipient.action == "delayed":
        return False
    return None


def _combine_permanence(values: list[bool | None]) -> bool | None:
    """One flag for the message: only definite when every failure agrees."""
    known = set(values)
    if known == {True}:
        return True
    if known == {False}:
        return False
    return None


def _unique(addresses: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a for a in addresses if a))


def _detect_dsn(message: Message) -> Classification | None:
    """RFC 3464 delivery status notifications, wherever the report part sits."""
    report_type = ""
    status_parts: list[Message] = []
    for part in _walk(message):
        ctype = _content_type(part)
        if ctype == "multipart/report" and not report_type:
            report_type = _param(part, "report-type")
        elif ctype in ("message/delivery-status", "message/global-delivery-status"):
            status_parts.append(part)
    if not status_parts and report_type not in ("delivery-status", "global-delivery-status"):
        return None
    recipients = [r for part in status_parts for r in _dsn_recipients(_dsn_blocks(part))]
    failed = [r for r in recipients if r.action not in ("delivered", "relayed", "expanded")]
    if recipients and not failed:
        return Classification(
            kind="bounce",
            reason="dsn-success",
            detail="delivery status notification reporting success: "
            + ", ".join(sorted({r.action for r in recipients})),
        )
    permanent = _combine_permanence([_is_permanent(r) for r in failed])
    addresses = _unique([r.address for r in failed])
    if not addresses:
        # Malformed reports often lose the recipient fields; fall back to the text.
        permanent_found, temporary_found = _flufl_recipients(message)
        addresses = _unique(
            _text_bounce_recipients(message, _body_text(message))
            + permanent_found
            + temporary_found
        )
        if permanent is None and (permanent_found or temporary_found):
            permanent = _combine_permanence(
                [True] * len(permanent_found) + [False] * len(temporary_found)
            )
    statuses = ", ".join(sorted({r.status or r.action or "?" for r in failed}))
    return Classification(
        kind="bounce",
        reason="dsn-report",
        detail=f"delivery status notification ({statuses or 'no status'})",
        bounced_recipients=addresses,
        permanent=permanent,
    )


_SES_TYPE_RE = re.compile(r'"notificationType"\s*:\s*"(\w+)"')
_SES_BOUNCE_TYPE_RE = re.compile(r'"bounceType"\s*:\s*"(\w+)"')
_SES_RECIPIENTS_RE = re.compile(r'"bouncedRecipients"\s*:\s*\[(.*?)\]', re.DOTALL)
_SES_ADDRESS_RE = re.compile(r'"emailAddress"\s*:\s*"([^"]+)"')


def _detect_ses_notification(message: Message) -> Classification | None:
    """Amazon SES feedback forwarded by e-mail: a JSON document in a plain-text body."""
    if _content_type(message) != "text/plain":
        return None
    text = _part_text(message)
    kind = _SES_TYPE_RE.search(text)
    if kind is None:
        return None
    notification = kind.group(1).lower()
    if notification == "complaint":
        return Classification("auto_reply", "feedback-report", "Amazon SES complaint notification")
    if notification == "delivery":
        return Classification("bounce", "dsn-success", "Amazon SES delivery notification")
    if notification != "bounce":
        return None
    block = _SES_RECIPIENTS_RE.search(text)
    addresses = _SES_ADDRESS_RE.findall(block.group(1)) if block else []
    bounce_type = _SES_BOUNCE_TYPE_RE.search(text)
    permanent = {"permanent": True, "transient": False}.get(
        bounce_type.group(1).lower() if bounce_type else ""
    )
    return Classification(
        kind="bounce",
        reason="ses-notification",
        detail="Amazon SES bounce notification",
        bounced_recipients=_unique([a.strip().lower() for a in addresses]),
        permanent=permanent,
    )


def _sender_localparts(message: Message) -> set[str]:
    found: set[str] = set()
    for name in ("from", "sender", "return-path"):
        for value in _headers(message, name):
            for addr in _addresses(value):
                found.add(addr.split("@", 1)[0].strip().strip('"').replace("\\", ""))
    return found


def _null_return_path(message: Message) -> bool:
    return any(re.fullmatch(r"\s*<\s*>\s*", v) for v in _headers(message, "return-path"))


def _starts_with_any(text: str, prefixes: tuple[str, ...], *, strict: bool = False) -> str:
    """The first prefix ``text`` starts with as whole words, or "".

    ``strict`` also demands that the prefix stands alone (end of subject, or a separator
    such as ":" follows, or another listed prefix), because a person's update may well be
    titled "Out of office Friday" or "Absent tomorrow".
    """
    lowered = text.lower().lstrip(" \t*[(")
    for prefix in prefixes:
        if not lowered.startswith(prefix):
            continue
        rest = lowered[len(prefix) :]
        # Scripts written without spaces (CJK) have no word boundary to check.
        if rest and ord(prefix[-1]) < 0x2E80 and rest[0].isalnum():
            continue
        if not strict:
            return prefix
        rest = rest.lstrip()
        if not rest or rest[0] in _SUBJECT_SEPARATORS:
            return prefix
        if _starts_with_any(rest, prefixes, strict=True):
            return prefix
    return ""


_QMAIL_RCPT_RE = re.compile(r"^<([^<>\s@]+@[^<>\s]+)>:?", re.MULTILINE)
_LABELLED_RCPT_RE = re.compile(
    r"(?:rcpt to|could not be delivered to|original-recipient):?[ \t]*<?"
    r"([A-Za-z0-9._%+'=-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})",
    re.IGNORECASE,
)
_EXIM_BLOCK_RE = re.compile(
    r"following address(?:\(es\)|es)? failed:\s*\n((?:[ \t]+\S.*\n?)+)", re.IGNORECASE
)
_ADDRESS_RE = re.compile(r"[A-Za-z0-9._%+'=-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def _text_bounce_recipients(message: Message, text: str) -> list[str]:
    found: list[str] = []
    for value in _headers(message, "x-failed-recipients"):
        found.extend(a for a in _addresses(value) if "@" in a)
    found.extend(m.lower() for m in _QMAIL_RCPT_RE.findall(text))
    found.extend(m.lower() for m in _LABELLED_RCPT_RE.findall(text))
    for block in _EXIM_BLOCK_RE.findall(text):
        found.extend(m.lower() for m in _ADDRESS_RE.findall(block))
    return found


def _flufl_recipients(message: Message) -> tuple[list[str], list[str]]:
    """(permanent, temporary) recipients according to flufl.bounce, when installed."""
    try:
        from flufl.bounce import all_failures
    except ImportError:
        return [], []
    try:
        temporary, permanent = all_failures(message)
    except Exception:
        return [], []

    def norm(values: Iterable[object]) -> list[str]:
        out: list[str] = []
        for v in values:
            text = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            text = text.strip().strip("<>").lower()
            if "@" in text:
                out.append(text)
        return sorted(out)

    return norm(permanent), norm(temporary)


_TEMPORARY_RE = re.compile(
    r"delayed|will (?:keep|continue) (?:trying|to try)|still trying|not yet been delivered"
    r"|warning: could not send|temporar(?:y|ily)",
    re.IGNORECASE,
)


def _unquoted(text: str) -> str:
    """Drop quoted lines: a bounce quoted in a person's reply is the person's message."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))


def _forwarded_or_reply(subject: str) -> bool:
    return re.match(r"\s*(?:fwd?|tr|wg|rv|enc)\s*:", subject, re.IGNORECASE) is not None


def _machine_signal(message: Message, subject: str, localparts: set[str]) -> bool:
    """Weak signs of a machine sender, used only to trust bounce phrases in the body."""
    if _null_return_path(message) or localparts & NOREPLY_SENDER_LOCALPARTS:
        return True
    if _detect_auto_headers(message) is not None:
        return True
    lowered = subject.lower()
    return not _forwarded_or_reply(subject) and any(p in lowered for p in BOUNCE_SUBJECT_PREFIXES)


def _detect_text_bounce(message: Message) -> Classification | None:
    """Non-standard bounces: MAILER-DAEMON senders, bounce subjects, MTA text bodies."""
    subject = _subject(message)
    localparts = _sender_localparts(message)
    daemon = sorted(localparts & BOUNCE_SENDER_LOCALPARTS)
    subject_hit = _starts_with_any(subject, BOUNCE_SUBJECT_PREFIXES)
    failed_header = _has_header(message, "x-failed-recipients")
    text = ""
    body_hit = ""
    if not (daemon or subject_hit or failed_header):
        # A body phrase alone could be a person writing about a bounce; need a machine sign.
        if not _machine_signal(message, subject, localparts):
            return None
        text = _body_text(message)
        unquoted = _unquoted(text)
        body_hit = next((p.pattern for p in BOUNCE_BODY_PATTERNS if p.search(unquoted)), "")
        if not body_hit:
            return None
    if daemon:
        reason, detail = "mailer-daemon", f"sent by {daemon[0]}"
    elif failed_header:
        reason, detail = "x-failed-recipients", "X-Failed-Recipients header"
    elif subject_hit:
        reason, detail = "bounce-subject", f"subject starts with {subject_hit!r}"
    else:
        reason, detail = "bounce-body", f"body matches {body_hit!r}"
    text = text or _body_text(message)
    permanent_found, temporary_found = _flufl_recipients(message)
    recipients = _unique(_text_bounce_recipients(message, text) + permanent_found + temporary_found)
    permanent: bool | None
    if permanent_found or temporary_found:
        permanent = _combine_permanence(
            [True] * len(permanent_found) + [False] * len(temporary_found)
        )
    else:
        status = _STATUS_RE.search(text)
        if status:
            permanent = status.group(1) == "5"
        elif _TEMPORARY_RE.search(subject) or _TEMPORARY_RE.search(text):
            permanent = False
        else:
            permanent = None
    return Classification(
        kind="bounce",
        reason=reason,
        detail=detail,
        bounced_recipients=recipients,
        permanent=permanent,
    )


# --- auto-replies -----------------------------------------------------------------------


def _report(message: Message) -> Classification | None:
    """ARF complaints and read receipts: machine-made, but not delivery failures."""
    if _starts_with_any(_subject(message), FEEDBACK_SUBJECT_PREFIXES):
        return Classification("auto_reply", "feedback-report", "complaint report by subject")
    for part in _walk(message):
        ctype = _content_type(part)
        report_type = _param(part, "report-type") if ctype == "multipart/report" else ""
        if report_type == "feedback-report" or ctype == "message/feedback-report":
            return Classification("auto_reply", "feedback-report", "ARF abuse/feedback report")
        if report_type == "disposition-notification" or ctype == (
            "message/disposition-notification"
        ):
            return Classification("auto_reply", "read-receipt", "message disposition notification")
    return None


def _truthy(value: str) -> bool:
    return _first_keyword(value) not in _FALSY


def _present(_value: str) -> bool:
    return True


# (header, reason, predicate on each value). Order only decides the reported reason.
AUTO_HEADER_RULES: tuple[tuple[str, str, Callable[[str], bool]], ...] = (
    ("auto-submitted", "auto-submitted", lambda v: _first_keyword(v) not in ("", "no")),
    ("x-autoreply", "x-autoreply", _truthy),
    ("x-autorespond", "x-autorespond", _truthy),
    ("x-autoresponder", "x-autorespond", _truthy),
    ("x-auto-reply", "x-autoreply", _truthy),
    ("x-autogenerated", "x-autogenerated", lambda v: _first_keyword(v) == "reply"),
    ("x-apple-action", "x-autoreply", lambda v: _first_keyword(v) == "vacation"),
    ("x-ms-exchange-inbox-rules-loop", "exchange-rules-loop", _present),
    ("x-ms-exchange-generated-message-source", "exchange-generated", _truthy),
    # A plain request not to send auto-replies is set by Outlook on ordinary mail too
    # (see the discourse "quirks_exchange_xars" control), so only "All" counts: Exchange
    # puts it on the auto-replies it generates itself.
    (
        "x-auto-response-suppress",
        "auto-response-suppress",
        lambda v: "all" in {t.strip().lower() for t in v.split(",")},
    ),
    (
        "precedence",
        "precedence",
        lambda v: _first_keyword(v) in _PRECEDENCE_AUTO,
    ),
    ("x-loop", "x-loop", _present),
    (
        "x-mailer",
        "autoresponder-mailer",
        lambda v: any(m in v.lower() for m in AUTORESPONDER_MAILERS),
    ),
    ("x-post-messageclass", "autoresponder-mailer", lambda v: "autoresponder" in v.lower()),
    ("x-fc-machinegenerated", "x-autogenerated", _truthy),
)


def _detect_auto_headers(message: Message) -> Classification | None:
    for name, reason, accept in AUTO_HEADER_RULES:
        for value in _headers(message, name):
            if accept(value):
                if reason == "precedence":
                    reason = "precedence-" + _first_keyword(value).replace("_", "-")
                return Classification("auto_reply", reason, f"{name}: {value[:80]}")
    return None


def _detect_auto_subject(message: Message) -> Classification | None:
    subject = _subject(message)
    prefix = _starts_with_any(subject, OOO_SUBJECT_PREFIXES, strict=True)
    if prefix:
        return Classification("auto_reply", "ooo-subject", f"subject: {subject[:80]}")
    lowered = subject.lower()
    marker = next((m for m in AUTO_SUBJECT_MARKERS if m in lowered), "")
    if marker:
        return Classification("auto_reply", "auto-subject", f"subject: {subject[:80]}")
    return None


def _detect_list(message: Message) -> Classification | None:
    for name in LIST_HEADERS:
        if _has_header(message, name):
            return Classification("auto_reply", "list-mail", f"{name} header present")
    return None


# --- return date of an out-of-office reply -----------------------------------------------

_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        ("january", "jan", "januar", "jänner", "janvier", "janv"),
        ("february", "feb", "februar", "février", "fevrier", "févr", "fevr"),
        ("march", "mar", "märz", "maerz", "mars"),
        ("april", "apr", "avril", "avr"),
        ("may", "mai"),
        ("june", "jun", "juni", "juin"),
        ("july", "jul", "juli", "juillet", "juil"),
        ("august", "aug", "août", "aout"),
        ("september", "sep", "sept"),
        ("october", "oct", "oktober", "okt", "octobre"),
        ("november", "nov", "novembre"),
        ("december", "dec", "dezember", "dez", "décembre", "decembre", "déc"),
    ),
    start=1,
):
    for _name in _names:
        _MONTHS[_name] = _number

_MONTH = "(?P<month>" + "|".join(sorted(map(re.escape, _MONTHS), key=len, reverse=True)) + ")"
_WEEKDAY = (
    r"(?:(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|wed|thu|fri|sat"
    r"|sun|montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|lundi|mardi|mercredi"
    r"|jeudi|vendredi|samedi|dimanche)\.?,?\s+)?"
)
_ANCHOR = (
    r"(?:until|till|back on|back in the office on|returning on|return on|i will return on"
    r"|bis(?:\s+(?:zum|zur|einschließlich|einschl\.))?|zurück am|wieder am"
    r"|jusqu'(?:au|à)|jusqu’(?:au|à)|de retour le|retour le)"
)
_DATE_FORMS = (
    r"(?P<iso>(?P<iy>\d{4})-(?P<im>\d{1,2})-(?P<id>\d{1,2}))(?![\d-])",
    r"(?P<dot>(?P<dd>\d{1,2})\.(?P<dm>\d{1,2})\.(?P<dy>\d{4}|\d{2})?)(?![\d.]*\d)",
    r"(?P<dmy>(?P<xd>\d{1,2})(?:st|nd|rd|th|er|\.)?\s+(?:of\s+)?"
    + _MONTH.replace("month", "xm")
    + r"\.?(?:,?\s+(?P<xy>\d{4}))?)(?![\w])",
    r"(?P<mdy>" + _MONTH.replace("month", "ym") + r"\.?\s+(?P<yd>\d{1,2})(?:st|nd|rd|th)?"
    r"(?:,?\s+(?P<yy>\d{4}))?)(?![\w])",
)
_AWAY_RE = re.compile(
    r"\b"
    + _ANCHOR
    + r"\s+(?:the\s+|le\s+|dem\s+)?"
    + _WEEKDAY
    + r"(?:"
    + "|".join(_DATE_FORMS)
    + ")",
    re.IGNORECASE,
)


def _message_date(message: Message) -> date | None:
    value = _header(message, "date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed.date() if isinstance(parsed, datetime) else None


def _match_to_date(match: re.Match[str], sent: date | None) -> date | None:
    groups = match.groupdict()
    year: int | None
    if groups["iso"]:
        year, month, day = int(groups["iy"]), int(groups["im"]), int(groups["id"])
    elif groups["dot"]:
        day, month = int(groups["dd"]), int(groups["dm"])
        year = int(groups["dy"]) if groups["dy"] else None
        if year is not None and year < 100:
            year += 2000
    elif groups["dmy"]:
        day, month = int(groups["xd"]), _MONTHS[groups["xm"].lower()]
        year = int(groups["xy"]) if groups["xy"] else None
    else:
        day, month = int(groups["yd"]), _MONTHS[groups["ym"].lower()]
        year = int(groups["yy"]) if groups["yy"] else None
    if year is None:
        # Without a year only the message's own date tells us which year is meant.
        if sent is None:
            return None
        year = sent.year
        try:
            if date(year, month, day) < sent - timedelta(days=1):
                year += 1
        except ValueError:
            return None
    try:
        result = date(year, month, day)
    except ValueError:
        return None
    # A date in the past or more than a year away is a stale template or a misread.
    if sent is not None and not (sent - timedelta(days=1) <= result <= sent + timedelta(days=366)):
        return None
    return result


def away_until(message: Message) -> date | None:
    """The return date an out-of-office reply states, or None when not clearly stated.

    Only dates right after an anchor ("until", "back on", "bis zum", "jusqu'au", ...) are
    read, and several different dates make the answer None rather than a guess.
    """
    sent = _message_date(message)
    text = _subject(message) + "\n" + _body_text(message)
    found: set[date] = set()
    for match in _AWAY_RE.finditer(text):
        value = _match_to_date(match, sent)
        if value is None:
            # An anchored phrase we could not read makes any other reading suspect.
            return None
        found.add(value)
    return found.pop() if len(found) == 1 else None


# --- entry point -------------------------------------------------------------------------

_Detector = Callable[[Message], Classification | None]

# Bounces first (they often carry Auto-Submitted too and need recipient extraction), then
# reports, explicit auto-reply headers, subjects, and list mail last as the weakest signal.
_DETECTORS: tuple[_Detector, ...] = (
    _detect_dsn,
    _detect_ses_notification,
    _detect_text_bounce,
    _report,
    _detect_auto_headers,
    _detect_auto_subject,
    _detect_list,
)

_NO_DATE_REASONS = {"list-mail", "feedback-report", "read-receipt"}


# The mark as bytes, and as the parser leaves it: three replacement characters.
_BOMS = (b"\xef\xbb\xbf", "\ufffd\ufffd\ufffd".encode())


def _without_bom(message: Message) -> Message | None:
    """Re-read a message whose headers hid behind a UTF-8 byte order mark.

    The parser sees no headers at all then and keeps everything as body, so no rule could
    match; one re-parse of the body without the mark recovers the real headers.
    """
    try:
        if list(message.raw_items()):
            return None
        payload = message.get_payload()
        if not isinstance(payload, str):
            return None
        raw = payload.encode("utf-8", "surrogateescape")
        bom = next((b for b in _BOMS if raw.startswith(b)), None)
        if bom is None:
            return None
        return email.message_from_bytes(raw[len(bom) :], policy=message.policy)
    except Exception:
        return None


def classify_message(message: Message) -> Classification:
    """Classify a parsed inbound message as ``human``, ``auto_reply`` or ``bounce``.

    Never raises: a detector that fails on broken input is skipped, and if no other rule
    decides, the message is held as ``auto_reply`` with reason ``classifier-error`` so it
    is quarantined rather than answered.
    """
    message = _without_bom(message) or message
    errors: list[str] = []
    for detector in _DETECTORS:
        try:
            result = detector(message)
        except Exception as exc:
            errors.append(f"{detector.__name__}: {type(exc).__name__}: {exc}"[:200])
            continue
        if result is None:
            continue
        if result.kind == "auto_reply" and result.reason not in _NO_DATE_REASONS:
            try:
                until = away_until(message)
            except Exception:
                until = None
            if until is not None:
                return Classification(result.kind, result.reason, result.detail, away_until=until)
        return result
    if errors:
        # Unreadable by some rule: hold it for a person rather than risk answering a robot.
        return Classification("auto_reply", "classifier-error", "; ".join(errors))
    return Classification("human", "no-automation-signals")
