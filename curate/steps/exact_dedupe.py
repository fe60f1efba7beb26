"""exact_dedupe: drop conversations identical to an earlier one after normalization (reason `exact_duplicate`).

The key is the example id (a hash of the normalized messages), or with `on: prompt` a hash of the
normalized user turns only (same question, different answers). The first row in input order is kept;
each dropped row's `dup_of` is the id of the row that was kept.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from curate.step import ROW, StagedStep, StepConfig


class ExactDedupeConfig(StepConfig):
    on: Literal["messages", "prompt"] = "messages"
    """`messages`: whole conversation; `prompt`: user turns only."""


class ExactDedupe(StagedStep):
    name = "exact_dedupe"
    Config = ExactDedupeConfig

    def map(self, df: pl.DataFrame) -> pl.DataFrame:
        """Each row's key (its id, or a hash of its user turns) with its row and id."""
        if self.config.on == "messages":
            key = pl.col("id")
        else:
            prompt = pl.col("messages").list.eval(
                pl.element().filter(pl.element().struct.field("role") == "user").struct.field("content")
            ).list.join("\n")
            key = prompt.hash(seed=0)
        return df.select(key.alias("_key"), pl.col(ROW), pl.col("id"))

    def reduce(self, entries: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
        """The first row of each key in input order stays; every later one is dropped as a copy of it."""
        later = entries.with_columns(pl.col("id").first().over("_key").alias("dup_of")).filter(
            ~pl.col("_key").is_first_distinct())
        marks = later.select(ROW, pl.lit("exact_duplicate").alias("drop_reason"), "dup_of")
        return marks, {"duplicate_groups": int(later.get_column("_key").n_unique())}


STEP = ExactDedupe
