"""The migrations build exactly the schema the models describe, on both engines."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers the tables)
from app.db import make_engine, schema_is_current, upgrade
from app.search import include_object


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
