"""The step framework: a step is a small object with a name, a pydantic config and a function on a batch.

Row-wise steps implement `process(df) -> df`. Global steps (dedupe) see all rows: a `StagedStep` is written
once as a sequence of stages (per block, per key after a shuffle, on the driver) that either engine runs, the
local one over the whole frame as one block and one partition, the Ray one over blocks and hash partitions; a
plain global step implements `apply(df)` and runs on the local engine only. Either way a step returns the same
rows it was given, in the same order, with columns added; rows to drop get a non-null `drop_reason` (and
`dup_of` for duplicates). The pipeline, not the step, moves dropped rows out, so no row can vanish.
A step that loads a model says so (`needs_model`): the Ray engine then runs it in a pool of actors, each
loading the model once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict

from studio.console import Reporter


class StepConfig(BaseModel):
    """Base of every step's config: unknown keys are an error (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


class Step:
    """Base class. Subclasses set `name`, `Config`, and implement `process` (row-wise) or `apply` (global)."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[StepConfig]] = StepConfig
    is_global: ClassVar[bool] = False
    #: Loads a model (presidio, a language model, an embedding model): the Ray engine runs it in an actor pool,
    #: so each worker loads the model once and keeps it for every batch.
    needs_model: ClassVar[bool] = False
    #: Progress output for long steps (model encoding); the pipeline sets it, None means silent.
    reporter: Reporter | None = None

    def __init__(self, config: StepConfig | dict[str, Any] | None = None, **kwargs: Any) -> None:
        if isinstance(config, StepConfig):
            self.config = config
        else:
            self.config = self.Config(**{**(config or {}), **kwargs})
        self.stats: dict[str, Any] = {}

    # Row-wise steps
    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        if self.is_global:
            return self.apply(df)
        raise NotImplementedError

    # Global steps
    def apply(self, df: pl.DataFrame) -> pl.DataFrame:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


#: each row's position among the step's input rows (input order), which staged steps' entries and marks carry
ROW = "_row"
#: the column of a stage's entries that decides which entries meet in one call of the next (per-key) stage
KEY = "_key"


@dataclass
class Out:
    """What a stage hands on; every part is optional.

    - `entries`: a frame with a `KEY` column, for the next stage (per key): all entries of one key meet in one call;
    - `rows`: a frame with `ROW`, sent to the blocks holding those rows: the next per-block stage sees its block's
      share as `ctx.rows`; after the last stage they are the marks (`StagedStep.mark`);
    - `keep` (per-block stages): per-row values in the block's row order (NumPy arrays, Polars Series, or objects
      with `take(indices)` and a static `concat(parts)` such as `minhash.Shingles`) that later stages read back by
      row with `ctx.lookup`, wherever the row's block is (an object may also offer `local_view(indices)`, which the
      local executor uses instead of `take` to avoid the copy; what it returns only needs to serve the step's
      own readers);
    - `result`: for the next stage when it runs on the driver (it gets every call's result, in order); a driver
      stage's own `result` reaches every later stage as `ctx.value`;
    - `stats`: numbers added to the step's stats (summed over calls).
    """

    entries: pl.DataFrame | None = None
    rows: pl.DataFrame | None = None
    keep: dict[str, Any] | None = None
    result: Any = None
    stats: dict[str, Any] | None = None


@dataclass(frozen=True)
class Stage:
    """One stage of a staged step, `fn(ctx, data) -> Out`; `data` by `kind`:

    - `block`: a block of rows (the step's input columns, `ROW` first), once per block;
    - `key`: the entries the previous stage emitted, every entry of a key in one call, in the order emitted;
    - `driver`: the list of the previous stage's results, once, on the driver: small things only (a fit on a
      sample, a union of spanning forests).

    `needs_model` (block stages): the Ray engine runs the stage in a pool of actors holding the step, so a model
    the stage loads stays loaded for every block; one actor per `rows_per_worker` rows of input (0: one per CPU),
    at most one per CPU and per block.
    """

    kind: Literal["block", "key", "driver"]
    fn: Callable[..., Out]
    needs_model: bool = False
    rows_per_worker: int = 0


class Context:
    """What a stage sees beside its data; each executor provides one.

    `total`: the rows of the step's input (`ROW` runs over 0 … total - 1); `value`: the last driver stage's
    result; `rows`: in a block stage, the rows the previous stage sent to this block, or None;
    `lookup(rows, fields)`: the `keep` values of `rows` (sorted, unique) kept by earlier block stages, in that order.
    """

    total: int = 0
    value: Any = None
    rows: pl.DataFrame | None = None

    def lookup(self, rows: np.ndarray, fields: tuple[str, ...]) -> dict[str, Any]:
        raise NotImplementedError


def take(value: Any, at: np.ndarray) -> Any:
    """`value` (a `keep` value) at positions `at`."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        if at.size == len(value) and (at.size == 0 or (at[0] == 0 and bool((np.diff(at) == 1).all()))):
            return value  # every row, in order: no copy of a block's vectors
        return value[at]
    if isinstance(value, pl.Series):
        return value.gather(at)
    return value.take(at)


def concat(parts: list[Any]) -> Any:
    """`keep` values of several blocks joined in order."""
    first = parts[0]
    if first is None:
        return None
    if len(parts) == 1:
        return first
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)
    if isinstance(first, pl.Series):
        return pl.concat(parts)
    return type(first).concat(parts)


