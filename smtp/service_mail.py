"""Mail to our own service addresses rather than a team: `unsubscribe+TOKEN@` (the mailto
half of List-Unsubscribe), `digest@` (someone answered a digest as a whole) and
`bounce+TOKEN@` (the VERP return path of mail to a member: bounces and auto-replies).

Neither is ever refused once accepted, and neither is dropped in silence: an
unsubscribe turns that one member's digests off, and a reply to a digest is kept in
the quarantine while its sender, when a member, is told how to answer one item.
A bounce is kept in the quarantine too, and recorded against the member its return path
names as a hard or soft bounce (`smtp/dsn.py`); enough hard bounces pause their mail.
"""

from __future__ import annotations

import logging
import re
from email.headerregistry import Address

from sqlmodel import Session

from app import store
from app.models import InboundMessage, Person, Team, utcnow
from app.render import render_email
from app.settings import Settings
from app.tokens import (
    BOUNCE_PURPOSE,
    UNSUBSCRIBE_PURPOSE,
    InvalidToken,
    Recipient,
    reply_address_for,
    verify_address_link,
)
from smtp.dsn import DeliveryFailure, read_failure
from smtp.parse import ParsedMessage

log = logging.getLogger(__name__)
_STATUS = re.compile(r"(?<![\d.])[45]\.\d{1,3}\.\d{1,3}(?![\d.])")


def is_service_address(recipient: Recipient) -> bool:
    return recipient.team_slug in (store.UNSUBSCRIBE_LOCAL_PART, store.BOUNCE_LOCAL_PART) or (
        recipient.team_slug == store.DIGEST_LOCAL_PART and recipient.token is None
    )


def returned_for(token: str, secret: str) -> int | None:
    """The person id a VERP return path names, or None when it is not one of ours."""
    try:
        return verify_address_link(token, BOUNCE_PURPOSE, utcnow(), secret)
    except InvalidToken:
        return None


def record_returned_mail(
    session: Session,
    recipient: Recipient,
    parsed: ParsedMessage,
    settings: Settings,
    entry: InboundMessage | None = None,
) -> tuple[str, str]:
    """(reason, detail) for mail that came back to a member's return path: a bounce, an
    auto-reply, or (rarely) a person answering the envelope sender. A bounce reporting a
    failure is recorded against the member (hard or soft, with the status and the
    diagnostic), and pauses their mail when it is one hard bounce too many."""
    person_id = returned_for(recipient.token or "", settings.ensure_secret_key())
    person = session.get(Person, person_id) if person_id is not None else None
    who = person.email if person else "an unknown member"
    kind = parsed.classification.kind
    reason = {"bounce": "bounce", "auto_reply": "auto-reply"}.get(kind, "returned-mail")
    said = parsed.classification.detail or f"Recognised as {reason}."
    detail = f"Returned mail about {who} (return path): {said}"
    if person is None or kind != "bounce":
        return reason, detail
    entry = entry or _entry_being_processed(session, recipient)
    failure = _failure(entry, person, parsed)
    if failure is None:
        return reason, f"{detail}. It reports no failure; nothing recorded."
    now = utcnow()
    _bounce, paused = store.record_bounce(
        session,
        person,
        hard=failure.hard,
        status=failure.status,
        diagnostic=failure.diagnostic,
        address=failure.address,
        inbound_id=entry.id if entry is not None else None,
        pause_after=settings.bounce_pause_after,
        now=now,
    )
    what = " ".join(p for p in (failure.status, failure.diagnostic) if p) or "no details"
    detail += f". Recorded as a {'hard' if failure.hard else 'soft'} bounce ({what[:200]})"
    if failure.hard and settings.bounce_pause_after > 0:
        count = store.hard_bounce_count(session, person.id, now)  # type: ignore[arg-type]
        detail += f", {count} of {settings.bounce_pause_after} within"
        detail += f" {store.BOUNCE_WINDOW.days} days"
    if paused:
        detail += (
            f"; mail to {person.email} is now paused (undo with"
            f" `tidings member resume {person.email}`)"
        )
    elif person.mail_paused_at is not None:
        detail += f"; mail to {person.email} was paused already"
    return reason, detail + "."


