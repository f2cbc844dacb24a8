"""The migrations build exactly the schema the models describe, on both engines."""

from __future__ import annotations

import email
from collections.abc import Iterator
from datetime import time
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel, select

from app import store
from app.db import alembic_config, make_engine, schema_is_current, session_scope, upgrade
from app.models import OutboundMessage, Thread, Update
from app.search import include_object, search_updates
from app.settings import Settings
from digest.layout import DigestLayout
from tests.conftest import fresh_postgres_database


def test_upgrade_matches_the_models_and_is_repeatable(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # running it again changes nothing
    engine = make_engine(database_url)
    try:
        assert schema_is_current(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": include_object})
            assert compare_metadata(context, SQLModel.metadata) == []
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own, never upgraded: `database_url` is shared by the module and
    already at the newest schema when this test runs after the first one."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'first-release.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


def test_upgrade_keeps_existing_data_and_search(empty_database_url: str, tmp_path: Path) -> None:
    """A database from the first release, with members, a thread, an update that
    references its journal entry and a digest that covered it, upgrades to the newest
    schema with nothing lost: the digest's reader is not offered the update again, and a
    reply to that digest still finds its thread. (On
    SQLite, rebuilding a referenced table or "update" would fail or drop the search
    triggers, so migrations must not.) A fresh database numbers its rows from 1."""
    command.upgrade(alembic_config(empty_database_url), "0001")
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as conn:
            for statement in _FIRST_RELEASE_ROWS:
                conn.execute(text(statement))
        upgrade(empty_database_url)
        with session_scope(engine) as session:
            person = store.find_person(session, "alice@example.com")
            assert person is not None and person.quiet_start == time(20, 0)
            bob = store.find_person(session, "bob@example.com")
            cursors = {p.email: m.digest_cursor for p, m in store.memberships_of(session, 1)}
            assert cursors == {"alice@example.com": 0, "bob@example.com": 1}
            [thread] = store.digest_threads(session, "<d1@x>", bob.id)  # type: ignore[union-attr,arg-type]
            assert thread.title == "Plans"
            # Its plan names no reader (plans from before they did): rendering it again,
            # as `tidings digest resend` does, reads the member's name and zone instead.
            old = session.exec(select(OutboundMessage)).one()
            settings = Settings(
                data_dir=tmp_path, database_url=empty_database_url, mail_domain="x.test"
            )
            again = email.message_from_bytes(DigestLayout(settings).render(session, old))
            assert "Old post" in again.get_payload(0).get_payload(decode=True).decode()
            assert "Bob" in again["To"]
            assert store.is_member(session, 1, person.id)  # type: ignore[arg-type]
            assert session.get(Update, 1).inbound_id == 1  # type: ignore[union-attr]
            thread = session.get(Thread, 1)
            store.add_update(
                session,
                thread=thread,
                author=person,
                body="Zeppelin budget",
                placed_by="new-thread",  # type: ignore[arg-type]
            )
        with session_scope(engine) as session:
            assert [h.update.body for h in search_updates(session, "zeppelin", [1])] == [
                "Zeppelin budget"
            ]
    finally:
        engine.dispose()


_FIRST_RELEASE_ROWS = [
    "INSERT INTO team (slug, name, checkin_question, created_at)"
    " VALUES ('eng', 'Engineering', 'Done?', '2026-01-01 00:00:00')",
    "INSERT INTO person (email, name, timezone, digest_cadence, digest_hour, created_at)"
    " VALUES ('alice@example.com', 'Alice', 'UTC', 'daily', 9, '2026-01-01 00:00:00')",
    "INSERT INTO membership (team_id, person_id, joined_at) VALUES (1, 1, '2026-01-01 00:00:00')",
    "INSERT INTO thread (team_id, title, created_at, last_activity_at)"
    " VALUES (1, 'Plans', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
    "INSERT INTO inboundmessage (received_at, peer, mail_from, rcpt_tos, raw, status)"
    " VALUES ('2026-01-01 00:00:00', '', 'alice@example.com', 'eng@x', 'raw', 'processed')",
    'INSERT INTO "update" (team_id, thread_id, author_id, inbound_id, body, quoted,'
    " extraction_confident, placed_by, created_at)"
    " VALUES (1, 1, 1, 1, 'Old post', '', true, 'new-thread', '2026-01-01 00:00:00')",
    "INSERT INTO person (email, name, timezone, digest_cadence, digest_hour, created_at)"
    " VALUES ('bob@example.com', 'Bob', 'UTC', 'daily', 9, '2026-01-01 00:00:00')",
    "INSERT INTO membership (team_id, person_id, joined_at) VALUES (1, 2, '2026-01-01 00:00:00')",
    "INSERT INTO outboundmessage (kind, idempotency_key, person_id, recipient, subject,"
    " message_id, raw, status, attempts, created_at) VALUES ('digest', 'digest:2:1-1:1', 2,"
    " 'bob@example.com', '1 new update', '<d1@x>', 'raw', 'sent', 1, '2026-01-02 09:00:00')",
    "INSERT INTO digestitem (outbound_id, person_id, update_id) VALUES (1, 2, 1)",
]
