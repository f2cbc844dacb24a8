"""Delivering the outbox over SMTP to a real server, as a member's mailbox would see it.

One delivery pass uses one SMTP session; a recipient the relay turns away temporarily
is retried later with growing delays, one it refuses for good is failed with the
relay's words, and everyone else's mail goes out in the same pass. Several worker
processes on one PostgreSQL send every digest exactly once, and a worker killed
between planning and sending never costs a member an update nor shows them one twice.
"""

from __future__ import annotations

import asyncio
import collections
import email
import email.policy
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import Engine, func, update
from sqlmodel import select

from app import store
from app.db import make_engine, session_scope, upgrade
from app.models import Membership, OutboundMessage, Thread, utcnow
from app.settings import Settings
from digest.build import run_digests
from digest.layout import DigestLayout
from digest.send import (
    LEASE,
    MAX_ATTEMPTS,
    SmtpTransport,
    deliver_pending,
    next_attempt_at,
    retry_delay,
)
from tests.conftest import free_port, fresh_postgres_database
from tests.e2e.sink import Sink
from tests.e2e.stack import BIN, Stack, make_stack, wait_for
from tests.e2e.test_outbox import queue, rows

# A relay that does what real ones do ---------------------------------------------------


class Relay(Sink):
    """The capture sink, plus what real relays do to a sender now and then.

    `mail_reply` answers every MAIL FROM (530 authentication required);
    `rcpt_replies`/`data_replies` answer a recipient at RCPT or at the end of DATA
    (451 try later, 550 no such user, 421 closing, 554 rejected); `slow` recipients get
    no answer at RCPT for that many seconds; after `hang_up_after` messages a session is
    dropped without a word when the next MAIL arrives (an idle timeout at the worst
    moment); `stall` hangs the first message at the end of DATA for good, either
    "before" keeping it or "after" keeping it (the sender never hears which).
    It remembers every RCPT it was asked and the client port of every session.
    """

    def __init__(
        self,
        mail_reply: str | None = None,
        rcpt_replies: dict[str, str] | None = None,
        data_replies: dict[str, str] | None = None,
        slow: dict[str, float] | None = None,
        hang_up_after: int | None = None,
        stall: Literal["before", "after"] | None = None,
    ) -> None:
        super().__init__()
        self.mail_reply = mail_reply
        self.rcpt_replies = rcpt_replies or {}
        self.data_replies = data_replies or {}
        self.slow = slow or {}
        self.hang_up_after = hang_up_after
        self.stall = stall
        self.asked: collections.Counter[str] = collections.Counter()
        self.sessions: set[object] = set()
        self.carried: collections.Counter[object] = collections.Counter()
        self.stalled = threading.Event()
        self.stalled_for = ""

    def copies_to(self, address: str) -> list[Envelope]:
        return [e for e in self.received if e.rcpt_tos == [address]]

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.sessions.add(session.peer)  # every session the client opens starts here
        session.host_name = hostname  # what aiosmtpd does itself when there is no hook
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.hang_up_after and self.carried[session.peer] >= self.hang_up_after:
            assert server.transport is not None
            server.transport.abort()  # no reply at all: the client just sees the line drop
            return "421 4.4.2 never sent"
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.asked[address] += 1
        if address in self.slow:
            await asyncio.sleep(self.slow[address])
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        [address] = envelope.rcpt_tos
        if address in self.data_replies:
            return self.data_replies[address]
        if self.stall and not self.stalled.is_set():
            if self.stall == "after":
                self.received.append(envelope)
            self.stalled_for = address
            self.stalled.set()
            await asyncio.sleep(3600)  # until the test stops the relay
        self.carried[session.peer] += 1
        self.received.append(envelope)
        return "250 OK"


@contextmanager
def running(relay: Relay) -> Iterator[int]:
    port = free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def parsed(envelope: Envelope) -> EmailMessage:
    return email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[arg-type, return-value]


def text_of(envelope: Envelope) -> str:
    return parsed(envelope).get_body(("plain",)).get_content()  # type: ignore[union-attr]


# One pass, one session; refusals per recipient ------------------------------------------


