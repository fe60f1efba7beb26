"""The review store: the one place review data is read and written (SQLite by default, PostgreSQL by URL).

The Streamlit app, `studio review ...` commands, the Label Studio bridge and export all go through
`ReviewStore`; nothing here imports Streamlit. Opening a store upgrades its database to the newest
alembic migration (`review_app/migrations/`). SQLite runs in WAL mode with a 30 s busy timeout and
`synchronous=FULL` (a committed decision survives a power cut); every write transaction starts with
`BEGIN IMMEDIATE`, so two processes never interleave half-done writes. Only taking a lease (next
item) commits without an fsync: losing a lease in a power cut costs nothing. On PostgreSQL the queue takes
items with `SELECT ... FOR UPDATE SKIP LOCKED`.

Public API (`store = ReviewStore("sqlite:///review.db")`, or a plain file path, or a postgresql:// URL):

- `load_dataset(path_or_df, overlap=1, order="quality"|"uncertainty"|"random", dataset=None, run_id=None)
  -> dict` queue examples (a curate output, any readable file, a Polars frame or a list of rows);
  idempotent: an id already in the store is left as it is. Returns counts
  {input, added, already_present, duplicate_in_input, quarantined}.
- `add_reviewer(name, password, role="reviewer"|"lead")`, `set_password(name, password)`,
  `authenticate(name, password) -> {"name", "role"} | None` (bcrypt hashes), `reviewers()`,
  `ensure_reviewer(name, role="external")` (a named non-login reviewer, e.g. `labelstudio:ann@x.org`).
- `next_item(reviewer, filters=None) -> ReviewItem | None`: the item this reviewer holds, else the next
  undecided one (queue order), leased for `lease_seconds`; an item needing one review is never handed
  to two people at once. `filters` is an `ItemFilter` or a dict of its fields.
- `record_decision(item_id, reviewer, verdict, edited_messages=None, rating=None, reasons=(),
  comment=None, seconds=None, source="app", idempotency_key=None) -> dict` with "created": False when
  the same key was already stored (the default key is per reviewer, item and attempt, so a double
  click or a retry is stored once). Verdicts: accept, reject, skip. A second decision by the same
  reviewer and source replaces the first (which stays in the table, marked undone).
- `undo_last(reviewer) -> dict | None`: withdraw the reviewer's last app decision; the item comes back.
- `resolve(item_id, lead, verdict, edited_messages=None, comment=None)`: a lead's final word on an item.
- `auto_decide(rule_expr, name, verdict="accept") -> dict`: decide every untouched open item the rule
  matches as reviewer `rule:<name>` (see `review_app.rules`); reports names the items lack.
- `decisions(reviewer=None, item_id=None, source=None, verdict=None, include_undone=False)`,
  `item_decisions(item_id)`, `get_item(item_id)`, `audit_log(item_id=None, actor=None, action=None)`.
- `approved_items(policy="unanimous"|"majority"|"any") -> list[dict]`: the effective accepted examples
  with edits applied (`id` recomputed from the edited messages, `item_id` the reviewed one, `origin`
  "edited" when edited), a lead resolution beating everything, people beating rules.
- `progress(reviewer=None) -> dict`, `disagreements() -> list[dict]`, `agreement() -> dict` (Cohen's
  kappa per pair, Fleiss' kappa, Krippendorff's alpha for verdicts and ratings), `filter_options()`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    case,
    create_engine,
    event,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from review_app.models import (
    ROLES,
    VERDICTS,
    Assignment,
    AuditEntry,
    Decision,
    Item,
    Reviewer,
    utcnow,
)
from studio.errors import StudioError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ORDERS = ("quality", "uncertainty", "random")
POLICIES = ("unanimous", "majority", "any")
LOGIN_ROLES = ("reviewer", "lead")
#: sources whose decisions do not take a review slot (they decide around the queue, not in it)
OFF_QUEUE_SOURCES = ("rule", "resolution")
MIN_PASSWORD_CHARS = 8
#: queue position of items without a quality score: after every scored one, in load order
UNSCORED_PRIORITY = 10.0
#: dedupe columns from curate kept on the item as meta["dedupe"], so export keeps a cluster in one split
DEDUPE_COLUMNS = ("dup_cluster", "semantic_cluster", "dup_of")

ITEMS, REVIEWERS, ASSIGNMENTS = Item.__table__, Reviewer.__table__, Assignment.__table__
DECISIONS, AUDIT = Decision.__table__, AuditEntry.__table__


@dataclass(frozen=True)
class ItemFilter:
    """What a reviewer wants to see. Empty fields do not filter."""

    origins: tuple[str, ...] = ()
    min_quality: float | None = None
    max_quality: float | None = None
    pii: bool | None = None  # True: only items with PII found; False: only items without
    source: str | None = None  # substring of the example's source
    tags: tuple[str, ...] = ()  # any of these tags

    @classmethod
    def of(cls, value: ItemFilter | dict[str, Any] | None) -> ItemFilter:
        if value is None:
            return cls()
        if isinstance(value, ItemFilter):
            return value
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise StudioError(f"unknown filter {sorted(unknown)}; use {sorted(known)}.")
        value = {k: tuple(v) if k in ("origins", "tags") and v is not None else v for k, v in value.items()}
        return cls(**value)

    def conditions(self) -> list[Any]:
        conds: list[Any] = []
        if self.origins:
            conds.append(ITEMS.c.origin.in_(self.origins))
        if self.min_quality is not None:
            conds.append(ITEMS.c.quality >= self.min_quality)
        if self.max_quality is not None:
            conds.append(ITEMS.c.quality <= self.max_quality)
        if self.pii is True:
            conds.append(ITEMS.c.pii_count > 0)
        elif self.pii is False:
            conds.append(ITEMS.c.pii_count == 0)
        if self.source:
            conds.append(ITEMS.c.source.contains(self.source, autoescape=True))
        if self.tags:
            conds.append(or_(*(ITEMS.c.tags.contains(f"|{t}|", autoescape=True) for t in self.tags)))
        return conds


@dataclass
class ReviewItem:
    """One example as a reviewer sees it, with the lease they hold on it."""

    id: str
    messages: list[dict[str, str]]
    origin: str
    source: str
    meta: dict[str, Any]
    scores: dict[str, float]
    quality: float | None
    pii_count: int | None
    pii_flags: list[str]
    tags: list[str]
    dataset: str
    attempt: int = 0
    expires_at: dt.datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------- engine
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


def _hash_password(password: str, rounds: int) -> str:
    import bcrypt

    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=rounds)).decode("ascii")


def _check_password(password: str, hashed: str) -> bool:
    import bcrypt

    try:
        return bcrypt.checkpw(password.encode("utf-8"), hashed.encode("ascii"))
    except ValueError:
        return False


def _json_obj(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return {"meta": value}
        return parsed if isinstance(parsed, dict) else {"meta": parsed}
    return {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def _clean_messages(messages: Any, where: str) -> list[dict[str, str]]:
    from studio.schema import ROLES as MESSAGE_ROLES

    if not isinstance(messages, list) or not messages:
        raise StudioError(f"{where}: messages must be a non-empty list of {{role, content}}.")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in MESSAGE_ROLES:
            raise StudioError(f"{where}: message {i} must have a role in {MESSAGE_ROLES} and text content.")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def item_fields(row: dict[str, Any]) -> dict[str, Any]:
    """Item columns from one example row: scores (quality, q_*), PII count and types, tags from meta;
    dedupe cluster columns (dup_cluster, semantic_cluster, dup_of) go into meta["dedupe"]."""
    meta = _json_obj(row.get("meta"))
    links = {k: str(row[k]) for k in DEDUPE_COLUMNS if row.get(k) is not None and str(row[k]) != ""}
    if links:
        meta = {**meta, "dedupe": links}
    scores = {k: v for k, v in ((k, _number(v)) for k, v in row.items() if k == "quality" or k.startswith("q_"))
              if v is not None}
    pii_flags: list[str] = []
    entities = row.get("pii_entities")
    if isinstance(entities, list):
        for e in entities:
            kind = e if isinstance(e, str) else (e or {}).get("entity_type") or (e or {}).get("type") or (e or {}).get("label")
            if kind and str(kind) not in pii_flags:
                pii_flags.append(str(kind))
    pii_count = row.get("pii_count")
    if not isinstance(pii_count, int) or isinstance(pii_count, bool):
        pii_count = len(entities) if isinstance(entities, list) else None
    tags: list[str] = []
    for key in ("tags", "category", "topic", "intent"):
        value = meta.get(key)
        for t in value if isinstance(value, list) else [value]:
            if isinstance(t, str) and t.strip() and t.strip() not in tags:
                tags.append(t.strip().replace("|", "/"))
    return {"meta": meta, "scores": scores, "quality": scores.get("quality"), "pii_count": pii_count,
            "pii_flags": pii_flags, "tags": "|" + "|".join(tags) + "|" if tags else ""}


def queue_priority(order: str, item_id: str, quality: float | None, position: int) -> float:
    """Smaller is served first. quality: lowest score first (most likely to need a fix);
    uncertainty: closest to 0.5 first; random: a fixed shuffle by id. Unscored items come last."""
    if order == "random":
        return int(hashlib.sha256(item_id.encode()).hexdigest()[:12], 16) / 16**12
    if quality is None:
        return UNSCORED_PRIORITY + position * 1e-9
    return quality if order == "quality" else abs(quality - 0.5)


def _manifest_run_id(path: Path) -> str | None:
    manifest = path.parent / "manifest.json"
    if manifest.is_file():
        try:
            return json.loads(manifest.read_text(encoding="utf-8")).get("run_id")
        except (OSError, json.JSONDecodeError):
            return None
    return None


def _tags_list(tags: str) -> list[str]:
    return [t for t in tags.split("|") if t]


_AUDIT_INSERT = AUDIT.insert()


def _hot_statements(dialect: str) -> dict[str, Any]:
    """The statements of the two hot paths (next item, save decision), built once per store: building a
    SQLAlchemy statement costs more CPU than SQLite takes to run it. Bound values are named `p_*` where a
    column of the same name is written (SQLAlchemy reserves column names in UPDATE ... SET)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert
    rid, item = bindparam("rid"), bindparam("item_id")
    joined = (ITEMS.outerjoin(ASSIGNMENTS, and_(ASSIGNMENTS.c.item_id == ITEMS.c.id, ASSIGNMENTS.c.reviewer_id == rid))
              .outerjoin(DECISIONS, and_(DECISIONS.c.item_id == ITEMS.c.id, DECISIONS.c.reviewer_id == rid,
                                         DECISIONS.c.source == bindparam("source"), DECISIONS.c.undone_at.is_(None))))
    state_cols = [ASSIGNMENTS.c.id.label("a_id"), ASSIGNMENTS.c.status.label("a_status"),
                  ASSIGNMENTS.c.attempt.label("a_attempt"), DECISIONS.c.id.label("d_id"),
                  DECISIONS.c.verdict.label("d_verdict")]
    state = select(ITEMS.c.id, *state_cols).select_from(joined).where(ITEMS.c.id == item).limit(1)
    state_msgs = select(ITEMS.c.id, ITEMS.c.messages, *state_cols).select_from(joined).where(ITEMS.c.id == item).limit(1)
    insert_decision = (upsert(DECISIONS).on_conflict_do_nothing(index_elements=[DECISIONS.c.idempotency_key])
                       .returning(DECISIONS.c.id))
    lease = upsert(ASSIGNMENTS)
    lease = lease.on_conflict_do_update(
        index_elements=[ASSIGNMENTS.c.item_id, ASSIGNMENTS.c.reviewer_id],
        set_={"status": lease.excluded.status, "leased_at": lease.excluded.leased_at,
              "expires_at": lease.excluded.expires_at}).returning(ASSIGNMENTS.c.attempt, ASSIGNMENTS.c.expires_at)
    p_item = bindparam("p_item")
    counts = {}
    for slot, claimed, status in (
            (0, ITEMS.c.n_claimed, ITEMS.c.status),
            (1, ITEMS.c.n_claimed + 1, case((and_(ITEMS.c.status == "open", ITEMS.c.n_claimed + 1 >= ITEMS.c.overlap), "full"),
                                            else_=ITEMS.c.status)),
            (-1, ITEMS.c.n_claimed - 1, case((and_(ITEMS.c.status == "full", ITEMS.c.n_claimed - 1 < ITEMS.c.overlap), "open"),
                                             else_=ITEMS.c.status))):
        values = {"n_decided": ITEMS.c.n_decided + bindparam("p_dd")}
        if slot:
            values.update(n_claimed=claimed, status=status)
        counts[f"item_counts_{slot}"] = update(ITEMS).where(ITEMS.c.id == p_item).values(**values)
    return {
        "state": state, "state_with_messages": state_msgs, "insert_decision": insert_decision, "lease": lease,
        "undo_decision": update(DECISIONS).where(DECISIONS.c.id == bindparam("p_id")).values(undone_at=bindparam("p_now")),
        "assignment_status": update(ASSIGNMENTS).where(ASSIGNMENTS.c.id == bindparam("p_id")).values(status=bindparam("p_status")),
        "open_leases": select(ASSIGNMENTS.c.id, ASSIGNMENTS.c.item_id, ASSIGNMENTS.c.reviewer_id, ASSIGNMENTS.c.expires_at)
        .where(ASSIGNMENTS.c.status == "open", or_(ASSIGNMENTS.c.expires_at < bindparam("now"), ASSIGNMENTS.c.reviewer_id == rid)),
        "lease_extend": update(ASSIGNMENTS).where(ASSIGNMENTS.c.id == bindparam("p_id")).values(expires_at=bindparam("p_expires")),
        "take_slot_guarded": update(ITEMS).where(ITEMS.c.id == p_item, ITEMS.c.status == "open", ITEMS.c.n_claimed < ITEMS.c.overlap)
        .values(n_claimed=ITEMS.c.n_claimed + 1, status=case(
            (and_(ITEMS.c.status == "open", ITEMS.c.n_claimed + 1 >= ITEMS.c.overlap), "full"), else_=ITEMS.c.status)),
        "item": select(ITEMS).where(ITEMS.c.id == p_item),
        **counts,
    }


