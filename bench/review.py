"""Review store latency at scale: 100k items in SQLite, p50/p95 of "next item" and "save decision".

Target (issue 6): p95 < 20 ms for both, at the store level (no UI). Loads N items into a fresh SQLite file
(WAL, synchronous=FULL: every decision is fsynced), then a reviewer takes and decides items one after
another; a second run does the same with filters on (origin + PII + quality range), which the queue index
cannot fully serve. Prints a table; figures go to bench/README.md (## review).

    PYTHONPATH=. python bench/review.py [--items 100000] [--decisions 2000]
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--decisions", type=int, default=2000)
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
