"""The step framework: a step is a small object with a name, a pydantic config and a function on a batch.

Row-wise steps implement `process(df) -> df`; global steps (dedupe) see all rows at once in `apply(df)`.
Either way a step returns the same rows it was given, in the same order, with columns added;
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
