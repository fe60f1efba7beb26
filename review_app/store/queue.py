"""The review queue: loading examples as items, the order they are served in, and leases.

`next_item` hands a reviewer the item they hold, else the next undecided one in queue order, leased for
the store's lease time; an item needing one review is never handed to two people at once (`n_claimed`
counts open leases and decisions against the item's `overlap`). On PostgreSQL the queue takes items with
`SELECT ... FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, exists, func, or_, select, update

from review_app.models import utcnow
from review_app.store.database import ASSIGNMENTS, ITEMS, Database, upsert_for
from studio.errors import StudioError
from studio.runs import manifest_beside
from studio.schema import DEDUPE_META_KEY, dedupe_links, is_score_column, pii_types

ORDERS = ("quality", "uncertainty", "random")
#: queue position of items without a quality score: after every scored one, in load order
UNSCORED_PRIORITY = 10.0


@dataclass(frozen=True)
class ItemFilter:
    """What a reviewer wants to see. Empty fields do not filter."""

    origins: tuple[str, ...] = ()
    min_quality: float | None = None
    max_quality: float | None = None
    pii: bool | None = None  # True: only items with PII found; False: only items without
    source: str | None = None  # substring of the example's source
    tags: tuple[str, ...] = ()  # any of these tags
    kind: str | None = None  # "single" or "pairwise" (review_app.pairwise); None: both

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
        if self.kind:
            conds.append(ITEMS.c.kind == self.kind)
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


def clean_messages(messages: Any, where: str) -> list[dict[str, str]]:
    """`messages` as a list of {role, content}; anything else is one sentence naming `where`."""
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
    """Item columns from one example row, read by the column contract of `studio.schema`: scores (quality,
    q_*), PII count and types, tags from meta; the dedupe links go into meta[DEDUPE_META_KEY], so export keeps
    a cluster in one split."""
    meta = _json_obj(row.get("meta"))
    links = dedupe_links(row)
    if links:
        meta = {**meta, DEDUPE_META_KEY: links}
    scores = {k: v for k, v in ((k, _number(v)) for k, v in row.items() if is_score_column(k)) if v is not None}
    entities = row.get("pii_entities")
    pii_flags = pii_types(entities)
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
    return (manifest_beside(path) or {}).get("run_id")


def tags_list(tags: str) -> list[str]:
    return [t for t in tags.split("|") if t]


# -- slots (n_claimed counts assignments that are 'open' or 'done')
def take_slot(conn: Connection, item_id: str, guarded: bool) -> bool:
    stmt = update(ITEMS).where(ITEMS.c.id == item_id).values(
        n_claimed=ITEMS.c.n_claimed + 1,
        status=case((and_(ITEMS.c.status == "open", ITEMS.c.n_claimed + 1 >= ITEMS.c.overlap), "full"), else_=ITEMS.c.status))
    if guarded:  # the atomic claim: only while a slot is free
        stmt = stmt.where(ITEMS.c.status == "open", ITEMS.c.n_claimed < ITEMS.c.overlap)
    return conn.execute(stmt).rowcount == 1


def release_slot(conn: Connection, item_id: str) -> None:
    conn.execute(update(ITEMS).where(ITEMS.c.id == item_id).values(
        n_claimed=ITEMS.c.n_claimed - 1,
        status=case((and_(ITEMS.c.status == "full", ITEMS.c.n_claimed - 1 < ITEMS.c.overlap), "open"), else_=ITEMS.c.status)))


def expire_one(conn: Connection, assignment_id: int, item_id: str) -> None:
    conn.execute(update(ASSIGNMENTS).where(ASSIGNMENTS.c.id == assignment_id).values(status="expired"))
    release_slot(conn, item_id)


def expire(conn: Connection, where: Any) -> None:
    stale = conn.execute(select(ASSIGNMENTS.c.id, ASSIGNMENTS.c.item_id).where(ASSIGNMENTS.c.status == "open", where)).all()
    for row in stale:
        expire_one(conn, row.id, row.item_id)


def _hot_statements(dialect: str) -> dict[str, Any]:
    """The statements of the next-item path, built once per store: building a SQLAlchemy statement costs more
    CPU than SQLite takes to run it. Bound values are named `p_*` where a column of the same name is written
    (SQLAlchemy reserves column names in UPDATE ... SET)."""
    rid, p_item = bindparam("rid"), bindparam("p_item")
    lease = upsert_for(dialect)(ASSIGNMENTS)
    lease = lease.on_conflict_do_update(
        index_elements=[ASSIGNMENTS.c.item_id, ASSIGNMENTS.c.reviewer_id],
        set_={"status": lease.excluded.status, "leased_at": lease.excluded.leased_at,
              "expires_at": lease.excluded.expires_at}).returning(ASSIGNMENTS.c.attempt, ASSIGNMENTS.c.expires_at)
    return {
        "lease": lease,
        "open_leases": select(ASSIGNMENTS.c.id, ASSIGNMENTS.c.item_id, ASSIGNMENTS.c.reviewer_id, ASSIGNMENTS.c.expires_at)
        .where(ASSIGNMENTS.c.status == "open", or_(ASSIGNMENTS.c.expires_at < bindparam("now"), ASSIGNMENTS.c.reviewer_id == rid)),
        "lease_extend": update(ASSIGNMENTS).where(ASSIGNMENTS.c.id == bindparam("p_id")).values(expires_at=bindparam("p_expires")),
        "take_slot_guarded": update(ITEMS).where(ITEMS.c.id == p_item, ITEMS.c.status == "open", ITEMS.c.n_claimed < ITEMS.c.overlap)
        .values(n_claimed=ITEMS.c.n_claimed + 1, status=case(
            (and_(ITEMS.c.status == "open", ITEMS.c.n_claimed + 1 >= ITEMS.c.overlap), "full"), else_=ITEMS.c.status)),
        "item": select(ITEMS).where(ITEMS.c.id == p_item),
    }


class Queue:
    """Items on the queue: loading them, serving them under leases, reading one back."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._picks: dict[tuple[ItemFilter, int], Any] = {}
        self._hot = _hot_statements(db.dialect)

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

        with self.db.tx(write=True) as conn:
            base = conn.execute(select(func.count()).select_from(ITEMS)).scalar() or 0
            seen: set[str] = set()
            for start in range(0, len(rows), 1000):
                chunk = rows[start:start + 1000]
                prepared = []
                for i, row in enumerate(chunk):
                    messages = clean_messages(row.get("messages"), f"{dataset} row {start + i + 1}")
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
            self.db.audit(conn, "system", "load", dataset=dataset, dataset_run=run_id, load_run=load_run,
                          overlap=overlap, order=order, **counts)
        return counts

    def load_pairwise(self, rows: list[dict[str, Any]], overlap: int = 1, dataset: str = "in-memory",
                      run_id: str | None = None, load_run: str | None = None) -> dict[str, int]:
        """Queue pairwise items (rows already checked by `review_app.pairwise.pairwise_rows`: id, messages =
        the prompt, candidates with ids and provenance); ids already in the store are left as they are.
        They are served in a fixed shuffle by id (`order=random`)."""
        if overlap < 1:
            raise StudioError(f"--overlap must be at least 1 (got {overlap}).")
        now = utcnow()
        counts = {"input": len(rows), "added": 0, "already_present": 0, "duplicate_in_input": 0, "quarantined": 0}
        with self.db.tx(write=True) as conn:
            seen: set[str] = set()
            for start in range(0, len(rows), 1000):
                chunk = [r for r in rows[start:start + 1000]]
                present = set(conn.execute(select(ITEMS.c.id).where(ITEMS.c.id.in_([r["id"] for r in chunk]))).scalars())
                new_rows = []
                for row in chunk:
                    if row["id"] in seen:
                        counts["duplicate_in_input"] += 1
                        continue
                    seen.add(row["id"])
                    if row["id"] in present:
                        counts["already_present"] += 1
                        continue
                    f = item_fields(row)
                    new_rows.append({
                        "id": row["id"], "messages": row["messages"], "origin": row.get("origin") or "pairwise",
                        "source": row.get("source") or "", **f, "dataset": dataset, "dataset_run": run_id,
                        "load_run": load_run, "overlap": overlap, "priority": queue_priority("random", row["id"], None, 0),
                        "status": "open", "n_claimed": 0, "n_decided": 0, "loaded_at": now, "kind": "pairwise",
                        "candidates": row["candidates"]})
                if new_rows:
                    conn.execute(ITEMS.insert(), new_rows)
                    counts["added"] += len(new_rows)
            self.db.audit(conn, "system", "load", dataset=dataset, dataset_run=run_id, load_run=load_run,
                          overlap=overlap, order="random", kind="pairwise", **counts)
        return counts

    def next_item(self, reviewer: str, filters: ItemFilter | dict[str, Any] | None = None) -> ReviewItem | None:
        """The item this reviewer holds (if it still matches the filters), else a newly leased one."""
        flt = ItemFilter.of(filters)
        st = self._hot
        now = utcnow()
        with self.db.tx(write=True, durable=False) as conn:
            rid = self.db.rid(conn, reviewer)
            # One read finds both the stale leases of anyone and this reviewer's own open leases.
            leases = conn.execute(st["open_leases"], {"now": now, "rid": rid}).all()
            mine = []
            for lease in leases:
                if lease.expires_at < now:
                    expire_one(conn, lease.id, lease.item_id)
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
                        expire_one(conn, m.id, m.item_id)
                if held:
                    expires = now + self.db.lease
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
                                               "leased_at": now, "expires_at": now + self.db.lease}).one()
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
            if self.db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True, of=ITEMS)
            if len(self._picks) > 512:
                self._picks.clear()
            self._picks[(flt, rid)] = query
        return query

    def _item(self, conn: Connection, item_id: str, lease: tuple[int, dt.datetime | None] | None = None) -> ReviewItem:
        row = conn.execute(self._hot["item"], {"p_item": item_id}).first()
        if row is None:
            raise StudioError(f"no review item with id {item_id!r}; load its data set with `studio review load`.")
        return ReviewItem(
            id=row.id, messages=row.messages, origin=row.origin, source=row.source, meta=row.meta,
            scores=row.scores, quality=row.quality, pii_count=row.pii_count, pii_flags=row.pii_flags,
            tags=tags_list(row.tags), dataset=row.dataset, attempt=lease[0] if lease else 0,
            expires_at=lease[1] if lease else None,
            extra={"status": row.status, "overlap": row.overlap, "n_decided": row.n_decided,
                   "dataset_run": row.dataset_run, "kind": row.kind, "candidates": row.candidates})

    def get_item(self, item_id: str) -> ReviewItem:
        with self.db.tx() as conn:
            return self._item(conn, item_id)

    def filter_options(self) -> dict[str, Any]:
        """What the filter widgets can offer: origins, tags, sources' files, the quality range."""
        with self.db.tx() as conn:
            origins = sorted(conn.execute(select(ITEMS.c.origin).distinct()).scalars())
            tag_strings = conn.execute(select(ITEMS.c.tags).distinct()).scalars()
            qmin, qmax = conn.execute(select(func.min(ITEMS.c.quality), func.max(ITEMS.c.quality))).one()
        tags = sorted({t for s in tag_strings for t in tags_list(s)})
        return {"origins": origins, "tags": tags, "quality": (qmin, qmax)}