@pytest.fixture(scope="module")
def module_engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(module_engine: Engine) -> Iterator[Engine]:
    """The module's database, with whatever a test left unsent cleared away afterwards,
    so the next test's delivery passes meet only its own mail."""
    yield module_engine
    with session_scope(module_engine) as session:
        unsent = OutboundMessage.status.in_(["pending", "sending"])  # type: ignore[attr-defined]
        session.execute(update(OutboundMessage).where(unsent).values(status="failed"))


def age(engine: Engine, row_id: int, by: timedelta) -> None:
    """Let `by` pass for one row: its last claim moves that far into the past."""
    with session_scope(engine) as session:
        row = session.get(OutboundMessage, row_id)
        assert row is not None and row.claimed_at is not None
        row.claimed_at -= by
        session.add(row)


async def test_one_session_carries_a_whole_pass(engine: Engine) -> None:
    relay = Relay()
    recipients = [f"reuse{n}@example.com" for n in range(10)]
    with running(relay) as port:
        transport = SmtpTransport("127.0.0.1", port)
        ids = queue(engine, *recipients)
        report = await deliver_pending(engine, transport)
        idle = await deliver_pending(engine, transport)
    assert (report.sent, report.failed) == (10, 0)
    assert sorted(e.rcpt_tos[0] for e in relay.received) == sorted(recipients)
    assert len(relay.sessions) == 1
    assert (idle.sent, idle.failed) == (0, 0)  # and a pass with nothing to send never connects
    assert {r.status for r in rows(engine, ids)} == {"sent"}


async def test_each_refusal_stays_with_its_recipient_and_the_pass_goes_on(engine: Engine) -> None:
    relay = Relay(
        rcpt_replies={
            "busy@example.com": "451 4.3.0 Mailbox busy, try again later",
            "nobody@example.com": "550 5.1.1 No such user here",
            "closing@example.com": "421 4.7.0 Too many messages, closing connection",
        },
        data_replies={"spam@example.com": "554 5.7.1 Message rejected as spam"},
    )
    order = [
        "ok1@example.com",
        "busy@example.com",
        "ok2@example.com",
        "nobody@example.com",
        "ok3@example.com",
        "spam@example.com",
        "ok4@example.com",
        "jürgen@example.com",  # our relay speaks no SMTPUTF8, so this can never be sent
        "closing@example.com",
        "ok5@example.com",
    ]
    with running(relay) as port:
        ids = queue(engine, *order)
        report = await deliver_pending(engine, SmtpTransport("127.0.0.1", port))
    assert (report.sent, report.failed) == (5, 5)
    assert sorted(e.rcpt_tos[0] for e in relay.received) == [
        f"ok{n}@example.com" for n in range(1, 6)
    ]
    # The 421 closed the session; the message after it went out on a new one.
    assert len(relay.sessions) == 2
    outcome = {r.recipient: r for r in rows(engine, ids)}
    assert {a: r.status for a, r in outcome.items() if not a.startswith("ok")} == {
        "busy@example.com": "pending",
        "nobody@example.com": "failed",
        "spam@example.com": "failed",
        "jürgen@example.com": "failed",
        "closing@example.com": "pending",
    }
    assert outcome["nobody@example.com"].last_error == "550 5.1.1 No such user here"
    assert outcome["spam@example.com"].last_error == "554 5.7.1 Message rejected as spam"
    assert "UnicodeEncodeError" in (outcome["jürgen@example.com"].last_error or "")
    busy = outcome["busy@example.com"]
    assert busy.last_error == "451 4.3.0 Mailbox busy, try again later"
    assert busy.attempts == 1 and next_attempt_at(busy) == busy.claimed_at + timedelta(minutes=1)  # type: ignore[operator]


