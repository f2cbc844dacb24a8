"""The aiosmtpd handler: the SMTP reply strings a sender sees, and the journal-first promise.

RCPT refuses addresses that are neither a team address nor a valid reply address, so
we never relay. DATA refuses senders who are not members of a team they write to (their server
bounces it back to them, so nothing is lost), then commits the raw message to the
journal (together with whatever other sessions' messages arrived meanwhile: a group
commit, smtp/journal.py), and only then answers 250. Parsing and storing the update happens after
that, off the SMTP path.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from typing import AnyStr, NamedTuple

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session as DbSession

from app import metrics, store
from app.db import session_scope
from app.errors import NotFound, TidingsError
from app.logs import journal_context
from app.models import Person, Team
from app.settings import Settings
from app.tokens import parse_recipient
from smtp.classify import classify_message
from smtp.journal import GroupCommit
from smtp.limits import ClientLimits
from smtp.parse import header_message, headers_only, message_id_of, sender_address
from smtp.reply_address import Refusal, check_reply_token
from smtp.service_mail import is_service_address, returned_for, unsubscriber

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024
MAX_RECIPIENTS = 50  # a reply goes to one or two team addresses; more looks like abuse
COMMAND_TIMEOUT_SECONDS = 120
OPEN_TEAM_SECONDS = 5.0
OK_RCPT = "250 2.1.5 Recipient OK"


class Refused(NamedTuple):
    """An SMTP refusal: a short reason code (the `reason` label of
    tidings_messages_rejected_total) and the reply line the client sees."""

    reason: str
    line: str


class TidingsHandler:
    """aiosmtpd hooks; each returns the SMTP reply line the client sees."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        on_journaled: Callable[[int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.domain = settings.mail_domain
        self.secret = settings.ensure_secret_key()
        self.on_journaled = on_journaled
        # Team addresses found open at RCPT in the last OPEN_TEAM_SECONDS: a busy listener
        # answers their RCPT without a database read. DATA checks the team again.
        self._open_teams: dict[str, float] = {}
        self.journal: GroupCommit[Arrival, int | Refused] = GroupCommit(self.accept_batch)
        self.limits = ClientLimits(
            settings.smtp_max_sessions_per_ip,
            settings.smtp_max_messages_per_minute,
            settings.smtp_unlimited_set,
        )

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        peer = str(session.peer[0]) if session.peer else ""
        if not self.limits.allow_message(peer, time.monotonic()):
            metrics.message_rejected("rate-limited")
            return (
                "421 4.7.0 Too many messages from your address in the last minute;"
                " try again in a minute"
            )
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            metrics.message_rejected("too-many-recipients")
            return f"452 4.5.3 Too many recipients (at most {MAX_RECIPIENTS} a message)"
        recent = self._open_teams.get(address.lower())
        if recent is not None and time.monotonic() - recent < OPEN_TEAM_SECONDS:
            refusal = None
        else:
            refusal = await asyncio.to_thread(self.check_recipient, address)
        if refusal:
            metrics.message_rejected(refusal.reason)
            return refusal.line
        envelope.rcpt_tos.append(address)
        return OK_RCPT

    def check_recipient(self, address: str) -> Refused | None:
        """Why, and the 550 line, for an address we do not take mail for; or None."""
        recipient = parse_recipient(address, self.domain)
        if recipient is None:
            return Refused(
                "relaying-denied",
                f"550 5.7.1 <{address}>: relaying denied; this server only takes team mail",
            )
        if recipient.team_slug == store.UNSUBSCRIBE_LOCAL_PART:
            if unsubscriber(recipient.token or "", self.secret) is None:
                return Refused(
                    "bad-unsubscribe-address",
                    f"550 5.1.1 <{address}>: this unsubscribe address is not valid or has"
                    " expired; use the link in a recent digest",
                )
            return None
        if recipient.team_slug == store.BOUNCE_LOCAL_PART:
            if returned_for(recipient.token or "", self.secret) is None:
                return Refused(
                    "bad-return-path", f"550 5.1.1 <{address}>: not a return path of this server"
                )
            return None
        if recipient.team_slug == store.DIGEST_LOCAL_PART and recipient.token is None:
            return None  # kept, and answered with how to reply to one item
        with session_scope(self.engine) as db:
            try:
                team = store.get_team(db, recipient.team_slug)
            except NotFound:
                return Refused("no-such-team", f"550 5.1.1 <{address}>: no such team")
            if team.archived_at is not None:
                notice = store.archived_notice(team)
                return Refused("team-archived", f"550 5.2.1 <{address}>: {notice}")
            if recipient.token is None:
                self._open_teams[address.lower()] = time.monotonic()
                return None
            checked = check_reply_token(
                db, team, recipient.token, self.secret, self.settings.team_address(team.slug)
            )
        if isinstance(checked, Refusal):
            return Refused(checked.reason, f"550 5.1.1 <{address}>: {checked.detail}")
        return None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        peer = str(session.peer[0]) if session.peer else ""
        metrics.MESSAGES_RECEIVED.inc()
        arrival = Arrival(raw, envelope.mail_from or "", tuple(envelope.rcpt_tos), peer)
        try:
            result = await self.journal.submit(arrival)
        except SQLAlchemyError:
            metrics.message_rejected("journal-unavailable")
            return "451 4.3.0 Could not store the message just now; please try again later"
        if isinstance(result, Refused):
            metrics.message_rejected(result.reason)
            log.info("refused a message from %s: %s", peer, result.reason)
            return result.line
        metrics.MESSAGES_ACCEPTED.inc()
        if self.on_journaled is not None:
            self.on_journaled(result)
        return f"250 2.0.0 Message accepted as {result}"

    def accept_batch(self, arrivals: Sequence[Arrival]) -> list[int | Refused]:
        """Journal the messages that may come in, in one transaction; for each arrival its
        journal id, or why and the 550 line refusing it. Runs in the group commit's thread."""
        decisions: list[tuple[Arrival, str | None] | Refused] = []
        with session_scope(self.engine) as db:
            senders = _SenderCheck(db, self.domain)
            for arrival in arrivals:
                headers = headers_only(arrival.raw)
                refusal = senders.refusal(sender_address(headers), arrival.rcpt_tos)
                # Bounces and auto-replies are kept (quarantined by processing, never
                # posted): refusing them would only make the sending server bounce a
                # bounce. Telling them apart reads the body, so only for mail refused.
                if refusal and (
                    not arrival.mail_from
                    or classify_message(header_message(arrival.raw)).kind != "human"
                ):
                    refusal = None
                decisions.append(refusal or (arrival, message_id_of(headers)))
            entries = store.journal_messages(
                db,
                [
                    store.JournalArrival(a.raw, a.mail_from, a.rcpt_tos, a.peer, message_id)
                    for a, message_id in (d for d in decisions if not isinstance(d, Refused))
                ],
            )
        ids = iter(entries)
        outcomes: list[int | Refused] = []
        for decision in decisions:
            if isinstance(decision, Refused):
                outcomes.append(decision)
                continue
            entry_id, (arrival, _) = next(ids), decision
            outcomes.append(entry_id)
            with journal_context(entry_id):
                log.info(
                    "journaled message %s from %s (%d bytes)",
                    entry_id,
                    arrival.peer,
                    len(arrival.raw),
                )
        return outcomes


