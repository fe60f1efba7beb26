"""The Ray engine: run a curation pipeline on a Ray cluster, with the same output as the local engine.

`studio curate ... --engine ray [--ray-address HOST:6379]` lands here (`curate.pipeline.run_pipeline` hands
over). Inputs are read with the studio readers (quarantine included) by parallel tasks on the driver's node,
one per group of consecutive files (`read_blocks`); every row gets `_row` = its index in input order, and each
group's rows form a block — an Arrow table in Ray's object store, sorted by `_row`, the blocks in input order
(block i's rows all come before block i+1's). Each step turns the blocks into kept blocks plus dropped
blocks, as in the local pipeline; nothing uses a Ray Data shuffle (each costs seconds of
actor start-up on a small cluster: see bench/README.md `## ray_scale`).

- Row-wise steps run as Ray Data `map_batches` over the Arrow blocks and call the SAME step code,
  `step.process(polars_df)`, per batch (Arrow → Polars is zero-copy for the column buffers). Model steps
  (`MODEL_STEPS`: redact_pii, score) run in an actor pool (`ActorPoolStrategy`), so each worker builds its
  analyzer / scorer once and keeps it for every batch; steps without a model (normalize, filter) run as Ray
  Data tasks, one per block, with the step built once per worker process. One core task per block then
  splits the output into kept and dropped rows and reports the counts. Ray Data's cluster services (its
  statistics actor and autoscaling coordinator: detached actors, one per cluster, kept for every later job)
  are started with a local cluster (`start_data_services`), or while the workers read when joining one.
- Global steps use hand-written hash partitioning with Ray core tasks, `P` = 2 × the cluster's CPUs
  partitions (`_partitions`): map tasks with `num_returns=P` split their output by a hash of the key, and
  one reduce task per partition receives that partition's part of every block. Each step ends with one task
  per block that marks its rows (`drop_reason`, `dup_of`, ...) and splits kept from dropped.
- Steps written as stages (`curate.step.StagedStep`, e.g. exact_dedupe) run through one executor,
  `staged_step`, that knows nothing about the step: per block the step's `map`, the entries split by hash of
  `_key` → per partition the step's `reduce` over its entries in input order, its marks sent back to the blocks
  holding their rows → per block the step's `mark`. near_dedupe and semantic_dedupe are not written as stages
  yet; their Ray forms below are still hand-written here (`GLOBAL_STEPS`).
- near_dedupe (3 stages and one driver step): per block, the near_dedupe step's own functions
  (`curate.minhash`: shingles, signatures, band keys, with the step's configuration and LSH bands × rows)
  give a sketch (rows, ids, quality, signatures, shingle hashes — kept in the object store) and the (band key, row)
  entries split by hash of the key → per band-key partition, each bucket of two or more rows gives the
  local engine's "star" candidate pairs (bucket's first row, member), split by the pair's first row → per
  pair partition, the pairs are de-duplicated (each pair has one owner partition, so the counts are the
  local engine's), verified with the step's rule (MinHash estimate; exact Jaccard of the shingle sets
  when the estimate is within `exact_band` of the threshold, in the step's rounds, `check_unsure`; the task
  fetches only the sketches of the blocks its pairs touch) and the verified edges are reduced to a spanning
  forest (each node → the smallest row of its component: at most V_p - 1 edges for V_p nodes) → the
  driver unites the forests (`curate.minhash.label_components`: NumPy, so the driver never starts numba)
  and picks each cluster's representative with `curate.minhash.representatives` (highest quality, then first in input order: the local rule) → per
  block, dropped rows get `near_duplicate`, `dup_of` and the exact Jaccard to their representative as
  `similarity`, every member gets `dup_cluster`.
  `check_unsure` skips the exact check of an unsure pair whose rows are already joined by real edges (it
  cannot change the clusters); here it sees one partition's pairs at a time, so it skips fewer pairs than
  the local step: the clusters, kept rows, `dup_of`, `dup_cluster` and `similarity` are the same, and only
  the `verified_pairs` / `exact_checks` statistics can differ.
  **Driver memory bound:** the driver never holds the rows: it holds block references, per-block counts
  and schemas (O(blocks)), the quarantined records, and in near_dedupe the P spanning forests:
  at most P·(V - 1) edges and P·V node qualities (16-24 bytes each), V = the rows with at least one
  verified near-duplicate partner ≤ the number of rows — O(rows), never O(candidate pairs). Candidate pairs
  live only in the band-key and pair partitions, one partition per task (a task holds O(pairs / P)).
  Workers reading sketches for verification hold the signatures and shingle hashes of the blocks their
  pairs touch.
- semantic_dedupe (SemDeDup by distributed clustering, the local step's functions at every stage): per block,
  embeddings in a pool of Ray actors (`_Embedder`: the step's `EmbeddingCache`, model loaded once per actor,
  one actor per `EMBED_ROWS_PER_ACTOR` rows up to one per CPU; actors add cache shards but never merge them,
  one task merges after them) → the driver draws the local step's centroid sample (`centroid_sample`: same
  seed, same rng calls), fetches only those rows' vectors (≤ 128 per centroid) and fits the same centroids
  (`fit_centroids`) → per block, each row's nearest centroid and the second nearest within the boundary margin
  (`assign_clusters`), the (row, label, quality, vector) entries split by label → per label partition, each
  cluster's rows in the local rank order (highest quality, then input order) and its pairs with cosine ≥
  threshold (`cluster_pairs`) → the driver resolves the pairs greedily best-first (`resolve_pairs`, the local
  step's own pass) → per block, `semantic_duplicate`, `dup_of`, `similarity` and `semantic_cluster`.
  **Driver memory:** the centroid sample and centroids (O(k × 128) vectors), then every pair at or above the
  threshold (about 40 bytes each) and the representatives' ids — never all vectors. The pairs are bounded by
  the duplicate pairs, not by the rows: few at the default 0.95, many at a loose threshold on data full of
  near-copies (a row with m duplicates in its cluster brings up to m pairs).

Outputs (in the run folder): `kept/` and `dropped/` — directories of Parquet part files, one per block, rows in
input order (`dropped/` by step, then input order), written by tasks on the driver's node (like the read
tasks, they ask for no CPU where the driver's node has none, e.g. a head started with `--num-cpus 0`) — plus, for runs
of at most `LOCAL_FILES_MAX_ROWS` input rows, the local engine's `kept.parquet`, `dropped.parquet` and
`report.html`; `quarantine.jsonl` and `manifest.json` as always. `output_uri` (Python API / `--ray-output`)
also writes `kept/` and `dropped/` to any pyarrow filesystem URI: `s3://bucket/prefix`, `gs://bucket/prefix`,
`hdfs://...` (credentials from the usual environment variables of those stores), from any worker.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate.bookkeeping import apply_steps, finish_run, record_read, with_drop_columns
from curate.config import PipelineConfig
from curate.registry import build_step
from curate.step import ROW, StagedStep
from studio.console import Reporter
from studio.errors import StudioError
from studio.runs import Run
from studio.schema import DROP_COLUMNS
from studio.workspace import Workspace

log = logging.getLogger("curate.ray")

#: Steps that load a model: they run in an actor pool so each worker loads it once.
MODEL_STEPS = {"redact_pii", "score"}
#: Runs with at most this many input rows also get the local engine's single-file outputs and report.
LOCAL_FILES_MAX_ROWS = 500_000
#: semantic_dedupe starts one embedding actor per this many rows (at most one per CPU and per block): each actor
#: loads the model (a fresh worker imports torch and sentence-transformers: ~10-17 s of CPU measured here on a
#: busy 2-core machine, against ~30 rows/s of encoding), so a small input gets one actor, not one per CPU.
EMBED_ROWS_PER_ACTOR = 2048
#: Most rows per block when the input is cut into blocks (at least `_partitions()` blocks are made).
BLOCK_ROWS = 100_000


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
    """Join the cluster at `address` (its authentication is the cluster's: set RAY_AUTH_MODE / RAY_AUTH_TOKEN as it
    needs), or start a local one that requires a random token; returns True when this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False)
        except Exception as err:  # noqa: BLE001 - Ray raises several types for an unusable cluster
            raise StudioError(f"cannot connect to the Ray cluster at {address} ({type(err).__name__}: {err}).") from None
    else:
        temp_dir.mkdir(parents=True, exist_ok=True)
        # Workers at the driver's priority, as the local engine runs: Ray's default (niceness 15) hands the CPU
        # to every other process on a shared machine.
        os.environ.setdefault("RAY_worker_niceness", "0")
        if "RAY_AUTH_MODE" not in os.environ:
            _require_token()
        ray.init(_temp_dir=str(temp_dir), include_dashboard=False, log_to_driver=False)
        start_data_services()
    return True


