"""updates remember a content hash, to recognise redeliveries without a Message-ID

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# No batch_alter_table here: on SQLite it rebuilds "update" and drops the search
# triggers of migration 0004. A unique index does the constraint's job on both engines.
def upgrade() -> None:
    op.add_column("update", sa.Column("content_hash", sa.String(length=64), nullable=True))
    op.create_index(
        "uq_update_team_content_hash", "update", ["team_id", "content_hash"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_update_team_content_hash", table_name="update")
    op.drop_column("update", "content_hash")
