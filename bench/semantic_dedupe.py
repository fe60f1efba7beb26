"""Benchmark semantic_dedupe on t0 rows: wall time, rows/s, the share spent in model encoding, and the
SemDeDup organisation (k-means + within-cluster comparison) against the anchor, all-pairs cosine.

    python bench/semantic_dedupe.py                      # 2k and 10k rows encoded, 100k from cached vectors
    python bench/semantic_dedupe.py --encode 2000 --encode 10000 --scale 100000

For each `--encode N`: a cold run on a fresh cache (encoding + everything else), then a warm run (all
vectors from the cache: everything but encoding). At `--scale N` (100k would take ~1 h to encode on two
cores) the cache is filled with the largest encoded sample's real vectors, each reused for N / sample rows
with Gaussian noise (cosine ≈ 0.9 to its source, so copies are not duplicates of each other), and the warm
run measures everything but encoding at full size; encoding time at that size is extrapolated from the
measured encode rate (encoding is per row, so linear). The anchor is the same greedy rule over one
cluster (exact all pairs, n² comparisons): ours vs anchor time and the share of its duplicates we find.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
T0 = Path(os.environ.get("STUDIO_SHARED_DATA", REPO.parent / "shared" / "data")) / "t0"


def load_rows(n: int, seed: int = 0) -> pl.DataFrame:
    from studio.readers import read_inputs

    files = sorted(p for p in T0.glob("*.jsonl") if p.stat().st_size)  # t0 ships a few empty files
    frame = read_inputs(files).frame().unique("id", keep="first", maintain_order=True)
    if n > frame.height:
        # Beyond t0's 55k unique rows: perturbed copies (a suffix makes a new id and text).
        reps = -(-n // frame.height)
        frame = pl.concat([frame.with_columns(
            pl.col("messages").list.eval(pl.element().struct.with_fields(
                pl.field("content") + (f" [{r}]" if r else ""))),
            (pl.col("id") + (f"-{r}" if r else "")).alias("id")) for r in range(reps)])
    return frame.sample(n=n, seed=seed, shuffle=True)


def run_step(frame: pl.DataFrame, **cfg):
    from curate.pipeline import run_steps
    from curate.steps.semantic_dedupe import SemanticDedupe

    step = SemanticDedupe(**cfg)
    t0 = time.perf_counter()
    kept, _ = run_steps(frame, [step])
    return time.perf_counter() - t0, step.stats, kept


def anchor(frame: pl.DataFrame, cfg: dict) -> tuple[float, set[str]]:
    """All-pairs greedy dedupe over the same cached vectors: one cluster of n."""
    from curate.embeddings import EmbeddingCache
    from curate.steps.semantic_dedupe import find_duplicates, view_text

    cache = EmbeddingCache(view=cfg.get("text", "prompt_response"))
    texts = frame.select(view_text(cfg.get("text", "prompt_response"))).to_series().to_list()
    emb = cache.embed(frame["id"].to_list(), texts)
    assert cache.encoded == 0
    t0 = time.perf_counter()
    dup_of, _ = find_duplicates(emb, np.arange(frame.height), np.zeros(frame.height, dtype=np.int64), cfg.get("threshold", 0.95))
    return time.perf_counter() - t0, set(frame["id"].to_numpy()[dup_of >= 0])


def fill_cache_by_reuse(frame: pl.DataFrame, source: pl.DataFrame, cfg: dict, seed: int = 0) -> None:
    from curate.embeddings import EmbeddingCache
    from curate.steps.semantic_dedupe import view_text

    view = cfg.get("text", "prompt_response")
    cache = EmbeddingCache(view=view)
    src = cache.embed(source["id"].to_list(), source.select(view_text(view)).to_series().to_list())
    assert cache.encoded == 0, "the source sample must be encoded first"
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, src.shape[0], size=frame.height)
    emb = src[pick] + rng.normal(0, 0.0247, size=(frame.height, src.shape[1])).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    cache.store(frame["id"].to_list(), emb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encode", type=int, action="append", help="sizes to encode for real (default 2000, 10000)")
    ap.add_argument("--scale", type=int, action="append", help="sizes measured from cached vectors (default 100000)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-anchor", action="store_true")
    args = ap.parse_args()
    encode_sizes = args.encode or [2000, 10000]
    scale_sizes = args.scale or [100000]
    os.environ["STUDIO_CACHE"] = tempfile.mkdtemp(prefix="bench-semdedupe-")
    import torch

    torch.set_num_threads(args.threads)
    cfg = {"threads": args.threads}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"torch threads {args.threads}; t0 from {T0}")
    header = ("rows", "mode", "wall s", "rows/s", "model load s", "encode s", "other s", "other %", "kmeans k", "dropped",
              "anchor s", "anchor/ours", "recall vs anchor")
    table = []
    largest = None
    encode_rate = None
    for n in encode_sizes:
        frame = load_rows(n)
        wall, stats, kept = run_step(frame, **cfg)
        encode_rate = stats["encoded"] / stats["encode_seconds"]
        other = wall - stats["encode_seconds"] - stats["model_load_seconds"]
        table.append([n, "cold (encode)", wall, n / wall, stats["model_load_seconds"], stats["encode_seconds"], other,
                      100 * other / wall, stats["kmeans_clusters"], n - kept.height, None, None, None])
        table.append(_warm_row(frame, cfg, n, args.no_anchor, extrapolated_encode=None))
        largest = frame
        print(*[_fmt(v) for v in table[-2]], sep=" | ", flush=True)
        print(*[_fmt(v) for v in table[-1]], sep=" | ", flush=True)
    for n in scale_sizes:
        frame = load_rows(n, seed=1)
        fill_cache_by_reuse(frame, largest, cfg)
        table.append(_warm_row(frame, cfg, n, args.no_anchor, extrapolated_encode=n / encode_rate))
        print(*[_fmt(v) for v in table[-1]], sep=" | ", flush=True)
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in table:
        print("| " + " | ".join(_fmt(v) for v in row) + " |")
    print(f"\nencode rate {encode_rate:.1f} rows/s (MiniLM, max_seq_length 128, {args.threads} thread(s))")


def _warm_row(frame: pl.DataFrame, cfg: dict, n: int, no_anchor: bool, extrapolated_encode: float | None) -> list:
    wall, stats, kept = run_step(frame, **cfg)
    assert stats["encoded"] == 0
    dropped = set(frame["id"]) - set(kept["id"])
    a_time = recall = ratio = None
    if not no_anchor:
        a_time, a_dropped = anchor(frame, cfg)
        ratio = a_time / stats["other_seconds"]
        recall = len(dropped & a_dropped) / len(a_dropped) if a_dropped else 1.0
    if extrapolated_encode is None:
        return [n, "warm (cache)", wall, n / wall, 0.0, 0.0, wall, None, stats["kmeans_clusters"], len(dropped), a_time, ratio, recall]
    total = extrapolated_encode + wall
    return [n, "cached vectors + encode extrapolated", total, n / total, 0.0, extrapolated_encode, wall, 100 * wall / total,
            stats["kmeans_clusters"], len(dropped), a_time, ratio, recall]


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.3f}" if v < 1 else f"{v:,.1f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


if __name__ == "__main__":
    main()
