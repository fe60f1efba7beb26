"""Review store latency at scale: 100k items in SQLite, p50/p95 of "next item" and "save decision".

Target (issue 6): p95 < 20 ms for both, at the store level (no UI). Loads N items into a fresh SQLite file
(WAL, synchronous=FULL: every decision is fsynced), then a reviewer takes and decides items one after
another; a second run does the same with filters on (origin + PII + quality range), which the queue index
cannot fully serve. Prints a table; figures go to bench/README.md (## review).

Then the lead dashboard on the same store: `--dashboard-decisions` more people's decisions (4 reviewers, 2 per item,
over 30 days; bulk-inserted, as a seed) are added, and (1) the per-reviewer figures in SQL (`store.reviewer_stats`)
are timed against the anchor, the same figures computed in Python from every decision row (how the store's other
analytics worked), alternately, each with the votes projection read afresh; then each part of the page once (the
votes projection first: `reviewer_stats`, `agreement` and `disagreements` reuse it); (2) the lead page itself is loaded (Streamlit's AppTest runs `review_app/app.py` as a
logged-in lead on the Lead view: the whole script run, every query and chart included, no browser); (3) the same page
as a lead sees it: a real server and headless Chromium, first visit after the server started, then again.

    PYTHONPATH=. python bench/review.py [--items 100000] [--decisions 2000] [--dashboard-decisions 100000]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from review_app.store import ReviewStore


def rows(n: int) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"How do I file claim {i}? " * 3},
                          {"role": "assistant", "content": f"Open the portal and choose claim {i}. " * 5}],
             "origin": "synthetic" if i % 4 == 0 else "real", "source": f"claims.jsonl:{i}",
             "meta": json.dumps({"category": ["billing", "claims", "refund"][i % 3]}),
             "quality": (i * 7919 % 10000) / 10000, "pii_count": int(i % 10 == 0)} for i in range(n)]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] * 1000


def measure(store: ReviewStore, reviewer: str, n: int, filters=None) -> tuple[list[float], list[float]]:
    nexts, saves = [], []
    for k in range(n):
        t = time.perf_counter()
        item = store.next_item(reviewer, filters)
        nexts.append(time.perf_counter() - t)
        if item is None:
            break
        t = time.perf_counter()
        store.record_decision(item.id, reviewer, "accept" if k % 5 else "reject", rating=4, reasons=["x"] if k % 5 == 0 else (),
                              seconds=12.5)
        saves.append(time.perf_counter() - t)
    return nexts, saves


def seed_decisions(store: ReviewStore, n: int) -> None:
    """n people's decisions, bulk-inserted: items in queue order get 2 of 4 reviewers each, spread over 30 days."""
    import datetime as dt

    from sqlalchemy import select, update

    from review_app.store.database import DECISIONS, ITEMS

    people = [f"reviewer{k}@example.org" for k in range(4)]
    for name in people:
        store.ensure_reviewer(name, "reviewer")
    start = dt.datetime(2026, 11, 1)
    with store.db.tx(write=True) as conn:
        rids = [store.db.rid(conn, name) for name in people]
        ids = [r[0] for r in conn.execute(select(ITEMS.c.id).where(ITEMS.c.n_decided == 0, ITEMS.c.status != "auto")
                                          .order_by(ITEMS.c.priority).limit(n // 2))]
        rows = []
        for k, item_id in enumerate(ids):
            for j in range(2):
                who = (k + j) % 4
                rows.append({"item_id": item_id, "reviewer_id": rids[who], "edited_messages": None, "rating": None,
                             "verdict": "reject" if (k * 7 + who) % 5 == 0 else "accept", "reasons": [],
                             "comment": None, "seconds": 5 + (k * 13 + who * 29) % 90, "source": "app",
                             "idempotency_key": f"seed:{item_id}:{who}", "undone_at": None,
                             "created_at": start + dt.timedelta(minutes=(k * 2 + j) * 30 * 24 * 60 // (2 * len(ids)))})
        conn.execute(DECISIONS.insert(), rows)
        conn.execute(update(ITEMS).where(ITEMS.c.id.in_(ids)).values(overlap=2, n_decided=2, n_claimed=2, status="full"))


def python_reviewer_stats(store: ReviewStore) -> dict[str, dict]:
    """The anchor: the per-reviewer figures from every current decision row, in Python."""
    from collections import defaultdict

    from review_app.store.analytics import people_votes, person_of
    from review_app.store.database import DECISIONS
    from review_app.store.decisions import decision_rows

    with store.db.tx() as conn:
        rows = decision_rows(conn, DECISIONS.c.undone_at.is_(None), DECISIONS.c.verdict != "skip")
    by_item = defaultdict(list)
    for d in rows:
        by_item[d["item_id"]].append(d)
    mine = defaultdict(list)
    pairs = defaultdict(lambda: [0, 0])
    for ds in by_item.values():
        votes = people_votes(ds)
        for v in votes:
            mine[person_of(v["reviewer"])].append(v)
            for o in votes:
                if person_of(o["reviewer"]) != person_of(v["reviewer"]):
                    pairs[person_of(v["reviewer"])][0] += 1
                    pairs[person_of(v["reviewer"])][1] += v["verdict"] == o["verdict"]
    return {p: {"decided": len(vs), "accept_rate": round(sum(v["verdict"] == "accept" for v in vs) / len(vs), 4),
                "median_seconds": statistics.median([v["seconds"] for v in vs if v["seconds"] is not None] or [0]),
                "agreement": round(pairs[p][1] / pairs[p][0], 4) if pairs[p][0] else None} for p, vs in mine.items()}


def measure_dashboard(store: ReviewStore, url: str, n_decisions: int, repeats: int = 3) -> None:
    import os

    from streamlit.testing.v1 import AppTest

    t = time.perf_counter()
    seed_decisions(store, n_decisions)
    seed_s = time.perf_counter() - t
    ours, anchor = [], []
    for _ in range(repeats):  # alternately, so both see the same machine load
        store.analytics._votes = None  # cold: the votes projection is read again, as on a page's first load
        t = time.perf_counter()
        sql = store.reviewer_stats()
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        py = python_reviewer_stats(store)
        anchor.append(time.perf_counter() - t)
    for r in sql:  # same figures both ways
        assert (r["decided"], r["accept_rate"], r["agreement"]) == tuple(py[r["reviewer"]][k] for k in
                                                                          ("decided", "accept_rate", "agreement")), r
        assert abs(r["median_seconds"] - py[r["reviewer"]]["median_seconds"]) < 1e-6, r
    parts = {}
    store.analytics._votes = None
    for name in ("votes_frame", "reviewer_stats", "source_stats", "decisions_by_day", "queue_breakdown", "awaiting_second", "progress",
                 "agreement", "disagreements"):
        t = time.perf_counter()
        getattr(store.analytics, name)()
        parts[name] = time.perf_counter() - t
    store.add_reviewer("lead", "lead-password", role="lead")
    os.environ["STUDIO_REVIEW_DB"] = url
    page = []
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "review_app" / "app.py"), default_timeout=600)
    at.session_state["user"] = {"name": "lead", "role": "lead"}
    at.session_state["view"] = "Lead view"
    for _ in range(repeats):
        t = time.perf_counter()
        at.run()
        page.append(time.perf_counter() - t)
        assert not at.exception, at.exception
    browser = measure_lead_page_in_chromium(url, repeats) if Path("/usr/bin/chromium").exists() else None
    people = sum(r["decided"] for r in sql)
    print(f"\nlead dashboard: {n_decisions:,} seeded decisions ({seed_s:.1f}s to insert); "
          f"{people:,} current people's verdicts in the per-reviewer table")
    print(f"{'per-reviewer figures':34} {'ours':>11} {'anchor (Python)':>16} {'ratio':>7}")
    print(f"{'median of ' + str(repeats) + ' runs':34} {statistics.median(ours):>10.2f}s {statistics.median(anchor):>15.2f}s "
          f"{statistics.median(anchor) / statistics.median(ours):>6.1f}x")
    print("dashboard parts (s): " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()))
    print(f"lead page load (AppTest, whole script run): first {page[0]:.2f}s, then " +
          ", ".join(f"{x:.2f}s" for x in page[1:]))
    if browser:
        print("lead page in Chromium (click on 'Lead view' to the last element drawn and the app idle): "
              f"first visit after the server started {browser[0]:.2f}s, then " + ", ".join(f"{x:.2f}s" for x in browser[1:]))


def measure_lead_page_in_chromium(url: str, repeats: int) -> list[float]:
    """What a lead waits for: a real `streamlit run` server and headless Chromium (the tests' `appserver`), the
    lead logs in, then opens the Lead view `repeats` times (switching to Review in between); each time from the
    click to the disagreements table and the last resolve box drawn, with the app idle again."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from appserver import CHROMIUM, FLAGS, log_in, review_app
    from playwright.sync_api import expect, sync_playwright

    out = []
    with tempfile.TemporaryDirectory() as cwd, review_app(url, Path(cwd)) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        sidebar, idle = page.get_by_test_id("stSidebar"), page.locator('[data-testid="stStatusWidget"]')
        log_in(page, base, "lead", "lead-password", 120_000)
        sidebar.get_by_text("Lead view").wait_for(timeout=120_000)
        for k in range(repeats):
            if k:
                sidebar.get_by_text("Review", exact=True).click()
                expect(idle).to_have_count(0, timeout=120_000)
            t = time.perf_counter()
            sidebar.get_by_text("Lead view").click()
            page.get_by_role("heading", name="Disagreements").wait_for(timeout=300_000)
            page.locator('[data-testid="stExpander"]').last.wait_for(timeout=300_000)
            expect(idle).to_have_count(0, timeout=300_000)
            out.append(time.perf_counter() - t)
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--decisions", type=int, default=2000)
    ap.add_argument("--dashboard-decisions", type=int, default=100_000, help="people's decisions seeded for the "
                    "lead dashboard measurement (0: skip it)")
    ap.add_argument("--no-fsync", action="store_true", help="durable=False: decisions not fsynced (power-cut unsafe)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = ReviewStore(Path(tmp) / "review.db", bcrypt_rounds=4, durable=not args.no_fsync)
        store.ensure_reviewer("ann", "reviewer")
        store.ensure_reviewer("bob", "reviewer")
        data = rows(args.items)
        t = time.perf_counter()
        counts = store.load_dataset(data)
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        again = store.load_dataset(data)
        reload_s = time.perf_counter() - t
        assert counts["added"] == args.items and again["added"] == 0
        plain = measure(store, "ann", args.decisions)
        filtered = measure(store, "bob", args.decisions // 2,
                           {"origins": ["real"], "pii": False, "min_quality": 0.3, "max_quality": 0.7})
        t = time.perf_counter()
        auto = store.auto_decide("quality >= 0.9 and pii_count == 0", "high-confidence")
        auto_s = time.perf_counter() - t
        db_mb = (Path(tmp) / "review.db").stat().st_size / 2**20
        if args.dashboard_decisions:
            measure_dashboard(store, f"sqlite:///{Path(tmp) / 'review.db'}", args.dashboard_decisions)
    print(f"machine: {platform.machine()}, {platform.system()}, python {platform.python_version()}; "
          f"decisions {'NOT ' if args.no_fsync else ''}fsynced")
    print(f"load {args.items:,} items: {load_s:.1f}s; reload (idempotent, 0 added): {reload_s:.1f}s; "
          f"auto rule over {auto['examined']:,} items: {auto_s:.1f}s ({auto['decided']:,} decided); db {db_mb:.0f} MiB")
    print(f"{'operation':34} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  target p95")
    for label, xs in (("next item", plain[0]), ("save decision", plain[1]),
                      ("next item (filters on)", filtered[0]), ("save decision (filters on)", filtered[1])):
        p95 = pct(xs, 95)
        print(f"{label:34} {len(xs):>6} {pct(xs, 50):>8.2f} {p95:>8.2f} {max(xs) * 1000:>8.2f}  "
              f"< 20 ms {'ok' if p95 < 20 else 'MISSED'} ({p95 / 20:.2f}x of target)")
    print(f"mean next+save {statistics.mean(plain[0]) * 1000 + statistics.mean(plain[1]) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
