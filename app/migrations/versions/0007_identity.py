"""identity: reply-key versions, member aliases, held-message approval, deleted threads,
Outlook conversation keys

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# No batch_alter_table on "update": on SQLite it would drop the search triggers of 0004.
def upgrade() -> None:
    signing_key = op.create_table(
        "signingkey",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("version"),
    )
    # Version 1 is the key every token issued before rotation existed was signed with.
    op.bulk_insert(signing_key, [{"version": 1, "salt": "", "created_at": datetime.now(UTC)}])
    op.create_table(
        "personalias",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_index("ix_personalias_person_id", "personalias", ["person_id"])
    op.add_column("thread", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    # SQLite adds a column with its REFERENCES clause in place; alembic would instead
    # rebuild the table, which fails while updates reference the journal's rows.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE inboundmessage ADD COLUMN approved_by_id INTEGER REFERENCES person (id)"
        )
    else:
        op.add_column("inboundmessage", sa.Column("approved_by_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            "fk_inboundmessage_approved_by_id_person",
            "inboundmessage",
            "person",
            ["approved_by_id"],
            ["id"],
        )
    op.add_column("update", sa.Column("thread_index", sa.String(length=32), nullable=True))
    op.create_index("ix_update_thread_index", "update", ["thread_index"])


def downgrade() -> None:
    op.drop_index("ix_update_thread_index", table_name="update")
    op.drop_column("update", "thread_index")
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("inboundmessage") as batch:
            batch.drop_column("approved_by_id")
    else:
        op.drop_constraint(
            "fk_inboundmessage_approved_by_id_person", "inboundmessage", type_="foreignkey"
        )
        op.drop_column("inboundmessage", "approved_by_id")
    op.drop_column("thread", "deleted_at")
    op.drop_index("ix_personalias_person_id", table_name="personalias")
    op.drop_table("personalias")
    op.drop_table("signingkey")
