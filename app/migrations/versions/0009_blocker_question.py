"""a team's check-in may mark one of its questions as the blocker question

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("team", sa.Column("blocker_question", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("team", "blocker_question")
