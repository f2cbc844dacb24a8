"""Alias addresses: a member says they also write from another address, and a link sent
to that address proves they read it before any mail from it counts as theirs."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.headerregistry import Address

from sqlmodel import Session

from app import store
from app.models import PersonAlias
from app.render import render_email
from app.settings import Settings
from app.tokens import CONFIRM_ALIAS_PURPOSE, sign_link

CONFIRM_LINK_LIFETIME = timedelta(days=7)


def request_alias(
    session: Session, member_email: str, alias: str, settings: Settings, now: datetime
) -> PersonAlias:
    """Record the alias (unconfirmed) and queue the confirmation link to it. Asking again
    for an unconfirmed alias sends a fresh link; a confirmed one is left as it is."""
    record = store.add_alias(session, member_email, alias)
    if record.confirmed_at is not None:
        return record
    person = store.find_person(session, member_email)
    token = sign_link(
        CONFIRM_ALIAS_PURPOSE,
        record.id,  # type: ignore[arg-type]
        now + CONFIRM_LINK_LIFETIME,
        settings.ensure_secret_key(),
    )
    message = render_email(
        settings.templates_dir,
        "alias",
        {
            "person": person,
            "alias": record.email,
            "confirm_url": f"{settings.base_url}/aliases/{record.id}/confirm?t={token}",
            "days": CONFIRM_LINK_LIFETIME.days,
        },
        sender=Address("Tidings", "noreply", settings.mail_domain),
        to=Address(addr_spec=record.email),
        message_id=f"<alias.{record.id}.{int(now.timestamp())}@{settings.mail_domain}>",
        now=now,
    )
    store.enqueue_mail(
        session,
        kind="alias",
        idempotency_key=f"alias:{record.id}:{now.isoformat()}",
        person=None,
        recipient=record.email,
        message=message,
    )
    return record
