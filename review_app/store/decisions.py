"""Decisions on review items: recording them (once per idempotency key), undo, a lead's resolution, rule
decisions, and reading decisions and the audit log back.

A second decision by the same reviewer and source replaces the first, which stays in the table marked
undone: nothing a reviewer did is ever deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, select, update
from sqlalchemy.exc import IntegrityError

from review_app.models import VERDICTS, utcnow
from review_app.store.database import (
    ASSIGNMENTS,
    AUDIT,
    DECISIONS,
    ITEMS,
    OFF_QUEUE_SOURCES,
    REVIEWERS,
    Database,
    upsert_for,
)
from review_app.store.queue import clean_messages, expire, tags_list, take_slot
from studio.errors import StudioError


def _hot_statements(dialect: str) -> dict[str, Any]:
    """The statements of the save-decision path, built once per store (see `queue._hot_statements`)."""
    rid, item = bindparam("rid"), bindparam("item_id")
    joined = (ITEMS.outerjoin(ASSIGNMENTS, and_(ASSIGNMENTS.c.item_id == ITEMS.c.id, ASSIGNMENTS.c.reviewer_id == rid))
              .outerjoin(DECISIONS, and_(DECISIONS.c.item_id == ITEMS.c.id, DECISIONS.c.reviewer_id == rid,
                                         DECISIONS.c.source == bindparam("source"), DECISIONS.c.undone_at.is_(None))))
    state_cols = [ASSIGNMENTS.c.id.label("a_id"), ASSIGNMENTS.c.status.label("a_status"),
                  ASSIGNMENTS.c.attempt.label("a_attempt"), DECISIONS.c.id.label("d_id"),
                  DECISIONS.c.verdict.label("d_verdict")]
    state = select(ITEMS.c.id, *state_cols).select_from(joined).where(ITEMS.c.id == item).limit(1)
    state_msgs = select(ITEMS.c.id, ITEMS.c.messages, *state_cols).select_from(joined).where(ITEMS.c.id == item).limit(1)
    insert_decision = (upsert_for(dialect)(DECISIONS).on_conflict_do_nothing(index_elements=[DECISIONS.c.idempotency_key])
                       .returning(DECISIONS.c.id))
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
        "state": state, "state_with_messages": state_msgs, "insert_decision": insert_decision,
        "undo_decision": update(DECISIONS).where(DECISIONS.c.id == bindparam("p_id")).values(undone_at=bindparam("p_now")),
        "assignment_status": update(ASSIGNMENTS).where(ASSIGNMENTS.c.id == bindparam("p_id")).values(status=bindparam("p_status")),
        **counts,
    }


def decision_rows(conn: Connection, *where: Any) -> list[dict[str, Any]]:
    """Decisions matching `where`, oldest first, each with the reviewer's name and role."""
    rows = conn.execute(select(DECISIONS, REVIEWERS.c.name.label("reviewer"), REVIEWERS.c.role)
                        .join(REVIEWERS, REVIEWERS.c.id == DECISIONS.c.reviewer_id)
                        .where(*where).order_by(DECISIONS.c.created_at, DECISIONS.c.id)).all()
    out = []
    for r in rows:
        d = r._asdict()
        d.pop("reviewer_id", None)
        out.append(d)
    return out


