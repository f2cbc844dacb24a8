"""Deliver the outbox: Maildir (the default) or SMTP via aiosmtplib, chosen by OUTBOUND_URL.

A worker claims a row (pending -> sending, with a timestamp) in its own transaction,
sends it, then marks it sent. Two workers never claim the same row; a row whose
worker died while sending is reclaimed after `LEASE`. That one case can send a
message twice (the send may have happened before the crash), which is why every
message carries a stable Message-ID that mail clients use to drop duplicates.

A temporary failure (a 4xx reply, a dropped or refused connection) puts the row back
to pending; it becomes due again `retry_delay(attempts)` after the failed attempt was
claimed (1, 2, 4 ... minutes, at most `RETRY_CAP`), and after `MAX_ATTEMPTS` it is
failed. A 5xx reply to the recipient or the message fails it at once. Either way
`last_error` keeps the relay's reply, and the row's `person_id` says whose mail it was.
A relay that cannot be reached or refuses our sender (any reply before RCPT) says
nothing about the recipient: that row is retried later and the pass stops there.

One delivery pass (`deliver_pending`) sends everything it claims over one SMTP session,
opened when the first message needs it and opened again whenever the relay drops it.
A planned digest is rendered from its plan as it is claimed (digest/layout.py), with one
`DigestLayout` for the pass, so what digests share is rendered once per pass.

A chat post (kind `webhook`, digest/webhooks.py) is not mail: its JSON is POSTed to the
webhook's URL, over one HTTP client per pass. A 2xx sends it; a 429, a 408, a 5xx or a
network error is retried like a 4xx reply; any other answer (a 404 for a revoked
webhook) fails it at once. Logs name only the webhook's host: its URL is its secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mailbox
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import getaddresses
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import aiosmtplib
from sqlalchemy import ColumnElement, Engine, case, delete, literal, or_, update
from sqlmodel import Session, select

from app import metrics
from app.db import session_scope
from app.digest_plan import DigestPlan
from app.errors import TidingsError
from app.models import Membership, MessageRef, OutboundMessage, UTCDateTime, utcnow
from app.webhooks import WEBHOOK_KIND
from digest.layout import DigestLayout
from digest.webhooks import WebhookPoster, recipient_in_logs

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=1)
# 1+2+4+8+16+32 minutes, then hourly: about six hours of retrying, so a relay outage of
# an afternoon delays digests instead of failing them (a failed digest's updates wait for
# that member's next digest).
MAX_ATTEMPTS = 12
CLAIM_TRIES = 20  # rows lost to other workers before giving this round up
SMTP_TIMEOUT = 30.0  # seconds for connecting and for each SMTP command


def retry_delay(attempts: int) -> timedelta:
    """How long a row waits after its `attempts`-th failed attempt before the next one."""
    return min(RETRY_BASE * 2 ** (attempts - 1), RETRY_CAP)


def next_attempt_at(row: OutboundMessage) -> datetime | None:
    """When a pending row may be tried again; None when it has never been tried."""
    if row.claimed_at is None:
        return None
    return row.claimed_at + retry_delay(row.attempts)


class RelayUnavailable(Exception):
    """The relay could not be reached or would not talk to us: no message can go out now."""


class Connection(Protocol):
    async def send(self, raw: bytes, sender: str, recipient: str) -> None: ...


class Transport(Protocol):
    description: str

    def connect(self) -> AbstractAsyncContextManager[Connection]:
        """What one delivery pass sends through; it is closed when the pass ends."""
        ...


class MaildirTransport:
    """Writes each message into a Maildir (`mutt -f PATH` reads it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"Maildir {path}"

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[MaildirTransport]:
        yield self  # nothing to open: every message is a file of its own

    async def send(self, raw: bytes, sender: str, recipient: str) -> None:
        def write() -> None:
            box = mailbox.Maildir(self.path, create=True)
            box.add(raw)

        await asyncio.to_thread(write)


class SmtpTransport:
    def __init__(self, host: str, port: int, timeout: float = SMTP_TIMEOUT) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.description = f"SMTP relay {host}:{port}"

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[SmtpConnection]:
        connection = SmtpConnection(self.host, self.port, self.timeout)
        try:
            yield connection
        finally:
            await connection.close()


class SmtpConnection:
    """One SMTP session reused for every message of a delivery pass.

    Nothing is opened until the first message, so a pass with nothing to send costs the
    relay nothing. The session is opened again before a message whenever it is gone:
    aiosmtplib closes it itself after a 421 reply or a timeout, and the relay may hang up
    on an idle session at any time.
    """

    def __init__(self, host: str, port: int, timeout: float) -> None:
        # start_tls=False: the relay is ours (localhost or the private network), as before.
        self._client = aiosmtplib.SMTP(hostname=host, port=port, timeout=timeout, start_tls=False)

    async def send(self, raw: bytes, sender: str, recipient: str) -> None:
        """Send one message, or raise what the relay said (an `SMTPResponseException`
        carries its code) or why it could not be asked."""
        reused = self._client.is_connected
        if not reused:
            await self._open()
        try:
            await self._start(sender, reused)
            await self._client.rcpt(recipient)
            await self._client.data(raw)
        except (aiosmtplib.SMTPResponseException, ValueError):  # refused, or unsendable
            await self._reset()
            raise
        except BaseException:
            self._client.close()  # the session's state is unknown: never reuse it
            raise

    async def close(self) -> None:
        if self._client.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await self._client.quit()
        self._client.close()

    async def _open(self) -> None:
        try:
            await self._client.connect()
            await self._client.ehlo()
        except (aiosmtplib.SMTPException, OSError) as exc:
            self._client.close()
            raise RelayUnavailable(_describe(exc)) from exc

    async def _start(self, sender: str, reused: bool) -> None:
        """MAIL FROM. Whatever goes wrong here is the relay's trouble (or our sender's),
        never the recipient's, so it is reported as `RelayUnavailable`."""
        try:
            await self._client.mail(sender)
            return
        except aiosmtplib.SMTPServerDisconnected as exc:
            if not reused:
                raise RelayUnavailable(_describe(exc)) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise RelayUnavailable(_describe(exc)) from exc
        # The relay hung up on the session while it sat idle. Nothing of this message was
        # transmitted, so starting again on a new session cannot deliver it twice.
        await self._open()
        await self._start(sender, reused=False)

    async def _reset(self) -> None:
        """Clear a refused transaction so the next message can use the same session."""
        if not self._client.is_connected:
            return  # a 421 closed it; the next message opens a new one
        try:
            await self._client.rset()
        except (aiosmtplib.SMTPException, OSError):
            self._client.close()


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


def _due(now: datetime) -> ColumnElement[bool]:
    """Rows to send now: never tried, past their retry delay, or whose lease ran out."""

    def instant(value: datetime) -> ColumnElement[datetime]:
        return literal(value, UTCDateTime())  # stored naive on SQLite, like the column

    # One WHEN per delay below the cap (a handful), so the comparison stays a plain
    # column-against-parameter test that SQLite and PostgreSQL both understand.
    uncapped = [n for n in range(1, MAX_ATTEMPTS + 1) if retry_delay(n) < RETRY_CAP]
    retry_after = case(
        *[(OutboundMessage.attempts == n, instant(now - retry_delay(n))) for n in uncapped],
        else_=instant(now - RETRY_CAP),
    )
    return or_(
        (OutboundMessage.status == "pending")
        & or_(
            OutboundMessage.claimed_at.is_(None),  # type: ignore[union-attr]
            OutboundMessage.claimed_at < retry_after,  # type: ignore[operator]
        ),
        (OutboundMessage.status == "sending") & (OutboundMessage.claimed_at < now - LEASE),  # type: ignore[operator]
    )


def _claim(engine: Engine) -> OutboundMessage | None:
    """Take one due row for this worker, or None when there is nothing to send.

    The claim is a compare-and-set UPDATE (it only matches while the row is as we read
    it), so two workers cannot both take a row even on SQLite, which has no row locks;
    on PostgreSQL, SKIP LOCKED also keeps them from waiting on each other.
    """
    now = utcnow()
    due = _due(now)
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
            attempts = row.attempts + 1
            taken = session.execute(
                update(OutboundMessage)
                .where(
                    OutboundMessage.id == row.id,  # type: ignore[arg-type]
                    OutboundMessage.status == row.status,  # type: ignore[arg-type]
                    OutboundMessage.attempts == row.attempts,  # type: ignore[arg-type]
                )
                .values(status="sending", claimed_at=now, attempts=attempts)
                # The UPDATE is the write; keep the ORM from also applying it to `row`.
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                session.expunge(row)
                row.status, row.claimed_at, row.attempts = "sending", now, attempts
                return row
    return None


def _finish(engine: Engine, row: OutboundMessage, error: str | None, permanent: bool) -> str:
    """Record how the attempt went; returns the row's new status."""
    if error is None:
        # Delivered is the truth even if our lease ran out meanwhile, so this is not
        # conditional on still holding the claim.
        values: dict[str, object] = {"status": "sent", "sent_at": utcnow(), "last_error": None}
        mine = OutboundMessage.id == row.id
    else:
        gave_up = permanent or row.attempts >= MAX_ATTEMPTS
        values = {"status": "failed" if gave_up else "pending", "last_error": error[:500]}
        if gave_up:
            # Frees the key: the same content may be planned again (see the cursors below).
            values["idempotency_key"] = f"{row.idempotency_key[:180]}:failed:{row.id}"
        # Only while the claim is still ours: after a reclaim, the newer attempt decides.
        mine = (
            (OutboundMessage.id == row.id)
            & (OutboundMessage.status == "sending")
            & (OutboundMessage.attempts == row.attempts)
        )
    with session_scope(engine) as session:
        changed = session.execute(
            update(OutboundMessage)
            .where(mine)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if values["status"] == "failed" and changed.rowcount == 1:  # type: ignore[attr-defined]
            # The member never got this message: the next digest offers its updates again,
            # and may carry the same Message-ID (a reply can only quote one that arrived).
            if row.plan is not None:
                _offer_again(session, DigestPlan.from_json(row.plan))
            session.execute(delete(MessageRef).where(MessageRef.message_id == row.message_id))
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        log.warning("outbox row %s was reclaimed by another worker; leaving it to them", row.id)
    return str(values["status"])


def _offer_again(session: Session, plan: DigestPlan) -> None:
    """Move the cursors a failed digest moved back, so the next digest covers its updates;
    but not past a later digest planned meanwhile, which covered them (and may have
    arrived)."""
    for membership_id, (before, after) in plan.cursors.items():
        session.execute(
            update(Membership)
            .where(Membership.id == membership_id, Membership.digest_cursor == after)  # type: ignore[arg-type]
            .values(digest_cursor=before)
            .execution_options(synchronize_session=False)
        )


def envelope_sender(raw: bytes) -> str:
    """The From address of a rendered outbox message, used as the envelope sender."""
    head = raw.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    for line in head.splitlines():
        if line.lower().startswith("from:"):
            found = getaddresses([line[5:]])
            if found and found[0][1]:
                return found[0][1]
    return ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}"
    return f"{type(exc).__name__}: {exc}"


ReturnPath = Callable[[OutboundMessage], str]
"""The envelope sender for a row: where bounces about it go (see digest/outbound.py)."""


async def _attempt(
    connection: Connection, row: OutboundMessage, return_path: ReturnPath | None
) -> tuple[str | None, bool]:
    """Send one row: (None, False) when it went out, else (error, whether it is permanent).

    Every exception but `RelayUnavailable` becomes the row's failure, so one recipient's
    trouble (even one we did not foresee) is retried or recorded instead of stopping
    everyone else's mail.
    """
    try:
        sender = return_path(row) if return_path else envelope_sender(row.raw)
        await connection.send(row.raw, sender, row.recipient)
    except RelayUnavailable:
        raise
    except aiosmtplib.SMTPResponseException as exc:
        return _describe(exc), exc.code >= 500
    except ValueError as exc:  # an address SMTP cannot carry (e.g. not ASCII): never will
        return _describe(exc), True
    except Exception as exc:
        if not isinstance(exc, OSError | aiosmtplib.SMTPException):
            log.exception("unexpected error sending outbox row %s", row.id)
        return _describe(exc), False
    return None, False


def _render(engine: Engine, row: OutboundMessage, layout: DigestLayout | None) -> None:
    """Give a planned digest its message (in memory: the plan stays the record)."""
    if row.raw or row.plan is None:
        return
    if layout is None:
        raise ValueError("a planned digest needs a DigestLayout to be rendered")
    with session_scope(engine) as session:
        row.raw = layout.render(session, row)


async def deliver_pending(
    engine: Engine,
    transport: Transport,
    limit: int = 1000,
    return_path: ReturnPath | None = None,
    layout: DigestLayout | None = None,
) -> DeliveryReport:
    """Send due outbox rows until none are left (or `limit`), over one connection.
    Planned digests are rendered with `layout`.

    A recipient's failure stops nothing. A relay that is unreachable or refuses our
    sender ends the pass after the one row that found out (it waits for its retry like
    any other temporary failure): every other row would only fail the same way, each
    perhaps after a connect timeout.
    """
    report = DeliveryReport()
    async with transport.connect() as connection, WebhookPoster() as webhooks:
        for _ in range(limit):
            row = await asyncio.to_thread(_claim, engine)
            if row is None:
                break
            relay_down = False
            try:
                await asyncio.to_thread(_render, engine, row, layout)
            except Exception as exc:  # the plan cannot become a message: it never will
                log.exception("cannot render outbox row %s", row.id)
                error, permanent = _describe(exc), True
            else:
                try:
                    if row.kind == WEBHOOK_KIND:  # a chat post: JSON to its URL, not mail
                        error, permanent = await webhooks.post(row)
                    else:
                        error, permanent = await _attempt(connection, row, return_path)
                except RelayUnavailable as exc:
                    error, permanent, relay_down = str(exc), False, True
            status = await asyncio.to_thread(_finish, engine, row, error, permanent)
            if error is None:
                metrics.OUTBOX_SENT.labels(row.kind).inc()
                report.sent += 1
                continue
            report.failed += 1
            if status == "pending":
                metrics.OUTBOX_RETRIED.labels(row.kind).inc()
                log.warning(
                    "sending outbox row %s to %s failed (attempt %s), retrying after %s: %s",
                    row.id,
                    recipient_in_logs(row),
                    row.attempts,
                    next_attempt_at(row).isoformat(timespec="seconds"),  # type: ignore[union-attr]
                    error,
                )
            else:
                metrics.OUTBOX_FAILED.labels(row.kind).inc()
                log.warning(
                    "outbox row %s to %s failed for good: %s", row.id, recipient_in_logs(row), error
                )
            if relay_down:
                break
    return report
