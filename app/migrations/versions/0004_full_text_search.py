"""full-text search: FTS5 on SQLite, a trigger-kept tsvector with a GIN index on PostgreSQL

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Careful in later migrations: on SQLite, batch_alter_table("update") rebuilds the table
# and silently drops these triggers (tests/e2e/test_search.py would fail).
#
# Each update is indexed with its thread's title, so a search finds a thread by its
# subject too. (Renaming a thread is not a feature yet; `tidings search reindex` would
# bring the index up to date after one.)
SQLITE_UP = [
    """CREATE VIRTUAL TABLE update_fts USING fts5(
        title, body, tokenize='porter unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER update_fts_insert AFTER INSERT ON "update" BEGIN
        INSERT INTO update_fts(rowid, title, body)
        VALUES (new.id, (SELECT title FROM thread WHERE id = new.thread_id), new.body); END""",
    """CREATE TRIGGER update_fts_delete AFTER DELETE ON "update" BEGIN
        DELETE FROM update_fts WHERE rowid = old.id; END""",
    """CREATE TRIGGER update_fts_update AFTER UPDATE OF body ON "update" BEGIN
        UPDATE update_fts SET body = new.body WHERE rowid = new.id; END""",
    """INSERT INTO update_fts(rowid, title, body)
        SELECT u.id, t.title, u.body FROM "update" u JOIN thread t ON t.id = u.thread_id""",
]
SQLITE_DOWN = [
    "DROP TRIGGER update_fts_update",
    "DROP TRIGGER update_fts_delete",
    "DROP TRIGGER update_fts_insert",
    "DROP TABLE update_fts",
]
POSTGRES_UP = [
    'ALTER TABLE "update" ADD COLUMN search_vector tsvector',
    """CREATE FUNCTION update_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.search_vector :=
            setweight(to_tsvector('english', coalesce(
                (SELECT title FROM thread WHERE id = NEW.thread_id), '')), 'A')
            || setweight(to_tsvector('english', NEW.body), 'B');
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER update_search_vector BEFORE INSERT OR UPDATE OF body, thread_id
        ON "update" FOR EACH ROW EXECUTE FUNCTION update_search_vector()""",
    """UPDATE "update" u SET search_vector =
        setweight(to_tsvector('english', t.title), 'A')
        || setweight(to_tsvector('english', u.body), 'B')
        FROM thread t WHERE t.id = u.thread_id""",
    'CREATE INDEX ix_update_search_vector ON "update" USING gin (search_vector)',
]
POSTGRES_DOWN = [
    "DROP INDEX ix_update_search_vector",
    'DROP TRIGGER update_search_vector ON "update"',
    "DROP FUNCTION update_search_vector()",
    'ALTER TABLE "update" DROP COLUMN search_vector',
]


def upgrade() -> None:
    statements = SQLITE_UP if op.get_bind().dialect.name == "sqlite" else POSTGRES_UP
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    statements = SQLITE_DOWN if op.get_bind().dialect.name == "sqlite" else POSTGRES_DOWN
    for statement in statements:
        op.execute(statement)
