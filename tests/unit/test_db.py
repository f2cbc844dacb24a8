"""The SQLite connection settings the durability promise rests on."""

from __future__ import annotations

from pathlib import Path

from app.db import make_engine


def test_sqlite_runs_with_wal_foreign_keys_and_full_sync(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'tidings.db'}")
    with engine.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "synchronous")
        }
    assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "synchronous": 2}  # 2 = FULL
    assert (tmp_path / "sub" / "tidings.db").exists()  # the folder is created on first use
