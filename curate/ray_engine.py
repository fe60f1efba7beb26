"""The Ray engine: run a curation pipeline on Ray Data, with the same output as the local engine.

`studio curate ... --engine ray [--ray-address HOST:6379]` lands here (`curate.pipeline.run_pipeline` hands
over). Inputs are read with the studio readers (quarantine included), every row gets `_row` = its index
in input order, and each step runs on Ray Data:

- Row-wise steps (normalize, redact_pii, score, filter) run as `map_batches` over Arrow batches calling the
  SAME step code: `step.process(polars_df)` on each batch (Arrow → Polars is zero-copy for the column
  buffers). Model steps (`MODEL_STEPS`: redact_pii, score) run in an actor pool
  (`ActorPoolStrategy`), so each worker builds its analyzer / scorer once and keeps it for every batch.
- exact_dedupe: a hash shuffle. Each row's key (its id, or a hash of its user turns with `on: prompt`) is
  grouped with `groupby(_key).aggregate(Min)` over a string `"{_row:020d}{id}"`, so the minimum is the
  first row in input order together with its id; a hash join brings the winner back to every row.
- near_dedupe: MinHash signatures and LSH band keys per batch (`curate.minhash`, the near_dedupe step's own
  functions and configuration), then a shuffle on the band keys: `groupby(band key)` gives each bucket's
  first row and size, a join on the key lists the bucket's members, and each member of a bucket of two or
  more forms the pair (first row, member) — the local engine's "star" candidate pairs exactly. Pairs are
  de-duplicated by a groupby on (a, b), verified (MinHash estimate, exact Jaccard of the shingle sets near
  the threshold: the step's rule) after two joins that attach each end's signature and text, and only
  pairs at or above the threshold go on to clustering.
- Connected components never gather pairs on the driver. Verified pairs stay in Ray blocks; each block is
  reduced by a worker to a spanning forest of its own pairs (an edge node → smallest row of its
  component, so at most V_block - 1 edges), then blocks are merged four at a time and re-reduced until one
  block is left, whose forest has at most V - 1 edges, V = the number of rows with at least one verified
  near-duplicate partner. That last task labels components and picks each one's representative with
  `curate.minhash.representatives` (highest quality, then first in input order: the local rule).
  **Memory bound:** the driver holds only block references and per-step counts — O(number of blocks),
  independent of both the number of rows and the number of candidate pairs. A worker reducing a merge
  holds at most 4·(V - 1) forest edges (each 2 row numbers + id + quality), i.e. O(V), not O(pairs); the
  candidate pairs themselves are only ever held one shuffle partition at a time by Ray Data's join and
  aggregation workers (spilled to disk by Ray's object store when they do not fit).
- semantic_dedupe is not available on Ray yet: the local step's boundary margin and global greedy pass have no
  distributed form here, and a plain per-cluster SemDeDup would not give the local engine's output. A
  pipeline naming it is refused with one sentence before anything runs.

After each step the rows with a `drop_reason` move to that step's dropped dataset, as in the local
pipeline. Outputs (in the run folder): `kept/` and `dropped/` — directories of Parquet part files, rows in
input order (`dropped/` by step, then input order) — plus, for runs of at most `LOCAL_FILES_MAX_ROWS` input
rows, the local engine's `kept.parquet`, `dropped.parquet` and `report.html`; `quarantine.jsonl` and
`manifest.json` as always. `output_uri` (Python API / `--ray-output`) also writes `kept/` and `dropped/`
to any pyarrow filesystem URI: `s3://bucket/prefix`, `gs://bucket/prefix`, `hdfs://...` (credentials from
the usual environment variables of those stores).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate.pipeline import (
    DROP_COLUMNS,
    PipelineConfig,
    _with_drop_columns,
    _write_report,
    read_examples,
    redact_what_left_early,
    write_quarantine,
)
from curate.registry import build_step
from studio.atomic import atomic_path
from studio.console import Reporter
from studio.errors import StudioError
from studio.runs import Run
from studio.workspace import Workspace

log = logging.getLogger("curate.ray")

#: Steps that load a model: they run in an actor pool so each worker loads it once.
MODEL_STEPS = {"redact_pii", "score"}
#: Runs with at most this many input rows also get the local engine's single-file outputs and report.
LOCAL_FILES_MAX_ROWS = 500_000
ROW = "_row"


# ----------------------------------------------------------------------------------------- cluster


def _check_reachable(address: str) -> None:
    if address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 6379)), timeout=5):
            pass
    except (OSError, ValueError):
        raise StudioError(
            f"cannot reach the Ray cluster at {address}; start one with `ray start --head` on that host "
            "(or check the HOST:PORT, default port 6379) and try again."
        ) from None


def connect(address: str | None, temp_dir: Path) -> bool:
    """Join the cluster at `address`, or start a local one; returns True when this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False)
        except Exception as err:  # noqa: BLE001 - Ray raises several types for an unusable cluster
            raise StudioError(f"cannot connect to the Ray cluster at {address} ({type(err).__name__}: {err}).") from None
    else:
        temp_dir.mkdir(parents=True, exist_ok=True)
        ray.init(_temp_dir=str(temp_dir), include_dashboard=False, log_to_driver=False)
    return True


