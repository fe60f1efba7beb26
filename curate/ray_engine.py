"""The Ray engine: run a curation pipeline on a Ray cluster, with the same output as the local engine.

`studio curate ... --engine ray [--ray-address HOST:6379]` lands here (`curate.pipeline.run_pipeline` hands
over). Inputs are read with the studio readers (quarantine included) by parallel tasks on the driver's node,
one per group of consecutive files (`read_blocks`); every row gets `_row` = its index in input order, and each
group's rows form a block — an Arrow table in Ray's object store, sorted by `_row`, the blocks in input order
(block i's rows all come before block i+1's). Each step turns the blocks into kept blocks plus dropped
blocks, as in the local pipeline; nothing uses a Ray Data shuffle (each costs seconds of
actor start-up on a small cluster: see bench/README.md `## ray_scale`).

- Row-wise steps run as Ray Data `map_batches` over the Arrow blocks and call the SAME step code,
  `step.process(polars_df)`, per batch (Arrow → Polars is zero-copy for the column buffers). Steps that declare
  `needs_model` (redact_pii, score) run in an actor pool (`ActorPoolStrategy`), so each worker builds its
  analyzer / scorer once and keeps it for every batch; the others (normalize, filter) run as Ray Data tasks, one
  per block, with the step built once per worker process. One core task per block then splits the output into
  kept and dropped rows and reports the counts. Ray Data's cluster services (its statistics actor and
  autoscaling coordinator: detached actors, one per cluster, kept for every later job) are started with a local
  cluster (`start_data_services`), or while the workers read when joining one.
- Global steps are written once as stages (`curate.step.StagedStep`: exact, near and semantic dedupe) and run
  through one executor, `staged_step`, that knows nothing about any step: a block stage is one task per block
  (an actor pool when the stage declares `needs_model`, one actor per `rows_per_worker` rows, at most one per
  CPU), a key stage one task per hash partition of the entries' `_key` (`P` = 2 × the cluster's CPUs,
  `_partitions`; each task of the stage before returns its entries already split, `num_returns`), a driver
  stage runs here on the results the tasks before it return; rows a stage sends (`Out.rows`) go to the tasks of
  the blocks holding them, and what block stages keep (`Out.keep`) stays in the object store, read back by row
  (`Context.lookup`: on the driver through one small task per block, so only the rows asked for travel). Stages
  see `_row` as each row's position among the step's input rows (the local executor's numbering), blocks being
  runs of consecutive positions. One task per block ends the step: the last stage when it is a block stage, the
  marks set (`StagedStep.mark`), kept split from dropped.
  **Driver memory:** the driver never holds the rows: block references, per-block counts and schemas
  (O(blocks)), the quarantined records, and what the steps' driver stages receive, which each step bounds and
  documents (near_dedupe: spanning forests, O(rows); semantic_dedupe: a centroid sample and the pairs above
  its threshold).

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
from curate.registry import build_step, step_class
from curate.step import KEY, ROW, Context, Out, StagedStep, add_stats, concat, take
from studio.console import Reporter
from studio.errors import StudioError
from studio.runs import Run
from studio.schema import DROP_COLUMNS
from studio.workspace import Workspace

log = logging.getLogger("curate.ray")

#: Runs with at most this many input rows also get the local engine's single-file outputs and report.
LOCAL_FILES_MAX_ROWS = 500_000
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
        if step_class(name).needs_model:  # one thread per actor; other steps never import torch (seconds per worker)
            os.environ["OMP_NUM_THREADS"] = "1"  # the cap of a step's automatic thread count (`studio.cpu.auto_threads`)
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
    if step_class(name).needs_model:
        out = ds.map_batches(_StepRunner, fn_constructor_args=(name, config), batch_format="pyarrow",
                             compute=ActorPoolStrategy(min_size=1, max_size=_partitions() // 2), batch_size=512)
    else:
        out = ds.map_batches(_run_step_task, fn_args=(name, config), batch_format="pyarrow", batch_size=None)
    return out.to_arrow_refs()


def row_step(blocks: Blocks, step, columns: list[str]) -> tuple[StepResult, dict]:
    config = step.config.model_dump(mode="json")
    refs = _map_blocks(blocks, step.name, config)
    split = _remote(_split_table, num_returns=3)
    how = "map_batches, actor pool" if step.needs_model else "map_batches, tasks"
    return _collect([split.remote(ref, step.name) for ref in refs], step.name), {"ray_data": how}


# ------------------------------------------------------------------------------------- staged steps


class _RayContext(Context):
    """The Ray executor's `Context`. Blocks hold consecutive positions (`offsets`: each block's first);
    `keeps[b]`: references of what the block stages kept for block b. On the driver a lookup runs one small task
    per block holding the rows, so only the rows asked for travel; in a task (the context arrives pickled) it
    fetches the blocks' kept values, which on the same node are shared, not copied."""

    def __init__(self, total: int, offsets: np.ndarray) -> None:
        self.total = total
        self.offsets = offsets
        self.keeps: list[list] = [[] for _ in offsets]
        self.value_ref = None
        self.rows = None
        self.on_driver = True

    def __getstate__(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.__dict__.items() if k not in ("rows", "_value")}, "on_driver": False}

    @property
    def value(self) -> Any:
        import ray

        if self.value_ref is None:
            return None
        if getattr(self, "_value", (None, None))[0] is not self.value_ref:
            self._value = (self.value_ref, ray.get(self.value_ref))
        return self._value[1]

    def lookup(self, rows: np.ndarray, fields: tuple[str, ...]) -> dict[str, Any]:
        import ray

        block = _block_of(self.offsets, rows)
        needed = np.unique(block).tolist() if len(rows) else [0]  # an empty lookup still gives each field's type
        locals_ = [rows[block == b] - self.offsets[b] for b in needed]
        if self.on_driver:
            take_task = _remote(_take)
            got = ray.get([take_task.remote(fields, at, *self.keeps[b]) for b, at in zip(needed, locals_, strict=True)])
        else:
            got = [_take(fields, at, *ray.get(self.keeps[b])) for b, at in zip(needed, locals_, strict=True)]
        return {f: concat([g[f] for g in got]) for f in fields}