async def test_updates_in_a_refused_digest_are_offered_again(
    engine: Engine, tmp_path: Path
) -> None:
    """A digest the relay refused for good never reached the member: the next digest
    brings its updates again instead of treating them as read."""
    settings = Settings(data_dir=tmp_path, database_url=str(engine.url), mail_domain="tidings.test")
    with session_scope(engine) as session:
        store.create_team(session, "refused", "Refused")
        store.add_member(session, "refused", "writer@example.com", "Writer")
        reader = store.add_member(session, "refused", "gone@example.com", "Gone")
        thread = Thread(team_id=store.get_team(session, "refused").id, title="Kept news")  # type: ignore[arg-type]
        session.add(thread)
        session.flush()
        writer = store.find_person(session, "writer@example.com")
        store.add_update(
            session,
            thread=thread,
            author=writer,
            body="Do not lose me.",
            placed_by="new-thread",  # type: ignore[arg-type]
        )
        reader_id = reader.id
    relay = Relay(rcpt_replies={"gone@example.com": "550 5.2.1 Mailbox disabled"})
    with running(relay) as port:
        layout = DigestLayout(settings)
        run_digests(engine, settings, utcnow(), force=True)
        await deliver_pending(engine, SmtpTransport("127.0.0.1", port), layout=layout)
        relay.rcpt_replies.clear()  # the mailbox works again
        run_digests(engine, settings, utcnow(), force=True)
        await deliver_pending(engine, SmtpTransport("127.0.0.1", port), layout=layout)
    [delivered] = [e for e in relay.received if e.rcpt_tos == ["gone@example.com"]]
    assert "Do not lose me." in text_of(delivered)
    with session_scope(engine) as session:
        statuses = sorted(
            r.status
            for r in session.exec(
                select(OutboundMessage).where(OutboundMessage.person_id == reader_id)
            )
        )
    assert statuses == ["failed", "sent"]


async def test_a_relay_refusing_our_sender_fails_no_member(engine: Engine) -> None:
    relay = Relay(mail_reply="530 5.7.0 Authentication required")
    with running(relay) as port:
        ids = queue(engine, "auth1@example.com", "auth2@example.com")
        report = await deliver_pending(engine, SmtpTransport("127.0.0.1", port))
    assert (report.sent, report.failed) == (0, 1)
    tried, untried = rows(engine, ids)
    assert (tried.status, tried.attempts) == ("pending", 1)
    assert tried.last_error == "530 5.7.0 Authentication required"
    # Every message would meet the same refusal: the pass stopped instead of trying them.
    assert (untried.status, untried.attempts) == ("pending", 0)


async def test_a_busy_mailbox_is_retried_later_and_later_then_given_up(engine: Engine) -> None:
    busy = "later@example.com"
    relay = Relay(rcpt_replies={busy: "451 4.2.1 Mailbox busy, try again later"})
    waits = []
    with running(relay) as port:
        transport = SmtpTransport("127.0.0.1", port)
        [row_id] = queue(engine, busy)
        await deliver_pending(engine, transport)
        for tried in range(1, MAX_ATTEMPTS):
            [row] = rows(engine, [row_id])
            assert (row.status, row.attempts, relay.asked[busy]) == ("pending", tried, tried)
            wait = next_attempt_at(row) - row.claimed_at  # type: ignore[operator]
            waits.append(wait)
            age(engine, row_id, wait - timedelta(seconds=5))
            await deliver_pending(engine, transport)
            assert relay.asked[busy] == tried, "not asked again before its time"
            age(engine, row_id, timedelta(seconds=10))
            await deliver_pending(engine, transport)
    [row] = rows(engine, [row_id])
    assert (row.status, row.attempts, relay.asked[busy]) == ("failed", MAX_ATTEMPTS, MAX_ATTEMPTS)
    assert row.last_error == "451 4.2.1 Mailbox busy, try again later"
    assert [w // timedelta(minutes=1) for w in waits] == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60]


async def test_a_busy_mailbox_gets_its_message_once_it_takes_mail_again(engine: Engine) -> None:
    busy = "soon@example.com"
    relay = Relay(rcpt_replies={busy: "452 4.2.2 Mailbox full"})
    with running(relay) as port:
        transport = SmtpTransport("127.0.0.1", port)
        [row_id] = queue(engine, busy)
        await deliver_pending(engine, transport)
        age(engine, row_id, retry_delay(1))
        await deliver_pending(engine, transport)
        del relay.rcpt_replies[busy]  # the owner cleaned up their mailbox
        age(engine, row_id, retry_delay(2))
        report = await deliver_pending(engine, transport)
    assert (report.sent, report.failed) == (1, 0)
    assert [e.rcpt_tos for e in relay.received] == [[busy]]
    [row] = rows(engine, [row_id])
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)