def _context() -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.verbose_stats_logs = False


def _partitions() -> int:
    import ray

    return max(2, int(ray.cluster_resources().get("CPU", 2)))


# ------------------------------------------------------------------------------- batch functions


def _to_polars(table) -> pl.DataFrame:
    return pl.from_arrow(table, rechunk=False)


def _to_arrow(df: pl.DataFrame):
    return df.to_arrow()


class _StepRunner:
    """Builds a step once per worker (actor) and applies `step.process` to each Arrow batch."""

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:  # pragma: no cover
            pass
        self.step = build_step(name, config)

    def __call__(self, table):
        df = _with_drop_columns(_to_polars(table))
        out = _with_drop_columns(self.step.process(df))
        if out.height != df.height:
            raise AssertionError(f"step {self.step.name} returned {out.height} rows for {df.height}")
        return _to_arrow(out)


_STEP_CACHE: dict[str, Any] = {}


def _run_step_task(table, name: str, config: dict[str, Any]):
    """Task (not actor) form for cheap steps: the step object is cached per worker process."""
    key = name + json.dumps(config, sort_keys=True, default=str)
    if key not in _STEP_CACHE:
        _STEP_CACHE[key] = _StepRunner(name, config)
    return _STEP_CACHE[key](table)


def _split(table, dropped: bool, step: str | None = None):
    import pyarrow.compute as pc

    mask = pc.is_valid(table["drop_reason"]) if dropped else pc.is_null(table["drop_reason"])
    out = table.filter(mask)
    if step is not None:
        import pyarrow as pa

        out = out.append_column("step", pa.array([step] * out.num_rows, type=pa.large_string()))
    return out


def _reorder(df: pl.DataFrame, before: list[str], added: list[str]) -> pl.DataFrame:
    """Columns in the local engine's order: the step's input columns, then the ones the step appended."""
    cols = [c for c in before if c in df.columns] + [c for c in added if c not in before and c in df.columns]
    return df.select(cols)


# --------------------------------------------------------------------------------- exact dedupe


def _exact_keys(table, on: str):
    df = _to_polars(table)
    if on == "messages":
        key = pl.col("id")
    else:
        prompt = pl.col("messages").list.eval(
            pl.element().filter(pl.element().struct.field("role") == "user").struct.field("content")
        ).list.join("\n")
        key = prompt.hash(seed=0).cast(pl.String)
    df = df.with_columns(key.alias("_key"),
                         (pl.col(ROW).cast(pl.String).str.zfill(20) + pl.col("id")).alias("_first"))
    return _to_arrow(df)


def _exact_mark(table, columns: list[str]):
    df = _to_polars(table)
    dup = pl.col("_winner") != pl.col("_first")
    df = df.with_columns(
        pl.when(pl.col("drop_reason").is_null() & dup).then(pl.lit("exact_duplicate"))
        .otherwise(pl.col("drop_reason")).alias("drop_reason"),
        pl.when(dup).then(pl.col("_winner").str.slice(20)).otherwise(pl.col("dup_of")).alias("dup_of"),
    )
    return _to_arrow(df.select(columns))


def exact_dedupe(ds, step, columns: list[str]):
    from ray.data.aggregate import Min

    keyed = ds.map_batches(_exact_keys, fn_kwargs={"on": step.config.on}, batch_format="pyarrow")
    winners = keyed.select_columns(["_key", "_first"]).groupby("_key").aggregate(Min("_first", alias_name="_winner"))
    joined = keyed.join(winners, join_type="inner", num_partitions=_partitions(), on=("_key",))
    return joined.map_batches(_exact_mark, fn_kwargs={"columns": columns}, batch_format="pyarrow"), {}


