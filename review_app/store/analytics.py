"""What review produced, read from decisions: the approved examples under an approval policy, disagreements,
inter-annotator agreement and progress counts."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import exists, func, or_, select

from review_app.store.database import ASSIGNMENTS, DECISIONS, ITEMS, OFF_QUEUE_SOURCES, Database
from review_app.store.decisions import decision_rows
from studio.errors import StudioError

POLICIES = ("unanimous", "majority", "any")


def person_of(reviewer: str) -> str:
    """Who a reviewer name stands for: the Label Studio annotator `labelstudio:ann@x.org` and the app login
    `ann@x.org` are one person, so one person deciding in both places is never two votes."""
    from review_app.labelstudio import SOURCE

    return reviewer.removeprefix(f"{SOURCE}:").casefold()


def people_votes(ds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """People's decisions among `ds` (oldest first; rules and resolutions left out), the latest one per person."""
    latest: dict[str, dict[str, Any]] = {}
    for d in ds:
        if d["source"] not in OFF_QUEUE_SOURCES:
            latest.pop(person_of(d["reviewer"]), None)
            latest[person_of(d["reviewer"])] = d
    return list(latest.values())


class Analytics:
    """Outcomes of review: approved items, disagreements, agreement, progress."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _active_by_item(self, item_ids: Iterable[str] | None = None) -> dict[str, list[dict[str, Any]]]:
        # pairwise decisions (a choice between candidates) are not verdicts on one example: see review_app.pairwise
        where = [DECISIONS.c.undone_at.is_(None), DECISIONS.c.verdict != "skip", DECISIONS.c.choice.is_(None)]
        if item_ids is not None:
            where.append(DECISIONS.c.item_id.in_(list(item_ids)))
        by_item: dict[str, list[dict[str, Any]]] = defaultdict(list)
        with self.db.tx() as conn:
            for d in decision_rows(conn, *where):
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
        with self.db.tx() as conn:
            items = {r.id: r for r in conn.execute(select(ITEMS).where(ITEMS.c.id.in_(list(by_item)))
                                                    .order_by(ITEMS.c.priority, ITEMS.c.id)).all()} if by_item else {}
        out = []
        for item_id, row in items.items():
            ds = by_item[item_id]
            resolutions = [d for d in ds if d["source"] == "resolution"]
            people = people_votes(ds)
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
            people = people_votes(ds)
            if len({d["verdict"] for d in people}) > 1:
                resolution = [d for d in ds if d["source"] == "resolution"]
                out.append({"item_id": item_id, "decisions": people,
                            "resolution": resolution[-1] if resolution else None})
        return out

    def agreement(self) -> dict[str, Any]:
        """Cohen's kappa per pair, Fleiss' kappa and Krippendorff's alpha over people's current decisions."""
        from review_app.agreement import agreement_report

        verdicts: dict[str, dict[str, str]] = defaultdict(dict)
        ratings: dict[str, dict[str, int]] = defaultdict(dict)
        for item_id, ds in self._active_by_item().items():
            for d in people_votes(ds):
                verdicts[item_id][person_of(d["reviewer"])] = d["verdict"]
                if d["rating"] is not None:
                    ratings[item_id][person_of(d["reviewer"])] = d["rating"]
        return agreement_report(verdicts, ratings)

    def progress(self, reviewer: str | None = None) -> dict[str, Any]:
        """Counts for the progress bars: overall, and for one reviewer when named."""
        with self.db.tx() as conn:
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
                rid = self.db.rid(conn, reviewer)
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