async def test_a_relay_hanging_up_between_messages_costs_nothing(engine: Engine) -> None:
    relay = Relay(hang_up_after=2)
    recipients = [f"hangup{n}@example.com" for n in range(5)]
    with running(relay) as port:
        ids = queue(engine, *recipients)
        report = await deliver_pending(engine, SmtpTransport("127.0.0.1", port))
    assert (report.sent, report.failed) == (5, 0)
    assert sorted(e.rcpt_tos[0] for e in relay.received) == sorted(recipients)
    assert len(relay.sessions) == 3  # 2 + 2 + 1 messages
    assert [(r.status, r.attempts, r.last_error) for r in rows(engine, ids)] == [
        ("sent", 1, None)
    ] * 5


async def test_a_relay_that_stops_answering_times_out_for_that_message_only(
    engine: Engine,
) -> None:
    relay = Relay(slow={"slow@example.com": 3})
    order = ["before@example.com", "slow@example.com", "after@example.com"]
    with running(relay) as port:
        ids = queue(engine, *order)
        report = await deliver_pending(engine, SmtpTransport("127.0.0.1", port, timeout=1))
    assert (report.sent, report.failed) == (2, 1)
    assert sorted(e.rcpt_tos[0] for e in relay.received) == [
        "after@example.com",
        "before@example.com",
    ]
    assert len(relay.sessions) == 2  # the timed-out session is not reused
    slow = next(r for r in rows(engine, ids) if r.recipient == "slow@example.com")
    assert slow.status == "pending" and "Timeout" in (slow.last_error or "")


# Real worker processes ------------------------------------------------------------------

UPDATES = [
    "Shipped the billing export.",
    "Fixed the flaky login test.",
    "Reviewed the onboarding copy.",
    "Upgraded the database driver.",
]
AUTHOR = "author@example.com"


def reader(n: int) -> str:
    return f"reader{n}@example.com"


def seed(url: str, readers: int, joined: datetime, digest_hour: int, bodies: list[str]) -> None:
    """A team of `readers` who get daily digests and joined at `joined`, and one author
    who has written `bodies` in today's check-in thread."""
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            team = store.create_team(session, "eng", "Engineering")
            author = store.add_member(session, "eng", AUTHOR, "Author", "UTC", "off")
            for n in range(readers):
                person = store.add_member(
                    session, "eng", reader(n), f"Reader {n}", "UTC", "daily", digest_hour
                )
                person.created_at = joined
                session.add(person)
            session.execute(update(Membership).values(joined_at=joined))
            thread = store.checkin_thread(session, team, datetime.now(UTC).date())
            for body in bodies:
                store.add_update(
                    session, thread=thread, author=author, body=body, placed_by="checkin"
                )
    finally:
        engine.dispose()


def post(url: str, body: str) -> None:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            team = store.get_team(session, "eng")
            author = store.find_person(session, AUTHOR)
            thread = store.checkin_thread(session, team, datetime.now(UTC).date())
            store.add_update(session, thread=thread, author=author, body=body, placed_by="checkin")  # type: ignore[arg-type]
    finally:
        engine.dispose()


def outbox_statuses(url: str) -> collections.Counter[str]:
    """How many outbox rows are in each state."""
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            query = select(OutboundMessage.status, func.count()).group_by(OutboundMessage.status)
            return collections.Counter(dict(session.exec(query).all()))  # type: ignore[arg-type]
    finally:
        engine.dispose()