# ---------------------------------------------------------------------------------- near dedupe


def _sketch(table, cfg: dict[str, Any], bands: int, rows: int, has_quality: bool):
    """Per document: row, id, quality, text, signature bytes, whether it has shingles, and its band keys."""
    import pyarrow as pa

    from curate import minhash
    from curate.steps.near_dedupe import text_expr

    df = _to_polars(table)
    texts = df.select(text_expr(cfg["text"])).to_series()
    shingles = minhash.shingle_hashes(texts, cfg["unit"], cfg["size"], cfg["seed"])
    sig = minhash.signatures(shingles, cfg["num_perm"], cfg["seed"])
    has = minhash.has_shingles(shingles)
    keys = minhash.band_keys(sig, bands, rows)
    quality = (df.get_column("quality").cast(pl.Float64).to_arrow() if has_quality
               else pa.nulls(df.height, pa.float64()))
    sig_arr = pa.FixedSizeListArray.from_arrays(pa.array(sig.ravel(), pa.uint32()), sig.shape[1])
    key_arr = pa.FixedSizeListArray.from_arrays(pa.array(keys.ravel(), pa.uint64()), bands)
    return pa.table({ROW: df.get_column(ROW).to_arrow(), "_id": df.get_column("id").to_arrow(), "_q": quality,
                     "_text": texts.to_arrow(), "_sig": sig_arr, "_has": pa.array(has), "_keys": key_arr})


def _explode_bands(table):
    import pyarrow as pa
    import pyarrow.compute as pc

    table = table.filter(table["_has"])
    keys = table["_keys"].combine_chunks()
    bands = keys.type.list_size
    flat = keys.flatten()
    rows = np.repeat(table[ROW].to_numpy(), bands)
    return pa.table({"_key": pc.cast(flat, pa.uint64()), ROW: pa.array(rows, pa.int64())})


def _star_pairs(table):
    import pyarrow as pa

    df = _to_polars(table).filter(pl.col(ROW) > pl.col("_a"))
    return pa.table({"a": df.get_column("_a").to_arrow(), "b": df.get_column(ROW).to_arrow()})


def _rename_side(table, side: str):
    """After joining document columns onto a pair's `side` end, prefix them with that side."""
    names = {"_id": f"{side}_id", "_q": f"{side}_q", "_text": f"{side}_text", "_sig": f"{side}_sig"}
    keep = [c for c in table.column_names if c in names or c in ("a", "b") or c[:2] in ("a_", "b_")]
    table = table.select(keep)
    return table.rename_columns([names.get(c, c) for c in table.column_names])


def _attach(pairs, docs, side: str):
    docs = docs.select_columns([ROW, "_id", "_q", "_text", "_sig"])
    joined = pairs.join(docs, join_type="inner", num_partitions=_partitions(), on=(side,), right_on=(ROW,))
    return joined.map_batches(_rename_side, fn_kwargs={"side": side}, batch_format="pyarrow")


def pair_similarity(a_sig, b_sig, a_text: pl.Series, b_text: pl.Series, cfg: dict[str, Any]) -> np.ndarray:
    """The near_dedupe step's similarity of a pair: the MinHash estimate, or the exact Jaccard of the shingle
    sets when the estimate is within `exact_band` of the threshold (`NearDedupe._fast_pairs`/`_similarity`)."""
    from curate import minhash

    n = len(a_text)
    if n == 0:
        return np.zeros(0)
    sig = np.concatenate([a_sig, b_sig])
    pairs = np.stack([np.arange(n), np.arange(n) + n], axis=1)
    sims = minhash.estimated_jaccard(sig, pairs)
    unsure = np.abs(sims - cfg["threshold"]) <= cfg["exact_band"]
    if unsure.any():
        idx = np.flatnonzero(unsure)
        texts = pl.concat([a_text.gather(idx), b_text.gather(idx)])
        shingles = minhash.shingle_hashes(texts, cfg["unit"], cfg["size"], cfg["seed"])
        local = np.stack([np.arange(len(idx)), np.arange(len(idx)) + len(idx)], axis=1)
        sims[unsure] = minhash.exact_jaccard(shingles, local)
    return sims


