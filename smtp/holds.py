"""A reply that used someone else's reply address is held, not posted: the member it names
is asked to approve or discard it, and the sender is told why nothing appeared.

The sender's notice is the only mail Tidings sends to an address that may not be a
member, so it is rationed: never for mail that looks like spam (auto-replies never get
this far), and at most one a day to any address, so two robots cannot loop through us.
"""

from __future__ import annotations

from datetime import timedelta
from email.errors import HeaderParseError
from email.headerregistry import Address

from sqlmodel import Session

from app import store
from app.models import InboundMessage, Team, utcnow
from app.render import render_email
from app.settings import Settings
from app.tokens import approve_held_purpose, sign_link
from smtp.parse import ParsedMessage, header_message
from smtp.reply_address import ReplyClaim

APPROVAL_LINK_LIFETIME = timedelta(days=14)


def looks_like_spam(raw: bytes) -> bool:
    """What the spam filter in front of us (SpamAssassin, rspamd) said, when it said so."""
    headers = header_message(raw)
    flag = str(headers.get("X-Spam-Flag", "") or "").strip().lower()
    status = str(headers.get("X-Spam-Status", "") or "").strip().lower()
    return flag == "yes" or status.startswith("yes")


def hold_for_approval(
    session: Session,
    entry: InboundMessage,
    parsed: ParsedMessage,
    team: Team,
    claim: ReplyClaim,
    settings: Settings,
) -> None:
    """Queue the approval request to the member and the notice to the sender (each once)."""
    now = utcnow()
    member = claim.person
    key = f"approve-held:{entry.id}:{member.id}"
    if not store.outbox_key_exists(session, key):
        token = sign_link(
            approve_held_purpose(member.id),  # type: ignore[arg-type]
            entry.id,  # type: ignore[arg-type]
            now + APPROVAL_LINK_LIFETIME,
            settings.ensure_secret_key(),
        )
        message = render_email(
            settings.templates_dir,
            "approval",
            {
                "person": member,
                "team": team,
                "thread": claim.thread,
                "sender": parsed.from_address or "an unknown sender",
                "sender_name": parsed.from_name,
                "body": parsed.text,
                "review_url": f"{settings.base_url}/held/{entry.id}?p={member.id}&t={token}",
                "days": APPROVAL_LINK_LIFETIME.days,
            },
            sender=Address(team.name, team.slug, settings.mail_domain),
            to=Address(member.name, addr_spec=member.email),
            message_id=f"<approval.{entry.id}.{member.id}@{settings.mail_domain}>",
            now=now,
        )
        store.enqueue_mail(
            session, kind="approval", idempotency_key=key, person=member, message=message
        )
        store.remember_sent(session, str(message["Message-ID"]), claim.thread, member)
    sender = parsed.from_address
    notice_key = f"hold-notice:{sender}:{now.date().isoformat()}"
    if not sender or looks_like_spam(entry.raw) or store.outbox_key_exists(session, notice_key):
        return
    try:
        to = Address(parsed.from_name, addr_spec=sender)
    except (ValueError, IndexError, HeaderParseError):
        return  # not an address we could send to: nobody to tell
    notice = render_email(
        settings.templates_dir,
        "held",
        {
            "team": team,
            "thread": claim.thread,
            "member": member,
            "sender": sender,
            "domain": settings.mail_domain,
        },
        sender=Address(team.name, team.slug, settings.mail_domain),
        to=to,
        message_id=f"<held.{entry.id}@{settings.mail_domain}>",
        now=now,
        headers={"In-Reply-To": parsed.message_id} if parsed.message_id else None,
    )
    store.enqueue_mail(
        session,
        kind="notice",
        idempotency_key=notice_key,
        person=None,
        recipient=sender,
        message=notice,
    )
