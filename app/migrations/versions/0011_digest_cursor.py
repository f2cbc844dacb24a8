"""digests record a cursor per membership and their plan in the outbox, not a row per item

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25

A row per (member, update) grew by members x updates every day and cost most of a digest
run. A cursor per membership says the same ("every update up to here was offered"), and
the outbox row's plan says which updates one digest covers.
"""

import json
from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "membership",
        sa.Column("digest_cursor", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("outboundmessage", sa.Column("plan", sa.Text(), nullable=True))
    bind = op.get_bind()
    # Each membership's cursor: the newest update of its team a digest covered.
    bind.execute(
        sa.text(
            "UPDATE membership SET digest_cursor = COALESCE((SELECT MAX(d.update_id)"
            ' FROM digestitem d JOIN "update" u ON u.id = d.update_id'
            " WHERE d.person_id = membership.person_id AND u.team_id = membership.team_id), 0)"
        )
    )
    # Each digest already in the outbox keeps the list of updates it covered: replies to
    # it by Message-ID find their threads through it.
    covered: dict[int, list[int]] = defaultdict(list)
    rows = bind.execute(sa.text("SELECT outbound_id, update_id FROM digestitem ORDER BY update_id"))
    for outbound_id, update_id in rows:
        covered[outbound_id].append(update_id)
    for outbound_id, ids in covered.items():
        bind.execute(
            sa.text("UPDATE outboundmessage SET plan = :plan WHERE id = :id"),
            {"plan": json.dumps({"updates": ids}), "id": outbound_id},
        )
    op.drop_table("digestitem")


def downgrade() -> None:
    op.create_table(
        "digestitem",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbound_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("update_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["outbound_id"], ["outboundmessage.id"]),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"]),
        sa.ForeignKeyConstraint(["update_id"], ["update.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("person_id", "update_id"),
    )
    op.create_index("ix_digestitem_outbound_id", "digestitem", ["outbound_id"])
    op.drop_column("outboundmessage", "plan")
    op.drop_column("membership", "digest_cursor")
