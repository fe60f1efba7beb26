"""The step framework: a step is a small object with a name, a pydantic config and a function on a batch.

Row-wise steps implement `process(df) -> df`. Global steps (dedupe) see all rows: a `StagedStep` is written
as stages (map → shuffle by key → reduce → mark) that either engine runs, the local one over the whole frame,
the Ray one over blocks and hash partitions; a plain global step implements `apply(df)`. Either way a step returns the same rows it was given, in the same order, with columns added;
rows to drop get a non-null `drop_reason` (and `dup_of` for duplicates). The pipeline, not the step, moves
dropped rows out, so no row can vanish.
"""

from __future__ import annotations

from typing import Any, ClassVar

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


#: each row's index in input order, which staged steps' entries and marks carry
ROW = "_row"


class StagedStep(Step):
    """A global step written once as stages, after DataTrove's MinHash stages; an executor runs them:

    1. `map(block)`: per block of rows (each with `ROW`), the entries the step needs, one `_key` column among them;
    2. shuffle: every entry of one `_key` reaches the same partition;
    3. `reduce(entries)`: per partition, its entries sorted by `ROW` → (marks, stats): marks are `ROW` plus the
       columns to set on those rows (`drop_reason`, `dup_of`, ...); numeric stats are summed over partitions;
    4. `mark(block, marks)`: per block, its rows with their marks applied (the default below).

    `apply` is the local executor: the whole frame is one block and one partition. The Ray executor is
    `curate.ray_engine.staged_step`; neither knows anything about a particular step.
    """

    is_global = True

    def map(self, df: pl.DataFrame) -> pl.DataFrame:
        raise NotImplementedError

    def reduce(self, entries: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
        raise NotImplementedError

    def mark(self, df: pl.DataFrame, marks: pl.DataFrame) -> pl.DataFrame:
        """Set each marked row's columns to its marks; a row already dropped keeps its `drop_reason`."""
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
        marks, stats = self.reduce(self.map(numbered).sort(ROW))
        self.stats.update(stats)
        return (self.mark(numbered, marks) if marks.height else numbered).drop(ROW)
