"""kyc documents: identity documents and the audit of every access to them

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 10:59:23.548757
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("customer", sa.String(length=320), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("detected_type", sa.String(length=20), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        # None once the content is purged: the record stays, the encrypted blob is gone.
        sa.Column("blob_key", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("decided_by", sa.String(length=320), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], name="fk_documents_message"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name="fk_documents_ticket"),
        sa.PrimaryKeyConstraint("id", name="pk_documents"),
    )
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index("ix_documents_state", ["state", "decided_at"], unique=False)
        batch_op.create_index("ix_documents_ticket", ["ticket_id"], unique=False)

    op.create_table(
        "document_access",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name="fk_document_access_document"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_document_access"),
    )
    with op.batch_alter_table("document_access", schema=None) as batch_op:
        batch_op.create_index("ix_document_access_document", ["document_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("document_access", schema=None) as batch_op:
        batch_op.drop_index("ix_document_access_document")
    op.drop_table("document_access")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index("ix_documents_ticket")
        batch_op.drop_index("ix_documents_state")
    op.drop_table("documents")
