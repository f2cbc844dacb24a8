"""Raw RFC 822 bytes -> the facts processing needs. Pure: no database, no clock."""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses, parseaddr

import mailparser

from app.store import NewAttachment
from smtp.classify import Classification, classify_message
from smtp.extract import extract_reply_parts
from smtp.forward import find_forward, forward_markdown
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


def header_message(raw: bytes) -> Message:
    """Only the headers, cheaply and without ever raising: enough for routing decisions."""
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def sender_address(message: Message) -> str:
    """The From address, lower-cased ('' when there is none we can read)."""
    value = str(message.get("From", "") or "")
    addresses = [addr for _, addr in getaddresses([value]) if "@" in addr]
    return addresses[0].strip().lower() if addresses else ""


def message_id_of(message: Message) -> str | None:
    value = str(message.get("Message-ID", "") or "").strip()
    return value[:250] or None


def references_of(message: Message) -> list[str]:
    """Message-IDs this message answers, newest first: In-Reply-To, then References
    from the end (the References header lists the oldest first)."""
    in_reply_to = _MESSAGE_ID.findall(str(message.get("In-Reply-To", "") or ""))
    references = _MESSAGE_ID.findall(str(message.get("References", "") or ""))[::-1]
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
            data = base64.b64decode(payload) if item.get("binary") else payload.encode("utf-8")
        except (binascii.Error, ValueError):
            continue  # an undecodable part: the raw message in the journal still has it
        name = item.get("filename") or "attachment"
        found.append(
            NewAttachment(
                filename=name[:200],
                content_type=item.get("mail_content_type") or "application/octet-stream",
                data=data,
            )
        )
    return found


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse a message for storage; raises `UnparseableMessage` with the reason."""
    headers = header_message(raw)
    try:
        parsed = mailparser.parse_from_bytes(raw)
    except Exception as exc:  # mail-parser raises many kinds on broken MIME
        raise UnparseableMessage(f"MIME structure could not be parsed: {exc}") from exc
    name, address = parseaddr(str(headers.get("From", "") or ""))
    reply = extract_reply_parts(raw)
    forward = find_forward(raw)
    if forward is not None:
        # A forward shares someone else's message: keep it whole, marked as forwarded,
        # instead of trimming it away as quoted history.
        reply = Reply(forward_markdown(forward), "", True)
    return ParsedMessage(
        from_address=sender_address(headers) or address.lower(),
        from_name=name,
        subject=str(parsed.subject or ""),
        message_id=message_id_of(headers),
        text=reply.text.replace("\x00", ""),
        quoted=reply.quoted.replace("\x00", ""),
        confident=reply.confident,
        classification=classify_message(headers),
        attachments=_attachments(parsed),
        references=references_of(headers),
        conversation=conversation_key(headers),
        forwarded=forward is not None,
    )