class Arrival(NamedTuple):
    """A message as DATA received it, on its way to the journal."""

    raw: bytes
    mail_from: str
    rcpt_tos: tuple[str, ...]
    peer: str


class _SenderCheck:
    """Whether a message's From may write to its team addresses, for one batch: each
    sender and membership is looked up once however many of their messages it holds."""

    def __init__(self, db: DbSession, domain: str) -> None:
        self.db, self.domain = db, domain
        self._people: dict[str, Person | None] = {}
        self._teams: dict[tuple[str, str], tuple[Team, bool]] = {}  # by (sender, slug)

    def refusal(self, sender: str, rcpt_tos: Sequence[str]) -> Refused | None:
        if not sender:
            return Refused(
                "no-from-address",
                "550 5.7.1 This message has no From address Tidings can read; send it"
                " from the address you are a team member with",
            )
        for rcpt in rcpt_tos:
            recipient = parse_recipient(rcpt, self.domain)
            # A reply address was checked at RCPT; a sender other than the member it was
            # issued to is held for that member's approval by processing, not refused here.
            if recipient is None or recipient.token is not None or is_service_address(recipient):
                continue
            team, member = self._membership(sender, recipient.team_slug)
            if team.archived_at is not None:  # since RCPT looked (it may have used a recent look)
                return Refused(
                    "team-archived", f"550 5.2.1 <{rcpt}>: {store.archived_notice(team)}"
                )
            if not member:
                return Refused(
                    "not-a-member",
                    f"550 5.7.1 {sender} is not a member of {team.slug}; ask a team admin to"
                    " add you, then send again",
                )
        return None

    def _membership(self, sender: str, slug: str) -> tuple[Team, bool]:
        """The team `slug` names, and whether `sender` is one of its members."""
        key = (sender, slug.lower())
        if key not in self._teams:
            if sender not in self._people:
                self._people[sender] = store.find_person(self.db, sender)
            person = self._people[sender]
            team = store.get_team(self.db, slug)
            member = person is not None and store.is_member(self.db, team.id, person.id)  # type: ignore[arg-type]
            self._teams[key] = (team, member)
        return self._teams[key]


