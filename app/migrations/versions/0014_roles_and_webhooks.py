"""team admins (membership.role) and chat webhooks per team

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "membership",
        sa.Column("role", sa.String(length=16), nullable=False, server_default="member"),
    )
    op.create_table(
        "teamwebhook",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False, server_default="9"),
        sa.Column("timezone", sa.String(length=64), nullable=False, server_default="UTC"),
        sa.Column("cursor", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("urgent_cursor", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_section_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("team_id", "url"),
    )
    op.create_index("ix_teamwebhook_team_id", "teamwebhook", ["team_id"])


def downgrade() -> None:
    op.drop_index("ix_teamwebhook_team_id", table_name="teamwebhook")
    op.drop_table("teamwebhook")
    with op.batch_alter_table("membership") as batch:
        batch.drop_column("role")
