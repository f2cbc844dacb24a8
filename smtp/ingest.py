"""Journal entries -> updates. Restartable and idempotent: safe to run in several processes.

The listener has already committed the raw message (see handler.py). Here each
pending entry is parsed and stored as updates, or marked quarantined with a reason
code and a sentence a person can read; nothing is ever deleted.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from email.headerregistry import Address
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from app import store
from app.db import session_scope
from app.errors import NotFound
from app.metrics import observe_processing  # issue #9: journal id in logs, metrics
from app.models import InboundMessage, Person, Team, Thread, Update, utcnow
from app.render import render_email
from app.settings import Settings
from app.tokens import FIX_LINK_PURPOSE, parse_recipient, sign_link
from smtp.authcheck import QUARANTINE_REASON, dns_txt_lookup, sender_authentication
from smtp.away import return_date
from smtp.holds import hold_for_approval
from smtp.parse import (
    ParsedMessage,
    UnparseableMessage,
    header_message,
    parse_message,
    storable,
    thread_title,
)
from smtp.reply_address import Refusal, ReplyClaim, check_reply_token
from smtp.service_mail import (
    answer_digest_reply,
    is_service_address,
    record_returned_mail,
    unsubscribe,
)
from smtp.settings_by_mail import answer_command

log = logging.getLogger(__name__)

FIX_LINK_LIFETIME = timedelta(days=14)
SUBJECT_MATCH_WINDOW = timedelta(days=14)

SWEEP_GRACE = timedelta(seconds=10)

# One DNS client per resolver setting for the life of the process.
_dns_lookup = functools.cache(dns_txt_lookup)


@dataclass(frozen=True)
class Placement:
    thread: Thread
    parent: Update | None
    placed_by: str


def _place(
    session: Session, team: Team, claim: ReplyClaim | None, parsed: ParsedMessage
) -> Placement:
    """Where a message belongs, by the strongest evidence it carries: a reply token, then
    In-Reply-To/References, then Outlook's Thread-Index, then (for replies) a recently
    active thread's subject; otherwise, and always for a forward, a new thread."""
    if claim is not None:
        if claim.thread.checkin_date is not None:
            return Placement(claim.thread, None, "checkin")
        return Placement(claim.thread, store.root_update(session, claim.thread.id), "reply-token")  # type: ignore[arg-type]
    if not parsed.forwarded:
        placement = _place_by_headers(session, team, parsed)
        if placement is not None:
            return placement
    thread = Thread(team_id=team.id, title=thread_title(parsed.subject))  # type: ignore[arg-type]
    session.add(thread)
    session.flush()
    return Placement(thread, None, "new-thread")


def _place_by_headers(session: Session, team: Team, parsed: ParsedMessage) -> Placement | None:
    referenced = store.referenced_place(session, team.id, parsed.references)  # type: ignore[arg-type]
    if referenced is not None:
        thread, parent = referenced
        if parent is None and thread.checkin_date is None:
            parent = store.root_update(session, thread.id)  # type: ignore[arg-type]
        return Placement(thread, parent, "in-reply-to")
    if parsed.conversation:
        thread = store.thread_in_conversation(session, team.id, parsed.conversation)  # type: ignore[arg-type]
        if thread is not None:
            return Placement(thread, store.root_update(session, thread.id), "thread-index")  # type: ignore[arg-type]
    if parsed.is_reply:
        since = utcnow() - SUBJECT_MATCH_WINDOW
        title = thread_title(parsed.subject)
        thread = store.recent_thread_titled(session, team.id, title, since)  # type: ignore[arg-type]
        if thread is not None:
            return Placement(thread, store.root_update(session, thread.id), "subject")  # type: ignore[arg-type]
    return None