def _sig_matrix(column, num_perm: int) -> np.ndarray:
    """Signatures from a list column (fixed-size or not: joins may change the list type)."""
    arr = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    return arr.flatten().to_numpy(zero_copy_only=False).astype(np.uint32, copy=False).reshape(len(arr), num_perm)


def _verify(table, cfg: dict[str, Any]):
    import pyarrow as pa

    sims = pair_similarity(_sig_matrix(table["a_sig"], cfg["num_perm"]), _sig_matrix(table["b_sig"], cfg["num_perm"]),
                           pl.from_arrow(table["a_text"]), pl.from_arrow(table["b_text"]), cfg)
    keep = sims >= cfg["threshold"]
    out = table.select(["a", "b", "a_id", "a_q", "b_id", "b_q"]).filter(pa.array(keep))
    return out.append_column("sim", pa.array(sims[keep]))


def _nodes(table) -> pl.DataFrame:
    df = _to_polars(table)
    both = pl.concat([
        df.select(pl.col("a").alias("row"), pl.col("a_id").alias("id"), pl.col("a_q").alias("q")),
        df.select(pl.col("b").alias("row"), pl.col("b_id").alias("id"), pl.col("b_q").alias("q")),
    ])
    return both.unique("row").sort("row")


def _components(table) -> tuple[pl.DataFrame, np.ndarray]:
    from curate import minhash

    nodes = _nodes(table)
    rows = nodes.get_column("row").to_numpy()
    a = np.searchsorted(rows, table["a"].to_numpy())
    b = np.searchsorted(rows, table["b"].to_numpy())
    labels = minhash.connected_components(len(rows), np.stack([a, b], axis=1))
    return nodes, labels


def _forest(table):
    """A spanning forest of this block's edges: node → the smallest row of its component (≤ V_block - 1 edges)."""
    import pyarrow as pa

    if table.num_rows == 0:
        return table
    nodes, labels = _components(table)
    child = np.flatnonzero(labels != np.arange(len(labels)))
    root = labels[child]
    n = nodes
    return pa.table({
        "a": n.get_column("row").gather(root).to_arrow(), "b": n.get_column("row").gather(child).to_arrow(),
        "a_id": n.get_column("id").gather(root).to_arrow(), "a_q": n.get_column("q").gather(root).to_arrow(),
        "b_id": n.get_column("id").gather(child).to_arrow(), "b_q": n.get_column("q").gather(child).to_arrow(),
    })


def _representatives(table, has_quality: bool):
    """Last block: components over the merged forest, each one's representative (the local rule)."""
    import pyarrow as pa

    from curate import minhash

    if table.num_rows == 0:
        return pa.table({ROW: pa.array([], pa.int64()), "_rep": pa.array([], pa.int64()),
                         "_rep_id": pa.array([], pa.large_string())})
    nodes, labels = _components(table)
    quality = nodes.get_column("q").cast(pl.Float64).to_numpy() if has_quality else None
    rep = minhash.representatives(labels, quality)
    return pa.table({ROW: nodes.get_column("row").to_arrow(), "_rep": nodes.get_column("row").gather(rep).to_arrow(),
                     "_rep_id": nodes.get_column("id").gather(rep).to_arrow()})


def _member_pairs(table):
    import pyarrow as pa

    df = _to_polars(table).filter(pl.col("_rep") != pl.col(ROW))
    return pa.table({"a": df.get_column("_rep").to_arrow(), "b": df.get_column(ROW).to_arrow()})


def exact_pair_similarity(a_text: pl.Series, b_text: pl.Series, cfg: dict[str, Any]) -> np.ndarray:
    """Exact Jaccard of each pair's shingle sets: the `similarity` the near_dedupe step reports for a dropped row."""
    from curate import minhash

    n = len(a_text)
    if n == 0:
        return np.zeros(0)
    shingles = minhash.shingle_hashes(pl.concat([a_text, b_text]), cfg["unit"], cfg["size"], cfg["seed"])
    return minhash.exact_jaccard(shingles, np.stack([np.arange(n), np.arange(n) + n], axis=1))


def _member_sims(table, cfg: dict[str, Any]):
    import pyarrow as pa

    sims = exact_pair_similarity(pl.from_arrow(table["a_text"]), pl.from_arrow(table["b_text"]), cfg)
    return pa.table({ROW: table["b"], "_sim": pa.array(sims, pa.float64())})


