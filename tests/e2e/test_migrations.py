"""The migrations build exactly the schema the models describe, on both engines."""

from __future__ import annotations

from datetime import time

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel, select

from app import store
from app.db import alembic_config, make_engine, schema_is_current, session_scope, upgrade
from app.models import Person, Thread, Update
from app.search import include_object, search_updates


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


def test_upgrade_keeps_existing_data_and_search(database_url: str) -> None:
    """A database from the first release, with a member, a thread and an update that
    references its journal entry, upgrades to the newest schema with nothing lost. (On
    SQLite, rebuilding a referenced table or "update" would fail or drop the search
    triggers, so migrations must not.) A fresh database numbers its rows from 1."""
    command.upgrade(alembic_config(database_url), "0001")
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            for statement in _FIRST_RELEASE_ROWS:
                conn.execute(text(statement))
        upgrade(database_url)
        with session_scope(engine) as session:
            [person] = session.exec(select(Person)).all()
            assert person.email == "alice@example.com" and person.quiet_start == time(20, 0)
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
]