class TidingsSMTP(SMTP):
    # RFC 5321 allows 1000 bytes a line, but real mail (HTML from some clients, long
    # headers) exceeds it and other MTAs accept it; refusing would bounce people's mail.
    line_length_limit = MAX_LINE_BYTES
    _refused = False
    _counted_ip: str | None = None  # the session counted against this address

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None:  # a new connection, not STARTTLS's second call
            peer = transport.get_extra_info("peername")
            ip = str(peer[0]) if peer else ""
            limits: ClientLimits = self.event_handler.limits
            if not limits.open_session(ip):
                metrics.message_rejected("too-many-connections")
                self._refused = True
                transport.write(  # type: ignore[attr-defined]
                    b"421 4.7.0 Too many connections from your address; try again in a few"
                    b" minutes\r\n"
                )
                transport.close()
                return
            self._counted_ip = ip
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return  # never started: nothing of aiosmtpd's to tear down
        if self._counted_ip is not None:
            self.event_handler.limits.close_session(self._counted_ip)
            self._counted_ip = None
        super().connection_lost(error)

    async def push(self, status: AnyStr) -> None:
        """aiosmtpd's own size refusals, with the enhanced code (RFC 3463 5.3.4) and a
        sentence a sender's bounce can show them."""
        if isinstance(status, str) and status in _SIZE_REFUSALS:
            metrics.message_rejected("too-big")
            limit = (self.data_size_limit or 0) // (1024 * 1024)
            status = (
                f"552 5.3.4 Message too big: this server takes up to {limit} MB;"
                " share large files as a link instead"
            )
        await super().push(status)


class TidingsLMTP(TidingsSMTP, LMTP):
    """The same listener speaking LMTP (RFC 2033), for an MTA in front that delivers to
    Tidings over LMTP: LHLO instead of EHLO, and after DATA one reply per accepted
    recipient (aiosmtpd's LMTP sends one in all, which an LMTP client waits past). The
    message is journaled once for all its recipients, so each gets the same reply."""

    _data_recipients = 0  # recipients of the message whose DATA is under way
    _data_started = False  # 354 was sent: the next reply is the message's

    async def smtp_DATA(self, arg: str) -> None:
        self._data_recipients = len(self.envelope.rcpt_tos)
        try:
            await super().smtp_DATA(arg)
        finally:
            self._data_recipients, self._data_started = 0, False

    async def push(self, status: AnyStr) -> None:
        text = status.decode() if isinstance(status, bytes) else status
        if self._data_recipients and text.startswith("354"):
            self._data_started = True
        elif self._data_started:
            # The message's reply: once per accepted recipient (RFC 2033 4.2). A refusal
            # of the DATA command itself (before 354) is one reply, as in SMTP.
            count, self._data_recipients, self._data_started = self._data_recipients, 0, False
            for _ in range(count - 1):
                await super().push(status)
        await super().push(status)


_SIZE_REFUSALS = frozenset(
    {
        "552 Error: Too much mail data",  # the body went over the limit
        "552 Error: message size exceeds fixed maximum message size",  # MAIL FROM SIZE=
    }
)


def make_smtp_server(
    handler: TidingsHandler,
    hostname: str,
    max_message_mb: int,
    tls_context: ssl.SSLContext | None = None,
    lmtp: bool = False,
) -> SMTP:
    """The listener for one connection, speaking LMTP with `lmtp`; it offers STARTTLS
    when `tls_context` is given (`tls_context_from_settings`). TLS is offered, not
    required: RFC 3207 says a publicly referenced MX must not require it, or servers that
    cannot do it could not deliver."""
    return (TidingsLMTP if lmtp else TidingsSMTP)(
        handler,
        hostname=hostname,
        data_size_limit=max_message_mb * 1024 * 1024,
        enable_SMTPUTF8=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        ident="Tidings ESMTP",
        tls_context=tls_context,
    )


def tls_context_from_settings(settings: Settings) -> ssl.SSLContext | None:
    """The STARTTLS context for TIDINGS_TLS_CERT_FILE / _KEY_FILE; None when neither is
    set. A certificate that cannot be used stops the start, with the reason."""
    if not settings.tls_cert_file and not settings.tls_key_file:
        return None
    if not (settings.tls_cert_file and settings.tls_key_file):
        raise TidingsError(
            "STARTTLS needs both TIDINGS_TLS_CERT_FILE and TIDINGS_TLS_KEY_FILE.",
            "Set both (PEM files), or neither to listen without TLS.",
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise TidingsError(
            f"Cannot use the TLS certificate {settings.tls_cert_file}: {exc}.",
            "Check that both files exist, are PEM, and that the key matches the certificate.",
        ) from exc
    return context
