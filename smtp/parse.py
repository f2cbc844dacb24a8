"""Raw RFC 822 bytes -> the facts processing needs. Pure: no database, no clock."""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import email
import email.errors
import email.policy
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parseaddr

import mailparser

from app.store import NewAttachment
from smtp.classify import ENCODED_WORD, Classification, classify_message, decode_words
from smtp.extract import decode_bytes, extract_reply_parts, is_valid_text
from smtp.forward import find_forward, forward_markdown
from smtp.mime_limits import OverLimit, check_limits
from smtp.trim import Reply

# Mailing-list tags ("[eng] ") come before or between the prefixes; both go from titles.
_LIST_TAG = r"\[[^\[\]]{1,40}\]\s*"
_SUBJECT_PREFIX = re.compile(
    rf"^\s*((re|fwd?|aw|sv|antw|wg|tr|rv|vs)\s*(\[\d+\])?\s*:\s*|{_LIST_TAG})+", re.I
)
# Reply prefixes only (forwards start new threads): en, de, nl, sv/da/no, fi, pl, tr, it, pt.
_REPLY_PREFIX = re.compile(
    rf"^\s*({_LIST_TAG})*(re|aw|antw|sv|vs|odp|ynt|r|res)\s*(\[\d+\])?\s*:", re.I
)
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")
MAX_REFERENCES = 20
_THREAD_INDEX_ROOT = 22


class UnparseableMessage(ValueError):
    """The message cannot be read well enough to become an update."""

    reason = "unparseable"  # the quarantine reason code


class MessageTooCostly(UnparseableMessage):
    """Over one of the limits in `smtp.mime_limits`: quarantined without being parsed."""

    def __init__(self, over: OverLimit) -> None:
        super().__init__(over.detail)
        self.reason = over.reason


@dataclass(frozen=True)
class ParsedMessage:
    from_address: str
    from_name: str
    subject: str
    message_id: str | None
    text: str
    quoted: str
    confident: bool
    classification: Classification
    attachments: list[NewAttachment] = field(default_factory=list)
    references: list[str] = field(default_factory=list)  # newest first
    conversation: str | None = None  # Outlook's Thread-Index conversation key
    forwarded: bool = False  # text holds a forwarded message, marked as such

    @property
    def is_reply(self) -> bool:
        return bool(_REPLY_PREFIX.match(self.subject))


def storable(value: str) -> str:
    """`value` as the database (and a rendered page or email) can keep it: without NULs and
    without lone surrogates. 8-bit header bytes the stdlib parser kept as surrogate escapes
    are decoded like bodies (UTF-8, else windows-1252); any other surrogate becomes U+FFFD."""
    value = value.replace("\x00", "")
    if value.isascii() or is_valid_text(value):
        return value
    try:
        return decode_bytes(value.encode("utf-8", "surrogateescape"), None)
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


_FOLD = re.compile(r"\r?\n(?=[ \t])")
_DECODE_PASSES = 3  # an encoded word may decode to another one


def header_text(value: str) -> str:
    """A header value as a person reads it: unfolded, 8-bit bytes and RFC 2047 encoded words
    decoded (an unknown charset as UTF-8, else latin-1), without NULs or lone surrogates.

    No "=?" is left in it either: the email package decodes encoded words again in any
    header we send, more leniently than the standard, and one with an unknown charset next
    to non-ASCII text makes `EmailMessage.as_bytes` raise. A subject becomes a thread title,
    and titles go into the Subject of receipts and digests.
    """
    text = storable(_FOLD.sub("", value))
    for _ in range(_DECODE_PASSES):
        if ENCODED_WORD.search(text) is None:
            break
        text = storable(decode_words(text))
    return text.replace("=?", "= ?")


def _raw_header(message: Message, name: str) -> str:
    """The first `name` field as sent (compat32 keeps 8-bit bytes as surrogate escapes)."""
    wanted = name.lower()
    for key, value in message.raw_items():
        if key.lower() == wanted:
            return value if isinstance(value, str) else str(value)
    return ""


def _field(message: Message, name: str) -> str:
    """The first `name` field unfolded, its 8-bit bytes decoded (UTF-8, as SMTPUTF8 mail
    sends addresses, else windows-1252), without NULs. Encoded words are left alone."""
    return storable(_FOLD.sub("", _raw_header(message, name)))


def header_message(raw: bytes) -> Message:
    """The message parsed leniently (compat32), without ever raising: enough for routing
    and classifying, without the decoding `parse_message` does."""
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def headers_only(raw: bytes) -> Message:
    """Only the header section (the body stays one unparsed string): what the listener
    reads while a sender waits, however large the message."""
    return BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)


def sender_address(message: Message) -> str:
    """The From address, lower-cased ('' when there is none we can read)."""
    value = _field(message, "From")
    addresses = [addr for _, addr in getaddresses([value]) if "@" in addr]
    return addresses[0].strip().lower() if addresses else ""