def _near_mark(table, columns: list[str]):
    df = _to_polars(table)
    in_cluster = pl.col("_rep_id").is_not_null()
    drop = in_cluster & (pl.col("_rep") != pl.col(ROW))
    sim = pl.when(drop).then(pl.col("_sim")).otherwise(None).cast(pl.Float64)
    df = df.with_columns(
        pl.when(drop).then(pl.lit("near_duplicate")).otherwise(pl.col("drop_reason")).alias("drop_reason"),
        pl.when(drop).then(pl.col("_rep_id")).otherwise(pl.col("dup_of")).alias("dup_of"),
        pl.when(in_cluster).then(pl.col("_rep_id")).otherwise(None).cast(pl.String).alias("dup_cluster"),
        sim.alias("similarity"),
    )
    return _to_arrow(_reorder(df, columns, ["dup_cluster", "similarity"]))


def _merge_forests(edges, fan_in: int = 4):
    """Reduce the verified pairs to one block holding a spanning forest (see the module docstring's bound)."""
    forest = edges.map_batches(_forest, batch_format="pyarrow", batch_size=None).materialize()
    blocks = forest.num_blocks()
    while blocks > 1:
        blocks = max(1, math.ceil(blocks / fan_in))
        forest = forest.repartition(blocks).map_batches(_forest, batch_format="pyarrow", batch_size=None).materialize()
        blocks = forest.num_blocks()
    return forest


def near_dedupe(ds, step, columns: list[str]):
    from ray.data.aggregate import Count, Min

    from curate import minhash

    cfg = step.config.model_dump()
    bands, rows = minhash.optimal_param(cfg["threshold"], cfg["num_perm"], 1 - cfg["recall_weight"], cfg["recall_weight"])
    has_quality = "quality" in columns
    docs = ds.map_batches(_sketch, fn_kwargs={"cfg": cfg, "bands": bands, "rows": rows, "has_quality": has_quality},
                          batch_format="pyarrow").materialize()
    band_rows = docs.map_batches(_explode_bands, batch_format="pyarrow")
    buckets = (band_rows.groupby("_key").aggregate(Min(ROW, alias_name="_a"), Count(alias_name="_n"))
               .filter(expr="_n >= 2").select_columns(["_key", "_a"]))
    star = band_rows.join(buckets, join_type="inner", num_partitions=_partitions(), on=("_key",))
    pairs = star.map_batches(_star_pairs, batch_format="pyarrow").groupby(["a", "b"]).count().select_columns(["a", "b"])
    pairs = pairs.materialize()
    n_pairs = pairs.count()
    verified = _attach(_attach(pairs, docs, "a"), docs, "b").map_batches(
        _verify, fn_kwargs={"cfg": cfg}, batch_format="pyarrow").materialize()
    n_verified = verified.count()
    forest = _merge_forests(verified)
    reps = forest.map_batches(_representatives, fn_kwargs={"has_quality": has_quality}, batch_format="pyarrow",
                              batch_size=None).materialize()
    members = reps.map_batches(_member_pairs, batch_format="pyarrow")
    sims = _attach(_attach(members, docs, "a"), docs, "b").map_batches(
        _member_sims, fn_kwargs={"cfg": cfg}, batch_format="pyarrow")
    marks = reps.join(sims, join_type="left_outer", num_partitions=_partitions(), on=(ROW,))
    out = ds.join(marks, join_type="left_outer", num_partitions=_partitions(), on=(ROW,))
    out = out.map_batches(_near_mark, fn_kwargs={"columns": columns}, batch_format="pyarrow")
    stats = {"bands": bands, "rows": rows, "candidate_pairs": int(n_pairs), "verified_pairs": int(n_verified)}
    return out, stats


GLOBAL_STEPS = {"exact_dedupe": exact_dedupe, "near_dedupe": near_dedupe}
RAY_UNSUPPORTED = ("semantic_dedupe",)


# ------------------------------------------------------------------------------------- pipeline