def _take(fields: tuple[str, ...], at: np.ndarray, *keeps) -> dict[str, Any]:
    """`fields` at positions `at` of one block's kept values (one dict per block stage that kept any)."""
    merged: dict[str, Any] = {}
    for keep in keeps:
        merged.update(keep or {})
    return {f: take(merged[f], at) for f in fields}


def _split(df: pl.DataFrame, part: np.ndarray, n: int) -> list:
    """`df`'s rows as `n` Arrow tables by `part` (each row's number in 0 … n-1), in their order."""
    order = np.argsort(part, kind="stable")
    cut = np.searchsorted(part[order], np.arange(n + 1))
    return [df[order[cut[p]:cut[p + 1]]].to_arrow() for p in range(n)]


def _returns(out: Out, parts: int, offsets: np.ndarray) -> tuple:
    """A stage call's `Out` as its task's returns: the entries split into `parts` by `KEY`, the rows
    split by the block holding them, then the result, the stats and what it keeps (`_LAYOUT`)."""
    n = len(offsets)
    entries = [None] * parts
    if out.entries is not None:
        key = out.entries.get_column(KEY)
        # integer keys are hashes or row numbers already: taken modulo P; others are hashed first
        part = key.cast(pl.UInt64, wrap_numerical=True) if key.dtype.is_integer() else key.hash(seed=7)
        entries = _split(out.entries, (part % parts).cast(pl.Int64).to_numpy(), parts)
    rows = [None] * n
    if out.rows is not None:
        rows = _split(out.rows, _block_of(offsets, out.rows.get_column(ROW).to_numpy()), n)
    return (*entries, *rows, out.result, out.stats or {}, out.keep)


def _layout(parts: int, n: int) -> dict[str, Any]:
    """Where each part of a task's returns sits (see `_returns`)."""
    return {"entries": slice(0, parts), "rows": slice(parts, parts + n), "result": parts + n, "stats": parts + n + 1,
            "keep": parts + n + 2, "count": parts + n + 3}


def _positioned(table, offset: int) -> pl.DataFrame:
    """A block as a stage sees it: `ROW` = each row's position among the step's input rows."""
    df = _to_polars(table)
    return df.with_columns(pl.Series(ROW, np.arange(offset, offset + df.height, dtype=np.int64)))


def _routed(pieces: tuple) -> pl.DataFrame | None:
    found = [_to_polars(p) for p in pieces if p is not None]
    return pl.concat(found) if found else None


def _block_task(fn, ctx: _RayContext, parts: int, offset: int, table, *routed) -> tuple:
    ctx.rows = _routed(routed)
    return _returns(fn(ctx, _positioned(table, offset)), parts, ctx.offsets)


