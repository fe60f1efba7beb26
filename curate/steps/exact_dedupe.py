"""exact_dedupe: drop conversations identical to an earlier one after normalization (reason `exact_duplicate`).

The key is the example id (a hash of the normalized messages), or with `on: prompt` a hash of the
normalized user turns only (same question, different answers). The first row in input order is kept;
each dropped row's `dup_of` is the id of the row that was kept.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from curate.step import Step, StepConfig


class ExactDedupeConfig(StepConfig):
    on: Literal["messages", "prompt"] = "messages"
    """`messages`: whole conversation; `prompt`: user turns only."""


class ExactDedupe(Step):
    name = "exact_dedupe"
    Config = ExactDedupeConfig
    is_global = True

    def apply(self, df: pl.DataFrame) -> pl.DataFrame:
        if self.config.on == "messages":
            key = pl.col("id")
        else:
            prompt = pl.col("messages").list.eval(
                pl.element().filter(pl.element().struct.field("role") == "user").struct.field("content")
            ).list.join("\n")
            key = prompt.hash(seed=0)
        df = df.with_columns(key.alias("_key"))
        first = pl.col("_key").is_first_distinct()
        kept_id = pl.col("id").first().over("_key")
        df = df.with_columns(
            pl.when(pl.col("drop_reason").is_null() & ~first).then(pl.lit("exact_duplicate"))
            .otherwise(pl.col("drop_reason")).alias("drop_reason"),
            pl.when(~first).then(kept_id).otherwise(pl.col("dup_of")).alias("dup_of"),
        )
        self.stats["duplicate_groups"] = int(df.filter(~first).select(pl.col("_key").n_unique()).item())
        return df.drop("_key")


STEP = ExactDedupe