def _entry_being_processed(session: Session, recipient: Recipient) -> InboundMessage | None:
    """The journal entry whose processing called us: the pending entry to this return
    path that processing loaded into `session` (processing does not pass it in)."""
    address = f"{store.BOUNCE_LOCAL_PART}+{recipient.token}".lower()
    for obj in list(session.identity_map.values()):
        if (
            isinstance(obj, InboundMessage)
            and obj.status == "pending"
            and address in obj.rcpt_tos.lower()
        ):
            return obj
    return None


def _failure(
    entry: InboundMessage | None, person: Person, parsed: ParsedMessage
) -> DeliveryFailure | None:
    """What the bounce says failed; from the classifier alone when the raw message
    cannot be had."""
    verdict = parsed.classification
    if entry is not None:
        try:
            return read_failure(entry.raw, person.email, verdict.permanent)
        except Exception:  # a bounce too broken to read still counts, from the classifier
            log.warning("could not read bounce %s; using the classifier's verdict", entry.id)
    if verdict.reason == "dsn-success":
        return None
    found = _STATUS.search(verdict.detail)
    return DeliveryFailure(
        hard=bool(verdict.permanent),
        status=found.group(0) if found else "",
        diagnostic=verdict.detail,
        how="classifier",
    )


def unsubscriber(token: str, secret: str) -> int | None:
    """The person id an unsubscribe address names, or None when it is not valid."""
    try:
        return verify_address_link(token, UNSUBSCRIBE_PURPOSE, utcnow(), secret)
    except InvalidToken:
        return None


def unsubscribe(session: Session, recipient: Recipient, settings: Settings) -> str:
    """Turn off the digests of the person the address names; returns what was done."""
    person_id = unsubscriber(recipient.token or "", settings.ensure_secret_key())
    person = session.get(Person, person_id) if person_id is not None else None
    if person is None:
        return "The unsubscribe address was not valid (checked when the mail arrived)."
    store.stop_digests(session, person.id)  # type: ignore[arg-type]
    return f"Digests stopped for {person.email} by mail (List-Unsubscribe)."


def answer_digest_reply(
    session: Session, entry: InboundMessage, parsed: ParsedMessage, settings: Settings
) -> str:
    """Tell a member who answered a whole digest how to answer one item; returns the
    quarantine detail. Strangers get no answer (their From may be forged)."""
    person = store.find_person(session, parsed.from_address)
    if person is None:
        return "A reply to a digest from someone who is not a member; not answered."
    threads = []
    for reference in parsed.references:
        threads = store.digest_threads(session, reference, person.id)  # type: ignore[arg-type]
        if threads:
            break
    keys = store.load_reply_keys(session, settings.ensure_secret_key())
    teams = {t.team_id: session.get(Team, t.team_id) for t in threads}
    items = [
        (
            thread.title,
            reply_address_for(
                person.id,  # type: ignore[arg-type]
                thread.id,  # type: ignore[arg-type]
                teams[thread.team_id].slug,  # type: ignore[union-attr]
                settings.mail_domain,
                keys,
            ),
        )
        for thread in threads
    ]
    now = utcnow()
    message = render_email(
        settings.templates_dir,
        "digest_reply",
        {"person": person, "items": items, "subject": parsed.subject},
        sender=Address("Tidings", store.DIGEST_LOCAL_PART, settings.mail_domain),
        to=Address(person.name, addr_spec=person.email),
        message_id=f"<digest-reply.{entry.id}@{settings.mail_domain}>",
        now=now,
        headers={"In-Reply-To": parsed.message_id} if parsed.message_id else None,
    )
    store.enqueue_mail(
        session,
        kind="notice",
        idempotency_key=f"digest-reply:{entry.id}",
        person=person,
        message=message,
    )
    return (
        "A reply to a digest as a whole cannot be placed in one thread; the sender was sent"
        " the reply addresses of its items. The message is kept here."
    )
