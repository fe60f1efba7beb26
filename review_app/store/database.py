"""The review database connection all parts of the store share: URL handling, the engine with its SQLite
settings, transactions, alembic upgrades, the audit trail and the reviewer id cache.

SQLite runs in WAL mode with a 30 s busy timeout and `synchronous=FULL` (a committed decision survives a
power cut); every write transaction starts with `BEGIN IMMEDIATE`, so two processes never interleave
half-done writes. Only taking a lease commits without an fsync (`durable=False`): losing a lease in a power
cut costs nothing.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event, select

from review_app.models import Assignment, AuditEntry, Decision, Item, Reviewer, utcnow
from studio.errors import StudioError

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
ITEMS, REVIEWERS, ASSIGNMENTS = Item.__table__, Reviewer.__table__, Assignment.__table__
DECISIONS, AUDIT = Decision.__table__, AuditEntry.__table__
#: sources whose decisions do not take a review slot (they decide around the queue, not in it)
OFF_QUEUE_SOURCES = ("rule", "resolution")

_AUDIT_INSERT = AUDIT.insert()


def normalize_url(url: str | Path) -> str:
    """A SQLAlchemy URL from a URL or a plain file path; postgresql:// uses the psycopg (3) driver."""
    text = str(url)
    if "://" not in text:
        return f"sqlite:///{Path(text).resolve()}"
    for prefix in ("postgresql://", "postgres://"):
        if text.startswith(prefix):
            return "postgresql+psycopg://" + text.removeprefix(prefix)
    return text


#: per-connection SQLite settings. synchronous=FULL: in WAL mode one fsync of the WAL per commit, so a committed
#: decision survives a power cut. temp_store/cache_size/mmap_size: sorts in memory, a 64 MiB page cache and
#: memory-mapped reads (fewer read syscalls on the queue walk); none of them changes what is durable.
SQLITE_PRAGMAS = ("journal_mode=WAL", "busy_timeout=30000", "foreign_keys=ON", "synchronous=FULL",
                  "temp_store=MEMORY", "cache_size=-65536", "mmap_size=268435456")


def make_engine(url: str):
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, record) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below), as SQLAlchemy's docs advise
            cur = dbapi_conn.cursor()
            for pragma in SQLITE_PRAGMAS:
                cur.execute(f"PRAGMA {pragma}")
            cur.close()
            record.info["synchronous"] = "FULL"

        @event.listens_for(engine, "begin")
        def _on_begin(conn) -> None:
            opts = conn.get_execution_options()
            if opts.get("write"):
                # Decisions are fsynced at commit (FULL); a lease is cheap to lose, so its commit is not (NORMAL
                # in WAL mode still survives an application crash, and the next FULL commit syncs it too).
                # The pragma is sent only when the mode changes (it is a statement of its own).
                want = "FULL" if opts.get("durable", True) else "NORMAL"
                info = conn.connection.info
                if info.get("synchronous") != want:
                    conn.exec_driver_sql(f"PRAGMA synchronous={want}")
                    info["synchronous"] = want
            # IMMEDIATE takes the write lock up front: no deadlock when two readers both try to write.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if opts.get("write") else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True)


def upsert_for(dialect: str):
    """The dialect's INSERT ... ON CONFLICT construct (SQLite and PostgreSQL spell it alike)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


class Database:
    """One engine and the plumbing every part of the review store uses on it."""

    def __init__(self, url: str | Path, *, lease_seconds: int = 1800, durable: bool = True) -> None:
        self.url = normalize_url(url)
        if self.url.startswith("sqlite:///") and not self.url.endswith(":memory:"):
            path = Path(self.url.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            # A new database file is readable by its owner only (it holds password hashes and every decision);
            # SQLite gives its -wal and -shm files the same permissions.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.engine = make_engine(self.url)
        self.dialect = self.engine.dialect.name
        self.lease = dt.timedelta(seconds=lease_seconds)
        self.durable = durable
        self._ids: dict[str, tuple[int, str]] = {}

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def tx(self, write: bool = False, durable: bool = True) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if write:
                conn.execution_options(write=True, durable=durable and self.durable)
            with conn.begin():
                yield conn

    def upgrade(self) -> None:
        """Bring the database to the newest migration (safe to run from several processes at once)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.connect() as conn:
            conn.execution_options(write=True)
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7240061)")
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")

    def schema_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @staticmethod
    def audit(conn: Connection, actor: str, action: str, item_id: str | None = None,
              decision_id: int | None = None, **details: Any) -> None:
        conn.execute(_AUDIT_INSERT, {"at": utcnow(), "actor": actor, "action": action, "item_id": item_id,
                                     "decision_id": decision_id, "details": details})

    def rid(self, conn: Connection, name: str, create_role: str | None = None) -> int:
        return self.reviewer(conn, name, create_role)[0]

    def forget(self, name: str) -> None:
        """Drop the cached id and role of a reviewer whose account changed (role, active)."""
        self._ids.pop(name, None)

    def reviewer(self, conn: Connection, name: str, create_role: str | None = None) -> tuple[int, str]:
        """(id, role) of a reviewer, cached per store (reviewers are never deleted or renamed); created with
        `create_role` when absent, else a missing name is an error."""
        if name in self._ids:
            return self._ids[name]
        row = conn.execute(select(REVIEWERS.c.id, REVIEWERS.c.role).where(REVIEWERS.c.name == name)).first()
        if row is None:
            if create_role is None:
                raise StudioError(f"no reviewer named {name!r}; add one with `studio review add-user {name}`.")
            rid = conn.execute(REVIEWERS.insert().values(name=name, password_hash=None, role=create_role, active=True,
                                                         created_at=utcnow())).inserted_primary_key[0]
            self.audit(conn, name, "add_reviewer", role=create_role)
            self._ids[name] = (rid, create_role)
            return self._ids[name]
        self._ids[name] = (row.id, row.role)
        return self._ids[name]
