"""SQLAlchemy 2 models of the review database: items, reviewers, assignments, decisions, audit log.

The schema itself is created and changed only by the alembic migrations in `review_app/migrations/`
(`ReviewStore` upgrades a database to head when it opens it); a test checks that these models and the
migrated database agree. Timestamps are naive UTC datetimes on both SQLite and PostgreSQL.

- `items`: a snapshot of one example as it was loaded (messages, origin, source, meta, scores, PII
  flags, the data set and run it came from) plus queue state: `overlap` (how many people must review
  it), `priority` (queue order), `status` (`open`: a slot is free; `full`: every slot is taken;
  `auto`: a rule decided it), `n_claimed` (slots taken by open leases and decisions) and `n_decided`
  (current accept/reject decisions by people).
- `assignments`: one row per (item, reviewer): a lease while the reviewer looks at the item, then
  `done` / `skipped`; `expired` when the lease ran out (the slot goes back to the queue).
- `decisions`: who decided what, when, how long it took, with edits, rating, reasons and comment.
  Never deleted: an undo or a replacement sets `undone_at`. `idempotency_key` is unique, so a decision
  submitted twice is stored once.
- pairwise items (`kind` "pairwise", migration 0002): `messages` is the prompt, `candidates` the answers
  with their provenance; a pairwise decision is verdict "accept" with `choice` = the winning candidate's id
  or "tie" (see `review_app/pairwise.py`).
- `audit_log`: append-only (database triggers refuse UPDATE and DELETE).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

VERDICTS = ("accept", "reject", "skip")
ROLES = ("reviewer", "lead", "rule", "external")
ITEM_STATUSES = ("open", "full", "auto")
ASSIGNMENT_STATUSES = ("open", "done", "skipped", "expired")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    messages: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    origin: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON)
    scores: Mapped[dict[str, float]] = mapped_column(JSON)
    quality: Mapped[float | None] = mapped_column(Float, index=True)
    pii_count: Mapped[int | None] = mapped_column(Integer)
    pii_flags: Mapped[list[str]] = mapped_column(JSON)
    tags: Mapped[str] = mapped_column(Text, default="")  # "|billing|refund|" so LIKE '%|refund|%' works everywhere
    dataset: Mapped[str] = mapped_column(Text)
    dataset_run: Mapped[str | None] = mapped_column(String(80))
    load_run: Mapped[str | None] = mapped_column(String(80))
    overlap: Mapped[int] = mapped_column(Integer, default=1)
    priority: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(8), default="open")
    n_claimed: Mapped[int] = mapped_column(Integer, default=0)
    n_decided: Mapped[int] = mapped_column(Integer, default=0)
    loaded_at: Mapped[dt.datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(16), default="single", server_default="single")
    candidates: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)

    # The queue walks this index in order; the filter columns ride along so a filtered walk never
    # leaves the index (bench/README.md `## review`: the filtered next item without them).
    __table_args__ = (Index("ix_items_queue", "status", "priority", "id", "quality", "pii_count", "origin"),)


class Reviewer(Base):
    __tablename__ = "reviewers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


class Assignment(Base):
    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("reviewers.id"))
    status: Mapped[str] = mapped_column(String(8))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    leased_at: Mapped[dt.datetime] = mapped_column(DateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("item_id", "reviewer_id", name="uq_assignments_item_reviewer"),
        Index("ix_assignments_status_expires", "status", "expires_at"),
        Index("ix_assignments_reviewer_status", "reviewer_id", "status"),
    )


class Decision(Base):
    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("reviewers.id"))
    verdict: Mapped[str] = mapped_column(String(8))
    edited_messages: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    rating: Mapped[int | None] = mapped_column(Integer)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    comment: Mapped[str | None] = mapped_column(Text)
    seconds: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    undone_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    choice: Mapped[str | None] = mapped_column(String(64))  # pairwise: the winning candidate's id or "tie"

    __table_args__ = (Index("ix_decisions_reviewer_created", "reviewer_id", "created_at"),)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(32))
    item_id: Mapped[str | None] = mapped_column(String(64), index=True)
    decision_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