def tidings(stack: Stack, name: str, *args: str) -> subprocess.Popen[bytes]:
    log = stack.data_dir / f"{name}.log"
    return subprocess.Popen(
        [str(BIN / "tidings"), *args],
        env=stack.env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def relay_stack(data_dir: Path, url: str, port: int) -> Stack:
    stack = make_stack(data_dir, url, free_port(), free_port())
    stack.env["TIDINGS_OUTBOUND_URL"] = f"smtp://127.0.0.1:{port}"
    return stack


def digests(relay: Relay) -> list[Envelope]:
    return [e for e in relay.received if parsed(e)["From"].addresses[0].username == "digest"]


MEMBERS = 500


def test_two_workers_send_each_of_500_members_one_digest(postgres_url: str, tmp_path: Path) -> None:
    # Joined two days ago: their 09:00 slot has come since, so every one of them is due.
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    seed(postgres_url, MEMBERS, two_days_ago, digest_hour=9, bodies=UPDATES)
    relay = Relay()

    def settled() -> bool:
        counts = outbox_statuses(postgres_url)
        return counts.total() == MEMBERS and counts["pending"] + counts["sending"] == 0

    with running(relay) as port:
        stack = relay_stack(tmp_path, postgres_url, port)
        workers = [tidings(stack, f"worker{n}", "worker") for n in range(2)]
        try:
            wait_for(settled, 90, f"{MEMBERS} digests to be planned and sent")
        finally:
            for worker in workers:
                stop(worker)
    assert outbox_statuses(postgres_url) == {"sent": MEMBERS}
    received = digests(relay)
    assert collections.Counter(e.rcpt_tos[0] for e in received) == {
        reader(n): 1 for n in range(MEMBERS)
    }
    assert len({parsed(e)["Message-ID"] for e in received}) == MEMBERS
    for envelope in received:
        text = text_of(envelope)
        assert [text.count(body) for body in UPDATES] == [1, 1, 1, 1], envelope.rcpt_tos
    print(f"\nmessages per SMTP session: {sorted(relay.carried.values())}")


# Crash between planning and sending ------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own for each run: the processes below share it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tidings.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


CRASH_READERS = 5


@pytest.mark.parametrize("kept", [True, False], ids=["relay-kept-it", "relay-did-not"])
def test_killed_mid_send_no_update_lost_or_doubled(
    fresh_url: str, tmp_path: Path, kept: bool
) -> None:
    """`tidings digest run --now` plans every digest, then is killed with SIGKILL while
    the relay holds the first one at the end of DATA, having kept it (`kept`) or not.

    After a restart every planned digest arrives and a later digest covers only what is
    new. The one message that was in flight when the process died is sent again once
    its lease runs out; if the relay had kept it, the member has it twice, byte for byte
    the same and with the same Message-ID (the one duplicate at-least-once allows, which
    their mail client folds into one). Nobody else gets anything twice.
    """
    far_hour = (datetime.now(UTC) + timedelta(hours=12)).hour  # nobody is due by schedule
    seed(fresh_url, CRASH_READERS, datetime.now(UTC), far_hour, bodies=UPDATES[:3])
    relay = Relay(stall="after" if kept else "before")
    with running(relay) as port:
        stack = relay_stack(tmp_path, fresh_url, port)
        run = tidings(stack, "digest-run", "digest", "run", "--now")
        assert relay.stalled.wait(60), (tmp_path / "digest-run.log").read_text()
        run.send_signal(signal.SIGKILL)
        run.wait()
        assert outbox_statuses(fresh_url) == {"sending": 1, "pending": CRASH_READERS - 1}
        post(fresh_url, UPDATES[3])  # written while the sender was down

        worker = tidings(stack, "worker", "worker")
        try:
            wait_for(lambda: outbox_statuses(fresh_url)["sent"] == CRASH_READERS - 1, 60, "sends")
            # The message in flight is left alone while its lease lasts ...
            assert len(relay.copies_to(relay.stalled_for)) == (1 if kept else 0)
            engine = make_engine(fresh_url)
            try:
                with session_scope(engine) as session:
                    query = select(OutboundMessage.id).where(OutboundMessage.status == "sending")
                    [in_flight] = session.exec(query).all()
                age(engine, in_flight, LEASE)  # ... and sent again once it has run out
            finally:
                engine.dispose()
            wait_for(lambda: outbox_statuses(fresh_url) == {"sent": CRASH_READERS}, 60, "resend")
        finally:
            stop(worker)
        stack.cli("digest", "run", "--now")  # the update written during the outage

    assert outbox_statuses(fresh_url) == {"sent": 2 * CRASH_READERS}
    for n in range(CRASH_READERS):
        by_message_id: dict[str, list[Envelope]] = collections.defaultdict(list)
        for envelope in relay.copies_to(reader(n)):
            by_message_id[parsed(envelope)["Message-ID"]].append(envelope)
        first, second = by_message_id.values()  # the digest from before the outage, and after
        if kept and reader(n) == relay.stalled_for:
            assert len(first) == 2 and first[0].content == first[1].content
        else:
            assert len(first) == 1
        assert len(second) == 1
        assert [text_of(first[0]).count(body) for body in UPDATES] == [1, 1, 1, 0]
        assert [text_of(second[0]).count(body) for body in UPDATES] == [0, 0, 0, 1]