class _LocalContext(Context):
    """The local executor's context: one block, so a row's position is its index in every `keep` value."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.keep: dict[str, Any] = {}

    def lookup(self, rows: np.ndarray, fields: tuple[str, ...]) -> dict[str, Any]:
        """Values that offer `local_view(indices)` are read in place (one process: nothing to copy or send)."""
        return {f: self.keep[f].local_view(rows) if hasattr(self.keep[f], "local_view") else take(self.keep[f], rows)
                for f in fields}


class StagedStep(Step):
    """A global step written once as stages, after DataTrove's MinHash stages; an executor runs them.

    `stages()` lists them (`Stage`); each gets a `Context` and its data and returns an `Out`. The default is the
    simplest shape, for steps that only group rows by a key:

    1. `map(block)` (per block): the entries the step needs, with `ROW` and a `KEY` column;
    2. `reduce(entries)` (per key): its entries in input order → (marks, stats): marks are `ROW` plus the columns
       to set on those rows (`drop_reason`, `dup_of`, ...); numeric stats are summed;
    3. `mark(block, marks)` (per block, after the last stage): the rows with their marks (the default below).

    `apply` is the local executor: the whole frame is one block and one partition. The Ray executor is
    `curate.ray_engine.staged_step`; neither knows anything about a particular step. `stages()` runs where the
    step is built (the driver), so what it resolves there travels with the step to the workers.
    """

    is_global = True

    def stages(self) -> list[Stage]:
        return [Stage("block", self._map_stage), Stage("key", self._reduce_stage)]

    def _map_stage(self, ctx: Context, df: pl.DataFrame) -> Out:
        return Out(entries=self.map(df))

    def _reduce_stage(self, ctx: Context, entries: pl.DataFrame) -> Out:
        marks, stats = self.reduce(entries)
        return Out(rows=marks, stats=stats)

    def map(self, df: pl.DataFrame) -> pl.DataFrame:
        raise NotImplementedError

    def reduce(self, entries: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
        raise NotImplementedError

    def mark(self, df: pl.DataFrame, marks: pl.DataFrame) -> pl.DataFrame:
        """Set each marked row's columns to its non-null marks (new columns: null elsewhere); a row already
        dropped keeps its `drop_reason`."""
        cols = [c for c in marks.columns if c != ROW]
        joined = df.join(marks.rename({c: f"_mark_{c}" for c in cols}), on=ROW, how="left", maintain_order="left")
        updates = []
        for c in cols:
            mark = pl.col(f"_mark_{c}")
            if c == "drop_reason":
                updates.append(pl.when(pl.col(c).is_null() & mark.is_not_null()).then(mark).otherwise(pl.col(c)).alias(c))
            elif c in df.columns:
                updates.append(pl.when(mark.is_not_null()).then(mark).otherwise(pl.col(c)).alias(c))
            else:
                updates.append(mark.alias(c))
        return joined.with_columns(updates).drop([f"_mark_{c}" for c in cols])

    def apply(self, df: pl.DataFrame) -> pl.DataFrame:
        numbered = df.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))
        ctx = _LocalContext(numbered.height)
        stats: dict[str, Any] = {}
        out = Out()
        for stage in self.stages():
            if stage.kind == "block":
                ctx.rows = out.rows
                out = stage.fn(ctx, numbered)
                ctx.keep.update(out.keep or {})
            elif stage.kind == "key":
                out = stage.fn(ctx, out.entries)
            else:
                out = stage.fn(ctx, [out.result])
                ctx.value = out.result
            add_stats(stats, out.stats)
        self.stats.update(stats)
        return (self.mark(numbered, out.rows) if out.rows is not None else numbered).drop(ROW)


def distinct_rows(n: int, *arrays: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The sorted distinct values of `arrays` (row numbers in [0, n)) and each array's positions among them: what
    `np.unique` + `np.searchsorted` give, by a mask over [0, n) where n is small beside the values (no sort)."""
    size = sum(a.size for a in arrays)
    if n > 4 * size:
        distinct = np.unique(np.concatenate(arrays))
        return distinct, [np.searchsorted(distinct, a) for a in arrays]
    seen = np.zeros(n, dtype=bool)
    for a in arrays:
        seen[a] = True
    distinct = np.flatnonzero(seen)
    at = np.cumsum(seen, dtype=np.int64) - 1
    return distinct, [at[a] for a in arrays]


def add_stats(total: dict[str, Any], part: dict[str, Any] | None) -> None:
    """Sum a call's stats into the step's (numbers add up; lists, such as `warnings`, are joined)."""
    for key, value in (part or {}).items():
        total[key] = total[key] + value if key in total else value
