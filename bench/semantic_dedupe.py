"""Benchmark semantic_dedupe's embedding paths side by side: the default (all-MiniLM-L6-v2 through
sentence-transformers) and `static` (model2vec static embeddings distilled from it), speed and quality.

    python bench/semantic_dedupe.py                                  # speed at 10k and 100k, then quality
    python bench/semantic_dedupe.py --sizes 10000 100000 1000000 --max-default-rows 10000

Speed: for each size, rows drawn (seeded) from ../shared/data/t0 (beyond its 55k unique rows, perturbed copies)
and each model runs the whole step cold, in a fresh embedding cache: encoding rows/s, model load, the rest of the
step ("other": text extraction, cache write, k-means, within-cluster comparison, columns), end-to-end wall time,
and the encode-rate ratio static / default at the same size. `--max-default-rows` skips MiniLM above a size
(100k rows take ~36 min to encode on two idle cores). At sizes up to `--anchor-max-rows` the all-pairs anchor (the
same greedy rule over one cluster, n² cosines, on the same vectors) gives the share of its duplicates the
step's k-means organisation finds.

Quality, each model at its own default threshold and at thresholds matched to a reference:
- planted: the sample pipeline's rows after normalize/exact/near dedupe; the 15 paraphrase pairs of
  sample_data/planted.json must lose exactly one row each and nothing else may go (recall 15/15, no extra drops);
  the margin is the lowest planted-pair cosine minus the highest cosine of any other pair.
- GPTeacher Toolformer (../shared/data/dedup): the rows removed by its reference cleaning at similarity 0.9 / 0.8 /
  0.7 / 0.6 against the rows each model removes (greedy, all pairs, input order), at the same nominal threshold and
  at the threshold where the model removes as many rows as the reference (their scales differ): Jaccard overlap,
  precision and recall of the removed sets. Quality vectors are cached in `--quality-cache` (default: the studio
  cache), so a re-run does not re-encode GPTeacher with MiniLM (~16 min).
"""

from __future__ import annotations

import argparse
import json
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
SHARED = Path(os.environ.get("STUDIO_SHARED_DATA", REPO.parent / "shared" / "data"))
T0 = SHARED / "t0"
DEDUP = SHARED / "dedup"
MODELS = ("default", "static")


