"""documents blob_key index: the sweep and the key rotation look documents up by blob

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 15:28:07.834189
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index("ix_documents_blob_key", ["blob_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index("ix_documents_blob_key")
