"""normalize: Unicode NFC, CR/CRLF → LF, control and zero-width characters removed, whitespace trimmed.

Runs first in every pipeline, so later steps compare canonical text. The text rules are those of
`studio.schema.normalize_text` (which ids are computed on), expressed as Polars string expressions over
the whole batch. Empty system turns are removed; a conversation whose user or assistant turn is empty
after normalization is dropped with reason `empty` (an empty answer teaches a model to say nothing).
"""

from __future__ import annotations

import polars as pl

from curate.step import Step, StepConfig

# Same character class as studio.schema._CONTROL_RE, in Rust regex syntax.
CONTROL_CHARS = r"[\x00-\x08\x0B-\x1F\x7F-\x9F\x{200B}\x{200C}\x{200D}\x{2060}\x{FEFF}]"


class NormalizeConfig(StepConfig):
    drop_empty: bool = True
    """Drop conversations with an empty user or assistant turn (reason `empty`)."""


def normalize_content(expr: pl.Expr) -> pl.Expr:
    return (
        expr.str.normalize("NFC")
        .str.replace_all(r"\r\n?", "\n")
        .str.replace_all(CONTROL_CHARS, "")
        .str.strip_chars()
    )


class Normalize(Step):
    name = "normalize"
    Config = NormalizeConfig

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        turn = pl.element()
        cleaned = pl.col("messages").list.eval(
            turn.struct.with_fields(
                pl.field("role").str.strip_chars().str.to_lowercase(),
                normalize_content(pl.field("content")),
            )
        )
        df = df.with_columns(cleaned.alias("messages"))
        df = df.with_columns(
            pl.col("messages").list.eval(
                turn.filter(~((turn.struct.field("role") == "system") & (turn.struct.field("content") == "")))
            )
        )
        if self.config.drop_empty:
            has_empty = pl.col("messages").list.eval(turn.struct.field("content") == "").list.any()
            no_turns = pl.col("messages").list.len() == 0
            df = df.with_columns(
                pl.when(pl.col("drop_reason").is_null() & (has_empty | no_turns))
                .then(pl.lit("empty"))
                .otherwise(pl.col("drop_reason"))
                .alias("drop_reason")
            )
        return df


STEP = Normalize
