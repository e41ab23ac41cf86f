"""journal origin_family: an API request's Idempotency-Key family, looked up by its index

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# The rows journaled before by POST /api/v1/tickets with a key: their origin is the family
# (web/ticket_routes.keyed: "api:create:TOKEN:KEYHASH:") and the body's hash, 32 hex digits.
# Without the family copied out, a key used before the upgrade would take a second body. No
# other origin begins so: a request without a key has none, IMAP's are "imap://", an import's
# "import:", and the API's before 1419900 ("api:TOKEN:KEY") were never looked up as a family.
# substr and length count characters on SQLite and PostgreSQL alike (the origins are ASCII).
_BODY_HASH = 32


def upgrade() -> None:
    with op.batch_alter_table("journal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin_family", sa.String(length=500), nullable=True))
    op.execute(
        "UPDATE journal SET origin_family = substr(origin, 1, length(origin) - "
        f"{_BODY_HASH}) WHERE origin LIKE 'api:create:%'"
    )
    op.create_index("ix_journal_origin_family", "journal", ["origin_family"])


def downgrade() -> None:
    op.drop_index("ix_journal_origin_family", table_name="journal")
    with op.batch_alter_table("journal", schema=None) as batch_op:
        batch_op.drop_column("origin_family")
