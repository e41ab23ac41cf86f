"""survey and digest: the satisfaction score on tickets, one daily digest per queue and day

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 10:42:14.047025
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sla_digests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=100), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        # The claim: a second daemon's insert for the same queue and day fails here.
        sa.UniqueConstraint("queue", "day", name="uq_sla_digests"),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("satisfaction_score", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("satisfaction_comment", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("satisfaction_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("satisfaction_at")
        batch_op.drop_column("satisfaction_comment")
        batch_op.drop_column("satisfaction_score")

    op.drop_table("sla_digests")