def load_rows(n: int, seed: int = 0) -> pl.DataFrame:
    from studio.readers import read_inputs

    files = sorted(p for p in T0.glob("*.jsonl") if p.stat().st_size)  # t0 ships a few empty files
    frame = read_inputs(files).frame().unique("id", keep="first", maintain_order=True)
    if n <= frame.height:
        return frame.sample(n=n, seed=seed, shuffle=True)
    # Beyond t0's 55k unique rows: perturbed copies (a suffix makes a new id and text). The sample is drawn over
    # positions of all copies, as `frame.sample` of their concatenation would, and only the sampled rows are built:
    # building every copy first held two copies of the text at 1M rows.
    reps = -(-n // frame.height)
    pos = pl.Series("pos", np.arange(frame.height * reps)).sample(n=n, seed=seed, shuffle=True).to_numpy()
    parts = []
    for r in range(reps):
        mine = np.flatnonzero(pos // frame.height == r)
        parts.append(frame[pos[mine] % frame.height].with_columns(
            pl.col("messages").list.eval(pl.element().struct.with_fields(
                pl.field("content") + (f" [{r}]" if r else ""))),
            (pl.col("id") + (f"-{r}" if r else "")).alias("id"), pl.Series("_at", mine)))
    return pl.concat(parts).sort("_at").drop("_at")


def run_step(frame: pl.DataFrame, **cfg):
    from curate.pipeline import run_steps
    from curate.steps.semantic_dedupe import SemanticDedupe

    step = SemanticDedupe(**cfg)
    t0 = time.perf_counter()
    kept, _ = run_steps(frame, [step])
    return time.perf_counter() - t0, step, kept


def embed(model: str, frame: pl.DataFrame, view: str = "prompt_response") -> np.ndarray:
    from curate.embeddings import EmbeddingCache
    from curate.views import view_text

    cache = EmbeddingCache(model, view=view, threads=int(os.environ.get("BENCH_THREADS", "1")))
    return cache.embed(frame["id"].to_list(), frame.select(view_text(view)).to_series().to_list())


def removed(emb: np.ndarray, threshold: float) -> np.ndarray:
    """Rows the step's greedy rule drops over all pairs, input order deciding the kept row."""
    from curate.steps.semantic_dedupe import find_duplicates

    n = emb.shape[0]
    return find_duplicates(emb, np.arange(n), [np.arange(n)], threshold)[0] >= 0


# ----------------------------------------------------------------------------------------------------- speed


def speed(sizes: list[int], models: list[str], max_default: int, anchor_max: int) -> list[list]:
    rows = []
    models_dir = Path(tempfile.mkdtemp(prefix="bench-semdedupe-models-"))  # the static model, distilled once
    for n in sizes:
        frame = load_rows(n)
        rate = {}
        for model in models:
            if model == "default" and n > max_default:
                continue
            cache = Path(tempfile.mkdtemp(prefix=f"bench-semdedupe-{model}-"))
            (cache / "models").symlink_to(models_dir)
            os.environ["STUDIO_CACHE"] = str(cache)
            if model == "static":
                from curate.embeddings import resolve_model

                resolve_model(model)  # distilled on first use only, outside the step's time
            wall, step, kept = run_step(frame, model=model, threads=int(os.environ.get("BENCH_THREADS", "1")))
            s = step.stats
            rate[model] = s["encoded"] / s["encode_seconds"]
            recall = None
            if n <= anchor_max:
                dropped = ~frame["id"].is_in(kept["id"]).to_numpy()
                ref = removed(embed(model, frame), step.config.threshold)
                recall = (dropped & ref).sum() / max(ref.sum(), 1)
            rows.append([n, model, step.config.threshold, round(wall, 1), s["model_load_seconds"], s["encode_seconds"],
                         round(rate[model]), s["other_seconds"], s["kmeans_clusters"], n - kept.height, recall,
                         round(rate[model] / rate["default"], 1) if "default" in rate and model != "default" else None])
            print(*[_fmt(v) for v in rows[-1]], sep=" | ", flush=True)
    return rows


# --------------------------------------------------------------------------------------------------- quality


def planted_rows() -> tuple[pl.DataFrame, list[tuple[int, int]]]:
    from curate.pipeline import run_steps
    from curate.registry import build_step
    from studio.readers import read_inputs
    from studio_app.demo import sample_inputs

    sample = REPO / "sample_data"
    planted = json.loads((sample / "planted.json").read_text(encoding="utf-8"))
    files = [p for p in sample_inputs(sample) if "malformed" not in p.parts]
    base, _ = run_steps(read_inputs(files).frame(),
                        [build_step("normalize"), build_step("exact_dedupe"), build_step("near_dedupe")])
    at = {f"{Path(s.rsplit(':', 1)[0]).name}:{s.rsplit(':', 1)[1]}": i for i, s in enumerate(base["source"])}
    return base, [(at[f"{p['a']['file']}:{p['a']['line']}"], at[f"{p['b']['file']}:{p['b']['line']}"])
                  for p in planted["paraphrases"]]


def planted_quality(model: str, threshold: float) -> list:
    from curate.pipeline import run_steps
    from curate.steps.semantic_dedupe import SemanticDedupe

    base, pairs = planted_rows()
    emb = embed(model, base)
    sims = emb @ emb.T
    planted_sims = np.array([sims[a, b] for a, b in pairs])
    sims[np.tril_indices(len(sims))] = -1
    for a, b in pairs:
        sims[min(a, b), max(a, b)] = -1
    _, dropped = run_steps(base, [SemanticDedupe(model=model, threshold=threshold)])
    gone = set(pl.concat(dropped)["id"])
    ids = base["id"].to_list()
    found = sum((ids[a] in gone) != (ids[b] in gone) for a, b in pairs)
    extra = len(gone - {ids[i] for pair in pairs for i in pair})
    return [model, threshold, f"{found}/{len(pairs)}", extra, planted_sims.min(), sims.max(),
            planted_sims.min() - sims.max()]


def gpteacher() -> tuple[pl.DataFrame, dict[float, np.ndarray]]:
    """The dedupe_only rows and, per reference threshold, which of them its cleaning removed. The cleaned files
    re-encode some non-ASCII characters (mojibake), so rows are matched on their ASCII characters."""
    from studio.readers import read_inputs

    def key(r: dict) -> str:
        return "\0".join(r[k] for k in ("instruction", "input", "output")).encode("ascii", "ignore").decode()

    base = json.loads((DEDUP / "gpteacher_toolformer_dedupe_only.json").read_text(encoding="utf-8"))
    keys = [key(r) for r in base]
    refs = {}
    for t in (0.9, 0.8, 0.7, 0.6):
        kept = {key(r) for r in json.loads((DEDUP / f"gpteacher_toolformer_similarity_{t}.json").read_text("utf-8"))}
        refs[t] = np.array([k not in kept for k in keys])
    frame = read_inputs([DEDUP / "gpteacher_toolformer_dedupe_only.json"]).frame()
    assert frame.height == len(keys)
    return frame, refs


def matched_threshold(emb: np.ndarray, count: int) -> float:
    """The highest threshold (to 1e-4) at which the greedy rule removes at least `count` rows."""
    lo, hi = -1.0, 1.0
    while hi - lo > 1e-4:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if removed(emb, mid).sum() >= count else (lo, mid)
    return lo


def gpteacher_quality(model: str) -> list[list]:
    frame, refs = gpteacher()
    emb = embed(model, frame)
    rows = []
    for t_ref, ref in refs.items():
        for how, t in (("same", t_ref), ("count-matched", matched_threshold(emb, int(ref.sum())))):
            ours = removed(emb, t)
            both = (ours & ref).sum()
            rows.append([model, t_ref, int(ref.sum()), how, round(t, 4), int(ours.sum()), both / (ours | ref).sum(),
                         both / max(ours.sum(), 1), both / ref.sum()])
            print(*[_fmt(v) for v in rows[-1]], sep=" | ", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[10000, 100000], help="t0 rows per speed run")
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--max-default-rows", type=int, default=100000, help="largest size MiniLM encodes")
    ap.add_argument("--anchor-max-rows", type=int, default=20000, help="largest size checked against all pairs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for MiniLM")
    ap.add_argument("--quality-cache", type=Path, help="embedding cache for the quality runs")
    ap.add_argument("--no-quality", action="store_true")
    args = ap.parse_args()
    os.environ["BENCH_THREADS"] = str(args.threads)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"MiniLM torch threads {args.threads}; t0 from {T0}", flush=True)
    speed_header = ("rows", "model", "threshold", "step wall s", "model load s", "encode s", "encode rows/s",
                    "other s", "k", "dropped", "recall vs all-pairs", "encode rate / default")
    speed_rows = speed(args.sizes, args.models, args.max_default_rows, args.anchor_max_rows)
    tables = [(speed_header, speed_rows)]
    if not args.no_quality:
        from curate.steps.semantic_dedupe import THRESHOLDS

        if args.quality_cache:
            os.environ["STUDIO_CACHE"] = str(args.quality_cache)
        else:
            os.environ.pop("STUDIO_CACHE", None)
        tables.append((("model", "threshold", "planted found", "extra drops", "min planted cos", "max other cos",
                        "margin"), [planted_quality(m, THRESHOLDS[m]) for m in args.models]))
        tables.append((("model", "reference t", "reference removed", "our threshold", "t", "we remove", "Jaccard",
                        "precision", "recall"), [r for m in args.models for r in gpteacher_quality(m)]))
    print(f"\nload at end {os.getloadavg()[0]:.1f}")
    for header, rows in tables:
        print("\n| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(_fmt(v) for v in row) + " |")


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float | np.floating):
        return f"{v:,.4f}" if abs(v) < 1 else f"{v:,.1f}"
    return f"{v:,}" if isinstance(v, int | np.integer) else str(v)


if __name__ == "__main__":
    main()
