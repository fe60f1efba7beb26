"""Gopher-style repetition signals over a text column, as Polars expressions on whole batches.

Source: Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from Training Gopher",
Appendix A1 (repetition removal), as implemented by DataTrove's `gopher_repetition_filter.py`: lines
split on `\\n+`, paragraphs on `\\n{2,}`; a line/paragraph is a duplicate when it appeared earlier in the
same text; fractions are duplicates / count and duplicate characters / text length; the top n-gram
fraction is len(top n-gram) × its count / text length. The duplicated-5-gram fraction here counts the
characters of words covered by a 5-gram that already occurred earlier (DataTrove skips over matched
spans one at a time; covering positions gives nearly the same number without a Python loop).

Thresholds (Gopher Table A1, DataTrove defaults): a text is repetitive above these values.
"""

from __future__ import annotations

import polars as pl

DUP_LINE_FRAC = 0.30
DUP_PARA_FRAC = 0.30
DUP_LINE_CHAR_FRAC = 0.20
DUP_PARA_CHAR_FRAC = 0.20
TOP_NGRAM_CHAR_FRAC = {2: 0.20, 3: 0.18, 4: 0.16}
DUP_5GRAM_CHAR_FRAC = 0.15

#: Column → threshold, for the combined score.
THRESHOLDS = {
    "q_dup_line_frac": DUP_LINE_FRAC,
    "q_dup_para_frac": DUP_PARA_FRAC,
    "q_dup_line_char_frac": DUP_LINE_CHAR_FRAC,
    "q_dup_para_char_frac": DUP_PARA_CHAR_FRAC,
    **{f"q_top{n}gram_frac": t for n, t in TOP_NGRAM_CHAR_FRAC.items()},
    "q_dup5gram_frac": DUP_5GRAM_CHAR_FRAC,
}
#: n-gram fractions are noisy on short texts (two "of the" in ten words exceed 0.2): they count from this many words.
NGRAM_MIN_WORDS = 30


def _duplicate_parts(frame: pl.DataFrame, parts: pl.Expr, name: str) -> pl.DataFrame:
    exploded = frame.select("_r", parts.alias("part")).explode("part").filter(pl.col("part").is_not_null() & (pl.col("part") != ""))
    repeat = (pl.int_range(pl.len()).over(["_r", "part"]) > 0)
    return exploded.with_columns(repeat.alias("rep")).group_by("_r").agg(
        (pl.col("rep").sum() / pl.len()).alias(f"q_dup_{name}_frac"),
        (pl.col("part").str.len_chars() * pl.col("rep")).sum().alias(f"_{name}_dup_chars"),
    )


def repetition_signals(text: pl.Series) -> pl.DataFrame:
    """One row per text: q_dup_{line,para}_frac, q_dup_{line,para}_char_frac, q_top{2,3,4}gram_frac, q_dup5gram_frac, q_words."""
    frame = pl.DataFrame({"text": text.fill_null("")}).with_row_index("_r")
    chars = pl.col("text").str.len_chars()
    lines = _duplicate_parts(frame, pl.col("text").str.replace_all(r"\n+", "\n").str.split("\n"), "line")
    paras = _duplicate_parts(frame, pl.col("text").str.replace_all(r"\n{2,}", "\x00").str.split("\x00"), "para")

    words = frame.select("_r", pl.col("text").str.extract_all(r"\w+").alias("w")).explode("w").drop_nulls("w")
    word = pl.col("w")
    aggs = [pl.len().alias("q_words")]
    for n in TOP_NGRAM_CHAR_FRAC:
        words = words.with_columns(pl.concat_str([word.shift(-i).over("_r") for i in range(n)], separator=" ").alias(f"g{n}"))
    words = words.with_columns(pl.concat_str([word.shift(-i).over("_r") for i in range(5)], separator=" ").alias("g5"))
    for n in TOP_NGRAM_CHAR_FRAC:
        top = (words.drop_nulls(f"g{n}").group_by("_r", f"g{n}").agg(pl.len().alias("c"), pl.col(f"g{n}").first().str.len_chars().alias("l"))
               .group_by("_r").agg((pl.col("c") * pl.col("l")).filter(pl.col("c") > 1).max().fill_null(0).alias(f"_top{n}")))
        frame = frame.join(top, on="_r", how="left")
    repeated_5gram = (pl.int_range(pl.len()).over(["_r", "g5"]) > 0) & pl.col("g5").is_not_null()
    covered = repeated_5gram.cast(pl.Int8).rolling_max(window_size=5, min_samples=1).over("_r")
    dup5 = words.with_columns(covered.alias("cov")).group_by("_r").agg(
        *aggs, (word.str.len_chars() * pl.col("cov")).sum().alias("_dup5_chars"))

    out = frame.join(lines, on="_r", how="left").join(paras, on="_r", how="left").join(dup5, on="_r", how="left").sort("_r")
    denom = pl.max_horizontal(chars, pl.lit(1))
    return out.select(
        pl.col("q_dup_line_frac").fill_null(0.0),
        pl.col("q_dup_para_frac").fill_null(0.0),
        (pl.col("_line_dup_chars").fill_null(0) / denom).alias("q_dup_line_char_frac"),
        (pl.col("_para_dup_chars").fill_null(0) / denom).alias("q_dup_para_char_frac"),
        *[(pl.col(f"_top{n}").fill_null(0) / denom).clip(0, 1).alias(f"q_top{n}gram_frac") for n in TOP_NGRAM_CHAR_FRAC],
        (pl.col("_dup5_chars").fill_null(0) / denom).clip(0, 1).alias("q_dup5gram_frac"),
        pl.col("q_words").fill_null(0).cast(pl.Int64),
    )


def repetition_factor(signals: pl.DataFrame | None = None) -> pl.Expr:
    """1 when every signal is within its Gopher threshold, falling linearly to 0 at twice the threshold.

    The n-gram signals only count for texts of at least NGRAM_MIN_WORDS words.
    """
    factors = []
    for col, limit in THRESHOLDS.items():
        f = (1 - (pl.col(col) - limit).clip(lower_bound=0) / limit).clip(0, 1)
        if "gram" in col:
            f = pl.when(pl.col("q_words") >= NGRAM_MIN_WORDS).then(f).otherwise(1.0)
        factors.append(f)
    return pl.min_horizontal(factors)
