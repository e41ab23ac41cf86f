"""lookups by index: a ticket's messages and outbox rows by ticket, a customer's recent
requests by (customer, request_at), and the fingerprint of each ticket's first request

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 06:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("request_print", sa.String(length=64), nullable=True))
    # Tickets opened before: their request counts from their creation; no fingerprint, so a
    # repeat of one is found by the fuzzy comparison alone.
    op.execute("UPDATE tickets SET request_at = created_at")
    op.create_index("ix_tickets_customer_request", "tickets", ["customer", "request_at"])
    op.create_index("ix_messages_ticket", "messages", ["ticket_id", "id"])
    op.create_index("ix_outbox_ticket", "outbox", ["ticket_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_ticket", table_name="outbox")
    op.drop_index("ix_messages_ticket", table_name="messages")
    op.drop_index("ix_tickets_customer_request", table_name="tickets")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("request_print")
        batch_op.drop_column("request_at")