def run_steps_ray(ds, steps: list, run: Run | None, reporter: Reporter):
    """Apply steps in order on Ray Data. Returns (kept dataset, [(step name, dropped dataset)])."""
    from ray.data import ActorPoolStrategy

    dropped = []
    for step in steps:
        t0 = time.perf_counter()
        rows_in = ds.count()
        reporter.info(f"[bold]{step.name}[/] on {rows_in:,} rows (ray) …")
        columns = list(ds.schema().names)
        stats: dict[str, Any] = {}
        if step.name in GLOBAL_STEPS:
            out, stats = GLOBAL_STEPS[step.name](ds, step, columns)
        elif step.is_global:
            raise StudioError(f"step {step.name} has no Ray implementation; run it with --engine local.")
        else:
            config = step.config.model_dump(mode="json")
            if step.name in MODEL_STEPS:
                out = ds.map_batches(_StepRunner, fn_constructor_args=(step.name, config), batch_format="pyarrow",
                                     compute=ActorPoolStrategy(min_size=1, max_size=_partitions()), batch_size=512)
            else:
                out = ds.map_batches(_run_step_task, fn_args=(step.name, config), batch_format="pyarrow")
        out = out.materialize()
        ds = out.map_batches(_split, fn_kwargs={"dropped": False}, batch_format="pyarrow").materialize()
        gone = out.map_batches(_split, fn_kwargs={"dropped": True, "step": step.name}, batch_format="pyarrow").materialize()
        by_reason = {}
        if gone.count():
            by_reason = {r["drop_reason"]: int(r["count()"]) for r in gone.groupby("drop_reason").count().take_all()}
            dropped.append((step.name, gone))
        by_reason = dict(sorted(by_reason.items()))
        seconds = time.perf_counter() - t0
        kept = ds.count()
        log.info("step %s (ray): %d in, %d kept, dropped %s in %.2fs", step.name, rows_in, kept, by_reason, seconds)
        if run is not None:
            run.steps.append({"step": step.name, "config": step.config.model_dump(mode="json"), "rows_in": rows_in,
                              "kept": kept, "dropped": by_reason, "seconds": round(seconds, 3), "engine": "ray",
                              **stats})
            run.time(step.name, seconds)
            for reason, n in by_reason.items():
                run.counts.drop(reason, n)
    return ds, dropped


def _strip(table, drop: list[str]):
    return table.drop_columns([c for c in drop if c in table.column_names])


def _conform(table, schema, order: int):
    import pyarrow as pa

    cols = []
    for field in schema:
        if field.name in table.column_names:
            cols.append(table[field.name].cast(field.type))
        else:
            cols.append(pa.nulls(table.num_rows, field.type))
    out = pa.table(cols, schema=schema)
    return out.append_column("_order", pa.array(np.full(table.num_rows, order, dtype=np.int64)))


def combine_dropped(dropped):
    """One dataset of every step's dropped rows in the local engine's order (step, then input order)."""
    import pyarrow as pa

    schemas = [d.schema().base_schema for _, d in dropped]
    unified = pa.unify_schemas(schemas, promote_options="permissive")
    parts = [d.map_batches(_conform, fn_kwargs={"schema": unified, "order": i}, batch_format="pyarrow")
             for i, (_, d) in enumerate(dropped)]
    ds = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    return ds.sort(["_order", ROW]).map_batches(_strip, fn_kwargs={"drop": ["_order", ROW]}, batch_format="pyarrow")


def _write_single(ds, path: Path) -> int:
    """Stream a dataset into one Parquet file (batch by batch: memory of one batch on the driver)."""
    import pyarrow.parquet as pq

    rows = 0
    with atomic_path(path) as tmp:
        writer = None
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=65536):
            if writer is None:
                writer = pq.ParquetWriter(str(tmp), batch.schema)
            writer.write_table(batch)
            rows += batch.num_rows
        if writer is None:
            pq.write_table(ds.schema().base_schema.empty_table(), str(tmp))
        else:
            writer.close()
    return rows


