"""imap account status: each account's state for ticketd health

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 14:53:23.364011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imap_account_status",
        sa.Column("id", sa.Integer(), nullable=False),
        # One row per account and daemon host; `ticketd health` reads each account's newest.
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("mailbox", sa.String(length=700), nullable=False),
        sa.Column("daemon_host", sa.String(length=255), nullable=False),
        sa.Column("last_ok_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_imap_account_status"),
        sa.UniqueConstraint("account", "daemon_host", name="uq_imap_account_status_account_host"),
    )


def downgrade() -> None:
    op.drop_table("imap_account_status")
