"""normalize: Unicode NFC, CR/CRLF → LF, control and zero-width characters removed, whitespace trimmed.

Runs first in every pipeline, so later steps compare canonical text. The text rules are those of
`studio.schema.normalize_text` (which ids are computed on), applied in bulk by `studio.schema.normalize_texts`
to every turn of the batch at once. Empty system turns are removed; a conversation whose user or assistant
turn is empty after normalization is dropped with reason `empty` (an empty answer teaches a model to say nothing).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from curate.step import Step, StepConfig
from studio.schema import normalize_texts


class NormalizeConfig(StepConfig):
    drop_empty: bool = True
    """Drop conversations with an empty user or assistant turn (reason `empty`)."""


def regroup(turns: pl.DataFrame, rows: np.ndarray, n: int) -> pl.Series:
    """The turns (a frame of role, content, in row order) as a `messages` list column of `n` rows, `rows` giving
    each turn's row."""
    counts = np.bincount(rows, minlength=n)
    structs = turns.to_struct("turn")
    if n and counts[0] and (counts == counts[0]).all():  # every row has as many turns: no offsets needed
        return structs.reshape((n, int(counts[0]))).cast(pl.List(structs.dtype)).alias("messages")
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int64())
    values = structs.to_arrow(compat_level=pl.CompatLevel.oldest())
    return pl.Series("messages", pa.LargeListArray.from_arrays(offsets, values)).cast(pl.List(structs.dtype))


class Normalize(Step):
    name = "normalize"
    Config = NormalizeConfig

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        n = df.height
        lengths = df["messages"].list.len().fill_null(0).to_numpy()
        flat = df["messages"].explode(empty_as_null=False, keep_nulls=False).struct.unnest()
        turns = pl.DataFrame({"role": flat["role"].str.strip_chars().str.to_lowercase(),
                              "content": normalize_texts(flat["content"])})
        rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
        keep = ~((turns["role"] == "system") & (turns["content"] == "")).to_numpy()
        turns, rows = turns.filter(keep), rows[keep]
        df = df.with_columns(regroup(turns, rows, n))
        if self.config.drop_empty:
            empty_rows = np.zeros(n, bool)
            empty_rows[rows[(turns["content"] == "").to_numpy()]] = True
            empty = pl.Series(empty_rows) | (df["messages"].list.len() == 0)
            df = df.with_columns(
                pl.when(pl.col("drop_reason").is_null() & empty).then(pl.lit("empty"))
                .otherwise(pl.col("drop_reason")).alias("drop_reason")
            )
        return df


STEP = Normalize
