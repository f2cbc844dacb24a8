"""What a bounce says about one failed delivery: hard or soft, the status code, the remote
server's words. Pure: bytes in, a `DeliveryFailure` out; no database, no clock.

RFC 3464 delivery status notifications carry per-recipient fields (`Action`, `Status`,
`Diagnostic-Code`), read here directly. flufl.bounce knows the many non-standard bounce
formats (qmail, Exim, Exchange, Yahoo, ...) and says which recipients failed for good and
which only for now; it reports neither a status nor a diagnostic, so for those we read
the text ourselves. The return path already names the member (VERP), so nothing here
has to guess whose address failed.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

_MAX_PARTS = 200  # the corpus holds bounces nested hundreds deep; stay bounded
_MAX_DEPTH = 20
_MAX_TEXT = 64_000
_MAX_DIAGNOSTIC = 500

# RFC 3463 codes; a class-5 "mailbox full" (X.2.2) is a persistent transient failure.
_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_FAILURE_STATUS = re.compile(r"(?<![\d.])([45])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_REPLY_CODE = re.compile(r"(?<![\d.])([45])\d\d(?:[ -]|$)")
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_NOT_FAILED = {"delivered", "relayed", "expanded"}
_DSN_FIELD_LINE = re.compile(
    r"(?:status|action|final-recipient|original-recipient|reporting-mta|remote-mta"
    r"|arrival-date|last-attempt-date|received-from-mta)\s*:",
    re.IGNORECASE,
)
# A full mailbox is a wait, not a dead address, whatever class the server gave it.
_MAILBOX_FULL = re.compile(
    r"mailbox (?:is )?full|over ?quota|quota (?:exceeded|full)|disk quota|exceeded storage"
    r"|insufficient (?:system )?storage|mailbox size limit",
    re.IGNORECASE,
)
# Last resort for bounces with no code at all: words that only mean "no such address".
_NO_SUCH_ADDRESS = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient|address)"
    r"|(?:user|mailbox|address|recipient|domain|host) (?:does not|doesn't) exist"
    r"|(?:host|domain) (?:\S+ )?not found|no valid recipients|invalid recipient"
    r"|mailbox unavailable|account (?:has been )?disabled",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class DeliveryFailure:
    hard: bool
    status: str = ""  # RFC 3463 code such as 5.1.1; "" when the bounce gives none
    diagnostic: str = ""  # the remote server's words, or the bounce's own sentence
    address: str = ""  # the failed recipient the bounce names, "" when it names none
    how: str = ""  # which evidence decided hard or soft: status, flufl.bounce, action, ...


@dataclass
class _Record:
    address: str = ""
    action: str = ""
    status: str = ""
    diagnostic: str = ""


def read_failure(
    raw: bytes, member_address: str = "", permanent_hint: bool | None = None
) -> DeliveryFailure | None:
    """The failure a bounce reports, preferring what it says about `member_address`;
    None when it reports none (a DSN saying "delivered" or "relayed").

    Hard or soft, from the most specific evidence there is: the DSN's status code
    (class 5 is hard, class 4 soft), else flufl.bounce's permanent and temporary
    failures, else the DSN's `Action` (failed / delayed), else `permanent_hint` (the
    classifier's reading), else a status or reply code in the text, else words that
    only mean "no such address". A full mailbox (X.2.2, "over quota") is soft whatever
    its class: it is a wait, not a dead address. When nothing says, it counts as soft:
    nobody's mail is paused on a guess.
    """
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    records = [r for part in _status_parts(message) for r in _records(part)]
    text = _body_text(message)
    if not records:
        # Reports whose MIME structure broke keep their fields in the text.
        blocks = field_blocks(text)
        records = _block_records(blocks, ("final-recipient", "original-recipient"))
    failed = [r for r in records if r.action not in _NOT_FAILED]
    if records and not failed:
        return None
    member = member_address.strip().lower()
    record = next((r for r in failed if r.address == member), failed[0] if failed else None)
    permanent, temporary = _flufl(message)
    diagnostic = record.diagnostic if record else ""
    status = record.status if record else ""
    if not status:
        found = _FAILURE_STATUS.search(diagnostic) or _FAILURE_STATUS.search(text)
        status = found.group(0) if found else ""
    address = record.address if record else ""
    if not address:
        address = (
            member
            if member in permanent | temporary
            else next(iter(sorted(permanent) or sorted(temporary)), "")
        )
    hard, how = _verdict(record, status, permanent, temporary, permanent_hint, text)
    if not diagnostic:
        diagnostic = _text_diagnostic(text, status)
    if hard and (_MAILBOX_FULL.search(diagnostic) or (not record and _MAILBOX_FULL.search(text))):
        hard, how = False, "mailbox full"
    return DeliveryFailure(hard, status, _clean(diagnostic)[:_MAX_DIAGNOSTIC], address, how)


def _verdict(
    record: _Record | None,
    status: str,
    permanent: set[str],
    temporary: set[str],
    hint: bool | None,
    text: str,
) -> tuple[bool, str]:
    if record is not None and record.status:
        return _status_is_hard(record.status), "status"
    if permanent or temporary:
        return bool(permanent), "flufl.bounce"
    if record is not None and record.action in ("failed", "delayed"):
        return record.action == "failed", "action"
    if hint is not None:
        return hint, "classifier"
    if status:
        return _status_is_hard(status), "status in text"
    code = _REPLY_CODE.search(text)
    if code:
        return code.group(1) == "5", "reply code in text"
    if _NO_SUCH_ADDRESS.search(text):
        return True, "words in text"
    return False, "unknown"


def _status_is_hard(status: str) -> bool:
    klass, subject, detail = status.split(".")
    return klass == "5" and (subject, detail) != ("2", "2")  # X.2.2: mailbox full


# --- RFC 3464 fields -----------------------------------------------------------------------


def _walk(message: Message) -> Iterator[Message]:
    """Every part, depth first, bounded in count and depth."""
    stack: list[tuple[Message, int]] = [(message, 0)]
    seen = 0
    while stack and seen < _MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        yield part
        if depth >= _MAX_DEPTH or not part.is_multipart():
            continue
        try:
            children = part.get_payload()
        except Exception:
            continue
        if isinstance(children, list):
            stack.extend((c, depth + 1) for c in reversed(children) if isinstance(c, Message))


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:
        return ""


def _status_parts(message: Message) -> list[Message]:
    return [
        p
        for p in _walk(message)
        if _content_type(p) in ("message/delivery-status", "message/global-delivery-status")
    ]


def _records(part: Message) -> list[_Record]:
    """One record per recipient block of a delivery-status part, however it was parsed."""
    blocks: list[list[tuple[str, str]]] = []
    try:
        payload = part.get_payload()
    except Exception:
        return []
    if isinstance(payload, list):
        for sub in payload:
            if not isinstance(sub, Message):
                continue
            blocks.append([(k.strip().lower(), _text(v)) for k, v in sub.raw_items()])
            body = sub.get_payload()
            if isinstance(body, str) and body.strip():
                # A block with no blank line after it ends up as the next block's body.
                blocks.extend(field_blocks(body))
    else:
        blocks = field_blocks(_decoded(part))
    return _block_records(blocks, ("final-recipient", "original-recipient", "action"))


def _block_records(blocks: list[list[tuple[str, str]]], markers: tuple[str, ...]) -> list[_Record]:
    """A record for each block with one of the `markers` fields."""
    records = []
    for block in blocks:
        fields: dict[str, str] = {}
        for name, value in block:
            fields.setdefault(name, value)  # the first occurrence wins
        if not (set(markers) & fields.keys()):
            continue
        status = _STATUS.search(fields.get("status", ""))
        diagnostic = fields.get("diagnostic-code", "")
        if ";" in diagnostic.split(" ", 1)[0]:  # "smtp; 550 5.1.1 ..." -> "550 5.1.1 ..."
            diagnostic = diagnostic.split(";", 1)[1]
        if not diagnostic.strip() and status:
            # "Status: 5.0.0 (recipient reached disk quota)": the comment is all it says.
            diagnostic = fields["status"][status.end() :].strip(" ()")
        records.append(
            _Record(
                address=recipient_address(fields.get("original-recipient", ""))
                or recipient_address(fields.get("final-recipient", "")),
                action=fields.get("action", "").strip().split(" ", 1)[0].lower(),
                status=status.group(0) if status else "",
                diagnostic=diagnostic.strip(),
            )
        )
    return records


def field_blocks(text: str) -> list[list[tuple[str, str]]]:
    """`Field: value` lines (continuation lines folded in) as blank-line-separated blocks,
    names lower-cased: how a delivery status report's fields are laid out."""
    blocks: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        if not line.strip():
            if blocks[-1]:
                blocks.append([])
            continue
        if line[0] in " \t" and blocks[-1]:
            name, value = blocks[-1][-1]
            blocks[-1][-1] = (name, f"{value} {line.strip()}")
            continue
        match = _FIELD.match(line)
        if match:
            blocks[-1].append((match.group(1).lower(), match.group(2).strip()))
    return [b for b in blocks if b]


