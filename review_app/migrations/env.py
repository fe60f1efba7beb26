"""Alembic environment of the review database: runs on the connection `ReviewStore` hands it."""

from alembic import context

from review_app.models import Base

target_metadata = Base.metadata
connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