def message_id_of(message: Message) -> str | None:
    value = _field(message, "Message-ID").strip()
    return value[:250] or None


def references_of(message: Message) -> list[str]:
    """Message-IDs this message answers, newest first: In-Reply-To, then References
    from the end (the References header lists the oldest first)."""
    in_reply_to = _MESSAGE_ID.findall(_field(message, "In-Reply-To"))
    references = _MESSAGE_ID.findall(_field(message, "References"))[::-1]
    return list(dict.fromkeys(in_reply_to + references))[:MAX_REFERENCES]


def conversation_key(message: Message) -> str | None:
    """Outlook's conversation key: the first 22 bytes of Thread-Index (a timestamp and a
    GUID), which every reply in the conversation repeats before its own 5-byte suffix."""
    value = "".join(str(message.get("Thread-Index", "") or "").split())
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) < _THREAD_INDEX_ROOT or (len(raw) - _THREAD_INDEX_ROOT) % 5:
        return None
    return base64.b64encode(raw[:_THREAD_INDEX_ROOT]).decode()


def thread_title(subject: str) -> str:
    """A subject without reply/forward prefixes in the common languages."""
    title = _SUBJECT_PREFIX.sub("", subject or "").strip()
    return " ".join(title.split())[:200] or "(no subject)"


def _attachments(parsed: mailparser.MailParser) -> list[NewAttachment]:
    found = []
    for item in parsed.attachments:
        payload = item.get("payload") or ""
        try:
            data = base64.b64decode(payload) if item.get("binary") else _text_bytes(payload)
        except (binascii.Error, ValueError):
            continue  # an undecodable part: the raw message in the journal still has it
        name = storable(str(item.get("filename") or "")).strip() or "attachment"
        ctype = storable(str(item.get("mail_content_type") or "")).strip()
        found.append(
            NewAttachment(
                filename=name[:200],
                content_type=ctype[:200] or "application/octet-stream",
                data=data,
            )
        )
    return found


def _text_bytes(text: str) -> bytes:
    """A text attachment's bytes: undecodable bytes, which mail-parser keeps as surrogate
    escapes, as they were; any other lone surrogate as U+FFFD."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _mail_parser(raw: bytes) -> mailparser.MailParser:
    """mail-parser's reading of `raw` (what `mailparser.parse_from_bytes` does), minus two
    ways it raises on mail it could read:

    - on a `StartBoundaryNotFoundDefect` anywhere in the tree it tries to recover parts from
      the *top-level* epilogue, and raises when the message is not a multipart or has no
      epilogue; the defect is dropped then, as there is nothing to recover anyway;
    - it re-serialises attached messages, which raises for a text part whose charset label
      is not ASCII; such a label names no charset, so it is removed.
    """
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    recoverable = message.get_boundary() is not None and message.epilogue is not None
    for part in message.walk():
        if not recoverable:
            part.defects = [
                d
                for d in part.defects
                if not isinstance(d, email.errors.StartBoundaryNotFoundDefect)
            ]
        charset = part.get_param("charset")
        if charset is not None and not (isinstance(charset, str) and charset.isascii()):
            with contextlib.suppress(Exception):  # re-writing the other parameters can fail
                part.del_param("charset")
    return mailparser.MailParser(message)


def _storable_classification(found: Classification) -> Classification:
    return dataclasses.replace(
        found,
        detail=storable(found.detail),
        bounced_recipients=tuple(storable(r) for r in found.bounced_recipients),
    )


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse a message for storage; raises `UnparseableMessage` with the reason (its
    `MessageTooCostly` subclass, before any parser runs, when it is over a limit)."""
    over = check_limits(raw)
    if over is not None:
        raise MessageTooCostly(over)
    headers = header_message(raw)
    try:
        parsed = _mail_parser(raw)
    except Exception as exc:  # mail-parser raises many kinds on broken MIME
        detail = storable(f"MIME structure could not be parsed: {type(exc).__name__}: {exc}")
        raise UnparseableMessage(detail) from exc
    name, address = parseaddr(_field(headers, "From"))
    reply = extract_reply_parts(raw)
    forward = find_forward(raw)
    if forward is not None:
        # A forward shares someone else's message: keep it whole, marked as forwarded,
        # instead of trimming it away as quoted history.
        reply = Reply(forward_markdown(forward), "", True)
    # Every string below may be stored or mailed: `storable` drops NULs and lone surrogates
    # (8-bit header bytes, or codecs such as UTF-7 that can produce them).
    return ParsedMessage(
        from_address=sender_address(headers) or address.lower(),
        from_name=header_text(name),
        subject=header_text(_raw_header(headers, "Subject")),
        message_id=message_id_of(headers),
        text=storable(reply.text),
        quoted=storable(reply.quoted),
        confident=reply.confident,
        classification=_storable_classification(classify_message(headers)),
        attachments=_attachments(parsed),
        references=references_of(headers),
        conversation=conversation_key(headers),
        forwarded=forward is not None,
    )
