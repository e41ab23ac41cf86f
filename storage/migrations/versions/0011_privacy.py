"""privacy: what became of each raw copy, removed blobs, erasures and the access audit

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 23:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # None: the bytes as received or composed; else what retention or a purge left of them.
    for table in ("journal", "outbox"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("raw_state", sa.String(length=20), nullable=True))
            batch_op.add_column(
                sa.Column("raw_changed_at", sa.DateTime(timezone=True), nullable=True)
            )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("text_removed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "blob_removals",
        sa.Column("blob_key", sa.String(length=64), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("blob_key", name="pk_blob_removals"),
    )
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address_key", sa.String(length=64), nullable=False),
        sa.Column("pseudonym", sa.String(length=64), nullable=False),
        # The address in clear only while the erasure is unfinished (so it can be resumed).
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_erasures"),
        sa.UniqueConstraint("address_key", name="uq_erasures_address_key"),
        sa.UniqueConstraint("pseudonym", name="uq_erasures_pseudonym"),
    )
    op.create_table(
        "access_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("customer", sa.String(length=320), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name="fk_access_audit_ticket"),
        sa.PrimaryKeyConstraint("id", name="pk_access_audit"),
    )
    with op.batch_alter_table("access_audit", schema=None) as batch_op:
        batch_op.create_index("ix_access_audit_customer", ["customer"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("access_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_access_audit_customer")
    op.drop_table("access_audit")
    op.drop_table("erasures")
    op.drop_table("blob_removals")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("text_removed_at")
    for table in ("outbox", "journal"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("raw_changed_at")
            batch_op.drop_column("raw_state")