def _author(
    session: Session,
    entry: InboundMessage,
    parsed: ParsedMessage,
    team: Team,
    claim: ReplyClaim | None,
    settings: Settings,
) -> Person | Refusal:
    """Who the post appears under. A reply token vouches for its member only when the mail
    is also from them (or an alias of theirs), or when they approved it."""
    sender = store.find_person(session, parsed.from_address)
    if claim is None:
        if sender is None or not store.is_member(session, team.id, sender.id):  # type: ignore[arg-type]
            return Refusal(
                "not-a-member",
                f"{parsed.from_address or 'The sender'} is not a member of {team.slug}.",
            )
        return sender
    if (sender is not None and sender.id == claim.person.id) or (
        entry.approved_by_id == claim.person.id
    ):
        return claim.person
    hold_for_approval(session, entry, parsed, team, claim, settings)
    return Refusal(
        "unverified-sender",
        f"The reply address was issued to {claim.person.email}, but the message is from"
        f" {parsed.from_address or 'an unknown sender'}; it is held until"
        f" {claim.person.name} approves it.",
    )


@dataclass(frozen=True)
class SettingsChanged:
    """A reply that was a settings command (`smtp/settings_by_mail.py`), not an update."""

    detail: str


def _store_for_recipient(
    session: Session,
    entry: InboundMessage,
    parsed: ParsedMessage,
    rcpt: str,
    settings: Settings,
) -> Update | Refusal | SettingsChanged:
    recipient = parse_recipient(rcpt, settings.mail_domain)
    if recipient is None:
        return Refusal("unknown-recipient", f"{rcpt} is not an address of this server.")
    try:
        team = store.get_team(session, recipient.team_slug)
    except NotFound:
        return Refusal("unknown-team", f"There is no team '{recipient.team_slug}'.")
    claim = None
    if recipient.token is not None:
        checked = check_reply_token(
            session,
            team,
            recipient.token,
            settings.ensure_secret_key(),
            settings.team_address(team.slug),
        )
        if isinstance(checked, Refusal):
            return checked
        claim = checked
    if parsed.message_id and store.update_exists(session, team.id, parsed.message_id):  # type: ignore[arg-type]
        return Refusal(
            "duplicate", f"Message {parsed.message_id} was already posted to {team.slug}."
        )
    content_hash = None
    if not parsed.message_id:
        content_hash = _content_hash(parsed, rcpt, entry)
        if store.update_with_hash_exists(session, team.id, content_hash):  # type: ignore[arg-type]
            return Refusal(
                "duplicate", "The same message, without a Message-ID, was posted the same day."
            )
    if not parsed.text.strip() and not parsed.attachments:
        return Refusal("empty-reply", "The message had no new text of its own after trimming.")
    author = _author(session, entry, parsed, team, claim, settings)
    if isinstance(author, Refusal):
        return author
    if claim is not None:  # a reply to a check-in or a digest item may be a settings line
        done = answer_command(session, entry, parsed, author, settings)
        if done is not None:
            return SettingsChanged(done)
    placement = _place(session, team, claim, parsed)
    update = store.add_update(
        session,
        thread=placement.thread,
        author=author,
        body=parsed.text,
        quoted=parsed.quoted,
        confident=parsed.confident,
        parent=placement.parent,
        message_id=parsed.message_id,
        content_hash=content_hash,
        inbound_id=entry.id,
        placed_by=placement.placed_by,
        thread_index=parsed.conversation,
        attachments=parsed.attachments,
    )
    if not parsed.confident:
        queue_posted_as_receipt(session, update, placement.thread, team, author, settings)
    return update


