"""What review produced, read from decisions: the approved examples under an approval policy, disagreements,
inter-annotator agreement and progress counts; and the lead dashboard's figures (people, pace, queue), which are
aggregated in SQL (the same statements on SQLite and PostgreSQL) so the page stays fast at 100k items.

People's current votes (who said what on which item) feed the per-reviewer figures, agreement and the list of
disagreements: they come from one compact SQL projection (item, reviewer, verdict, rating, seconds; no JSON, no
timestamps) read once per decisions version into a Polars frame, instead of every full decision row into Python
dicts (bench/README.md `review`: the lead page at 100k decisions)."""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from typing import Any

from sqlalchemy import String, and_, case, exists, func, or_, select, type_coerce

from review_app.store.database import ASSIGNMENTS, DECISIONS, ITEMS, OFF_QUEUE_SOURCES, REVIEWERS, Database
from review_app.store.decisions import decision_rows
from studio.errors import StudioError

POLICIES = ("unanimous", "majority", "any")


@functools.lru_cache(maxsize=4096)
def person_of(reviewer: str) -> str:
    """Who a reviewer name stands for: the Label Studio annotator `labelstudio:ann@x.org` and the app login
    `ann@x.org` are one person, so one person deciding in both places is never two votes."""
    from review_app.labelstudio import SOURCE

    return reviewer.removeprefix(f"{SOURCE}:").casefold()


#: how many source files and tags the dashboard's queue breakdown lists (the largest first)
TOP_GROUPS = 15
_LS_PREFIX = "labelstudio:"  # review_app.labelstudio.SOURCE + ":", spelled out so SQL can use it


def _person_sql():
    """`person_of` in SQL: the reviewer's name without the Label Studio prefix, lower-cased."""
    name = REVIEWERS.c.name
    return func.lower(case((name.like(_LS_PREFIX + "%"), func.substr(name, len(_LS_PREFIX) + 1)), else_=name))


def _current_votes():
    """People's current verdicts, one per (item, person): the latest active accept/reject of each person on each
    item, whether it came from the app or Label Studio (as `people_votes`, in SQL)."""
    person = _person_sql()
    ranked = (select(DECISIONS.c.item_id, DECISIONS.c.verdict, DECISIONS.c.seconds, DECISIONS.c.source,
                     person.label("person"),
                     func.row_number().over(partition_by=(DECISIONS.c.item_id, person),
                                            order_by=(DECISIONS.c.created_at.desc(), DECISIONS.c.id.desc())).label("rn"))
              .select_from(DECISIONS.join(REVIEWERS, REVIEWERS.c.id == DECISIONS.c.reviewer_id))
              .where(DECISIONS.c.undone_at.is_(None), DECISIONS.c.verdict != "skip",
                     DECISIONS.c.source.notin_(OFF_QUEUE_SOURCES))
              .subquery("ranked"))
    return select(ranked.c.item_id, ranked.c.verdict, ranked.c.seconds, ranked.c.source, ranked.c.person).where(
        ranked.c.rn == 1).cte("votes")


