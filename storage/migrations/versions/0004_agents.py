"""agents: queue, assignee and priority of tickets

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 09:52:04.015481
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queue", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("assignee", sa.String(length=320), nullable=True))
        batch_op.add_column(
            sa.Column("priority", sa.String(length=10), server_default="normal", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("priority")
        batch_op.drop_column("assignee")
        batch_op.drop_column("queue")
