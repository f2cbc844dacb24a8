"""Mail to our own service addresses rather than a team: `unsubscribe+TOKEN@` (the mailto
half of List-Unsubscribe), `digest@` (someone answered a digest as a whole) and
`bounce+TOKEN@` (the VERP return path of mail to a member: bounces and auto-replies).

Neither is ever refused once accepted, and neither is dropped in silence: an
unsubscribe turns that one member's digests off, and a reply to a digest is kept in
the quarantine while its sender, when a member, is told how to answer one item.
"""

from __future__ import annotations

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
from smtp.parse import ParsedMessage


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
    session: Session, recipient: Recipient, parsed: ParsedMessage, settings: Settings
) -> tuple[str, str]:
    """(reason, detail) for mail that came back to a member's return path: a bounce, an
    auto-reply, or (rarely) a person answering the envelope sender."""
    person_id = returned_for(recipient.token or "", settings.ensure_secret_key())
    person = session.get(Person, person_id) if person_id is not None else None
    who = person.email if person else "an unknown member"
    kind = parsed.classification.kind
    reason = {"bounce": "bounce", "auto_reply": "auto-reply"}.get(kind, "returned-mail")
    said = parsed.classification.detail or f"Recognised as {reason}."
    return reason, f"Returned mail about {who} (return path): {said}"


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
