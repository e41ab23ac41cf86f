"""blocked senders: addresses and domains whose mail is ignored (ticketd block)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 00:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blocked_senders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pattern", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_blocked_senders"),
        sa.UniqueConstraint("pattern", name="uq_blocked_senders_pattern"),
    )


def downgrade() -> None:
    op.drop_table("blocked_senders")