def recipient_address(value: str) -> str:
    """`rfc822; user@example.com` -> `user@example.com`."""
    if ";" in value:
        value = value.split(";", 1)[1]
    value = value.strip().strip("<>").strip()
    return value.lower() if "@" in value else ""


# --- flufl.bounce and the text -------------------------------------------------------------


def _flufl(message: Message) -> tuple[set[str], set[str]]:
    """(permanent, temporary) failed recipients according to flufl.bounce."""
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector tripping over a broken message: no verdict from it
        return set(), set()

    def norm(values: frozenset[bytes] | frozenset[str]) -> set[str]:
        found = set()
        for value in values:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            text = text.strip().strip("<>").lower()
            if "@" in text:
                found.add(text)
        return found

    return norm(permanent), norm(temporary)


def _text(value: object) -> str:
    text = str(value)
    return re.sub(r"\r?\n[ \t]+", " ", text).strip()


def _decoded(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if isinstance(payload, bytes):
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload[:_MAX_TEXT].decode(charset, "replace")
        except LookupError:
            return payload[:_MAX_TEXT].decode("utf-8", "replace")
    raw = part.get_payload()
    return raw[:_MAX_TEXT] if isinstance(raw, str) else ""


def _body_text(message: Message) -> str:
    """The bounce's own words: its text parts, not the returned message it carries."""
    texts: list[str] = []
    stack: list[tuple[Message, int]] = [(message, 0)]
    seen = 0
    while stack and seen < _MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        ctype = _content_type(part)
        if ctype.startswith("message/") and part is not message:
            continue  # the returned original: its words are ours, not the server's
        if part.is_multipart():
            if depth < _MAX_DEPTH:
                children = part.get_payload()
                if isinstance(children, list):
                    stack.extend(
                        (c, depth + 1) for c in reversed(children) if isinstance(c, Message)
                    )
            continue
        # A multipart whose boundary never comes is parsed as one piece of text.
        if ctype.startswith(("text/", "multipart/")) or ctype == "":
            texts.append(_decoded(part))
        if sum(map(len, texts)) > _MAX_TEXT:
            break
    return "\n".join(texts)[:_MAX_TEXT]


def _text_diagnostic(text: str, status: str) -> str:
    """The line of a non-standard bounce that says what went wrong: the one with the
    status code, else with an SMTP reply code, else the first sentence of substance."""
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not _DSN_FIELD_LINE.match(line.strip())
    ]
    patterns = (re.escape(status) if status else None, _REPLY_CODE, _NO_SUCH_ADDRESS, _MAILBOX_FULL)
    for pattern in patterns:
        if pattern is None:
            continue
        for index, line in enumerate(lines):
            if re.search(pattern, line):
                # Servers wrap long replies; the next line usually finishes the sentence.
                following = lines[index + 1] if index + 1 < len(lines) else ""
                ruler = following[:1] in ("-", "=", "~", "*", "_")
                more = following if following and not ruler and not _FIELD.match(following) else ""
                return f"{line} {more}".strip()
    # Else the first line with words in it (not a ruler of dashes or tildes).
    return next((line for line in lines if sum(c.isalpha() for c in line) >= 10), "")


def _clean(text: str) -> str:
    text = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(text.split())