def _medians(conn, key, value) -> dict[Any, float]:
    """Median of `value` per `key` (columns of one subquery), in SQL: the middle row (or the mean of the two middle
    rows) of each group by a window rank; nulls left out. SQLite has no median or percentile function."""
    ranked = select(key.label("k"), value.label("v"),
                    func.row_number().over(partition_by=key, order_by=value).label("rn"),
                    func.count().over(partition_by=key).label("n")).where(value.is_not(None)).subquery("m")
    stmt = (select(ranked.c.k, func.avg(ranked.c.v))
            .where(or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == (ranked.c.n + 2) // 2))
            .group_by(ranked.c.k))
    return {k: float(v) for k, v in conn.execute(stmt).all()}


def _source_file():
    """An item's source without its `:line` suffix (`claims.jsonl:12` → `claims.jsonl`); other sources unchanged."""
    digits = func.rtrim(ITEMS.c.source, "0123456789")
    return case((and_(digits.like("%:"), digits != ITEMS.c.source), func.rtrim(digits, ":")), else_=ITEMS.c.source)


def people_votes(ds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """People's decisions among `ds` (oldest first; rules and resolutions left out), the latest one per person."""
    latest: dict[str, dict[str, Any]] = {}
    for d in ds:
        if d["source"] not in OFF_QUEUE_SOURCES:
            latest.pop(person_of(d["reviewer"]), None)
            latest[person_of(d["reviewer"])] = d
    return list(latest.values())


def _latest_per_person(frame):
    """Rows of `frame` (oldest first) reduced to each person's latest on each item, as `people_votes` does."""
    return frame.unique(subset=["item_id", "person"], keep="last", maintain_order=True)


class Analytics:
    """Outcomes of review: approved items, disagreements, agreement, progress."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._votes: tuple[tuple, Any] | None = None  # (decisions_version, frame): see `votes_frame`

    def votes_frame(self):
        """People's current verdicts as a Polars frame, one row per (item, person): item_id, person, verdict, rating,
        seconds, source, `pairwise` (a choice between candidates, not a verdict on one example) and decision_id. Read in one SQL
        statement of narrow columns (no JSON, no timestamps), oldest first, and reduced to each person's latest in Polars; kept until the
        next decision is recorded or undone (`decisions_version`), so the dashboard's parts share one read."""
        import polars as pl

        version = self.decisions_version()
        cached = self._votes
        if cached is not None and cached[0] == version:
            return cached[1]
        d = DECISIONS.c
        stmt = (select(d.item_id, d.reviewer_id, d.verdict, d.rating, d.seconds, d.source, d.choice.is_not(None), d.id)
                .where(d.undone_at.is_(None), d.verdict != "skip", d.source.notin_(OFF_QUEUE_SOURCES))
                .order_by(d.created_at, d.id))
        with self.db.tx() as conn:
            people = {rid: person_of(name) for rid, name in conn.execute(select(REVIEWERS.c.id, REVIEWERS.c.name))}
            # straight from the driver's cursor: SQLAlchemy's per-row objects cost more than the query at 100k rows
            # (the statement has constants only, so its binds are rendered inline)
            cursor = conn.connection.cursor()
            cursor.execute(str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})))
            rows = cursor.fetchall()
            cursor.close()
        schema = {"item_id": pl.String, "reviewer_id": pl.Int64, "verdict": pl.String, "rating": pl.Int64,
                  "seconds": pl.Float64, "source": pl.String, "pairwise": pl.Boolean, "decision_id": pl.Int64}
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
        frame = pl.DataFrame([pl.Series(name, col, dtype=dtype, strict=False)
                              for (name, dtype), col in zip(schema.items(), columns, strict=True)])
        frame = _latest_per_person(frame.with_columns(
            pl.col("reviewer_id").replace_strict(people, return_dtype=pl.String).alias("person")).drop("reviewer_id"))
        self._votes = (version, frame)
        return frame

    def _active_by_item(self) -> dict[str, list[dict[str, Any]]]:
        # pairwise decisions (a choice between candidates) are not verdicts on one example: see review_app.pairwise
        where = [DECISIONS.c.undone_at.is_(None), DECISIONS.c.verdict != "skip", DECISIONS.c.choice.is_(None)]
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
        """Items where people's current verdicts differ, with those verdicts' decisions (id, reviewer, verdict, rating,
        reasons, comment, seconds, source, created_at) and any lead resolution, in the order of each item's first
        current vote. The items and decision ids come from `votes_frame`; only those decisions are read."""
        import polars as pl

        votes = (self.votes_frame().filter(~pl.col("pairwise"))
                 .filter(pl.col("verdict").n_unique().over("item_id") > 1).select("item_id", "decision_id"))
        if votes.is_empty():
            return []
        d = DECISIONS.c
        # reasons unparsed: most are "[]", and a JSON parse per row was a third of the time at 100k decisions
        cols = (d.id, REVIEWERS.c.name, d.verdict, d.rating, type_coerce(d.reasons, String), d.comment, d.seconds,
                d.source, d.created_at, d.item_id)
        keys = ("id", "reviewer", "verdict", "rating", "reasons", "comment", "seconds", "source", "created_at", "item_id")
        ids = votes["decision_id"].to_list()
        with self.db.tx() as conn:
            found = []
            for k in range(0, len(ids), 5000):  # SQLite allows 32,766 bound values per statement
                found += conn.execute(select(*cols).join(REVIEWERS, REVIEWERS.c.id == d.reviewer_id)
                                      .where(d.id.in_(ids[k:k + 5000]))).all()
            resolutions = conn.execute(select(*cols).join(REVIEWERS, REVIEWERS.c.id == d.reviewer_id)
                                       .where(d.source == "resolution", d.undone_at.is_(None), d.choice.is_(None))
                                       .order_by(d.created_at, d.id)).all()

        def as_dict(r) -> dict[str, Any]:
            row = dict(zip(keys, r, strict=True))
            raw = row["reasons"]
            row["reasons"] = [] if raw == "[]" else json.loads(raw) if isinstance(raw, str) else list(raw or ())
            return row

        by_id = {r[0]: as_dict(r) for r in found}
        resolved = {r.item_id: as_dict(r) for r in resolutions}  # the latest per item
        out: dict[str, dict[str, Any]] = {}
        for item_id, decision_id in votes.iter_rows():
            entry = out.setdefault(item_id, {"item_id": item_id, "decisions": [], "resolution": resolved.get(item_id)})
            entry["decisions"].append(by_id[decision_id])
        return list(out.values())

    def agreement(self) -> dict[str, Any]:
        """Cohen's kappa per pair, Fleiss' kappa and Krippendorff's alpha over people's current decisions (from
        `votes_frame`, on count tables: `review_app.agreement.agreement_from_votes`)."""
        import polars as pl

        from review_app.agreement import agreement_from_votes

        return agreement_from_votes(self.votes_frame().filter(~pl.col("pairwise")))

    def reviewer_stats(self) -> list[dict[str, Any]]:
        """Per person (Label Studio and app names joined): items decided, accept rate, median seconds per decision and
        agreement with the others (share of (their verdict, another person's verdict) pairs on shared items that
        match), over people's current verdicts (`votes_frame`); most decided first."""
        import polars as pl

        others = pl.len().over("item_id") - 1  # other people's verdicts on the same item
        same = pl.len().over("item_id", "verdict") - 1  # ... that match this one
        per = (self.votes_frame().with_columns(others.alias("others"), same.alias("same"))
               .group_by("person").agg(pl.len().alias("decided"), (pl.col("verdict") == "accept").sum().alias("acc"),
                                       pl.col("seconds").median().alias("median"), pl.col("others").sum().alias("pairs"),
                                       pl.col("same").sum().alias("agree"), (pl.col("others") > 0).sum().alias("shared")))
        out = [{"reviewer": r["person"], "decided": r["decided"], "accept_rate": round(r["acc"] / r["decided"], 4),
                "median_seconds": round(r["median"], 2) if r["median"] is not None else None,
                "shared_items": r["shared"], "agreement": round(r["agree"] / r["pairs"], 4) if r["pairs"] else None}
               for r in per.iter_rows(named=True)]
        return sorted(out, key=lambda r: (-r["decided"], r["reviewer"]))

    def source_stats(self) -> list[dict[str, Any]]:
        """Decisions side by side by where they were made (`app`, `labelstudio`, rules, resolutions): current
        accept/reject decisions, reviewers, accept rate and median seconds per decision."""
        d = DECISIONS.c
        current = [d.undone_at.is_(None), d.verdict != "skip"]
        accepts = func.sum(case((d.verdict == "accept", 1), else_=0))
        with self.db.tx() as conn:
            rows = conn.execute(select(d.source, func.count(), accepts, func.count(func.distinct(d.reviewer_id)),
                                       func.count(func.distinct(d.item_id)))
                                .where(*current).group_by(d.source)).all()
            sub = select(d.source, d.seconds).where(*current).subquery("s")
            medians = _medians(conn, sub.c.source, sub.c.seconds)
        return sorted(({"source": s, "decisions": int(n), "items": int(items), "reviewers": int(r),
                        "accept_rate": round(int(acc) / int(n), 4),
                        "median_seconds": round(medians[s], 2) if s in medians else None}
                       for s, n, acc, r, items in rows), key=lambda r: -r["decisions"])

    def decisions_by_day(self) -> list[dict[str, Any]]:
        """Current accept/reject decisions per UTC day and source, oldest day first."""
        d = DECISIONS.c
        day = func.date(d.created_at)
        with self.db.tx() as conn:
            rows = conn.execute(select(day, d.source, func.count()).where(d.undone_at.is_(None), d.verdict != "skip")
                                .group_by(day, d.source).order_by(day, d.source)).all()
        return [{"day": str(day_)[:10], "source": s, "decisions": int(n)} for day_, s, n in rows]

    def queue_breakdown(self) -> dict[str, Any]:
        """Items by status, by review stage (awaiting a first review, awaiting another reviewer, complete, decided by
        a rule), by origin, by source file and by tag (the largest TOP_GROUPS of each of the last two)."""
        i = ITEMS.c
        stage = case((i.status == "auto", "decided by rule"), (i.n_decided >= i.overlap, "complete"),
                     (i.n_decided == 0, "awaiting first review"), else_="awaiting another reviewer")
        count = func.count().label("n")
        source = _source_file().label("g")
        with self.db.tx() as conn:
            status = conn.execute(select(i.status, count).group_by(i.status).order_by(i.status)).all()
            stages = conn.execute(select(stage.label("g"), count).group_by(stage)).all()
            origin = conn.execute(select(i.origin, count).group_by(i.origin).order_by(count.desc(), i.origin)).all()
            sources = conn.execute(select(source, count).group_by(source).order_by(count.desc(), source).limit(TOP_GROUPS)).all()
            tag_sets = conn.execute(select(i.tags, count).group_by(i.tags)).all()
        tags: dict[str, int] = defaultdict(int)
        for tag_set, n in tag_sets:  # few distinct tag sets even at 100k items; "|a|b|" splits into its tags
            for tag in (t for t in (tag_set or "").split("|") if t):
                tags[tag] += int(n)
        return {"status": {k: int(n) for k, n in status}, "stage": {k: int(n) for k, n in stages},
                "origin": {k: int(n) for k, n in origin}, "source": {k: int(n) for k, n in sources},
                "tag": dict(sorted(tags.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_GROUPS])}

    def awaiting_second(self, limit: int = 50) -> dict[str, Any]:
        """Items that one or more people decided but that need more reviewers (overlap not reached): how many, and
        the first `limit` in queue order with who decided them."""
        i = ITEMS.c
        where = [i.status != "auto", i.n_decided >= 1, i.n_decided < i.overlap]
        votes = _current_votes()
        with self.db.tx() as conn:
            total = conn.execute(select(func.count()).select_from(ITEMS).where(*where)).scalar() or 0
            first = select(i.id, i.overlap, i.n_decided, i.priority).where(*where).order_by(i.priority, i.id).limit(limit).subquery("f")
            rows = conn.execute(select(first.c.id, first.c.overlap, first.c.n_decided, votes.c.person, votes.c.verdict)
                                .select_from(first.outerjoin(votes, votes.c.item_id == first.c.id))
                                .order_by(first.c.priority, first.c.id, votes.c.person)).all()
        items: dict[str, dict[str, Any]] = {}
        for item_id, overlap, n_decided, person, verdict in rows:
            entry = items.setdefault(item_id, {"item_id": item_id, "decided": int(n_decided), "needed": int(overlap),
                                               "by": []})
            if person is not None:
                entry["by"].append(f"{person}: {verdict}")
        return {"count": int(total), "items": list(items.values())}

    def decisions_version(self) -> tuple[int, int, str]:
        """Changes whenever a decision is recorded, replaced or undone: (decisions, newest id, latest undo time)."""
        d = DECISIONS.c
        with self.db.tx() as conn:
            n, newest, undone = conn.execute(select(func.count(), func.max(d.id), func.max(d.undone_at))).one()
        return int(n), int(newest or 0), str(undone)

    def dashboard_version(self) -> tuple:
        """Changes whenever anything the lead page shows may have changed: a decision (`decisions_version`), items
        loaded or removed, a claim taken. A lease that lapses changes an item's status without changing this; the
        page's cache also expires after a minute for that."""
        with self.db.tx() as conn:
            items = conn.execute(select(func.count(), func.max(ITEMS.c.loaded_at))).one()
            claims = conn.execute(select(func.count(), func.max(ASSIGNMENTS.c.id))).one()
        return (*self.decisions_version(), *map(str, items), *map(str, claims))

    def dashboard(self) -> dict[str, Any]:
        """Everything the lead dashboard shows, each part aggregated in SQL."""
        return {"reviewers": self.reviewer_stats(), "sources": self.source_stats(), "by_day": self.decisions_by_day(),
                "queue": self.queue_breakdown(), "awaiting_second": self.awaiting_second(), "progress": self.progress()}

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
