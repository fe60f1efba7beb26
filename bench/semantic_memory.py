"""Where semantic_dedupe's memory goes: peak RSS per phase of one cold `model: static` run on n t0 rows.

    python bench/semantic_memory.py --sizes 100000 200000 400000 [--limit-gb 7.5] [--save-drops DIR]
        [--boundary-margin M]

A sampler thread reads this process's RSS every 20 ms and charges it to the phase running: the bench's own
construction of the rows, then the step's stages (text extraction, cache read, encoding, cache write, merge of
the cache shards, k-means, assignment, within-cluster pairs, resolution, marks). Per phase: peak RSS and its growth
over the RSS before the run. A guard ends the process (exit 3) when RSS passes `--limit-gb`, so a size that does
not fit is reported, not OOM-killed on a shared machine. `--save-drops DIR` writes the dropped rows' ids and
`dup_of` per size (to check that a change keeps the same drops).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.semantic_dedupe import load_rows  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class Sampler:
    def __init__(self, limit: int) -> None:
        self.phase, self.peaks, self.order, self.limit = "start", {}, [], limit
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            self.note()
            time.sleep(0.02)

    def note(self) -> None:
        r = rss()
        if r > self.peaks.get(self.phase, 0):
            self.peaks[self.phase] = r
        if r > self.limit:
            print(f"RSS {r / 2**30:.2f} GB passed the limit in phase {self.phase}: stopped", flush=True)
            os._exit(3)

    def enter(self, phase: str) -> str:
        self.note()
        before, self.phase = self.phase, phase
        if phase not in self.order:
            self.order.append(phase)
        self.note()
        return before


def wrap(sampler: Sampler, owner, name: str, phase: str) -> None:
    fn = getattr(owner, name)

    @functools.wraps(fn)
    def inner(*a, **k):
        before = sampler.enter(phase)
        try:
            return fn(*a, **k)
        finally:
            sampler.enter(before)

    setattr(owner, name, inner)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100000])
    ap.add_argument("--limit-gb", type=float, default=7.5)
    ap.add_argument("--model", default="static")
    ap.add_argument("--save-drops", type=Path)
    ap.add_argument("--boundary-margin", type=float, default=None,
                    help="the step's boundary_margin (default: the step's own, 0.05); 0 = plain SemDeDup")
    args = ap.parse_args()
    sampler = Sampler(int(args.limit_gb * 2**30))
    from curate import embeddings
    from curate import step as step_mod
    from curate.embeddings import EmbeddingCache, resolve_model
    from curate.pipeline import run_steps
    from curate.steps.semantic_dedupe import SemanticDedupe

    for name, phase in (("embed", "embed (text, keys)"), ("centroids", "shard merge + k-means"),
                        ("assign", "assign"), ("pairs", "within-cluster pairs"), ("resolve", "resolve")):
        wrap(sampler, SemanticDedupe, name, phase)
    for name, phase in (("_read", "cache read"), ("_encode", "encode"), ("store", "cache write")):
        wrap(sampler, EmbeddingCache, name, phase)
    wrap(sampler, step_mod.StagedStep, "mark", "marks")
    models = Path(os.environ.get("SEMMEM_MODELS") or tempfile.mkdtemp(prefix="semmem-models-"))
    for n in args.sizes:
        cache = Path(tempfile.mkdtemp(prefix="semmem-"))
        (cache / "models").symlink_to(models)
        os.environ["STUDIO_CACHE"] = str(cache)
        resolve_model(args.model)
        embeddings.load_static_model.cache_clear()
        sampler.peaks.clear(), sampler.order.clear()
        sampler.enter("idle")
        base = rss()
        sampler.enter("bench: build rows")
        t = time.perf_counter()
        frame = load_rows(n)
        sampler.enter("step (other)")
        margin = {} if args.boundary_margin is None else {"boundary_margin": args.boundary_margin}
        step = SemanticDedupe(model=args.model, **margin)
        kept, dropped = run_steps(frame, [step])
        wall = time.perf_counter() - t
        sampler.enter("idle")
        s = step.stats
        print(f"\n## {n:,} rows, {args.model}, boundary_margin {step.config.boundary_margin}: wall {wall:.1f} s (incl. building rows), encode {s['encode_seconds']} s "
              f"({s['encoded'] / max(s['encode_seconds'], 1e-9):,.0f} rows/s), dropped {n - kept.height:,}, "
              f"pairs {s.get('pairs', 0):,}, driver_bytes {s.get('driver_bytes', 0) / 2**20:,.0f} MiB; "
              f"RSS before {base / 2**30:.2f} GB")
        print("| phase | peak RSS GB | over before GB |\n|---|---|---|")
        for phase in sampler.order:
            if phase in sampler.peaks and phase != "idle":
                print(f"| {phase} | {sampler.peaks[phase] / 2**30:.2f} | {(sampler.peaks[phase] - base) / 2**30:.2f} |")
        peak = max(sampler.peaks.values())
        print(f"peak {peak / 2**30:.2f} GB = {(peak - base) / n:,.0f} bytes/row over before", flush=True)
        if args.save_drops:
            args.save_drops.mkdir(parents=True, exist_ok=True)
            pl.concat(dropped).select("id", "dup_of").sort("id").write_parquet(args.save_drops / f"drops-{n}.parquet")
        del frame, kept, dropped, step


if __name__ == "__main__":
    main()
