"""Outbound delivery and digest planning against a real database and a real SMTP sink."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app import store
from app.db import make_engine, session_scope, upgrade
from app.models import OutboundMessage, Person, Update
from app.settings import Settings
from digest.build import run_digests
from digest.checkin import run_checkins
from digest.layout import DigestLayout
from digest.send import SmtpTransport, deliver_pending
from tests.conftest import free_port
from tests.e2e.sink import Sink, running_sink


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    with running_sink(refuse={"gone@example.com"}) as found:
        yield found


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, mail_domain="tidings.test")


def queue(engine: Engine, *recipients: str) -> list[int]:
    ids = []
    with session_scope(engine) as session:
        for rcpt in recipients:
            key = f"test:{rcpt}:{datetime.now(UTC).timestamp()}"
            row = OutboundMessage(
                kind="notice",
                idempotency_key=key,
                recipient=rcpt,
                subject="Hi",
                message_id=f"<{key}@t>",
                raw=(
                    f"From: Tidings <digest@tidings.test>\r\nTo: {rcpt}\r\n"
                    "Subject: Hi\r\n\r\nHello\r\n"
                ).encode(),
            )
            session.add(row)
            session.flush()
            ids.append(row.id)
    return ids


def rows(engine: Engine, ids: list[int]) -> list[OutboundMessage]:
    with session_scope(engine) as session:
        found = session.exec(select(OutboundMessage).where(OutboundMessage.id.in_(ids)))
        return sorted(found, key=lambda r: r.id)


async def test_smtp_transport_delivers_to_a_real_server(
    engine: Engine, sink: tuple[Sink, int]
) -> None:
    handler, port = sink
    ids = queue(engine, "a@example.com", "gone@example.com", "b@example.com")
    report = await deliver_pending(engine, SmtpTransport("127.0.0.1", port))
    assert (report.sent, report.failed) == (2, 1)
    assert sorted(e.rcpt_tos[0] for e in handler.received) == ["a@example.com", "b@example.com"]
    assert all(e.mail_from == "digest@tidings.test" for e in handler.received)
    statuses = [(r.recipient, r.status) for r in rows(engine, ids)]
    assert statuses == [
        ("a@example.com", "sent"),
        ("gone@example.com", "failed"),
        ("b@example.com", "sent"),
    ]
    assert "550" in (rows(engine, ids)[1].last_error or "")
    again = await deliver_pending(engine, SmtpTransport("127.0.0.1", port))
    assert (again.sent, again.failed) == (0, 0)


async def test_unreachable_relay_leaves_mail_pending_for_retry(
    engine: Engine, sink: tuple[Sink, int]
) -> None:
    ids = queue(engine, "c@example.com", "d@example.com")
    report = await deliver_pending(engine, SmtpTransport("127.0.0.1", free_port()))
    assert (report.sent, report.failed) == (0, 1)
    tried, untried = rows(engine, ids)
    assert (tried.status, tried.attempts) == ("pending", 1)
    assert "Error connecting to 127.0.0.1" in (tried.last_error or "")
    # The pass stopped there: the next message would only have failed the same way.
    assert (untried.status, untried.attempts) == ("pending", 0)
    handler, port = sink  # the relay is back
    again = await deliver_pending(engine, SmtpTransport("127.0.0.1", port))
    assert (again.sent, again.failed) == (1, 0)
    assert [e.rcpt_tos for e in handler.received] == [["d@example.com"]]  # c waits its minute


async def test_two_concurrent_senders_send_each_row_once(
    engine: Engine, sink: tuple[Sink, int]
) -> None:
    handler, port = sink
    recipients = [f"r{i}@example.com" for i in range(30)]
    ids = queue(engine, *recipients)
    transport = SmtpTransport("127.0.0.1", port)
    await asyncio.gather(deliver_pending(engine, transport), deliver_pending(engine, transport))
    delivered = [e.rcpt_tos[0] for e in handler.received if e.rcpt_tos[0] in recipients]
    assert sorted(delivered) == sorted(recipients)
    assert {r.status for r in rows(engine, ids)} == {"sent"}


def test_scheduled_digest_is_due_at_the_local_hour_and_sent_once(
    engine: Engine, settings: Settings
) -> None:
    with session_scope(engine) as session:
        store.create_team(session, "sched", "Scheduling")
        writer = store.add_member(session, "sched", "writer@example.com", "Writer", "UTC", "off")
        reader = store.add_member(
            session, "sched", "reader@example.com", "Reader", "Asia/Kathmandu", "daily", 9
        )
        thread = store.checkin_thread(
            session, store.get_team(session, "sched"), datetime.now(UTC).date()
        )
        store.add_update(
            session, thread=thread, author=writer, body="Deployed.", placed_by="checkin"
        )
        joined = session.get(Person, reader.id).created_at
    # Kathmandu is UTC+05:45: the first 09:00 local after joining is at 03:15 UTC.
    first_slot = datetime.combine(joined.date(), datetime.min.time(), UTC) + timedelta(
        hours=3, minutes=15
    )
    if first_slot <= joined:
        first_slot += timedelta(days=1)

    def planned_for_reader() -> int:
        with session_scope(engine) as session:
            query = select(OutboundMessage).where(OutboundMessage.person_id == reader.id)
            return len(list(session.exec(query)))

    run_digests(engine, settings, first_slot - timedelta(minutes=1))
    assert planned_for_reader() == 0  # not yet 09:00 in Kathmandu
    run_digests(engine, settings, first_slot)
    assert planned_for_reader() == 1
    run_digests(engine, settings, first_slot + timedelta(minutes=5))
    run_digests(engine, settings, first_slot + timedelta(days=1))  # due again, but nothing new
    assert planned_for_reader() == 1
    with session_scope(engine) as session:
        [row] = session.exec(select(OutboundMessage).where(OutboundMessage.person_id == reader.id))
        raw = DigestLayout(settings).render(session, row)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert "Deployed." in msg.get_body(("plain",)).get_content()
        assert session.exec(select(Update)).first() is not None


def test_scheduled_checkin_asks_each_weekday_at_the_local_hour_once(
    engine: Engine, settings: Settings
) -> None:
    with session_scope(engine) as session:
        store.create_team(session, "daily", "Daily")
        store.set_checkin(session, "daily", 16, "What moved forward today?")
        asked = store.add_member(session, "daily", "kt@example.com", "KT", "Asia/Kathmandu")
        joined = store.memberships_of(session, store.get_team(session, "daily").id)[0][1].joined_at
    zone = ZoneInfo("Asia/Kathmandu")
    day = joined.astimezone(zone).date()
    while True:  # the first weekday 16:00 in Kathmandu after joining
        slot = datetime.combine(day, datetime.min.time().replace(hour=16), zone).astimezone(UTC)
        if slot > joined and day.weekday() < 5:
            break
        day += timedelta(days=1)
    assert slot.minute == 15  # 16:00 at +05:45 is hh:15 UTC

    def prompts() -> list[OutboundMessage]:
        with session_scope(engine) as session:
            query = select(OutboundMessage).where(
                OutboundMessage.person_id == asked.id, OutboundMessage.kind == "checkin"
            )
            return list(session.exec(query))

    assert run_checkins(engine, settings, slot - timedelta(minutes=1)) == 0
    assert run_checkins(engine, settings, slot) == 1
    assert run_checkins(engine, settings, slot + timedelta(hours=2)) == 0  # once a day
    [prompt] = prompts()
    msg = email.message_from_bytes(prompt.raw, policy=email.policy.default)
    assert str(msg["Subject"]) == "Daily: What moved forward today?"
    assert day.isoformat() in msg.get_body(("plain",)).get_content()  # the local date
    next_weekday = day + timedelta(days=3 if day.weekday() == 4 else 1)
    next_slot = datetime.combine(next_weekday, datetime.min.time().replace(hour=16), zone)
    assert run_checkins(engine, settings, next_slot.astimezone(UTC)) == 1
    assert len(prompts()) == 2