def _require_token() -> None:
    """Make the local cluster about to start accept only clients holding a random token (its own processes inherit
    it from the environment), so no other user of the machine can submit code to it; nothing goes to ~/.ray.
    Ray reads these settings when it is imported, so its configuration is reloaded here (Ray's own tests do the
    same); where that internal call is missing, authentication stays off, with a warning."""
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    try:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):
        os.environ["RAY_AUTH_MODE"] = "disabled"
        log.warning("this Ray version cannot switch on token authentication after import; the local cluster "
                    "runs without it (set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN before starting to have it).")


def start_data_services(wait: bool = True) -> None:
    """Start Ray Data's per-cluster services now, as part of starting a cluster: its statistics actor and its
    autoscaling coordinator are detached actors (one per cluster, shared by every later job), each a new
    Python process that imports Ray Data (~1 s of CPU). Created lazily, they would start inside the first
    step that uses Ray Data, on every freshly started local cluster. `wait`: return only when both are up
    (otherwise they start while the caller goes on; on a cluster that has them already this costs nothing)."""
    import ray

    try:
        from ray.data._internal.cluster_autoscaler import get_or_create_autoscaling_coordinator
        from ray.data._internal.stats import get_or_create_stats_actor

        actors = [get_or_create_stats_actor(), get_or_create_autoscaling_coordinator()]
        if wait:
            ray.get([a.__ray_ready__.remote() for a in actors])
    except Exception:  # noqa: BLE001 - private Ray Data APIs: without them the first step is only slower
        log.debug("could not start Ray Data's cluster services ahead of the first step", exc_info=True)


def _context() -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.verbose_stats_logs = False
    ctx.execution_options.preserve_order = True  # output blocks in input order
    # On a small cluster the default reservation keeps half the CPUs for operators that do not exist here (a
    # single map_batches): its tasks would run one at a time.
    ctx.op_resource_reservation_enabled = False


def _partitions() -> int:
    """Hash partitions of the global steps: 2 × the cluster's CPUs (at least 2)."""
    import ray

    return max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))


_REMOTE: dict[tuple, Any] = {}


def _remote(fn, **options):
    """`ray.remote(fn).options(...)`, built once per function and options (module functions are shipped to the
    workers by reference, so a task does not re-import or re-pickle anything heavy)."""
    import ray

    key = (fn.__name__, tuple(sorted(options.items())))
    if key not in _REMOTE:
        _REMOTE[key] = ray.remote(fn).options(**options) if options else ray.remote(fn)
    return _REMOTE[key]


# ---------------------------------------------------------------------------------------- blocks


@dataclass
class Blocks:
    """Rows of the pipeline as Arrow tables in the object store; block i's `_row` values all precede block i+1's."""

    refs: list = field(default_factory=list)
    first: list[int] = field(default_factory=list)  # first _row of each block
    sizes: list[int] = field(default_factory=list)
    schema: Any = None  # pyarrow schema of the blocks

    @property
    def rows(self) -> int:
        return sum(self.sizes)

    def starts(self) -> np.ndarray:
        return np.asarray(self.first, dtype=np.int64)


