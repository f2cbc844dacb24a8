"""A new, empty database for one benchmark run, removed afterwards: a SQLite file in a
temporary folder, or a database created on a PostgreSQL server (and dropped), so nothing
already on that server is touched."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url


@contextmanager
def throwaway_database(pg_url: str | None) -> Iterator[str]:
    """The new database's URL: SQLite when `pg_url` is None, else on that server."""
    if pg_url is None:
        with tempfile.TemporaryDirectory(prefix="tidings-bench-") as tmp:
            yield f"sqlite:///{tmp}/tidings.db"
        return
    import psycopg

    parsed = make_url(pg_url)
    admin = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"tidings_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield parsed.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