def _content_hash(parsed: ParsedMessage, rcpt: str, entry: InboundMessage) -> str:
    """What makes two copies the same message: sender, recipient (the reply address names
    the thread), subject, text, and the UTC day it arrived. The same words to another
    thread, or on another day, are a new post."""
    day = entry.received_at.date().isoformat()
    parts = [parsed.from_address, rcpt.lower(), parsed.subject, parsed.text, parsed.quoted, day]
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def queue_posted_as_receipt(
    session: Session,
    update: Update,
    thread: Thread,
    team: Team,
    author: Person,
    settings: Settings,
) -> None:
    """Tell the author what was posted, with a link to fix it, when extraction was unsure."""
    now = utcnow()
    token = sign_link(
        FIX_LINK_PURPOSE,
        update.id,
        now + FIX_LINK_LIFETIME,
        settings.ensure_secret_key(),  # type: ignore[arg-type]
    )
    message = render_email(
        settings.templates_dir,
        "receipt",
        {
            "person": author,
            "team": team,
            "thread": thread,
            "body": update.body,
            "fix_url": f"{settings.base_url}/updates/{update.id}/fix?t={token}",
            "thread_url": f"{settings.base_url}/threads/{thread.id}#u{update.id}",
            "days": FIX_LINK_LIFETIME.days,
        },
        sender=Address(team.name, team.slug, settings.mail_domain),
        to=Address(author.name, addr_spec=author.email),
        message_id=f"<receipt.{update.id}@{settings.mail_domain}>",
        now=now,
    )
    store.enqueue_mail(
        session,
        kind="receipt",
        idempotency_key=f"receipt:{update.id}",
        person=author,
        message=message,
    )
    # Its From is the team address: an answer to it belongs in the thread, not a new one.
    store.remember_sent(session, str(message["Message-ID"]), thread, author)


def _finish(
    session: Session,
    entry: InboundMessage,
    status: str,
    reason: str | None = None,
    detail: str | None = None,
) -> None:
    """`store.finish_inbound`, with a detail that can be stored whatever the message put in
    it: details quote addresses, subjects and errors, and a NUL or a lone surrogate would
    make the write fail and leave the entry pending, retried for ever."""
    store.finish_inbound(session, entry, status, reason, storable(detail) if detail else detail)


def mark_away(session: Session, entry: InboundMessage, parsed: ParsedMessage) -> str | None:
    """A member's out-of-office reply that says when they are back marks them away until
    then (digests and check-in prompts wait); what was done, for the quarantine record.
    A longer absence already set is left as it is."""
    person = store.find_person(session, parsed.from_address)
    if person is None:
        return None
    received = entry.received_at.astimezone(ZoneInfo(person.timezone)).date()
    back = return_date(f"{parsed.subject}\n{parsed.text}", received)
    if back is None:
        return None
    last_day = back - timedelta(days=1)
    if person.away_until is not None and person.away_until >= last_day:
        return f"Already away until {person.away_until.isoformat()}."
    store.change_member_settings(
        session, person.email, store.MemberSettings(away=f"{received}..{last_day}")
    )
    log.info("member %s is away until %s, by their out-of-office reply", person.id, last_day)
    return f"Out-of-office: {person.email} marked away {received} to {last_day} (back {back})."


