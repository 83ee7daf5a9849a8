"""The state store's Alembic revisions, oldest first (``0001_initial``, ...)."""