class _ModelStageWorker:
    """Ray actor for a block stage that needs a model: it holds the step, so the model the stage loads is loaded
    once per actor and kept for every block it is given."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def run(self, ctx: _RayContext, parts: int, offset: int, table, *routed) -> tuple:
        return _block_task(self.fn, ctx, parts, offset, table, *routed)


def _key_task(fn, ctx: _RayContext, parts: int, *pieces) -> tuple:
    entries = pl.concat([_to_polars(p) for p in pieces if p is not None])
    return _returns(fn(ctx, entries), parts, ctx.offsets)


def _mark_task(step: StagedStep, fn, ctx: _RayContext, offset: int, table, *routed):
    """Per block, after the last stage (run here when it is a plain block stage): the marks set on the rows, then
    (kept, dropped, meta, stats) as for a row-wise step."""
    df = _positioned(table, offset)
    ctx.rows = _routed(routed)
    stats: dict[str, Any] = {}
    marks = ctx.rows
    if fn is not None:
        out = fn(ctx, df)
        marks, stats = out.rows, out.stats or {}
    if marks is not None:
        df = step.mark(df, marks)
    kept, dropped, meta = _split_table(df.with_columns(_to_polars(table).get_column(ROW)).to_arrow(), step.name)
    return kept, dropped, meta, stats


def staged_step(blocks: Blocks, step: StagedStep, columns: list[str]) -> tuple[StepResult, dict]:
    """Any `StagedStep` on Ray, stage by stage: a block stage as one task per block (an actor pool for a model
    stage), a key stage as one task per hash partition of `KEY` (P = `_partitions()`) receiving that partition
    of every previous task's entries, a driver stage here; rows a stage sends go to the tasks of the blocks
    holding them; after the last stage one task per block sets the marks and splits kept from dropped."""
    import ray

    if not blocks.refs:  # nothing to distribute: the local executor on no rows gives the step's stats
        step.stats = {}
        step.apply(pl.from_arrow(blocks.schema.empty_table()).drop(ROW))
        return StepResult(Blocks(schema=blocks.schema), Blocks(), {}), dict(step.stats)
    parts, nb = _partitions(), len(blocks.refs)
    offsets = np.r_[0, np.cumsum(blocks.sizes)[:-1]].astype(np.int64)
    ctx = _RayContext(blocks.rows, offsets)
    at = _layout(parts, nb)
    stages = step.stages()
    last = stages[-1] if stages[-1].kind == "block" and not stages[-1].needs_model else None
    stats: dict[str, Any] = {}
    stat_refs: list = []
    prev: list[tuple] = []  # the previous stage's returns, one tuple per task
    for stage in stages[:-1] if last else stages:
        if stage.kind == "block":
            routed = [[t[at["rows"]][b] for t in prev] for b in range(nb)]
            if stage.needs_model:
                cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
                want = math.ceil(blocks.rows / stage.rows_per_worker) if stage.rows_per_worker else cpus
                worker = ray.remote(_ModelStageWorker).options(num_cpus=1)
                actors = [worker.remote(stage.fn) for _ in range(max(1, min(cpus, nb, want)))]
                prev = [actors[b % len(actors)].run.options(num_returns=at["count"]).remote(
                    ctx, parts, int(offsets[b]), ref, *routed[b]) for b, ref in enumerate(blocks.refs)]
                ray.get([t[at["stats"]] for t in prev])
                for actor in actors:  # their outputs stay in the object store; their CPUs go to the next stages
                    ray.kill(actor)
            else:
                task = _remote(_block_task, num_returns=at["count"])
                prev = [task.remote(stage.fn, ctx, parts, int(offsets[b]), ref, *routed[b])
                        for b, ref in enumerate(blocks.refs)]
            for b, t in enumerate(prev):
                ctx.keeps[b].append(t[at["keep"]])
        elif stage.kind == "key":
            task = _remote(_key_task, num_returns=at["count"])
            prev = [task.remote(stage.fn, ctx, parts, *[t[at["entries"]][p] for t in prev]) for p in range(parts)]
        else:
            out = stage.fn(ctx, ray.get([t[at["result"]] for t in prev]))
            if out.entries is not None or out.keep is not None:
                raise StudioError(f"step {step.name}: a driver stage sends rows and results only, not entries or keeps.")
            add_stats(stats, out.stats)
            prev = [tuple(ray.put(x) for x in _returns(out, parts, offsets))]
            ctx.value_ref = prev[0][at["result"]]
            continue
        stat_refs += [t[at["stats"]] for t in prev]
    mark = _remote(_mark_task, num_returns=4)
    quads = [mark.remote(step, last.fn if last else None, ctx, int(offsets[b]), ref, *[t[at["rows"]][b] for t in prev])
             for b, ref in enumerate(blocks.refs)]
    for part in ray.get(stat_refs + [q[3] for q in quads]):
        add_stats(stats, part)
    return _collect([q[:3] for q in quads], step.name), stats


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

    unsupported = [s.name for s in steps if s.is_global and not isinstance(s, StagedStep)]
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