class Decisions:
    """Writing and reading reviewers' decisions."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._hot = _hot_statements(db.dialect)

    def record_decision(self, item_id: str, reviewer: str, verdict: str,
                        edited_messages: list[dict[str, str]] | None = None, rating: int | None = None,
                        reasons: Sequence[str] = (), comment: str | None = None, seconds: float | None = None,
                        source: str = "app", idempotency_key: str | None = None,
                        choice: str | None = None) -> dict[str, Any]:
        """Store one decision (once per idempotency key) and update the queue; returns the stored decision.
        `choice` is for pairwise items only (the winning candidate's id or "tie"; see `review_app.pairwise`)."""
        if verdict not in VERDICTS:
            raise StudioError(f"verdict {verdict!r} is unknown; use one of {', '.join(VERDICTS)}.")
        if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5):
            raise StudioError(f"rating must be a whole number from 1 to 5 (got {rating!r}).")
        reasons = [str(r) for r in reasons]
        try:
            with self.db.tx(write=True) as conn:
                return self._record(conn, item_id, reviewer, verdict, edited_messages, rating, reasons,
                                    comment, seconds, source, idempotency_key, choice)
        except IntegrityError:
            # Another process stored the same key between our check and our insert: that one stands.
            if idempotency_key is None:
                raise
            found = self.decisions(key=idempotency_key, include_undone=True)
            if not found:
                raise
            return {**found[0], "created": False}

    def _record(self, conn: Connection, item_id: str, reviewer: str, verdict: str, edited_messages, rating,
                reasons, comment, seconds, source, key, choice=None) -> dict[str, Any]:
        # The hot path of the app: one read (item, this reviewer's assignment and their current decision in one
        # join), then only writes, all with statements built once (see `_hot_statements`); the stored decision
        # is returned from the values written, not read back.
        st = self._hot
        now = utcnow()
        rid, role = self.db.reviewer(conn, reviewer, create_role=None if source == "app" else "external")
        state = conn.execute(st["state_with_messages" if edited_messages is not None else "state"],
                             {"item_id": item_id, "rid": rid, "source": source}).first()
        if state is None:
            raise StudioError(f"no review item with id {item_id!r}; load its data set with `studio review load`.")
        on_queue = source not in OFF_QUEUE_SOURCES
        key = key or f"{source}:{reviewer}:{item_id}:{state.a_attempt if state.a_id is not None else 0}"
        edited = None
        if edited_messages is not None:
            edited = clean_messages(edited_messages, f"edited messages of item {item_id}")
            if edited == state.messages:
                edited = None
        row = {"item_id": item_id, "reviewer_id": rid, "verdict": verdict, "edited_messages": edited, "rating": rating,
               "reasons": list(reasons), "comment": comment or None, "seconds": seconds, "source": source,
               "idempotency_key": key, "created_at": now, "undone_at": None, "choice": choice}
        # Idempotency without a lookup: the unique key refuses the second insert, which then writes nothing.
        decision_id = conn.execute(st["insert_decision"], row).scalar()
        if decision_id is None:
            existing = decision_rows(conn, DECISIONS.c.idempotency_key == key)
            return {**existing[0], "created": False}
        n_decided = 0
        if state.d_id is not None:  # a second decision by this reviewer and source replaces the first
            conn.execute(st["undo_decision"], {"p_id": state.d_id, "p_now": now})
            if on_queue and state.d_verdict != "skip":
                n_decided -= 1
            self.db.audit(conn, reviewer, "replace", item_id, state.d_id)
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
        self.db.audit(conn, reviewer, "decide", item_id, decision_id, verdict=verdict, source=source,
                      rating=rating, reasons=list(reasons), edited=edited is not None, key=key,
                      **({"choice": choice} if choice is not None else {}))
        out = {"id": decision_id, **row, "reviewer": reviewer, "role": role, "created": True}
        del out["reviewer_id"]
        return out

    def undo_last(self, reviewer: str) -> dict[str, Any] | None:
        """Withdraw this reviewer's last app decision: it stays in the table marked undone, and the item is
        leased back to them so it is served next."""
        now = utcnow()
        with self.db.tx(write=True) as conn:
            rid = self.db.rid(conn, reviewer)
            last = conn.execute(select(DECISIONS.c.id, DECISIONS.c.item_id, DECISIONS.c.verdict).where(
                DECISIONS.c.reviewer_id == rid, DECISIONS.c.source == "app", DECISIONS.c.undone_at.is_(None))
                .order_by(DECISIONS.c.created_at.desc(), DECISIONS.c.id.desc()).limit(1)).first()
            if last is None:
                return None
            expire(conn, and_(ASSIGNMENTS.c.reviewer_id == rid, ASSIGNMENTS.c.item_id != last.item_id))
            conn.execute(update(DECISIONS).where(DECISIONS.c.id == last.id).values(undone_at=now))
            assignment = conn.execute(select(ASSIGNMENTS.c.id, ASSIGNMENTS.c.status)
                                      .where(ASSIGNMENTS.c.item_id == last.item_id, ASSIGNMENTS.c.reviewer_id == rid)).first()
            if assignment.status not in ("open", "done"):
                take_slot(conn, last.item_id, guarded=False)
            conn.execute(update(ASSIGNMENTS).where(ASSIGNMENTS.c.id == assignment.id).values(
                status="open", attempt=ASSIGNMENTS.c.attempt + 1, leased_at=now, expires_at=now + self.db.lease))
            if last.verdict != "skip":
                conn.execute(update(ITEMS).where(ITEMS.c.id == last.item_id).values(n_decided=ITEMS.c.n_decided - 1))
            self.db.audit(conn, reviewer, "undo", last.item_id, last.id, verdict=last.verdict)
            return decision_rows(conn, DECISIONS.c.id == last.id)[0]

    def resolve(self, item_id: str, lead: str, verdict: str, edited_messages: list[dict[str, str]] | None = None,
                comment: str | None = None) -> dict[str, Any]:
        """A lead's final decision on an item (e.g. where annotators disagree); it beats every other."""
        if verdict not in ("accept", "reject"):
            raise StudioError(f"a resolution is accept or reject (got {verdict!r}).")
        with self.db.tx() as conn:
            role = conn.execute(select(REVIEWERS.c.role).where(REVIEWERS.c.name == lead)).scalar()
        if role != "lead":
            raise StudioError(f"{lead!r} is not a lead; only leads resolve disagreements.")
        n = len(self.decisions(item_id=item_id, source="resolution", include_undone=True))
        return self.record_decision(item_id, lead, verdict, edited_messages=edited_messages, comment=comment,
                                    source="resolution", idempotency_key=f"resolution:{item_id}:{n}")

    def auto_decide(self, rule_expr: str, name: str, verdict: str = "accept") -> dict[str, Any]:
        """Decide, as reviewer `rule:<name>`, every open item no person has touched that the rule matches."""
        import polars as pl

        from studio.rules import parse_rule

        if verdict not in ("accept", "reject"):
            raise StudioError(f"a rule decides accept or reject (got {verdict!r}).")
        if not name or ":" in name:
            raise StudioError(f"rule name {name!r} is not allowed; use a short name without ':'.")
        rule = parse_rule(rule_expr)
        actor = f"rule:{name}"
        now = utcnow()
        with self.db.tx(write=True) as conn:
            rid = self.db.rid(conn, actor, create_role="rule")
            candidates = conn.execute(select(ITEMS.c.id, ITEMS.c.quality, ITEMS.c.pii_count, ITEMS.c.scores, ITEMS.c.origin,
                                             ITEMS.c.source, ITEMS.c.tags)
                                      .where(ITEMS.c.status == "open", ITEMS.c.n_claimed == 0, ITEMS.c.kind == "single")).all()
            fields = {"quality": lambda r: r.quality, "pii_count": lambda r: r.pii_count, "origin": lambda r: r.origin,
                      "source": lambda r: r.source, "tags": lambda r: tags_list(r.tags)}
            columns = {n: [fields[n](r) if n in fields else r.scores.get(n) for r in candidates] for n in sorted(rule.names)}
            missing = {n: sum(v is None for v in values) for n, values in columns.items() if any(v is None for v in values)}
            frame = pl.DataFrame({"id": [r.id for r in candidates], **columns}, strict=False)
            matched = frame.filter(rule.mask(frame)).get_column("id").to_list()
            for start in range(0, len(matched), 1000):
                chunk = matched[start:start + 1000]
                conn.execute(update(ITEMS).where(ITEMS.c.id.in_(chunk)).values(status="auto"))
                conn.execute(DECISIONS.insert(), [{
                    "item_id": i, "reviewer_id": rid, "verdict": verdict, "edited_messages": None, "rating": None,
                    "reasons": [], "comment": f"rule {name}: {rule.text}", "seconds": None, "source": "rule",
                    "idempotency_key": f"{actor}:{i}", "created_at": now, "undone_at": None, "choice": None}
                    for i in chunk])
            for start in range(0, len(matched), 1000):
                chunk = matched[start:start + 1000]
                ids = dict(conn.execute(select(DECISIONS.c.item_id, DECISIONS.c.id).where(
                    DECISIONS.c.reviewer_id == rid, DECISIONS.c.item_id.in_(chunk))).all())
                conn.execute(AUDIT.insert(), [{"at": now, "actor": actor, "action": "decide", "item_id": i,
                                               "decision_id": ids[i], "details": {"verdict": verdict, "source": "rule",
                                                                                  "rule": rule.text}} for i in chunk])
            already = conn.execute(select(func.count()).select_from(DECISIONS).where(DECISIONS.c.reviewer_id == rid)).scalar()
            self.db.audit(conn, actor, "auto_decide", rule=rule.text, verdict=verdict, examined=len(candidates),
                          decided=len(matched))
        return {"rule": rule.text, "reviewer": actor, "verdict": verdict, "examined": len(candidates),
                "decided": len(matched), "decided_by_rule_in_total": already,
                "missing": dict(missing), "names": sorted(rule.names)}

    def record_split_move(self, item_id: str, by: str, to: str, reason: str, was: str | None = None) -> None:
        """A person's decision that an item (and its duplicate group) goes to split `to` in the next dataset
        versions (`review_app.versions`); kept in the audit log as action `move_split`."""
        if not reason.strip():
            raise StudioError("a split move needs a reason.")
        with self.db.tx(write=True) as conn:
            if conn.execute(select(ITEMS.c.id).where(ITEMS.c.id == item_id)).first() is None:
                raise StudioError(f"no review item {item_id!r} in this review DB.")
            self.db.audit(conn, by, "move_split", item_id, to=to, reason=reason, was=was)

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
        with self.db.tx() as conn:
            return decision_rows(conn, *where)

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
        with self.db.tx() as conn:
            return [r._asdict() for r in conn.execute(query).all()]