def write_outputs_ray(run: Run, kept, dropped, quarantine, n_input: int, output_uri: str | None) -> tuple:
    kept_out = kept.sort(ROW).map_batches(_strip, fn_kwargs={"drop": [*DROP_COLUMNS, ROW]}, batch_format="pyarrow")
    kept_out = kept_out.materialize()
    dropped_out = combine_dropped(dropped).materialize() if dropped else None
    targets = [str(run.dir)] + ([output_uri.rstrip("/")] if output_uri else [])
    for base in targets:
        kept_out.write_parquet(f"{base}/kept")
        if dropped_out is not None:
            dropped_out.write_parquet(f"{base}/dropped")
    for name in ("kept", "dropped"):
        for part in sorted((run.dir / name).glob("*.parquet")):
            run.add_output(part)
    run.extra["sharded_outputs"] = {"kept": kept_out.count(), "dropped": dropped_out.count() if dropped_out else 0}
    if output_uri:
        run.extra["ray_output_uri"] = output_uri
    small = n_input <= LOCAL_FILES_MAX_ROWS
    if small:
        run.add_output(run.dir / "kept.parquet", rows=_write_single(kept_out, run.dir / "kept.parquet"))
        if dropped_out is not None:
            rows = _write_single(dropped_out, run.dir / "dropped.parquet")
        else:
            empty = _with_drop_columns(pl.from_arrow(kept_out.schema().base_schema.empty_table()))
            empty.with_columns(pl.lit(None, dtype=pl.String).alias("step")).write_parquet(run.dir / "dropped.parquet")
            rows = 0
        run.add_output(run.dir / "dropped.parquet", rows=rows)
    write_quarantine(quarantine, run.dir / "quarantine.jsonl")
    run.add_output(run.dir / "quarantine.jsonl", rows=len(quarantine))
    return small


def _redact_early_drops(steps: list, dropped: list) -> list:
    """As the local engine (`curate.pipeline.redact_what_left_early`): rows dropped before `redact_pii` ran are
    redacted with the same step, so no output holds PII the user asked to remove."""
    names = [s.name for s in steps]
    if "redact_pii" not in names or steps[names.index("redact_pii")].config.audit_only:
        return dropped
    early = set(names[:names.index("redact_pii")])
    config = steps[names.index("redact_pii")].config.model_dump(mode="json")
    return [(name, ds.map_batches(_run_step_task, fn_args=("redact_pii", config), batch_format="pyarrow").materialize())
            if name in early else (name, ds) for name, ds in dropped]


def run_pipeline_ray(config: PipelineConfig, steps: list, out_dir: str | Path | None, reporter: Reporter,
                     workspace: Workspace | None, address: str | None = None, output_uri: str | None = None) -> Run:
    """`run_pipeline(engine="ray")`: same inputs, same steps, same outputs as the local engine, on Ray Data."""
    import ray

    unsupported = [s.name for s in steps if s.name in RAY_UNSUPPORTED]
    if unsupported:
        raise StudioError(f"step {unsupported[0]} cannot run on the Ray engine yet (its output would differ from the "
                          "local engine's); run this pipeline with --engine local, or drop the step.")
    if address:
        _check_reachable(address)  # one sentence, before a run folder exists
    with Run("curate", out_dir=out_dir, workspace=workspace,
             config={**config.model_dump(mode="json"), "engine": "ray"}) as run:
        started = connect(address, run.dir / ".ray")
        try:
            _context()
            t0 = time.perf_counter()
            result = read_examples(config)
            for path, fmt in result.formats.items():
                run.add_input(path, format=fmt)
                reporter.info(f"read {path} as [bold]{fmt}[/]")
            frame = result.frame().with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))
            frame = _with_drop_columns(frame)
            blocks = max(_partitions(), math.ceil(frame.height / 20_000))
            ds = ray.data.from_arrow([t for t in _slices(frame, blocks)])
            run.time("read", time.perf_counter() - t0)
            run.counts.input = result.n_input
            run.counts.quarantined = len(result.quarantine)
            if result.quarantine:
                reporter.warn(f"{len(result.quarantine)} malformed records quarantined (see {run.dir / 'quarantine.jsonl'})")
            kept, dropped = run_steps_ray(ds, steps, run, reporter)
            run.counts.kept = kept.count()
            dropped = _redact_early_drops(steps, dropped)
            _, quarantine = redact_what_left_early(steps, [], result.quarantine)
            t1 = time.perf_counter()
            small = write_outputs_ray(run, kept, dropped, quarantine, result.n_input, output_uri)
            run.time("write", time.perf_counter() - t1)
            run.extra["engine"] = {"name": "ray", "address": address or "local",
                                   "cpus": int(ray.cluster_resources().get("CPU", 0))}
            if config.report and small:
                kept_df = pl.read_parquet(run.dir / "kept.parquet")
                dropped_df = pl.read_parquet(run.dir / "dropped.parquet")
                _write_report(run, kept_df, [dropped_df] if dropped_df.height else [], reporter)
        finally:
            if started:
                ray.shutdown()
    return run


def _slices(frame: pl.DataFrame, blocks: int):
    size = max(1, math.ceil(frame.height / blocks))
    for start in range(0, max(frame.height, 1), size):
        yield frame.slice(start, size).to_arrow()
