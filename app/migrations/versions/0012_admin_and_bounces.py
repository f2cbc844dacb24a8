"""administration and bounces: archived teams, former team slugs, paused members, bounces

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30

Only new columns (nullable, no foreign key) and new tables: "team" and "person" are
referenced by most tables, so they are never rebuilt.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("team", sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("person", sa.Column("mail_paused_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("person", sa.Column("mail_paused_reason", sa.Text(), nullable=True))
    op.create_table(
        "formerteamslug",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    op.create_index("ix_formerteamslug_team_id", "formerteamslug", ["team_id"])
    op.create_table(
        "bounce",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("inbound_id", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hard", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("diagnostic", sa.Text(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["inbound_id"], ["inboundmessage.id"]),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("inbound_id"),
    )
    op.create_index("ix_bounce_person_id_received_at", "bounce", ["person_id", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_bounce_person_id_received_at", table_name="bounce")
    op.drop_table("bounce")
    op.drop_index("ix_formerteamslug_team_id", table_name="formerteamslug")
    op.drop_table("formerteamslug")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): these tables are never rebuilt.
    op.drop_column("person", "mail_paused_reason")
    op.drop_column("person", "mail_paused_at")
    op.drop_column("team", "archived_at")
