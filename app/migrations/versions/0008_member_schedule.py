"""members choose weekday-only or weekly digests, away dates and quiet hours

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ADD COLUMN, never batch_alter_table: on SQLite a batch rebuilds the table, and
# dropping "person" while memberships and updates reference it fails the foreign keys.
def upgrade() -> None:
    op.add_column(
        "person",
        sa.Column("digest_weekdays_only", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "person", sa.Column("digest_weekday", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("person", sa.Column("away_from", sa.Date(), nullable=True))
    op.add_column("person", sa.Column("away_until", sa.Date(), nullable=True))
    op.add_column(
        "person", sa.Column("quiet_start", sa.Time(), nullable=False, server_default="20:00:00")
    )
    op.add_column(
        "person", sa.Column("quiet_end", sa.Time(), nullable=False, server_default="08:00:00")
    )


def downgrade() -> None:
    for column in (
        "quiet_end",
        "quiet_start",
        "away_until",
        "away_from",
        "digest_weekday",
        "digest_weekdays_only",
    ):
        op.drop_column("person", column)