# ---------------------------------------------------------------------------------------------- store
class ReviewStore:
    """Review items, reviewers, assignments, decisions and the audit log in one database."""

    def __init__(self, url: str | Path, *, lease_seconds: int = 1800, bcrypt_rounds: int = 12,
                 migrate: bool = True, durable: bool = True) -> None:
        """`durable=False` (SQLite only) skips the fsync of each decision: still safe when the app crashes,
        but the last decisions can be lost if the machine loses power."""
        self.url = normalize_url(url)
        if self.url.startswith("sqlite:///") and not self.url.endswith(":memory:"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(self.url)
        self.dialect = self.engine.dialect.name
        self.lease = dt.timedelta(seconds=lease_seconds)
        self.bcrypt_rounds = bcrypt_rounds
        self.durable = durable
        self._ids: dict[str, tuple[int, str]] = {}
        self._picks: dict[tuple[ItemFilter, int], Any] = {}
        self._hot = _hot_statements(self.dialect)
        if migrate:
            self.upgrade()

    def __repr__(self) -> str:
        return f"ReviewStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing
    @contextmanager
    def _tx(self, write: bool = False, durable: bool = True) -> Iterator[Connection]:
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

    def _audit(self, conn: Connection, actor: str, action: str, item_id: str | None = None,
               decision_id: int | None = None, **details: Any) -> None:
        conn.execute(_AUDIT_INSERT, {"at": utcnow(), "actor": actor, "action": action, "item_id": item_id,
                                     "decision_id": decision_id, "details": details})

    def _rid(self, conn: Connection, name: str, create_role: str | None = None) -> int:
        return self._reviewer(conn, name, create_role)[0]

    def _reviewer(self, conn: Connection, name: str, create_role: str | None = None) -> tuple[int, str]:
        """(id, role) of a reviewer, cached per store (reviewers are never deleted or renamed)."""
        if name in self._ids:
            return self._ids[name]
        row = conn.execute(select(REVIEWERS.c.id, REVIEWERS.c.role).where(REVIEWERS.c.name == name)).first()
        if row is None:
            if create_role is None:
                raise StudioError(f"no reviewer named {name!r}; add one with `studio review add-user {name}`.")
            rid = conn.execute(REVIEWERS.insert().values(name=name, password_hash=None, role=create_role, active=True,
                                                 created_at=utcnow())).inserted_primary_key[0]
            self._audit(conn, name, "add_reviewer", role=create_role)
            self._ids[name] = (rid, create_role)
            return self._ids[name]
        self._ids[name] = (row.id, row.role)
        return self._ids[name]

    # -- reviewers
    def add_reviewer(self, name: str, password: str, role: str = "reviewer") -> None:
        name = (name or "").strip()
        if not name or ":" in name:
            raise StudioError(f"reviewer name {name!r} is not allowed; use a non-empty name without ':'.")
        if role not in LOGIN_ROLES:
            raise StudioError(f"role {role!r} is unknown; use one of {', '.join(LOGIN_ROLES)}.")
        self._check_password_rules(password)
        hashed = _hash_password(password, self.bcrypt_rounds)
        try:
            with self._tx(write=True) as conn:
                conn.execute(REVIEWERS.insert().values(name=name, password_hash=hashed, role=role, active=True,
                                               created_at=utcnow()))
                self._audit(conn, name, "add_reviewer", role=role)
        except IntegrityError:
            raise StudioError(f"reviewer {name!r} already exists; pick another name or use --reset-password.") from None

    def set_password(self, name: str, password: str) -> None:
        self._check_password_rules(password)
        hashed = _hash_password(password, self.bcrypt_rounds)
        with self._tx(write=True) as conn:
            n = conn.execute(update(REVIEWERS).where(REVIEWERS.c.name == name, REVIEWERS.c.role.in_(LOGIN_ROLES))
                             .values(password_hash=hashed)).rowcount
            if n != 1:
                raise StudioError(f"no login reviewer named {name!r}; add one with `studio review add-user {name}`.")
            self._audit(conn, name, "set_password")

    @staticmethod
    def _check_password_rules(password: str) -> None:
        if len(password or "") < MIN_PASSWORD_CHARS or len(password.encode("utf-8")) > 72:
            raise StudioError(f"a password needs {MIN_PASSWORD_CHARS} to 72 bytes; choose another.")

    def ensure_reviewer(self, name: str, role: str = "external") -> None:
        if role not in ROLES:
            raise StudioError(f"role {role!r} is unknown; use one of {', '.join(ROLES)}.")
        with self._tx(write=True) as conn:
            self._rid(conn, name, create_role=role)

    def authenticate(self, name: str, password: str) -> dict[str, str] | None:
        """{"name", "role"} when the password is right for an active login reviewer, else None."""
        with self._tx() as conn:
            row = conn.execute(select(REVIEWERS.c.name, REVIEWERS.c.role, REVIEWERS.c.password_hash, REVIEWERS.c.active)
                               .where(REVIEWERS.c.name == (name or "").strip())).first()
        ok = bool(row and row.password_hash and row.active and row.role in LOGIN_ROLES
                  and _check_password(password or "", row.password_hash))
        with self._tx(write=True) as conn:
            self._audit(conn, (name or "").strip()[:120], "login" if ok else "login_failed")
        return {"name": row.name, "role": row.role} if ok else None

    def reviewers(self) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(select(REVIEWERS.c.name, REVIEWERS.c.role, REVIEWERS.c.active, REVIEWERS.c.created_at).order_by(REVIEWERS.c.name)).all()
        return [r._asdict() for r in rows]

    # -- loading
    def load_dataset(self, data: Any, overlap: int = 1, order: str = "quality", dataset: str | None = None,
                     run_id: str | None = None, load_run: str | None = None) -> dict[str, int]:
        """Queue examples for review; ids already in the store are left as they are."""
        if overlap < 1:
            raise StudioError(f"--overlap must be at least 1 (got {overlap}).")
        if order not in ORDERS:
            raise StudioError(f"--order {order!r} is unknown; use one of {', '.join(ORDERS)}.")
        quarantined = 0
        if isinstance(data, str | Path):
            from studio.readers import read_inputs

            path = Path(data)
            result = read_inputs([path])
            if result.kind != "examples":
                raise StudioError(f"{path} holds plain documents, not examples; load a data set of conversations.")
            rows, quarantined = result.rows, len(result.quarantine)
            dataset = dataset or str(path.resolve())
            run_id = run_id or _manifest_run_id(path)
        elif hasattr(data, "to_dicts"):
            rows = data.to_dicts()
        else:
            rows = list(data)
        dataset = dataset or "in-memory"
        now = utcnow()
        counts = {"input": len(rows) + quarantined, "added": 0, "already_present": 0, "duplicate_in_input": 0,
                  "quarantined": quarantined}
        from studio.schema import example_id, is_example_id

        with self._tx(write=True) as conn:
            base = conn.execute(select(func.count()).select_from(ITEMS)).scalar() or 0
            seen: set[str] = set()
            for start in range(0, len(rows), 1000):
                chunk = rows[start:start + 1000]
                prepared = []
                for i, row in enumerate(chunk):
                    messages = _clean_messages(row.get("messages"), f"{dataset} row {start + i + 1}")
                    item_id = row.get("id") or example_id(messages)
                    if not is_example_id(item_id):
                        raise StudioError(f"{dataset} row {start + i + 1}: id {str(item_id)[:40]!r} is not a content "
                                          "hash (16-64 lower-case hex characters); recompute it with `studio curate`.")
                    if item_id in seen:
                        counts["duplicate_in_input"] += 1
                        continue
                    seen.add(item_id)
                    prepared.append((item_id, messages, row))
                present = set(conn.execute(select(ITEMS.c.id).where(ITEMS.c.id.in_([p[0] for p in prepared]))).scalars())
                new_rows = []
                for item_id, messages, row in prepared:
                    if item_id in present:
                        counts["already_present"] += 1
                        continue
                    f = item_fields(row)
                    new_rows.append({
                        "id": item_id, "messages": messages, "origin": row.get("origin") or "real",
                        "source": row.get("source") or "", **f, "dataset": dataset, "dataset_run": run_id,
                        "load_run": load_run, "overlap": overlap,
                        "priority": queue_priority(order, item_id, f["quality"], base + counts["added"] + len(new_rows)),
                        "status": "open", "n_claimed": 0, "n_decided": 0, "loaded_at": now,
                    })
                if new_rows:
                    conn.execute(ITEMS.insert(), new_rows)
                    counts["added"] += len(new_rows)
            self._audit(conn, "system", "load", dataset=dataset, dataset_run=run_id, load_run=load_run,
                        overlap=overlap, order=order, **counts)
        return counts

    # -- slots (n_claimed counts assignments that are 'open' or 'done')
    @staticmethod
    def _take_slot(conn: Connection, item_id: str, guarded: bool) -> bool:
        stmt = update(ITEMS).where(ITEMS.c.id == item_id).values(
            n_claimed=ITEMS.c.n_claimed + 1,
            status=case((and_(ITEMS.c.status == "open", ITEMS.c.n_claimed + 1 >= ITEMS.c.overlap), "full"), else_=ITEMS.c.status))
        if guarded:  # the atomic claim: only while a slot is free
            stmt = stmt.where(ITEMS.c.status == "open", ITEMS.c.n_claimed < ITEMS.c.overlap)
        return conn.execute(stmt).rowcount == 1

    @staticmethod
    def _release_slot(conn: Connection, item_id: str) -> None:
        conn.execute(update(ITEMS).where(ITEMS.c.id == item_id).values(
            n_claimed=ITEMS.c.n_claimed - 1,
            status=case((and_(ITEMS.c.status == "full", ITEMS.c.n_claimed - 1 < ITEMS.c.overlap), "open"), else_=ITEMS.c.status)))

    def _expire(self, conn: Connection, where: Any) -> None:
        stale = conn.execute(select(ASSIGNMENTS.c.id, ASSIGNMENTS.c.item_id).where(ASSIGNMENTS.c.status == "open", where)).all()
        for row in stale:
            conn.execute(update(ASSIGNMENTS).where(ASSIGNMENTS.c.id == row.id).values(status="expired"))
            self._release_slot(conn, row.item_id)

    # -- the queue
    def next_item(self, reviewer: str, filters: ItemFilter | dict[str, Any] | None = None) -> ReviewItem | None:
        """The item this reviewer holds (if it still matches the filters), else a newly leased one."""
        flt = ItemFilter.of(filters)
        st = self._hot
        now = utcnow()
        with self._tx(write=True, durable=False) as conn:
            rid = self._rid(conn, reviewer)
            # One read finds both the stale leases of anyone and this reviewer's own open leases.
            leases = conn.execute(st["open_leases"], {"now": now, "rid": rid}).all()
            mine = []
            for lease in leases:
                if lease.expires_at < now:
                    self._expire_one(conn, lease.id, lease.item_id)
                elif lease.reviewer_id == rid:
                    mine.append(lease)
            if mine:
                held = conn.execute(
                    select(ASSIGNMENTS.c.id, ASSIGNMENTS.c.item_id, ASSIGNMENTS.c.attempt)
                    .join(ITEMS, ITEMS.c.id == ASSIGNMENTS.c.item_id)
                    .where(ASSIGNMENTS.c.id.in_([m.id for m in mine]), *flt.conditions())
                    .order_by(ASSIGNMENTS.c.leased_at.desc()).limit(1)).first()
                for m in mine:
                    if held is None or m.id != held.id:
                        self._expire_one(conn, m.id, m.item_id)
                if held:
                    expires = now + self.lease
                    conn.execute(st["lease_extend"], {"p_id": held.id, "p_expires": expires})
                    return self._item(conn, held.item_id, lease=(held.attempt, expires))
            query = self._pick_query(flt, rid)
            for _ in range(5):
                item_id = conn.execute(query).scalar()
                if item_id is None:
                    return None
                if conn.execute(st["take_slot_guarded"], {"p_item": item_id}).rowcount == 1:
                    break
            else:
                return None
            lease = conn.execute(st["lease"], {"item_id": item_id, "reviewer_id": rid, "status": "open", "attempt": 0,
                                               "leased_at": now, "expires_at": now + self.lease}).one()
            return self._item(conn, item_id, lease=(lease.attempt, lease.expires_at))

    def _pick_query(self, flt: ItemFilter, rid: int):
        """The next-undecided-item query for this filter and reviewer, built once and reused."""
        query = self._picks.get((flt, rid))
        if query is None:
            mine = exists().where(ASSIGNMENTS.c.item_id == ITEMS.c.id, ASSIGNMENTS.c.reviewer_id == rid,
                                  ASSIGNMENTS.c.status.in_(("open", "done", "skipped")))
            query = (select(ITEMS.c.id).where(ITEMS.c.status == "open", ITEMS.c.n_claimed < ITEMS.c.overlap, ~mine,
                                          *flt.conditions())
                     .order_by(ITEMS.c.priority, ITEMS.c.id).limit(1))
            if self.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True, of=ITEMS)
            if len(self._picks) > 512:
                self._picks.clear()
            self._picks[(flt, rid)] = query
        return query

    def _expire_one(self, conn: Connection, assignment_id: int, item_id: str) -> None:
        conn.execute(update(ASSIGNMENTS).where(ASSIGNMENTS.c.id == assignment_id).values(status="expired"))
        self._release_slot(conn, item_id)

    def _item(self, conn: Connection, item_id: str, rid: int | None = None,
              lease: tuple[int, dt.datetime | None] | None = None) -> ReviewItem:
        row = conn.execute(self._hot["item"], {"p_item": item_id}).first()
        if row is None:
            raise StudioError(f"no review item with id {item_id!r}; load its data set with `studio review load`.")
        if lease is None and rid is not None:
            found = conn.execute(select(ASSIGNMENTS.c.attempt, ASSIGNMENTS.c.expires_at)
                                 .where(ASSIGNMENTS.c.item_id == item_id, ASSIGNMENTS.c.reviewer_id == rid)).first()
            lease = (found.attempt, found.expires_at) if found else None
        return ReviewItem(
            id=row.id, messages=row.messages, origin=row.origin, source=row.source, meta=row.meta,
            scores=row.scores, quality=row.quality, pii_count=row.pii_count, pii_flags=row.pii_flags,
            tags=_tags_list(row.tags), dataset=row.dataset, attempt=lease[0] if lease else 0,
            expires_at=lease[1] if lease else None,
            extra={"status": row.status, "overlap": row.overlap, "n_decided": row.n_decided,
                   "dataset_run": row.dataset_run})

    def get_item(self, item_id: str) -> ReviewItem:
        with self._tx() as conn:
            return self._item(conn, item_id)

    # -- decisions
    def record_decision(self, item_id: str, reviewer: str, verdict: str,
                        edited_messages: list[dict[str, str]] | None = None, rating: int | None = None,
                        reasons: Sequence[str] = (), comment: str | None = None, seconds: float | None = None,
                        source: str = "app", idempotency_key: str | None = None) -> dict[str, Any]:
        """Store one decision (once per idempotency key) and update the queue; returns the stored decision."""
        if verdict not in VERDICTS:
            raise StudioError(f"verdict {verdict!r} is unknown; use one of {', '.join(VERDICTS)}.")
        if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5):
            raise StudioError(f"rating must be a whole number from 1 to 5 (got {rating!r}).")
        reasons = [str(r) for r in reasons]
        try:
            with self._tx(write=True) as conn:
                return self._record(conn, item_id, reviewer, verdict, edited_messages, rating, reasons,
                                    comment, seconds, source, idempotency_key)
        except IntegrityError:
            # Another process stored the same key between our check and our insert: that one stands.
            if idempotency_key is None:
                raise
            found = self.decisions(key=idempotency_key, include_undone=True)
            if not found:
                raise
            return {**found[0], "created": False}

    def _record(self, conn: Connection, item_id: str, reviewer: str, verdict: str, edited_messages, rating,
                reasons, comment, seconds, source, key) -> dict[str, Any]:
        # The hot path of the app: one read (item, this reviewer's assignment and their current decision in one
        # join), then only writes, all with statements built once (see `_hot_statements`); the stored decision
        # is returned from the values written, not read back.
        st = self._hot
        now = utcnow()
        rid, role = self._reviewer(conn, reviewer, create_role=None if source == "app" else "external")
        state = conn.execute(st["state_with_messages" if edited_messages is not None else "state"],
                             {"item_id": item_id, "rid": rid, "source": source}).first()
        if state is None:
            raise StudioError(f"no review item with id {item_id!r}; load its data set with `studio review load`.")
        on_queue = source not in OFF_QUEUE_SOURCES
        key = key or f"{source}:{reviewer}:{item_id}:{state.a_attempt if state.a_id is not None else 0}"
        edited = None
        if edited_messages is not None:
            edited = _clean_messages(edited_messages, f"edited messages of item {item_id}")
            if edited == state.messages:
                edited = None
        row = {"item_id": item_id, "reviewer_id": rid, "verdict": verdict, "edited_messages": edited, "rating": rating,
               "reasons": list(reasons), "comment": comment or None, "seconds": seconds, "source": source,
               "idempotency_key": key, "created_at": now, "undone_at": None}
        # Idempotency without a lookup: the unique key refuses the second insert, which then writes nothing.
        decision_id = conn.execute(st["insert_decision"], row).scalar()
        if decision_id is None:
            existing = self._decision_rows(conn, DECISIONS.c.idempotency_key == key)
            return {**existing[0], "created": False}
        n_decided = 0
        if state.d_id is not None:  # a second decision by this reviewer and source replaces the first
            conn.execute(st["undo_decision"], {"p_id": state.d_id, "p_now": now})
            if on_queue and state.d_verdict != "skip":
                n_decided -= 1
            self._audit(conn, reviewer, "replace", item_id, state.d_id)
        slot = 0
        if on_queue:
            new_status = "skipped" if verdict == "skip" else "done"
            held_before = state.a_id is not None and state.a_status in ("open", "done")
            if new_status == "done" and not held_before:
                slot = 1  # late or unleased: counted, never refused
            elif new_status == "skipped" and held_before:
                slot = -1
            if state.a_id is not None:
                conn.execute(st["assignment_status"], {"p_id": state.a_id, "p_status": new_status})
            else:
                conn.execute(ASSIGNMENTS.insert().values(item_id=item_id, reviewer_id=rid, status=new_status, attempt=0,
                                               leased_at=now, expires_at=now))
            if verdict != "skip":
                n_decided += 1
        if slot or n_decided:
            conn.execute(st[f"item_counts_{slot}"], {"p_item": item_id, "p_dd": n_decided})
        self._audit(conn, reviewer, "decide", item_id, decision_id, verdict=verdict, source=source,
                    rating=rating, reasons=list(reasons), edited=edited is not None, key=key)
        out = {"id": decision_id, **row, "reviewer": reviewer, "role": role, "created": True}
        del out["reviewer_id"]
        return out

    def undo_last(self, reviewer: str) -> dict[str, Any] | None:
        """Withdraw this reviewer's last app decision: it stays in the table marked undone, and the item is
        leased back to them so it is served next."""
        now = utcnow()
        with self._tx(write=True) as conn:
            rid = self._rid(conn, reviewer)
            last = conn.execute(select(DECISIONS.c.id, DECISIONS.c.item_id, DECISIONS.c.verdict).where(
                DECISIONS.c.reviewer_id == rid, DECISIONS.c.source == "app", DECISIONS.c.undone_at.is_(None))
                .order_by(DECISIONS.c.created_at.desc(), DECISIONS.c.id.desc()).limit(1)).first()
            if last is None:
                return None
            self._expire(conn, and_(ASSIGNMENTS.c.reviewer_id == rid, ASSIGNMENTS.c.item_id != last.item_id))
            conn.execute(update(DECISIONS).where(DECISIONS.c.id == last.id).values(undone_at=now))
            assignment = conn.execute(select(ASSIGNMENTS.c.id, ASSIGNMENTS.c.status)
                                      .where(ASSIGNMENTS.c.item_id == last.item_id, ASSIGNMENTS.c.reviewer_id == rid)).first()
            if assignment.status not in ("open", "done"):
                self._take_slot(conn, last.item_id, guarded=False)
            conn.execute(update(ASSIGNMENTS).where(ASSIGNMENTS.c.id == assignment.id).values(
                status="open", attempt=ASSIGNMENTS.c.attempt + 1, leased_at=now, expires_at=now + self.lease))
            if last.verdict != "skip":
                conn.execute(update(ITEMS).where(ITEMS.c.id == last.item_id).values(n_decided=ITEMS.c.n_decided - 1))
            self._audit(conn, reviewer, "undo", last.item_id, last.id, verdict=last.verdict)
            return self._decision_rows(conn, DECISIONS.c.id == last.id)[0]

    def resolve(self, item_id: str, lead: str, verdict: str, edited_messages: list[dict[str, str]] | None = None,
                comment: str | None = None) -> dict[str, Any]:
        """A lead's final decision on an item (e.g. where annotators disagree); it beats every other."""
        if verdict not in ("accept", "reject"):
            raise StudioError(f"a resolution is accept or reject (got {verdict!r}).")
        with self._tx() as conn:
            role = conn.execute(select(REVIEWERS.c.role).where(REVIEWERS.c.name == lead)).scalar()
        if role != "lead":
            raise StudioError(f"{lead!r} is not a lead; only leads resolve disagreements.")
        n = len(self.decisions(item_id=item_id, source="resolution", include_undone=True))
        return self.record_decision(item_id, lead, verdict, edited_messages=edited_messages, comment=comment,
                                    source="resolution", idempotency_key=f"resolution:{item_id}:{n}")

    # -- rules
    def auto_decide(self, rule_expr: str, name: str, verdict: str = "accept") -> dict[str, Any]:
        """Decide, as reviewer `rule:<name>`, every open item no person has touched that the rule matches."""
        from review_app.rules import parse_rule

        if verdict not in ("accept", "reject"):
            raise StudioError(f"a rule decides accept or reject (got {verdict!r}).")
        if not name or ":" in name:
            raise StudioError(f"rule name {name!r} is not allowed; use a short name without ':'.")
        rule = parse_rule(rule_expr)
        actor = f"rule:{name}"
        now = utcnow()
        missing: dict[str, int] = defaultdict(int)
        matched: list[str] = []
        with self._tx(write=True) as conn:
            rid = self._rid(conn, actor, create_role="rule")
            candidates = conn.execute(select(ITEMS.c.id, ITEMS.c.quality, ITEMS.c.pii_count, ITEMS.c.scores, ITEMS.c.origin,
                                             ITEMS.c.source, ITEMS.c.tags)
                                      .where(ITEMS.c.status == "open", ITEMS.c.n_claimed == 0)).all()
            for row in candidates:
                values = {**row.scores, "quality": row.quality, "pii_count": row.pii_count, "origin": row.origin,
                          "source": row.source, "tags": _tags_list(row.tags)}
                lacking = rule.missing_names(values)
                for n in lacking:
                    missing[n] += 1
                if not lacking and rule.matches(values):
                    matched.append(row.id)
            for start in range(0, len(matched), 1000):
                chunk = matched[start:start + 1000]
                conn.execute(update(ITEMS).where(ITEMS.c.id.in_(chunk)).values(status="auto"))
                conn.execute(DECISIONS.insert(), [{
                    "item_id": i, "reviewer_id": rid, "verdict": verdict, "edited_messages": None, "rating": None,
                    "reasons": [], "comment": f"rule {name}: {rule.text}", "seconds": None, "source": "rule",
                    "idempotency_key": f"{actor}:{i}", "created_at": now, "undone_at": None} for i in chunk])
            for start in range(0, len(matched), 1000):
                chunk = matched[start:start + 1000]
                ids = dict(conn.execute(select(DECISIONS.c.item_id, DECISIONS.c.id).where(
                    DECISIONS.c.reviewer_id == rid, DECISIONS.c.item_id.in_(chunk))).all())
                conn.execute(AUDIT.insert(), [{"at": now, "actor": actor, "action": "decide", "item_id": i,
                                           "decision_id": ids[i], "details": {"verdict": verdict, "source": "rule",
                                                                              "rule": rule.text}} for i in chunk])
            already = conn.execute(select(func.count()).select_from(DECISIONS).where(DECISIONS.c.reviewer_id == rid)).scalar()
            self._audit(conn, actor, "auto_decide", rule=rule.text, verdict=verdict, examined=len(candidates),
                        decided=len(matched))
        return {"rule": rule.text, "reviewer": actor, "verdict": verdict, "examined": len(candidates),
                "decided": len(matched), "decided_by_rule_in_total": already,
                "missing": dict(missing), "names": sorted(rule.names)}

    # -- reading decisions
    def _decision_rows(self, conn: Connection, *where: Any) -> list[dict[str, Any]]:
        rows = conn.execute(select(DECISIONS, REVIEWERS.c.name.label("reviewer"), REVIEWERS.c.role).join(REVIEWERS, REVIEWERS.c.id == DECISIONS.c.reviewer_id)
                            .where(*where).order_by(DECISIONS.c.created_at, DECISIONS.c.id)).all()
        out = []
        for r in rows:
            d = r._asdict()
            d.pop("reviewer_id", None)
            out.append(d)
        return out

    def decisions(self, reviewer: str | None = None, item_id: str | None = None, source: str | None = None,
                  verdict: str | None = None, include_undone: bool = False, key: str | None = None) -> list[dict[str, Any]]:
        """Decisions oldest first, each with the reviewer's name and role."""
        where = []
        if reviewer is not None:
            where.append(REVIEWERS.c.name == reviewer)
        if item_id is not None:
            where.append(DECISIONS.c.item_id == item_id)
        if source is not None:
            where.append(DECISIONS.c.source == source)
        if verdict is not None:
            where.append(DECISIONS.c.verdict == verdict)
        if key is not None:
            where.append(DECISIONS.c.idempotency_key == key)
        if not include_undone:
            where.append(DECISIONS.c.undone_at.is_(None))
        with self._tx() as conn:
            return self._decision_rows(conn, *where)

    def item_decisions(self, item_id: str) -> list[dict[str, Any]]:
        """Every decision on one item, undone ones included (their `undone_at` is set)."""
        return self.decisions(item_id=item_id, include_undone=True)

    def audit_log(self, item_id: str | None = None, actor: str | None = None, action: str | None = None,
                  limit: int | None = None) -> list[dict[str, Any]]:
        where = []
        if item_id is not None:
            where.append(AUDIT.c.item_id == item_id)
        if actor is not None:
            where.append(AUDIT.c.actor == actor)
        if action is not None:
            where.append(AUDIT.c.action == action)
        query = select(AUDIT).where(*where).order_by(AUDIT.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self._tx() as conn:
            return [r._asdict() for r in conn.execute(query).all()]

    # -- outcomes
    def _active_by_item(self, item_ids: Iterable[str] | None = None) -> dict[str, list[dict[str, Any]]]:
        where = [DECISIONS.c.undone_at.is_(None), DECISIONS.c.verdict != "skip"]
        if item_ids is not None:
            where.append(DECISIONS.c.item_id.in_(list(item_ids)))
        by_item: dict[str, list[dict[str, Any]]] = defaultdict(list)
        with self._tx() as conn:
            for d in self._decision_rows(conn, *where):
                by_item[d["item_id"]].append(d)
        return by_item

    def approved_items(self, policy: str = "unanimous") -> list[dict[str, Any]]:
        """The examples review accepted, with edits applied, in queue order.

        Per item: a lead resolution decides; else people's accept/reject decisions under `policy`
        (unanimous: every person accepted and at least `overlap` did; majority: more accepts than rejects
        and at least `overlap` decisions; any: one accept is enough); else the rule's decision.
        The text is the resolution's edit, else the latest accepting person's edit, else the original.
        """
        from studio.schema import example_id

        if policy not in POLICIES:
            raise StudioError(f"policy {policy!r} is unknown; use one of {', '.join(POLICIES)}.")
        by_item = self._active_by_item()
        with self._tx() as conn:
            items = {r.id: r for r in conn.execute(select(ITEMS).where(ITEMS.c.id.in_(list(by_item)))
                                                    .order_by(ITEMS.c.priority, ITEMS.c.id)).all()} if by_item else {}
        out = []
        for item_id, row in items.items():
            ds = by_item[item_id]
            resolutions = [d for d in ds if d["source"] == "resolution"]
            people = [d for d in ds if d["source"] not in OFF_QUEUE_SOURCES]
            rules = [d for d in ds if d["source"] == "rule"]
            if resolutions:
                deciding, how = [resolutions[-1]], "resolution"
                accepted = deciding[0]["verdict"] == "accept"
            elif people:
                deciding, how = people, "people"
                acc = sum(d["verdict"] == "accept" for d in people)
                if policy == "unanimous":
                    accepted = acc == len(people) and acc >= row.overlap
                elif policy == "majority":
                    accepted = acc > len(people) - acc and len(people) >= row.overlap
                else:
                    accepted = acc >= 1
            elif rules:
                deciding, how = [rules[-1]], "rule"
                accepted = deciding[0]["verdict"] == "accept"
            else:
                continue
            if not accepted:
                continue
            edits = [d for d in deciding if d["verdict"] == "accept" and d["edited_messages"]]
            messages = edits[-1]["edited_messages"] if edits else row.messages
            ratings = [d["rating"] for d in deciding if d["rating"] is not None]
            out.append({
                "id": example_id(messages) if edits else row.id, "item_id": row.id, "messages": messages,
                "origin": "edited" if edits else row.origin, "source": row.source,
                "meta": json.dumps(row.meta, ensure_ascii=False, sort_keys=True), "edited": bool(edits),
                "decided_by": how, "reviewers": sorted({d["reviewer"] for d in deciding}),
                "decision_ids": [d["id"] for d in deciding],
                "rating": round(sum(ratings) / len(ratings), 3) if ratings else None,
                "scores": row.scores, "dataset": row.dataset, "dataset_run": row.dataset_run,
            })
        return out

    def approved_frame(self, policy: str = "unanimous"):
        """`approved_items` as a Polars frame: the studio's base columns plus item_id, edited, decided_by,
        reviewers and rating."""
        import polars as pl

        from studio.schema import polars_schema

        rows = self.approved_items(policy)
        schema = {**polars_schema(), "item_id": pl.String, "edited": pl.Boolean, "decided_by": pl.String,
                  "reviewers": pl.List(pl.String), "rating": pl.Float64}
        return pl.DataFrame([{k: r[k] for k in schema} for r in rows], schema=schema)

    def disagreements(self) -> list[dict[str, Any]]:
        """Items where people's current verdicts differ, with their decisions and any lead resolution."""
        by_item = self._active_by_item()
        out = []
        for item_id, ds in by_item.items():
            people = [d for d in ds if d["source"] not in OFF_QUEUE_SOURCES]
            if len({d["verdict"] for d in people}) > 1:
                resolution = [d for d in ds if d["source"] == "resolution"]
                out.append({"item_id": item_id, "decisions": people,
                            "resolution": resolution[-1] if resolution else None})
        return out

    def agreement(self) -> dict[str, Any]:
        from review_app.agreement import agreement_report

        verdicts: dict[str, dict[str, str]] = defaultdict(dict)
        ratings: dict[str, dict[str, int]] = defaultdict(dict)
        for item_id, ds in self._active_by_item().items():
            for d in ds:
                if d["source"] in OFF_QUEUE_SOURCES:
                    continue
                verdicts[item_id][d["reviewer"]] = d["verdict"]
                if d["rating"] is not None:
                    ratings[item_id][d["reviewer"]] = d["rating"]
        return agreement_report(verdicts, ratings)

    def progress(self, reviewer: str | None = None) -> dict[str, Any]:
        """Counts for the progress bars: overall, and for one reviewer when named."""
        with self._tx() as conn:
            total = conn.execute(select(func.count()).select_from(ITEMS)).scalar() or 0
            auto = conn.execute(select(func.count()).select_from(ITEMS).where(ITEMS.c.status == "auto")).scalar() or 0
            complete = conn.execute(select(func.count()).select_from(ITEMS).where(
                or_(ITEMS.c.status == "auto", ITEMS.c.n_decided >= ITEMS.c.overlap))).scalar() or 0
            needed = conn.execute(select(func.coalesce(func.sum(ITEMS.c.overlap), 0)).where(ITEMS.c.status != "auto")).scalar()
            done = conn.execute(select(func.count()).select_from(DECISIONS).where(
                DECISIONS.c.undone_at.is_(None), DECISIONS.c.verdict != "skip",
                DECISIONS.c.source.notin_(OFF_QUEUE_SOURCES))).scalar() or 0
            out: dict[str, Any] = {"items": total, "auto_decided": auto, "complete": complete,
                                   "remaining_items": total - complete, "reviews_needed": int(needed or 0),
                                   "reviews_done": done}
            if reviewer is not None:
                rid = self._rid(conn, reviewer)
                mine = conn.execute(select(DECISIONS.c.verdict, func.count()).where(
                    DECISIONS.c.reviewer_id == rid, DECISIONS.c.undone_at.is_(None)).group_by(DECISIONS.c.verdict)).all()
                by_verdict = {v: n for v, n in mine}
                touched = exists().where(ASSIGNMENTS.c.item_id == ITEMS.c.id, ASSIGNMENTS.c.reviewer_id == rid,
                                         ASSIGNMENTS.c.status.in_(("done", "skipped")))
                available = conn.execute(select(func.count()).select_from(ITEMS).where(
                    ITEMS.c.status != "auto", ITEMS.c.n_decided < ITEMS.c.overlap, ~touched)).scalar() or 0
                out["reviewer"] = {"name": reviewer, "decided": sum(by_verdict.values()), "by_verdict": by_verdict,
                                   "available": available}
        return out

    def filter_options(self) -> dict[str, Any]:
        """What the filter widgets can offer: origins, tags, sources' files, the quality range."""
        with self._tx() as conn:
            origins = sorted(conn.execute(select(ITEMS.c.origin).distinct()).scalars())
            tag_strings = conn.execute(select(ITEMS.c.tags).distinct()).scalars()
            qmin, qmax = conn.execute(select(func.min(ITEMS.c.quality), func.max(ITEMS.c.quality))).one()
        tags = sorted({t for s in tag_strings for t in _tags_list(s)})
        return {"origins": origins, "tags": tags, "quality": (qmin, qmax)}
