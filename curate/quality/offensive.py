"""Offensive language per turn, by alt-profanity-check: a linear SVM over word n-gram TF-IDF, trained on
~200k human-labelled comments (Wikipedia talk-page toxicity + Twitter hate-speech sets), shipped inside the
PyPI package (no hub download). Each user and assistant turn is classified sentence by sentence (TF-IDF over a
whole long answer dilutes one insult below the boundary: "Honestly that's a stupid question, but fine." scores
0.96 alone and < 0.5 inside a 100-word answer); a turn's score is its worst sentence, and a row keeps the
largest over all its turns (`q_offensive`) and over its assistant turns (`q_offensive_response`).

Only an offensive *response* lowers `quality` (by OFFENSIVE_FACTOR, when ≥ THRESHOLD): a rude customer
answered calmly is exactly what a support model should learn from, a rude answer is what it must not.
Filter or review on either column, e.g. `q_offensive < 0.5` or `q_offensive_response >= 0.5`.
THRESHOLD 0.5 is the classifier's own decision boundary (`predict` = `predict_proba >= 0.5`).
"""

from __future__ import annotations

import functools

import polars as pl

THRESHOLD = 0.5
OFFENSIVE_FACTOR = 0.2
#: characters of a turn the classifier reads: enough for its n-grams, bounded cost for long turns
MAX_CHARS = 4000


@functools.lru_cache(maxsize=1)
def _classifier():
    """(vectorizer, model) loaded once per process (a Ray actor builds its own); ~1 s."""
    from profanity_check import profanity_check

    return profanity_check.vectorizer, profanity_check.model


def turn_probabilities(texts: list[str]) -> list[float]:
    """P(offensive) of each text; one batched sparse matrix product, not a loop."""
    if not texts:
        return []
    vectorizer, model = _classifier()
    return model.predict_proba(vectorizer.transform(texts))[:, 1].astype(float).tolist()


def offensive_signals(df: pl.DataFrame) -> pl.DataFrame:
    """q_offensive and q_offensive_response per row of a frame with `messages` (rows without turns: 0.0)."""
    turns = (df.select(pl.col("messages")).with_row_index("_i").explode("messages")
             .select("_i", pl.col("messages").struct.field("role").alias("role"),
                     pl.col("messages").struct.field("content").fill_null("").str.slice(0, MAX_CHARS).alias("text"))
             .filter(pl.col("role").is_in(["user", "assistant"]))
             .with_columns(pl.col("text").str.replace_all(r"([.!?])\s+", "$1\n").str.split("\n"))
             .explode("text"))
    turns = turns.with_columns(pl.Series("p", turn_probabilities(turns["text"].to_list()), dtype=pl.Float64))
    per_row = turns.group_by("_i").agg(
        pl.col("p").max().alias("q_offensive"),
        pl.col("p").filter(pl.col("role") == "assistant").max().alias("q_offensive_response"))
    full = pl.DataFrame({"_i": pl.int_range(0, df.height, eager=True).cast(pl.UInt32)})
    return (full.join(per_row, on="_i", how="left").sort("_i").drop("_i")
            .with_columns(pl.all().fill_null(0.0).round(4)))


def offensive_factor() -> pl.Expr:
    return pl.when(pl.col("q_offensive_response") >= THRESHOLD).then(OFFENSIVE_FACTOR).otherwise(1.0)
