"""Pairwise review items: an item may hold two or more candidate answers to one prompt, and a decision may
name the preferred candidate.

- items.kind: "single" (one example to accept/reject, as before) or "pairwise".
- items.candidates: for pairwise items, a JSON list of {id, content, model, run, origin, label}; NULL otherwise.
- decisions.choice: for pairwise decisions, the winning candidate's id (never a display side: the side order
  is random per reviewer) or "tie"; NULL otherwise.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("items", sa.Column("kind", sa.String(16), nullable=False, server_default="single"))
    op.add_column("items", sa.Column("candidates", sa.JSON(), nullable=True))
    op.add_column("decisions", sa.Column("choice", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("choice")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("candidates")
        batch.drop_column("kind")
