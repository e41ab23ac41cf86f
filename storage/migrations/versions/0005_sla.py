"""sla: deadlines on tickets and the due SLA events

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 10:18:12.741841
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sla_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("target", sa.String(length=20), nullable=False),
        sa.Column("point", sa.Integer(), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "ticket_id", "kind", "target", "point", "deadline", name="uq_sla_events"
        ),
    )
    # The tick's query: unsent rows by due time.
    op.create_index("ix_sla_events_due", "sla_events", ["sent_at", "due_at"])
    op.create_index("ix_sla_events_ticket", "sla_events", ["ticket_id"])

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sla_first_answer_due", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("sla_next_answer_due", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("sla_resolution_due", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("sla_first_answered_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("sla_waiting_since", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("sla_paused_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("sla_paused_seconds", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("sla_paused_seconds")
        batch_op.drop_column("sla_paused_at")
        batch_op.drop_column("sla_waiting_since")
        batch_op.drop_column("sla_first_answered_at")
        batch_op.drop_column("sla_resolution_due")
        batch_op.drop_column("sla_next_answer_due")
        batch_op.drop_column("sla_first_answer_due")

    op.drop_index("ix_sla_events_ticket", table_name="sla_events")
    op.drop_index("ix_sla_events_due", table_name="sla_events")
    op.drop_table("sla_events")
