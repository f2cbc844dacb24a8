"""Deliver the outbox: Maildir (the default) or SMTP via aiosmtplib, chosen by OUTBOUND_URL.

A worker claims a row (pending -> sending, with a timestamp) in its own transaction,
sends it, then marks it sent. Two workers never claim the same row; a row whose
worker died while sending is reclaimed after `LEASE`. That one case can send a
message twice (the send may have happened before the crash), which is why every
message carries a stable Message-ID that mail clients use to drop duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import mailbox
from dataclasses import dataclass
from datetime import timedelta
from email.utils import getaddresses
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import aiosmtplib
from sqlalchemy import Engine, or_, update
from sqlmodel import select

from app.db import session_scope
from app.errors import TidingsError
from app.models import OutboundMessage, utcnow

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
RETRY_DELAY = timedelta(minutes=1)
MAX_ATTEMPTS = 5
CLAIM_TRIES = 20  # rows lost to other workers before giving this round up


class Transport(Protocol):
    description: str

    async def send(self, raw: bytes, sender: str, recipient: str) -> None: ...


class MaildirTransport:
    """Writes each message into a Maildir (`mutt -f PATH` reads it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"Maildir {path}"

    async def send(self, raw: bytes, sender: str, recipient: str) -> None:
        def write() -> None:
            box = mailbox.Maildir(self.path, create=True)
            box.add(raw)

        await asyncio.to_thread(write)


class SmtpTransport:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.description = f"SMTP relay {host}:{port}"

    async def send(self, raw: bytes, sender: str, recipient: str) -> None:
        await aiosmtplib.send(
            raw,
            sender=sender,
            recipients=[recipient],
            hostname=self.host,
            port=self.port,
            start_tls=False,
            timeout=30,
        )


def transport_from_url(url: str) -> Transport:
    """`maildir:PATH` or `smtp://host:port`; anything else is a configuration error."""
    if url.startswith("maildir:"):
        return MaildirTransport(Path(url.removeprefix("maildir:")).expanduser())
    parts = urlsplit(url)
    if parts.scheme == "smtp" and parts.hostname:
        return SmtpTransport(parts.hostname, parts.port or 25)
    raise TidingsError(
        f"TIDINGS_OUTBOUND_URL '{url}' is not a transport Tidings knows.",
        "Use maildir:/path/to/outbox or smtp://relay.example.com:25.",
    )


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0


def _claim(engine: Engine) -> OutboundMessage | None:
    """Take one due row for this worker, or None when there is nothing to send.

    The claim is a compare-and-set UPDATE (it only matches while the row is as we read
    it), so two workers cannot both take a row even on SQLite, which has no row locks;
    on PostgreSQL, SKIP LOCKED also keeps them from waiting on each other.
    """
    now = utcnow()
    due = or_(
        (OutboundMessage.status == "pending")
        & or_(
            OutboundMessage.claimed_at.is_(None),  # type: ignore[union-attr]
            OutboundMessage.claimed_at < now - RETRY_DELAY,  # type: ignore[operator]
        ),
        (OutboundMessage.status == "sending") & (OutboundMessage.claimed_at < now - LEASE),  # type: ignore[operator]
    )
    for _ in range(CLAIM_TRIES):
        with session_scope(engine) as session:
            query = (
                select(OutboundMessage)
                .where(due)
                .order_by(OutboundMessage.id)  # type: ignore[arg-type]
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            row = session.exec(query).first()
            if row is None:
                return None
            taken = session.execute(
                update(OutboundMessage)
                .where(
                    OutboundMessage.id == row.id,  # type: ignore[arg-type]
                    OutboundMessage.status == row.status,  # type: ignore[arg-type]
                    OutboundMessage.attempts == row.attempts,  # type: ignore[arg-type]
                )
                .values(status="sending", claimed_at=now, attempts=row.attempts + 1)
            )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                session.expunge(row)  # the UPDATE above is the write; keep the ORM out of it
                row.status, row.claimed_at, row.attempts = "sending", now, row.attempts + 1
                return row
    return None


def _finish(engine: Engine, row_id: int, error: str | None, permanent: bool) -> None:
    with session_scope(engine) as session:
        row = session.get(OutboundMessage, row_id)
        if row is None:
            return
        if error is None:
            row.status, row.sent_at, row.last_error = "sent", utcnow(), None
        else:
            gave_up = permanent or row.attempts >= MAX_ATTEMPTS
            row.status, row.last_error = ("failed" if gave_up else "pending"), error[:500]
        session.add(row)


def envelope_sender(raw: bytes) -> str:
    """The From address of a rendered outbox message, used as the envelope sender."""
    head = raw.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    for line in head.splitlines():
        if line.lower().startswith("from:"):
            found = getaddresses([line[5:]])
            if found and found[0][1]:
                return found[0][1]
    return ""


async def deliver_pending(
    engine: Engine, transport: Transport, limit: int = 1000
) -> DeliveryReport:
    """Send pending outbox rows until none are left (or `limit`); one failure stops nothing."""
    report = DeliveryReport()
    for _ in range(limit):
        row = await asyncio.to_thread(_claim, engine)
        if row is None:
            break
        error, permanent = None, False
        try:
            await transport.send(row.raw, envelope_sender(row.raw), row.recipient)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            error = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            permanent = bool(codes) and all(code >= 500 for code in codes)
        except aiosmtplib.SMTPResponseException as exc:
            error, permanent = f"{exc.code} {exc.message}", exc.code >= 500
        except (OSError, aiosmtplib.SMTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
        await asyncio.to_thread(_finish, engine, row.id, error, permanent)  # type: ignore[arg-type]
        if error is None:
            report.sent += 1
        else:
            report.failed += 1
            log.warning("sending outbox row %s to %s failed: %s", row.id, row.recipient, error)
    return report
