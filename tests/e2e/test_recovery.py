"""Mail accepted with 250 but not processed (the process died) is processed later."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app import store
from app.db import make_engine, session_scope, upgrade
from app.models import InboundMessage, Update, utcnow
from app.settings import Settings
from smtp.ingest import SWEEP_GRACE, process_pending

SETTINGS = Settings(mail_domain="tidings.test", secret_key="secret")
RAW = (
    b"From: Alice <alice@example.com>\r\nTo: eng@tidings.test\r\nSubject: Before the crash\r\n"
    b"Message-ID: <crash-1@example.com>\r\n\r\nWritten just before the power cut.\r\n"
)


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    engine = make_engine(database_url)
    with session_scope(engine) as session:
        store.create_team(session, "eng", "Engineering")
        store.add_member(session, "eng", "alice@example.com", "Alice")
    yield engine
    engine.dispose()


def journal(engine: Engine, age: timedelta) -> int:
    with session_scope(engine) as session:
        entry = store.journal_message(
            session,
            raw=RAW,
            mail_from="alice@example.com",
            rcpt_tos=["eng@tidings.test"],
            peer="127.0.0.1",
            message_id="<crash-1@example.com>",
        )
        entry.received_at = utcnow() - age
        return entry.id  # type: ignore[return-value]


def status(engine: Engine, entry_id: int) -> str:
    with session_scope(engine) as session:
        return session.get(InboundMessage, entry_id).status  # type: ignore[union-attr]


def test_sweep_processes_entries_left_pending_and_only_once(engine: Engine) -> None:
    fresh = journal(engine, timedelta(0))
    stale = journal(engine, SWEEP_GRACE * 2)
    assert process_pending(engine, SETTINGS) == 1
    assert status(engine, stale) == "processed"
    assert status(engine, fresh) == "pending"  # still the listener's to process
    with session_scope(engine) as session:
        [update] = session.exec(select(Update))
        assert update.body == "Written just before the power cut." and update.inbound_id == stale
    # The fresh copy is the same message (same Message-ID): once it is old enough it is
    # recognised as a duplicate, not posted twice.
    assert process_pending(engine, SETTINGS, grace=timedelta(0)) == 1
    assert status(engine, fresh) == "duplicate"
    assert process_pending(engine, SETTINGS, grace=timedelta(0)) == 0