def process_entry(session: Session, entry: InboundMessage, settings: Settings) -> None:
    """Turn one journal entry into updates, or record why not. The caller commits."""
    recipients = [parse_recipient(r, settings.mail_domain) for r in entry.rcpt_tos.split("\n")]
    # Checked before parsing: a mail client's unsubscribe message may look automatic, and
    # an unparseable one still means "stop".
    unsubscribes = [r for r in recipients if r and r.team_slug == store.UNSUBSCRIBE_LOCAL_PART]
    if unsubscribes:
        done = "; ".join(unsubscribe(session, r, settings) for r in unsubscribes)
        _finish(session, entry, "processed", "unsubscribed", done)
        return
    try:
        parsed = parse_message(entry.raw)
    except UnparseableMessage as exc:
        # "unparseable", or which limit of smtp/mime_limits.py it is over.
        _finish(session, entry, "quarantined", exc.reason, str(exc))
        return
    returns = [r for r in recipients if r and r.team_slug == store.BOUNCE_LOCAL_PART]
    if returns:
        reason, detail = record_returned_mail(session, returns[0], parsed, settings, entry)
        _finish(session, entry, "quarantined", reason, detail)
        return
    kind = parsed.classification.kind
    verdict = sender_authentication(
        entry.raw,
        header_message(entry.raw),
        parsed.from_address,
        settings.trusted_authserv_id_set,
        settings.dkim_verify,
        _dns_lookup(settings.dns_resolver),
    )
    if kind != "human":
        detail = parsed.classification.detail or f"Recognised as {kind.replace('_', '-')}."
        if kind == "auto_reply" and not verdict.failed:
            detail = " ".join(filter(None, [detail, mark_away(session, entry, parsed)]))
        _finish(session, entry, "quarantined", kind.replace("_", "-"), detail)
        return
    if verdict.failed:
        _finish(session, entry, "quarantined", QUARANTINE_REASON, verdict.detail)
        return
    if any(r and is_service_address(r) for r in recipients):
        member = store.find_person(session, parsed.from_address)
        done = answer_command(session, entry, parsed, member, settings) if member else None
        if done is not None:
            _finish(session, entry, "processed", "settings-command", done)
            return
        detail = answer_digest_reply(session, entry, parsed, settings)
        _finish(session, entry, "quarantined", "digest-reply", detail)
        return
    results = [
        _store_for_recipient(session, entry, parsed, rcpt, settings)
        for rcpt in entry.rcpt_tos.split("\n")
        if rcpt
    ]
    refusals = [r for r in results if isinstance(r, Refusal)]
    if len(refusals) < len(results):
        notes = [r for r in results if isinstance(r, Refusal | SettingsChanged)]
        detail = "; ".join(r.detail for r in notes) or None
        changed = any(isinstance(r, SettingsChanged) for r in results)
        _finish(session, entry, "processed", "settings-command" if changed else None, detail)
    elif refusals and all(r.reason == "duplicate" for r in refusals):
        _finish(session, entry, "duplicate", "duplicate", refusals[0].detail)
    else:
        first = refusals[0] if refusals else Refusal("no-recipient", "No recipient to deliver to.")
        detail = "; ".join(r.detail for r in refusals) or first.detail
        _finish(session, entry, "quarantined", first.reason, detail)


@observe_processing  # issue #9: journal id on its log lines; outcome and time counted
def process_journal_entry(engine: Engine, entry_id: int, settings: Settings) -> str:
    """Process one entry in its own transaction; returns the entry's final status.

    Any failure while storing leaves the raw message in the journal, quarantined with
    the error as its reason, so a bug in processing never loses mail.
    """
    try:
        with session_scope(engine) as session:
            entry = session.get(InboundMessage, entry_id, with_for_update={"skip_locked": True})
            if entry is None or entry.status != "pending":
                return entry.status if entry else "missing"
            process_entry(session, entry, settings)
        reason = f" ({entry.reason})" if entry.reason else ""
        log.info("message %s %s%s", entry_id, entry.status, reason)
        return entry.status
    except IntegrityError:
        # Another process stored the same message first (same Message-ID, same team).
        with session_scope(engine) as session:
            entry = session.get(InboundMessage, entry_id)
            if entry is not None and entry.status == "pending":
                _finish(session, entry, "duplicate", "duplicate", "Stored already.")
            return entry.status if entry else "missing"
    except OperationalError:
        # Lock contention or a lost connection: nothing was written, so the entry stays
        # pending and the worker's sweep retries it.
        log.warning("message %s left pending after a database error", entry_id, exc_info=True)
        return "pending"
    except Exception as exc:
        log.exception("processing journal entry %s failed", entry_id)
        with session_scope(engine) as session:
            entry = session.get(InboundMessage, entry_id)
            if entry is None:
                return "missing"
            if entry.status == "pending":
                detail = f"{type(exc).__name__}: {exc}"
                _finish(session, entry, "quarantined", "processing-error", detail)
            return entry.status


def process_pending(
    engine: Engine, settings: Settings, grace: timedelta = SWEEP_GRACE, limit: int = 100
) -> int:
    """Process journal entries left pending (a crash, a retry) for longer than `grace`.

    Fresh entries are left to the listener that journaled them and is processing them.
    """
    with session_scope(engine) as session:
        ids = [e.id for e in store.claim_pending_inbound(session, utcnow() - grace, limit)]
    for entry_id in ids:
        process_journal_entry(engine, entry_id, settings)  # type: ignore[arg-type]
    return len(ids)
