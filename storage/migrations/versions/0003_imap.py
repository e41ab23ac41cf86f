"""imap: checkpoints and journal origin

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 09:40:47.210861
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imap_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox", sa.String(length=700), nullable=False),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("quiet_below_uid", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_imap_checkpoints"),
        sa.UniqueConstraint("mailbox", name="uq_imap_checkpoints_mailbox"),
    )
    with op.batch_alter_table("journal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.String(length=500), nullable=True))
        batch_op.create_index("ix_journal_blob_key", ["blob_key"], unique=False)
        batch_op.create_unique_constraint("uq_journal_origin", ["origin"])


def downgrade() -> None:
    with op.batch_alter_table("journal", schema=None) as batch_op:
        batch_op.drop_constraint("uq_journal_origin", type_="unique")
        batch_op.drop_index("ix_journal_blob_key")
        batch_op.drop_column("origin")

    op.drop_table("imap_checkpoints")
