"""Database models, sessions and transactions, migrations, and the blob store."""
