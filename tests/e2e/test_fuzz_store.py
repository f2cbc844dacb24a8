"""The fuzzed messages of `tests/unit/test_fuzz_ingest.py`, journaled and processed by the
real processing path (`process_journal_entry`: limits, parsing, extraction, classification,
placement, `store.add_update`) into a real SQLite database: every message ends processed,
quarantined or duplicate (never `processing-error`, never left pending), and everything
stored — update text, quoted text, thread titles, attachment names, quarantine details — is
valid Unicode without NULs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import select

from app import store
from app.db import make_engine, session_scope, upgrade
from app.models import Attachment, InboundMessage, Thread, Update
from app.settings import Settings
from smtp.ingest import process_journal_entry
from tests.unit.test_fuzz_ingest import MEMBER, clean, messages

FINISHED = {"processed", "quarantined", "duplicate"}
# Mostly the team address; now and then one processing refuses.
RECIPIENTS = ("eng@tidings.test",) * 6 + ("ENG@tidings.test", "eng+r.bogus@x", "nobody@x")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Settings]]:
    data_dir = tmp_path_factory.mktemp("fuzz")
    settings = Settings(data_dir=data_dir, mail_domain="tidings.test", dkim_verify=False)
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    with session_scope(engine) as session:
        store.create_team(session, "eng", "Engineering")
        store.add_member(session, "eng", MEMBER, "Member")
    yield engine, settings
    engine.dispose()


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(raw=st.one_of(messages(human=True), messages()), rcpt=st.sampled_from(RECIPIENTS))
def test_any_message_is_stored_or_quarantined_and_stored_text_is_clean(
    stack: tuple[Engine, Settings], raw: bytes, rcpt: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine, settings = stack
    with session_scope(engine) as session:
        entry = store.journal_message(
            session,
            raw=raw,
            mail_from=MEMBER,
            rcpt_tos=[rcpt],
            peer="192.0.2.1",
            message_id=None,
        )
        entry_id = entry.id
    assert entry_id is not None
    with caplog.at_level(logging.CRITICAL):  # mail-parser logs every oddity it meets
        status = process_journal_entry(engine, entry_id, settings)
    with session_scope(engine) as session:
        entry = session.get(InboundMessage, entry_id)
        assert entry is not None
        assert status in FINISHED and entry.status == status
        assert entry.reason != "processing-error", entry.detail
        event(f"{entry.status} {entry.reason or ''}")
        assert clean(entry.detail)
        updates = list(session.exec(select(Update).where(Update.inbound_id == entry_id)))
        for update in updates:
            assert clean(update.body) and clean(update.quoted)
            thread = session.get(Thread, update.thread_id)
            assert thread is not None and clean(thread.title)
            attachments = session.exec(select(Attachment).where(Attachment.update_id == update.id))
            assert all(clean(a.filename) and clean(a.content_type) for a in attachments)
        if status == "processed":
            assert updates
