"""Benchmark near_dedupe (impl fast) against datasketch (impl datasketch: MinHash + MinHashLSH), same input.

1. All of ../shared/data/t0 (55k prompt/completion rows) as a studio examples Parquet file. Ground truth:
   exact Jaccard of the word 3-gram shingle sets of all pairs within each group of files sharing the first
   word of their name (a superset of "within each source set"), plus exact checks of any cross-group pair
   a method reports. Each impl then runs end to end in its own process — read the Parquet, run the step,
   write kept/dropped Parquet — for docs/s and peak memory (VmHWM). Precision/recall are over pairs of rows
   put in one duplicate cluster (what dropping acts on). Both methods are randomised by their hash seed, which
   moves precision by up to 0.003 and recall by up to 0.005 (more than the gap between them), so run r uses
   seed r for both, every run is scored, and the comparison is between their means over the runs.
2. Scaled: N rows made from t0 by perturbed copies (two random tokens inserted at random places per copy),
   for throughput and peak memory at N/4, N/2, N; datasketch on a 20k-row subsample (its docs/s
   extrapolated, said so in the table).

    PYTHONPATH=. python bench/near_dedupe.py [--repeat 6] [--scale-rows 1000000] [--skip-scale]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parent.parent
T0 = Path(os.environ.get("STUDIO_SHARED_DATA", REPO.parent / "shared" / "data")) / "t0"
THRESHOLD = 0.8


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_one(parquet: str, out_dir: str, impl: str, seed: int) -> None:
    """Child process: read → near_dedupe → write; prints one JSON line. impl `none` only reads and writes
    (the memory and time of the I/O and the frame itself, for comparison).

    Each implementation's libraries are imported before the clock starts and timed apart (`import_s`): ours
    starts numba's runtime and loads its compiled kernels there (`curate.minhash.load_kernels`, what importing a
    compiled extension does), datasketch imports its package."""
    i0 = time.perf_counter()
    from curate import minhash
    from curate.steps.near_dedupe import NearDedupe

    if impl == "datasketch":
        import datasketch  # noqa: F401
    else:
        minhash.load_kernels()
    import_s = time.perf_counter() - i0

    t0, c0 = time.perf_counter(), cpu_seconds()
    df = pl.read_parquet(parquet).with_columns(pl.lit(None, pl.String).alias("drop_reason"),
                                               pl.lit(None, pl.String).alias("dup_of"))
    stats: dict = {}
    if impl == "none":
        out = df.with_columns(pl.lit(None, pl.String).alias("dup_cluster"))
    else:
        step = NearDedupe({"impl": impl, "threshold": THRESHOLD, "seed": seed})
        out = step.process(df)
        stats = step.stats
    out.filter(pl.col("drop_reason").is_null()).write_parquet(Path(out_dir) / f"kept_{impl}.parquet")
    out.filter(pl.col("drop_reason").is_not_null()).write_parquet(Path(out_dir) / f"dropped_{impl}.parquet")
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    out.select("id", "dup_cluster").write_parquet(Path(out_dir) / f"clusters_{impl}.parquet")
    print(json.dumps({"impl": impl, "rows": df.height, "seconds": seconds, "cpu": cpu, "peak_mb": peak_rss_mb(),
                      "load": os.getloadavg()[0], "import_s": import_s,
                      "dropped": int(out.get_column("drop_reason").is_not_null().sum()), **stats}))


def child(parquet: Path, out_dir: Path, impl: str, seed: int = 1) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, __file__, "--child", str(parquet), str(out_dir), impl, str(seed)],
                         capture_output=True, text=True, env=env, check=False)
    if res.returncode:
        raise SystemExit(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def t0_files() -> list[str]:
    return [f for f in sorted(glob.glob(str(T0 / "*.jsonl"))) if os.path.getsize(f) > 0]


def ground_truth(df: pl.DataFrame, groups: np.ndarray) -> set[tuple[int, int]]:
    """All pairs (i < j) within a group with exact shingle Jaccard >= THRESHOLD (sparse X·Xᵀ per group)."""
    from scipy.sparse import csr_matrix

    from curate import minhash
    from curate.steps.near_dedupe import text_expr

    texts = df.select(text_expr("all")).to_series()
    truth: set[tuple[int, int]] = set()
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        sh = minhash.shingle_hashes(texts.gather(rows), "word", 3, 1)
        uniq, cols = np.unique(sh.hashes, return_inverse=True)
        x = csr_matrix((np.ones(len(cols), dtype=np.float32), cols, sh.offsets), shape=(len(rows), len(uniq)))
        x.sum_duplicates()
        x.data[:] = 1
        sizes = np.diff(x.indptr)
        inter = (x @ x.T).tocoo()
        keep = inter.row < inter.col
        i, j, v = inter.row[keep], inter.col[keep], inter.data[keep]
        jac = v / (sizes[i] + sizes[j] - v)
        hit = jac >= THRESHOLD
        truth.update(zip(rows[i[hit]].tolist(), rows[j[hit]].tolist(), strict=True))
    return truth


def cluster_pairs(clusters: pl.DataFrame) -> set[tuple[int, int]]:
    c = clusters.with_row_index("row").filter(pl.col("dup_cluster").is_not_null()).select("row", "dup_cluster")
    p = c.join(c, on="dup_cluster", suffix="_b").filter(pl.col("row") < pl.col("row_b"))
    return set(zip(p.get_column("row").to_list(), p.get_column("row_b").to_list(), strict=True))


def score(found: set, truth: set, groups: np.ndarray, df: pl.DataFrame) -> tuple[float, float, set]:
    """Precision/recall; cross-group pairs (outside the ground-truth domain) are checked exactly here."""
    from curate import minhash
    from curate.steps.near_dedupe import text_expr

    cross = np.array([p for p in found if groups[p[0]] != groups[p[1]]], dtype=np.int64).reshape(-1, 2)
    extra = set()
    if len(cross):
        texts = df.select(text_expr("all")).to_series()
        sh = minhash.shingle_hashes(texts, "word", 3, 1)
        jac = minhash.exact_jaccard(sh, cross)
        extra = {tuple(p) for p, s in zip(cross.tolist(), jac, strict=True) if s >= THRESHOLD}
    tp = len(found & (truth | extra))
    return tp / max(len(found), 1), tp / max(len(truth | extra), 1), extra


def make_scaled(src: pl.DataFrame, n: int, path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    base = src.select("messages", "origin", "source", "meta")
    idx = rng.integers(0, base.height, n)
    df = base[idx]
    text = pl.col("messages").list.get(1).struct.field("content")
    df = df.with_columns(text.alias("_a"), pl.col("messages").list.get(0).struct.field("content").alias("_u"))
    length = df.get_column("_a").str.len_chars().to_numpy()
    for _ in range(2):
        pos = (rng.random(n) * (length + 1)).astype(np.int64)
        tok = pl.Series([f" z{v:x} " for v in rng.integers(0, 1 << 40, n)])
        df = df.with_columns(pl.concat_str([pl.col("_a").str.slice(0, pl.Series(pos)), tok,
                                            pl.col("_a").str.slice(pl.Series(pos))]).alias("_a"))
        length = length + tok.str.len_chars().to_numpy()
    df = df.with_columns(
        pl.concat_list([pl.struct(role=pl.lit("user"), content=pl.col("_u")),
                        pl.struct(role=pl.lit("assistant"), content=pl.col("_a"))]).alias("messages"),
    ).with_columns(
        pl.concat_str([pl.col("_u"), pl.col("_a")]).hash(7).cast(pl.String).alias("id")  # unique enough for a bench
    ).select("id", "messages", "origin", "source", "meta")
    df.write_parquet(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale-rows", type=int, default=1_000_000)
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--repeat", type=int, default=6,
                    help="back-to-back (ours, datasketch) runs on t0, run r with hash seed r for both")
    args = ap.parse_args()
    from studio.readers import read_inputs

    tmp = Path(tempfile.mkdtemp(prefix="bench_near_"))
    t = time.perf_counter()
    files = t0_files()
    df = read_inputs(files).frame()
    read_jsonl = time.perf_counter() - t
    parquet = tmp / "t0.parquet"
    df.write_parquet(parquet)
    groups = df.get_column("source").str.extract(r"/t0/([^_/]+)_").to_numpy()
    print(f"t0: {df.height} rows from {len(files)} files (studio JSONL reader: {read_jsonl:.1f} s, not in the timings)")
    t = time.perf_counter()
    truth = ground_truth(df, groups)
    print(f"ground truth: {len(truth)} pairs with Jaccard >= {THRESHOLD} within {len(set(groups))} groups "
          f"({time.perf_counter() - t:.0f} s)")
    runs = []  # (fast, datasketch) back to back, `--repeat` times; run r with seed r
    for rep in range(args.repeat):
        pair = {}
        for impl in ("fast", "datasketch"):
            r = child(parquet, tmp, impl, seed=rep + 1)
            found = cluster_pairs(pl.read_parquet(tmp / f"clusters_{impl}.parquet"))
            r["precision"], r["recall"], _ = score(found, truth, groups, df)
            r["pairs"] = len(found)
            pair[impl] = r
        runs.append(pair)
    f, d = runs[0]["fast"], runs[0]["datasketch"]
    print("\n| impl | rows | seconds | docs/s | peak MB | dropped | cluster pairs | precision | recall |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in (("ours (fast)", f), ("datasketch", d)):
        print(f"| {name} | {r['rows']:,} | {r['seconds']:.1f} | {r['rows'] / r['seconds']:,.0f} | {r['peak_mb']:,.0f} | "
              f"{r['dropped']:,} | {r['pairs']:,} | {r['precision']:.3f} | {r['recall']:.3f} |")
    print("\n| run (seed) | ours s (CPU s) | datasketch s (CPU s) | ours docs/s | datasketch docs/s | ratio wall | "
          "ratio CPU | P ours / datasketch | R ours / datasketch | load avg (ours, datasketch) | import s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for i, p in enumerate(runs, 1):
        a, b = p["fast"], p["datasketch"]
        print(f"| {i} | {a['seconds']:.2f} ({a['cpu']:.2f}) | {b['seconds']:.1f} ({b['cpu']:.1f}) | "
              f"{a['rows'] / a['seconds']:,.0f} | {b['rows'] / b['seconds']:,.0f} | {b['seconds'] / a['seconds']:.1f}x | "
              f"{b['cpu'] / a['cpu']:.1f}x | {a['precision']:.5f} / {b['precision']:.5f} | "
              f"{a['recall']:.5f} / {b['recall']:.5f} | {a['load']:.1f}, {b['load']:.1f} | "
              f"{a['import_s']:.2f}, {b['import_s']:.2f} |", flush=True)
    ratio = np.array([p["datasketch"]["seconds"] / p["fast"]["seconds"] for p in runs])
    print(f"\nratio of docs/s over {len(runs)} runs: median {np.median(ratio):.1f}x, min {ratio.min():.1f}x, "
          f"max {ratio.max():.1f}x")
    for key in ("precision", "recall"):
        ours_v = np.array([p["fast"][key] for p in runs])
        ds_v = np.array([p["datasketch"][key] for p in runs])
        sd = (ours_v.std(ddof=1), ds_v.std(ddof=1)) if len(runs) > 1 else (0.0, 0.0)
        print(f"{key} over seeds 1-{len(runs)}: ours {ours_v.mean():.5f} ± {sd[0]:.5f}, "
              f"datasketch {ds_v.mean():.5f} ± {sd[1]:.5f} (mean ± sd); "
              f"ours higher in {(ours_v > ds_v).sum()} of {len(runs)} seeds")
    print(f"\nwith the studio JSONL reader ({read_jsonl:.1f} s) added to both, run 1: "
          f"{(d['seconds'] + read_jsonl) / (f['seconds'] + read_jsonl):.1f}x")
    print(f"fast stats: {json.dumps({k: f[k] for k in ('lsh_bands', 'lsh_rows', 'candidate_pairs', 'exact_checks', 'verified_pairs', 'clusters', 'largest_cluster') if k in f})}")
    if args.skip_scale:
        return
    print("\n| scaled rows | impl | seconds | CPU s | docs/s | peak MB | peak MB of read+write alone | "
          "step KB/row | dropped | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in (args.scale_rows // 4, args.scale_rows // 2, args.scale_rows):
        path = tmp / f"scaled_{n}.parquet"
        make_scaled(df, n, path)
        io = child(path, tmp, "none")
        r = child(path, tmp, "fast")
        print(f"| {n:,} | ours (fast) | {r['seconds']:.1f} | {r['cpu']:.1f} | {n / r['seconds']:,.0f} | {r['peak_mb']:,.0f} | "
              f"{io['peak_mb']:,.0f} | {(r['peak_mb'] - io['peak_mb']) * 1024 / n:.1f} | {r['dropped']:,} | {r['load']:.1f} |",
              flush=True)
        path.unlink()
    sub = tmp / "scaled_sub.parquet"
    make_scaled(df, 20_000, sub, seed=1)
    r = child(sub, tmp, "datasketch")
    print(f"| 20,000 (subsample) | datasketch | {r['seconds']:.1f} | {r['cpu']:.1f} | {20_000 / r['seconds']:,.0f} | "
          f"{r['peak_mb']:,.0f} | | | {r['dropped']:,} | {r['load']:.1f} |")
    print(f"datasketch at {args.scale_rows:,} rows, extrapolated from its subsample rate: "
          f"{args.scale_rows / (20_000 / r['seconds']) / 60:.0f} min (its LSH index in memory grows with rows too)")

if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        run_one(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