def _block_of(starts: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.searchsorted(starts, rows, side="right") - 1


def _to_polars(table) -> pl.DataFrame:
    return pl.from_arrow(table, rechunk=False)


def _split_table(table, step: str):
    """(kept table, dropped table with `step`, meta) of a step's output; meta = counts, first row, schemas."""
    import pyarrow as pa
    import pyarrow.compute as pc

    gone = pc.is_valid(table["drop_reason"])
    kept = table.filter(pc.invert(gone))
    dropped = table.filter(gone)
    dropped = dropped.append_column("step", pa.array([step] * dropped.num_rows, type=pa.large_string()))
    reasons = {}
    if dropped.num_rows:
        counts = pc.value_counts(dropped["drop_reason"].combine_chunks())
        reasons = {str(v["values"]): int(v["counts"]) for v in counts.to_pylist()}
    meta = {"kept": kept.num_rows, "dropped": dropped.num_rows, "reasons": reasons,
            "first_kept": int(kept[ROW][0].as_py()) if kept.num_rows else -1,
            "first_dropped": int(dropped[ROW][0].as_py()) if dropped.num_rows else -1,
            "kept_schema": kept.schema, "dropped_schema": dropped.schema}
    return kept, dropped, meta


@dataclass
class StepResult:
    kept: Blocks
    dropped: Blocks
    reasons: dict[str, int]


def _collect(triples: list, step: str) -> StepResult:
    """Kept and dropped blocks from per-block (kept, dropped, meta) task outputs; empty blocks are let go."""
    import ray

    metas = ray.get([m for _, _, m in triples])
    kept, dropped, reasons = Blocks(), Blocks(), {}
    for (k, d, _), meta in zip(triples, metas, strict=True):
        kept.schema = kept.schema or meta["kept_schema"]
        dropped.schema = dropped.schema or meta["dropped_schema"]
        if meta["kept"]:
            kept.refs.append(k)
            kept.first.append(meta["first_kept"])
            kept.sizes.append(meta["kept"])
        if meta["dropped"]:
            dropped.refs.append(d)
            dropped.first.append(meta["first_dropped"])
            dropped.sizes.append(meta["dropped"])
        for reason, n in meta["reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    return StepResult(kept, dropped, dict(sorted(reasons.items())))


# ----------------------------------------------------------------------------------- row-wise steps


class _StepRunner:
    """Builds a step once per worker (actor) and applies `step.process` to each Arrow batch."""

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        if name in MODEL_STEPS:  # one thread per actor; other steps never import torch (seconds per worker)
            try:
                import torch

                torch.set_num_threads(1)
            except ImportError:  # pragma: no cover
                pass
        self.step = build_step(name, config)

    def __call__(self, table):
        df = with_drop_columns(_to_polars(table))
        out = with_drop_columns(self.step.process(df))
        if out.height != df.height:
            raise AssertionError(f"step {self.step.name} returned {out.height} rows for {df.height}")
        return out.to_arrow()


_STEP_CACHE: dict[str, Any] = {}


def _run_step_task(table, name: str, config: dict[str, Any]):
    """Ray Data task form (not an actor pool) for steps without a model: the step is cached per worker process."""
    import json

    key = name + json.dumps(config, sort_keys=True, default=str)
    if key not in _STEP_CACHE:
        _STEP_CACHE[key] = _StepRunner(name, config)
    return _STEP_CACHE[key](table)


def _map_blocks(blocks: Blocks, name: str, config: dict[str, Any]) -> list:
    """Ray Data `map_batches` of one row-wise step over the blocks; returns the output blocks' references."""
    import ray.data
    from ray.data import ActorPoolStrategy

    _context()

    ds = ray.data.from_arrow_refs(blocks.refs)
    if name in MODEL_STEPS:
        out = ds.map_batches(_StepRunner, fn_constructor_args=(name, config), batch_format="pyarrow",
                             compute=ActorPoolStrategy(min_size=1, max_size=_partitions() // 2), batch_size=512)
    else:
        out = ds.map_batches(_run_step_task, fn_args=(name, config), batch_format="pyarrow", batch_size=None)
    return out.to_arrow_refs()


def row_step(blocks: Blocks, step, columns: list[str]) -> tuple[StepResult, dict]:
    config = step.config.model_dump(mode="json")
    refs = _map_blocks(blocks, step.name, config)
    split = _remote(_split_table, num_returns=3)
    how = "map_batches, actor pool" if step.name in MODEL_STEPS else "map_batches, tasks"
    return _collect([split.remote(ref, step.name) for ref in refs], step.name), {"ray_data": how}


# ------------------------------------------------------------------------------------- staged steps


def _staged_map_task(table, step, parts: int):
    """Per block: the step's entries, split into `parts` by a hash of `_key`."""
    entries = step.map(_to_polars(table))
    part = (entries.get_column("_key").hash(seed=7) % parts).to_numpy()
    return tuple(entries.filter(pl.Series(part == p)).to_arrow() for p in range(parts))


def _staged_reduce_task(step, starts: np.ndarray, *parts):
    """Per key partition: the step's reduce over its entries in input order; the marks go back to the blocks
    holding their rows. Returns one marks table per block, then the partition's stats."""
    marks, stats = step.reduce(pl.concat([_to_polars(p) for p in parts]).sort(ROW))
    block = _block_of(starts, marks.get_column(ROW).to_numpy())
    return (*(marks.filter(pl.Series(block == b)).to_arrow() for b in range(len(starts))), stats)


def _staged_mark_task(table, step, *marks):
    found = pl.concat([_to_polars(m) for m in marks]) if marks else None
    if found is not None and found.height:
        table = step.mark(_to_polars(table), found).to_arrow()
    return _split_table(table, step.name)


def staged_step(blocks: Blocks, step: StagedStep, columns: list[str]) -> tuple[StepResult, dict]:
    """Any `StagedStep` on Ray: map tasks per block, a hash shuffle of the entries by `_key` into P partitions,
    one reduce task per partition, one mark task per block (the step object travels with the tasks)."""
    import ray

    parts = _partitions()
    n = len(blocks.refs)
    if n == 0:
        _, stats = step.reduce(step.map(pl.from_arrow(blocks.schema.empty_table())))
        return StepResult(Blocks(schema=blocks.schema), Blocks(), {}), stats
    starts = blocks.starts()
    mapped = [_remote(_staged_map_task, num_returns=parts).remote(ref, step, parts) for ref in blocks.refs]
    reduce = _remote(_staged_reduce_task, num_returns=n + 1)
    reduced = [reduce.remote(step, starts, *[mapped[b][p] for b in range(n)]) for p in range(parts)]
    mark = _remote(_staged_mark_task, num_returns=3)
    triples = [mark.remote(ref, step, *[reduced[p][b] for p in range(parts)]) for b, ref in enumerate(blocks.refs)]
    stats: dict[str, int] = {}
    for part_stats in ray.get([r[n] for r in reduced]):
        for key, value in part_stats.items():
            stats[key] = stats.get(key, 0) + value
    return _collect(triples, step.name), stats


# ---------------------------------------------------------------------------------------- near dedupe


def _sketch_task(table, cfg: dict[str, Any], bands: int, rows: int, has_quality: bool, parts: int):
    """Per block: its sketch (rows, ids, quality, MinHash signatures, shingle hashes for the exact checks) and its
    (band key, row) entries split into `parts` by the key. Uses the near_dedupe step's own functions."""
    from curate import minhash
    from curate.steps.near_dedupe import text_expr

    df = _to_polars(table)
    texts = df.select(text_expr(cfg["text"])).to_series()
    shingles = minhash.shingle_hashes(texts, cfg["unit"], cfg["size"], cfg["seed"])
    sig = minhash.signatures(shingles, cfg["num_perm"], cfg["seed"])
    has = minhash.has_shingles(shingles)
    row = df.get_column(ROW).to_numpy().astype(np.int64)
    sketch = {"row": row, "sig": sig, "shingles": shingles, "id": df.get_column("id").to_arrow(),
              "q": df.get_column("quality").cast(pl.Float64).to_numpy() if has_quality else None}
    keys = minhash.band_keys(sig[has], bands, rows).ravel()
    key_rows = np.repeat(row[has], bands)
    part = (keys % np.uint64(parts)).astype(np.int64)
    order = np.argsort(part, kind="stable")
    cut = np.searchsorted(part[order], np.arange(parts + 1))
    return (sketch, *((keys[order[cut[p]:cut[p + 1]]], key_rows[order[cut[p]:cut[p + 1]]]) for p in range(parts)))


def _pair_code(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(np.uint64) << np.uint64(32)) | b.astype(np.uint64)


def _bucket_task(parts: int, *entries):
    """Per band-key partition: the star candidate pairs (bucket's first row, member) of every bucket of two or
    more rows — `curate.minhash.candidate_pairs(mode="star")` on this partition's keys — split by first row."""
    keys = np.concatenate([k for k, _ in entries]) if entries else np.zeros(0, np.uint64)
    rows = np.concatenate([r for _, r in entries]) if entries else np.zeros(0, np.int64)
    order = np.lexsort((rows, keys))
    keys, rows = keys[order], rows[order]
    start = np.ones(len(keys), dtype=bool)
    np.not_equal(keys[1:], keys[:-1], out=start[1:])
    first = rows[start][np.cumsum(start) - 1]
    later = rows > first
    codes = np.unique(_pair_code(first[later], rows[later]))
    owner = ((codes >> np.uint64(32)) % np.uint64(parts)).astype(np.int64)
    return tuple(codes[owner == p] for p in range(parts))


def _fetch(sketch_refs: list, starts: np.ndarray, rows: np.ndarray, fields: tuple[str, ...]) -> dict[str, Any]:
    """Fields of the sketches of `rows` (sorted, unique), in that order; fetches only the blocks they lie in."""
    import pyarrow as pa
    import ray

    from curate import minhash

    block = _block_of(starts, rows)
    needed = np.unique(block)
    sketches = dict(zip(needed.tolist(), ray.get([sketch_refs[b] for b in needed]), strict=True))
    out: dict[str, list] = {f: [] for f in fields}
    for b in needed.tolist():
        sk = sketches[b]
        at = np.searchsorted(sk["row"], rows[block == b])
        for f in fields:
            if f == "id":
                out[f].append(sk[f].take(pa.array(at)))
            elif f == "shingles":
                out[f].append(sk[f].take(at))
            elif sk[f] is not None:
                out[f].append(sk[f][at])
    result: dict[str, Any] = {}
    for f in fields:
        if f == "id":
            result[f] = pl.concat([pl.Series(f, x) for x in out[f]]) if out[f] else pl.Series(f, [], pl.String)
        elif f == "shingles":
            result[f] = minhash.Shingles.concat(out[f])
        elif out[f]:
            result[f] = np.concatenate(out[f])
        else:
            result[f] = None
    return result


def _verify_task(cfg: dict[str, Any], sketch_refs: list, starts: np.ndarray, has_quality: bool, *codes):
    """Per pair partition: unique candidates → verified edges (the step's rule, `check_unsure`) → spanning
    forest."""
    from curate import minhash
    from curate.steps.near_dedupe import check_unsure

    codes = np.unique(np.concatenate(codes)) if codes else np.zeros(0, np.uint64)
    a = (codes >> np.uint64(32)).astype(np.int64)
    b = (codes & np.uint64(0xFFFFFFFF)).astype(np.int64)
    stats = {"candidate_pairs": len(codes), "verified_pairs": 0, "exact_checks": 0}
    empty = {"child": np.zeros(0, np.int64), "root": np.zeros(0, np.int64), "node": np.zeros(0, np.int64), "q": None}
    if not len(codes):
        return empty, stats
    ends = np.unique(np.concatenate([a, b]))
    got = _fetch(sketch_refs, starts, ends, ("sig", "q"))
    pairs = np.stack([np.searchsorted(ends, a), np.searchsorted(ends, b)], axis=1)
    sims = minhash.estimated_jaccard(got["sig"], pairs)
    unsure = np.abs(sims - cfg["threshold"]) <= cfg["exact_band"]
    checked = np.zeros(len(pairs), dtype=bool)
    if unsure.any():  # the shingle hashes of every document an exact check may need, fetched once
        docs = np.unique(pairs[unsure])
        shingles = _fetch(sketch_refs, starts, ends[docs], ("shingles",))["shingles"]
        checked = check_unsure(len(ends), pairs, sims, cfg["threshold"], cfg["exact_band"],
                               lambda p: minhash.exact_jaccard(shingles, np.searchsorted(docs, p)))
    edge = sims >= cfg["threshold"]
    stats.update(verified_pairs=int(edge.sum()), exact_checks=int(checked.sum()))
    ea, eb = pairs[edge, 0], pairs[edge, 1]
    nodes = np.unique(np.concatenate([ea, eb]))
    labels = minhash.connected_components(len(nodes), np.stack([np.searchsorted(nodes, ea),
                                                                np.searchsorted(nodes, eb)], axis=1))
    child = labels != np.arange(len(nodes))
    forest = {"child": ends[nodes[child]], "root": ends[nodes[labels[child]]], "node": ends[nodes],
              "q": got["q"][nodes] if has_quality else None}
    return forest, stats


def _near_mark_task(table, step: str, columns: list[str], cfg: dict[str, Any], sketch_refs: list,
                    starts: np.ndarray, members: np.ndarray, reps: np.ndarray):
    """Per block: cluster members get `dup_cluster` = their representative's id; the others than the
    representative are dropped as `near_duplicate` with `dup_of` and the exact Jaccard as `similarity`."""
    from curate import minhash

    df = _to_polars(table)
    n = df.height
    at = np.searchsorted(df.get_column(ROW).to_numpy(), members)
    rep_rows = np.unique(reps)
    rep_ids = _fetch(sketch_refs, starts, rep_rows, ("id",))["id"]
    rep_of = np.full(n, -1, dtype=np.int64)  # per row: index into rep_ids, -1 outside any cluster
    rep_of[at] = np.searchsorted(rep_rows, reps)
    in_cluster = pl.Series(rep_of >= 0)
    cluster = (rep_ids.gather(np.clip(rep_of, 0, None)) if len(rep_rows) else pl.Series([None] * n, dtype=pl.String))
    cluster = pl.select(pl.when(in_cluster).then(cluster).alias("_cluster")).to_series()
    drop_sel = np.flatnonzero(reps != members)
    similarity = np.full(n, np.nan)
    if len(drop_sel):
        pair_rows = np.unique(np.concatenate([members[drop_sel], reps[drop_sel]]))
        shingles = _fetch(sketch_refs, starts, pair_rows, ("shingles",))["shingles"]
        local = np.stack([np.searchsorted(pair_rows, reps[drop_sel]), np.searchsorted(pair_rows, members[drop_sel])],
                         axis=1)
        similarity[at[drop_sel]] = minhash.exact_jaccard(shingles, local)
    is_dropped = np.zeros(n, dtype=bool)
    is_dropped[at[drop_sel]] = True
    df = df.with_columns(cluster.cast(pl.String), pl.Series("_drop", is_dropped)).with_columns(
        pl.when(pl.col("_drop")).then(pl.lit("near_duplicate")).otherwise(pl.col("drop_reason")).alias("drop_reason"),
        pl.when(pl.col("_drop")).then(pl.col("_cluster")).otherwise(pl.col("dup_of")).alias("dup_of"),
        pl.col("_cluster").alias("dup_cluster"),
        pl.Series("similarity", similarity, dtype=pl.Float64).fill_nan(None),
    ).drop("_cluster", "_drop")
    cols = [c for c in columns if c in df.columns]
    cols += [c for c in ("dup_cluster", "similarity") if c not in cols]
    return _split_table(df.select(cols).to_arrow(), step)


def _unite_forests(forests: list[dict], has_quality: bool) -> tuple[np.ndarray, np.ndarray, dict]:
    """On the driver: components of the union of the partitions' spanning forests (O(V) memory) and each
    member's representative row by the local rule. Returns (member rows sorted, representative rows, stats)."""
    from curate import minhash

    child = np.concatenate([f["child"] for f in forests]) if forests else np.zeros(0, np.int64)
    root = np.concatenate([f["root"] for f in forests]) if forests else np.zeros(0, np.int64)
    node_rows = np.concatenate([f["node"] for f in forests]) if forests else np.zeros(0, np.int64)
    nodes, first = np.unique(node_rows, return_index=True)
    labels = minhash.label_components(len(nodes), np.stack([np.searchsorted(nodes, child),
                                                            np.searchsorted(nodes, root)], axis=1))
    quality = np.concatenate([f["q"] for f in forests])[first] if has_quality and forests else None
    rep = minhash.representatives(labels, quality)
    sizes = np.bincount(labels, minlength=len(nodes))
    stats = {"clusters": int((sizes > 1).sum()), "largest_cluster": int(sizes.max()) if len(nodes) else 0,
             "near_duplicates": int((rep != np.arange(len(nodes))).sum()), "forest_edges": int(len(child)),
             "driver_bytes": int(child.nbytes + root.nbytes + node_rows.nbytes
                                 + (len(node_rows) * 8 if has_quality else 0))}
    return nodes, nodes[rep], stats


def near_dedupe(blocks: Blocks, step, columns: list[str]) -> tuple[StepResult, dict]:
    import ray

    from curate import minhash

    cfg = step.config.model_dump()
    bands, rows = minhash.optimal_param(cfg["threshold"], cfg["num_perm"], 1 - cfg["recall_weight"],
                                        cfg["recall_weight"])
    has_quality = "quality" in columns
    parts = _partitions()
    n = len(blocks.refs)
    starts = blocks.starts()
    if n and blocks.first[-1] + blocks.sizes[-1] >= 1 << 32:  # pairs travel as one uint64: 32 bits per row
        raise StudioError("near_dedupe on Ray takes at most 4,294,967,295 input rows; split the input into runs.")
    sketch = _remote(_sketch_task, num_returns=parts + 1)
    sketched = [sketch.remote(ref, cfg, bands, rows, has_quality, parts) for ref in blocks.refs]
    sketch_refs = [s[0] for s in sketched]
    bucket = _remote(_bucket_task, num_returns=parts)
    buckets = [bucket.remote(parts, *[sketched[b][p + 1] for b in range(n)]) for p in range(parts)]
    verify = _remote(_verify_task, num_returns=2)
    verified = [verify.remote(cfg, sketch_refs, starts, has_quality, *[buckets[q][p] for q in range(parts)])
                for p in range(parts)]
    counts = ray.get([v[1] for v in verified])
    forests = ray.get([v[0] for v in verified])
    members, reps, cstats = _unite_forests(forests, has_quality)
    del forests
    block = _block_of(starts, members)
    cut = np.searchsorted(block, np.arange(n + 1))
    mark = _remote(_near_mark_task, num_returns=3)
    triples = [mark.remote(ref, step.name, columns, cfg, sketch_refs, starts, members[cut[b]:cut[b + 1]],
                           reps[cut[b]:cut[b + 1]]) for b, ref in enumerate(blocks.refs)]
    result = _collect(triples, step.name)
    stats = {"lsh_bands": bands, "lsh_rows": rows,
             **{k: int(sum(c[k] for c in counts)) for k in ("candidate_pairs", "verified_pairs", "exact_checks")},
             **cstats}
    return result, stats


# ------------------------------------------------------------------------------------ semantic dedupe


class _Embedder:
    """Ray actor: the semantic_dedupe step's `EmbeddingCache` (its model loaded once per actor, on the first
    block with rows the cache lacks) embedding whole blocks. Actors share the cache folder: they read it and add
    uniquely named shards (atomic renames) but never merge shards (`compact=False`), so they cannot delete a
    file another actor is reading; the merge runs once after them (`_compact_cache_task`)."""

    def __init__(self, cfg: dict[str, Any], root: str | None) -> None:
        from curate.embeddings import EmbeddingCache

        self.view = cfg["text"]
        self.cache = EmbeddingCache(cfg["model"], view=cfg["text"], max_seq_length=cfg["max_seq_length"],
                                    batch_size=cfg["batch_size"], threads=cfg["threads"],
                                    root=Path(root) if root else None, compact=False)

    def embed(self, table):
        """(unit vectors of the block's rows in order, counters)."""
        from curate.views import view_text

        df = _to_polars(table)
        texts = df.select(view_text(self.view)).to_series().to_list()
        cache = self.cache
        cache.encoded, cache.encode_seconds, cache.load_seconds = 0, 0.0, 0.0
        emb = cache.embed(df.get_column("id").to_list(), texts)
        return emb, {"encoded": cache.encoded, "cache_hits": cache.cache_hits,
                     "encode_seconds": cache.encode_seconds, "model_load_seconds": cache.load_seconds}


def _compact_cache_task(cfg: dict[str, Any], root: str | None) -> None:
    from curate.embeddings import EmbeddingCache

    EmbeddingCache(cfg["model"], view=cfg["text"], max_seq_length=cfg["max_seq_length"],
                   root=Path(root) if root else None).compact()


def _take_rows_task(emb: np.ndarray, local: np.ndarray) -> np.ndarray:
    return emb[local]


def _sem_assign_task(table, emb: np.ndarray, offset: int, centroids: np.ndarray | None, margin: float, parts: int):
    """Per block: (row, cluster label) entries — nearest centroid, and the second nearest within `margin`
    (`assign_clusters`, the local step's function) — with each entry's quality and vector, split into `parts`
    by label, then the number of entries. Rows are numbered by position among the step's input rows (`offset` =
    this block's first)."""
    from curate.steps.semantic_dedupe import assign_clusters, quality_of

    q = quality_of(_to_polars(table))
    n = emb.shape[0]
    if centroids is None:  # k ≤ 1: one cluster of every row
        rows, labels = np.arange(offset, offset + n), np.zeros(n, np.int64)
    else:
        rows, labels = assign_clusters(emb, centroids, margin, offset)
    part = labels % parts
    local = rows - offset
    return (*({"row": rows[part == p], "label": labels[part == p], "vec": emb[local[part == p]],
               "q": q[local[part == p]] if q is not None else None} for p in range(parts)), int(rows.size))


def _sem_pairs_task(threshold: float, *entries):
    """Per label partition: each cluster's members in rank order (highest quality, then input order — the
    local rank restricted to the cluster), then `cluster_pairs` (the local step's function). Returns the pairs
    (worse row, better row, cosine, cluster label, worse row's quality) and the number of clusters."""
    from curate.steps.semantic_dedupe import cluster_pairs, group_clusters

    rows = np.concatenate([e["row"] for e in entries])
    labels = np.concatenate([e["label"] for e in entries])
    vecs = np.concatenate([e["vec"] for e in entries]) if rows.size else None
    has_q = entries[0]["q"] is not None
    q = np.concatenate([e["q"] for e in entries]) if has_q else np.zeros(rows.size)
    found = []
    if rows.size:
        names, groups = group_clusters(np.arange(rows.size), labels)
    else:
        names, groups = np.zeros(0, np.int64), []
    for label, ent in zip(names.tolist(), groups, strict=True):
        if ent.size < 2:
            continue
        ent = ent[np.lexsort((rows[ent], -q[ent]))]
        pj, pi, ps = cluster_pairs(rows[ent], vecs[ent], threshold)
        found.append((pj, pi, ps, np.full(pj.size, label, np.int64)))
    if found:
        pj, pi, ps, lab = (np.concatenate(x) for x in zip(*found, strict=True))
    else:
        pj, pi, ps, lab = (np.zeros(0, np.int64),) * 2 + (np.zeros(0, np.float32), np.zeros(0, np.int64))
    by_row = np.unique(rows, return_index=True)
    qj = q[by_row[1][np.searchsorted(by_row[0], pj)]] if pj.size else np.zeros(0)
    return {"j": pj, "i": pi, "s": ps, "label": lab, "qj": qj}, len(names)


def _ids_task(table, local: np.ndarray):
    import pyarrow as pa

    return table["id"].take(pa.array(local))


def _sem_mark_task(table, step: str, columns: list[str], drop_at: np.ndarray, drop_rep, drop_sim: np.ndarray,
                   rep_at: np.ndarray):
    """Per block: dropped rows get `semantic_duplicate`, `dup_of` and `similarity`; every member of a duplicate
    group gets `semantic_cluster` = its kept representative's id (the local step's columns)."""
    from curate.steps.semantic_dedupe import REASON

    df = _to_polars(table)
    n = df.height
    dup_of = pl.Series("_dup_of", [None] * n, dtype=pl.String)
    cluster = pl.Series("semantic_cluster", [None] * n, dtype=pl.String)
    if len(drop_at):
        rep_ids = pl.Series(drop_rep).cast(pl.String)
        dup_of = dup_of.scatter(drop_at, rep_ids)
        cluster = cluster.scatter(drop_at, rep_ids)
    if len(rep_at):
        cluster = cluster.scatter(rep_at, df.get_column("id").gather(rep_at).cast(pl.String))
    sim = np.full(n, np.nan)
    sim[drop_at] = drop_sim
    is_dup = np.zeros(n, dtype=bool)
    is_dup[drop_at] = True
    old_sim = pl.col("similarity") if "similarity" in df.columns else pl.lit(None, dtype=pl.Float64)
    dup = pl.col("_is_dup")
    df = df.with_columns(dup_of, cluster, pl.Series("_is_dup", is_dup),
                         pl.Series("_sim", sim, dtype=pl.Float64).fill_nan(None)).with_columns(
        pl.when(dup).then(pl.lit(REASON)).otherwise(pl.col("drop_reason")).alias("drop_reason"),
        pl.when(dup).then(pl.col("_dup_of")).otherwise(pl.col("dup_of")).alias("dup_of"),
        pl.when(dup).then(pl.col("_sim")).otherwise(old_sim).alias("similarity"),
    )
    cols = [c for c in columns if c in df.columns]
    cols += [c for c in ("semantic_cluster", "similarity") if c not in cols]
    return _split_table(df.select(cols).to_arrow(), step)


def semantic_dedupe(blocks: Blocks, step, columns: list[str]) -> tuple[StepResult, dict]:
    """semantic_dedupe on Ray: embed per block in an actor pool → centroid sample fetched and fitted on the driver
    → per block, (row, label) entries hash-partitioned by label → per partition, the within-cluster pairs ≥
    threshold → greedy best-first resolution on the driver → per block, the marks.

    **Driver memory:** never the vectors of all rows: the centroid sample (≤ 128 × k rows × dim floats, as the
    local step fits on) and the k centroids, then every pair at or above the threshold (5 numbers each) and the
    ids of the kept representatives. The pairs are O(duplicate pairs): small at a strict threshold (0.95) but not
    bounded by the input size alone; a loose threshold over a data set of many near-copies makes it large."""
    import ray

    from curate.embeddings import resolve_model
    from curate.steps.semantic_dedupe import centroid_sample, cluster_count, fit_centroids, resolve_pairs
    from studio.models import cache_dir

    t0 = time.perf_counter()
    cfg = step.config.model_dump(mode="json")
    # The actors load the folder resolved here: `static` is distilled once, on the driver, not once per actor.
    cfg["model"] = str(resolve_model(cfg["model"]))
    parts = _partitions()
    nb = len(blocks.refs)
    sizes = np.asarray(blocks.sizes, dtype=np.int64)
    offsets = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)
    n = int(sizes.sum())
    if nb == 0:
        return StepResult(Blocks(schema=blocks.schema), Blocks(), {}), {"kmeans_clusters": 0}

    # 1. embeddings, one actor per CPU (at most one per block), each loading the model once
    # $STUDIO_CACHE set for the driver applies to the actors too; otherwise each node uses its own default cache
    root = str(cache_dir() / "embeddings") if os.environ.get("STUDIO_CACHE") else None
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    embedder = ray.remote(_Embedder).options(num_cpus=1)
    actors = [embedder.remote(cfg, root) for _ in range(max(1, min(cpus, nb, math.ceil(n / EMBED_ROWS_PER_ACTOR))))]
    embedded = [actors[b % len(actors)].embed.options(num_returns=2).remote(ref) for b, ref in enumerate(blocks.refs)]
    emb_refs = [e[0] for e in embedded]
    counters = ray.get([e[1] for e in embedded])
    embed_wall = time.perf_counter() - t0
    for actor in actors:  # their results stay in the object store; their CPUs go back to the next stages
        ray.kill(actor)
    ray.get(_remote(_compact_cache_task, **_on_driver_node()).remote(cfg, root))

    # 2. centroids from the local step's sample, fetched row by row from the blocks holding it
    k = cluster_count(n, cfg["cluster_size"])
    centroids = None
    if k > 1:
        sample, rng = centroid_sample(n, k, cfg["seed"])
        block = _block_of(offsets, sample)
        cut = np.searchsorted(block, np.arange(nb + 1))
        take = _remote(_take_rows_task)
        train = np.concatenate(ray.get([take.remote(emb_refs[b], sample[cut[b]:cut[b + 1]] - offsets[b])
                                        for b in range(nb) if cut[b + 1] > cut[b]]))
        centroids = fit_centroids(train, rng, k)
        del train

    # 3. (row, label) entries with vectors, hash-partitioned by label; 4. pairs per partition
    assign = _remote(_sem_assign_task, num_returns=parts + 1)
    assigned = [assign.remote(ref, emb_refs[b], int(offsets[b]), centroids, cfg["boundary_margin"], parts)
                for b, ref in enumerate(blocks.refs)]
    pairs_of = _remote(_sem_pairs_task, num_returns=2)
    paired = [pairs_of.remote(cfg["threshold"], *[assigned[b][p] for b in range(nb)]) for p in range(parts)]
    n_clusters = sum(ray.get([p[1] for p in paired]))
    entries = sum(ray.get([a[parts] for a in assigned]))
    found = ray.get([p[0] for p in paired])

    # 5. greedy resolution on the driver, over the pairs (cluster by cluster, as the local step collects them)
    pj, pi, ps, lab, qj = (np.concatenate([f[key] for f in found]) for key in ("j", "i", "s", "label", "qj"))
    del found
    order = np.argsort(lab, kind="stable")
    pj, pi, ps, qj = pj[order], pi[order], ps[order], qj[order]
    driver_bytes = int(pj.nbytes + pi.nbytes + ps.nbytes + lab.nbytes + qj.nbytes)
    worse, inv = np.unique(pj, return_inverse=True)
    q_worse = np.zeros(worse.size)
    q_worse[inv] = qj
    dense = np.empty(worse.size, np.int64)
    dense[np.lexsort((worse, -q_worse))] = np.arange(worse.size)
    rows, partners, sims = resolve_pairs(pj, pi, ps, dense[inv.ravel()])
    reps = np.unique(partners)

    # ids of the representatives, then the marks per block
    rep_block = _block_of(offsets, reps)
    rep_cut = np.searchsorted(rep_block, np.arange(nb + 1))
    ids_of = _remote(_ids_task)
    rep_ids = {b: ids_of.remote(blocks.refs[b], reps[rep_cut[b]:rep_cut[b + 1]] - offsets[b])
               for b in range(nb) if rep_cut[b + 1] > rep_cut[b]}
    rep_ids = {b: ray.get(r) for b, r in rep_ids.items()}
    rep_id_of = pl.concat([pl.Series(rep_ids[b]).cast(pl.String) for b in sorted(rep_ids)]) if rep_ids else None
    order = np.argsort(rows, kind="stable")
    rows, partners, sims = rows[order], partners[order], sims[order]
    drop_block = _block_of(offsets, rows)
    drop_cut = np.searchsorted(drop_block, np.arange(nb + 1))
    mark = _remote(_sem_mark_task, num_returns=3)
    triples = []
    for b, ref in enumerate(blocks.refs):
        a, z = drop_cut[b], drop_cut[b + 1]
        drop_rep = (rep_id_of.gather(np.searchsorted(reps, partners[a:z])).to_arrow() if z > a
                    else pl.Series([], dtype=pl.String).to_arrow())
        triples.append(mark.remote(ref, step.name, columns, rows[a:z] - offsets[b], drop_rep,
                                   sims[a:z].astype(np.float64), reps[rep_cut[b]:rep_cut[b + 1]] - offsets[b]))
    result = _collect(triples, step.name)
    encode = sum(c["encode_seconds"] for c in counters)
    load = sum(c["model_load_seconds"] for c in counters)
    stats = {"encoded": sum(c["encoded"] for c in counters), "cache_hits": sum(c["cache_hits"] for c in counters),
             "kmeans_clusters": int(n_clusters), "duplicate_groups": int(reps.size),
             "encode_seconds": round(encode, 3), "model_load_seconds": round(load, 3),
             "other_seconds": round(time.perf_counter() - t0 - embed_wall, 3),
             "boundary_entries": int(entries - n), "embed_actors": len(actors), "embed_wall_seconds": round(embed_wall, 3), "pairs": int(pj.size), "driver_bytes": driver_bytes}
    return result, stats


#: global steps not yet written as stages, with their hand-written Ray form
GLOBAL_STEPS = {"near_dedupe": near_dedupe, "semantic_dedupe": semantic_dedupe}


# ------------------------------------------------------------------------------------- pipeline


class RayEngine:
    """The Ray engine's part of a run (see `curate.bookkeeping.Engine`): rows are `Blocks` in the object store.
    `output_uri`: an object-store URI that also gets kept/ and dropped/."""

    name = "ray"

    def __init__(self, output_uri: str | None = None) -> None:
        self.output_uri = output_uri

    def rows(self, data: Blocks) -> int:
        return data.rows

    def apply(self, step, blocks: Blocks) -> tuple[Blocks, Blocks, dict[str, int], dict]:
        columns = list(blocks.schema.names)
        if isinstance(step, StagedStep):
            result, stats = staged_step(blocks, step, columns)
        elif step.name in GLOBAL_STEPS:
            result, stats = GLOBAL_STEPS[step.name](blocks, step, columns)
        elif step.is_global:
            raise StudioError(f"step {step.name} has no Ray implementation; run it with --engine local.")
        elif not blocks.refs:
            result, stats = StepResult(blocks, Blocks(), {}), {}
        else:
            result, stats = row_step(blocks, step, columns)
        if result.kept.schema is None:
            result.kept.schema = blocks.schema
        return result.kept, result.dropped, result.reasons, stats

    def redact(self, step, blocks: Blocks) -> Blocks:
        import ray

        refs = _map_blocks(blocks, step.name, step.config.model_dump(mode="json"))  # batches of 512: blocks may be re-cut
        metas = ray.get([_remote(_meta_task).remote(ref) for ref in refs])
        return Blocks(refs, [m[0] for m in metas], [m[1] for m in metas], metas[0][2] if metas else blocks.schema)

    def write(self, run: Run, kept: Blocks, dropped: list[Blocks], n_input: int
              ) -> tuple[pl.DataFrame, list[pl.DataFrame]] | None:
        """kept/ and dropped/ (Parquet parts), also under `output_uri`; for runs of at most `LOCAL_FILES_MAX_ROWS`
        input rows also the local engine's kept.parquet and dropped.parquet, read back for the report."""
        if not write_outputs_ray(run, kept, dropped, n_input, self.output_uri):
            return None
        dropped_df = pl.read_parquet(run.dir / "dropped.parquet")
        return pl.read_parquet(run.dir / "kept.parquet"), [dropped_df] if dropped_df.height else []


def run_steps_ray(blocks: Blocks, steps: list, run: Run | None, reporter: Reporter
                  ) -> tuple[Blocks, list[tuple[str, Blocks]]]:
    """Apply steps in order on Ray. Returns (kept blocks, [(step name, dropped blocks)])."""
    return apply_steps(RayEngine(), blocks, steps, run, reporter)


# ---------------------------------------------------------------------------------------- outputs


def _conform(table, schema):
    """`table` with `schema`'s columns in its order (missing ones null), without `_row`: the local engine's
    `pl.concat(how="diagonal_relaxed")` of the steps' dropped frames."""
    import pyarrow as pa

    cols = [table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
            for f in schema]
    return pa.table(cols, schema=schema)


def _output_schema(schema, drop: tuple[str, ...]):
    import pyarrow as pa

    return pa.schema([f for f in schema if f.name not in drop])


def _on_driver_node() -> dict[str, Any]:
    """Task options that run a task on the driver's machine (it reads the input paths and writes the run
    folder). A head node started with `--num-cpus 0` has no CPU to give: there such tasks ask for none."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    cpus = next((n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("NodeID") == node), 0)
    options: dict[str, Any] = {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}
    if not cpus:
        options["num_cpus"] = 0
    return options


def _write_parts_task(path: str, schema, *tables):
    """Write tables as Parquet files `path/part-NNNNN.parquet` (a local path or a pyarrow filesystem URI)."""
    import pyarrow.parquet as pq
    from pyarrow import fs

    filesystem, base = fs.FileSystem.from_uri(path) if "://" in path else (fs.LocalFileSystem(), path)
    filesystem.create_dir(base, recursive=True)
    names = []
    for i, table in enumerate(tables):
        name = f"{base}/part-{i:05d}.parquet"
        pq.write_table(_conform(table, schema), name, filesystem=filesystem)
        names.append(name)
    return names


def _write_single_task(path: str, schema, tables: list):
    """Stream tables (references, fetched one at a time) into one Parquet file, atomically."""
    import pyarrow.parquet as pq
    import ray

    from studio.atomic import atomic_path

    rows = 0
    with atomic_path(Path(path)) as tmp, pq.ParquetWriter(str(tmp), schema) as writer:
        for ref in tables:
            table = ray.get(ref)
            writer.write_table(_conform(table, schema))
            rows += table.num_rows
            del table
    return rows


def write_outputs_ray(run: Run, kept: Blocks, dropped: list[Blocks], n_input: int, output_uri: str | None) -> bool:
    """Write the parts (and, for a small run, the single files) in tasks; True when the single files were written."""
    import pyarrow as pa
    import ray

    here = _on_driver_node()
    kept_schema = _output_schema(kept.schema, (*DROP_COLUMNS, ROW))
    drop_refs = [ref for d in dropped for ref in d.refs]
    if dropped:
        dropped_schema = _output_schema(pa.unify_schemas([d.schema for d in dropped], promote_options="permissive"),
                                        (ROW,))
    else:  # the local engine's empty dropped.parquet: the kept columns with the drop columns and `step`
        empty = with_drop_columns(pl.from_arrow(_output_schema(kept.schema, (ROW,)).empty_table()))
        dropped_schema = empty.with_columns(pl.lit(None, dtype=pl.String).alias("step")).to_arrow().schema
    writes = []
    targets = [(str(run.dir), here)] + ([(output_uri.rstrip("/"), None)] if output_uri else [])
    for base, where in targets:
        writer = _remote(_write_parts_task, **(where or {}))
        writes.append(writer.remote(f"{base}/kept", kept_schema, *kept.refs))
        writes.append(writer.remote(f"{base}/dropped", dropped_schema, *drop_refs))
    small = n_input <= LOCAL_FILES_MAX_ROWS
    if small:
        single = _remote(_write_single_task, **here)
        writes.append(single.remote(str(run.dir / "kept.parquet"), kept_schema, kept.refs))
        writes.append(single.remote(str(run.dir / "dropped.parquet"), dropped_schema, drop_refs))
    ray.get(writes)
    n_dropped = sum(d.rows for d in dropped)
    for name in ("kept", "dropped"):
        for part in sorted((run.dir / name).glob("*.parquet")):
            run.add_output(part)
    run.extra["sharded_outputs"] = {"kept": kept.rows, "dropped": n_dropped}
    if output_uri:
        run.extra["ray_output_uri"] = output_uri
    if small:
        run.add_output(run.dir / "kept.parquet", rows=kept.rows)
        run.add_output(run.dir / "dropped.parquet", rows=n_dropped)
    return small


def _schema_task(table):
    return table.schema


def _meta_task(table):
    """(first _row, rows, schema) of a block."""
    return (int(table[ROW][0].as_py()) if table.num_rows else -1), table.num_rows, table.schema


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


def _read_task(paths: list[str], fmt: str | None, csv_map: str | None):
    """Read a group of input files with the studio readers: (examples table, meta). The readers' log lines and
    errors travel back in meta, so the driver logs and raises them as the local engine would."""
    from studio.errors import StudioError as Error
    from studio.readers import CsvMapping, read_inputs

    capture = _LogCapture()
    root = logging.getLogger()
    root.addHandler(capture)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        result = read_inputs(paths, fmt=fmt, csv_mapping=CsvMapping.parse(csv_map))
        error = None
    except Error as err:
        result, error = None, str(err)
    finally:
        root.removeHandler(capture)
        root.setLevel(level)
    if result is None:
        return None, {"error": error, "logs": capture.records}
    table = result.frame().to_arrow() if result.kind == "examples" and result.rows else None
    return table, {"error": None, "logs": capture.records, "kind": result.kind, "rows": len(result.rows),
                   "quarantine": result.quarantine, "formats": result.formats, "first": paths[0]}


def _number_task(table, offset: int):
    """`_row` (input order) in front, the drop columns at the end: the block as the steps expect it."""
    import pyarrow as pa

    table = table.add_column(0, ROW, pa.array(np.arange(offset, offset + table.num_rows, dtype=np.int64)))
    for name in ("drop_reason", "dup_of"):
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.large_string()))
    return table


@dataclass
class ReadOut:
    blocks: Blocks
    quarantine: list
    formats: dict[str, str]
    n_input: int


def _file_groups(files: list[Path], count: int) -> list[list[str]]:
    """Consecutive runs of files of about equal total size (input order kept)."""
    sizes = np.array([max(f.stat().st_size, 1) for f in files], dtype=np.float64)
    cut = np.searchsorted(np.cumsum(sizes), sizes.sum() * np.arange(1, count) / count, side="left") + 1
    bounds = [0, *sorted(set(np.clip(cut, 1, len(files)).tolist())), len(files)]
    return [[str(f) for f in files[a:b]] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def read_blocks(config: PipelineConfig, ray_data: bool = True) -> ReadOut:
    """Read the inputs in parallel with tasks on the driver's node (the studio readers take local paths), one
    task per group of consecutive files, then number the rows in input order. The driver holds only counts,
    formats and the quarantined records, never the rows."""
    import ray

    from studio.errors import InputError
    from studio.readers import expand_inputs

    files = expand_inputs(config.inputs)
    total = sum(f.stat().st_size for f in files)
    groups = _file_groups(files, max(2 * _partitions(), math.ceil(total / (32 << 20))))
    read = _remote(_read_task, num_returns=2, **_on_driver_node())
    outs = [read.remote(g, config.format, config.csv_map) for g in groups]
    if ray_data:  # a step will run on Ray Data: import it on the driver while the workers read
        _context()
        start_data_services(wait=False)
    metas = ray.get([m for _, m in outs])
    kind = None
    formats: dict[str, str] = {}
    quarantine: list = []
    for meta in metas:
        for name, level, msg in meta["logs"]:
            logging.getLogger(name).log(level, "%s", msg)
        if meta["error"]:
            raise InputError(meta["error"])
        if kind is None:
            kind = meta["kind"]
        elif meta["kind"] != kind and meta["rows"]:
            raise InputError(f"{meta['first']} holds {meta['kind']} but the other inputs hold {kind}; "
                             "read documents and examples separately.")
        formats.update(meta["formats"])
        quarantine.extend(meta["quarantine"])
    if kind != "examples":
        raise StudioError(f"curate works on examples, but {', '.join(formats)} hold plain documents; "
                          "use them with `studio synth grounded-qa` instead.")
    blocks, offset = Blocks(), 0
    number = _remote(_number_task)
    for (table, _), meta in zip(outs, metas, strict=True):
        if meta["rows"]:
            blocks.refs.append(number.remote(table, offset))
            blocks.first.append(offset)
            blocks.sizes.append(meta["rows"])
            offset += meta["rows"]
    if blocks.refs:
        blocks.schema = ray.get(_remote(_schema_task).remote(blocks.refs[0]))
    else:
        from studio.schema import examples_frame

        empty = with_drop_columns(examples_frame([]).with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64)))
        blocks.schema = empty.to_arrow().schema
    return ReadOut(blocks, quarantine, formats, offset + len(quarantine))


def run_pipeline_ray(config: PipelineConfig, steps: list, out_dir: str | Path | None, reporter: Reporter,
                     workspace: Workspace | None, address: str | None = None, output_uri: str | None = None,
                     publish_as: Path | None = None) -> Run:
    """`run_pipeline(engine="ray")`: same inputs, same steps, same outputs as the local engine, on Ray."""
    import ray

    unsupported = [s.name for s in steps if s.is_global and not isinstance(s, StagedStep) and s.name not in GLOBAL_STEPS]
    if unsupported:
        raise StudioError(f"step {unsupported[0]} cannot run on the Ray engine yet (its output would differ from the "
                          "local engine's); run this pipeline with --engine local, or drop the step.")
    if address:
        _check_reachable(address)  # one sentence, before a run folder exists
    with Run("curate", out_dir=out_dir, workspace=workspace, publish_as=publish_as,
             config={**config.model_dump(mode="json"), "engine": "ray"}) as run:
        started = connect(address, run.dir / ".ray")
        try:
            t0 = time.perf_counter()
            result = read_blocks(config, ray_data=any(not s.is_global for s in steps))
            record_read(run, reporter, result.formats, result.quarantine, result.n_input, time.perf_counter() - t0)
            engine = RayEngine(output_uri)
            kept, dropped = apply_steps(engine, result.blocks, steps, run, reporter)
            finish_run(engine, run, steps, kept, dropped, result.quarantine, result.n_input, reporter, config.report)
            run.extra["engine"] = {"name": "ray", "address": address or "local",
                                   "cpus": int(ray.cluster_resources().get("CPU", 0)), "partitions": _partitions()}
        finally:
            if started:
                ray.shutdown()
    return run
