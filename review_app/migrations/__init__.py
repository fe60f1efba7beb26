"""Alembic migrations of the review database (applied by ReviewStore on open)."""
