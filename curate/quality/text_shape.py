"""Shape signals of an instruction/response pair: non-alphabetic content and a response that echoes its prompt.

- `q_alpha_words_frac`: share of the response's words with at least one letter. Gopher (Rae et al. 2021,
  Appendix A1; DataTrove `gopher_quality_filter.py`, `min_alpha_words_ratio` = 0.8) drops web text below
  0.8; answers with code or tables fall lower legitimately, so the combined score only ramps down below it.
- `q_non_alpha_frac`: share of the response's non-space characters that are not letters (symbol and
  digit noise; reported for filters, not in the combined score).
- `q_echo`: share of the prompt's distinct word trigrams (lower-cased) that the response repeats; 1.0 when
  the response restates the prompt. (Measured against the prompt, not the response, so an extractive
  answer quoting a sentence of a long context is not an echo.) A response that copies the question is a classic failure of
  scraped and synthetic instruction data (flagged in the Alpaca-cleaned audit, gururise/AlpacaDataCleaned);
  above ECHO_OK the combined score falls linearly to 0 at 1.0.
"""

from __future__ import annotations

import polars as pl

MIN_ALPHA_WORDS_FRAC = 0.8
ECHO_OK = 0.5


def _trigrams(text: pl.Expr) -> pl.Expr:
    w = pl.element()
    return (text.str.to_lowercase().str.extract_all(r"\w+")
            .list.eval(pl.concat_str([w, w.shift(-1), w.shift(-2)], separator=" ").drop_nulls())
            .list.unique())


def shape_signals(prompt: pl.Expr, response: pl.Expr) -> list[pl.Expr]:
    words = response.str.extract_all(r"\S+")
    non_space = response.str.count_matches(r"\S")
    letters = response.str.count_matches(r"\p{Alphabetic}")
    resp_tri, prompt_tri = _trigrams(response), _trigrams(prompt)
    echo = resp_tri.list.set_intersection(prompt_tri).list.len() / prompt_tri.list.len()
    same = response.str.to_lowercase().str.strip_chars() == prompt.str.to_lowercase().str.strip_chars()
    return [
        words.list.eval(pl.element().str.contains(r"\p{Alphabetic}")).list.mean().fill_null(0.0).alias("q_alpha_words_frac"),
        pl.when(non_space > 0).then(1 - letters / non_space).otherwise(1.0).alias("q_non_alpha_frac"),
        pl.when(same).then(1.0).otherwise(echo.fill_nan(0.0).fill_null(0.0)).alias("q_echo"),
    ]


def alpha_factor() -> pl.Expr:
    return (pl.col("q_alpha_words_frac") / MIN_ALPHA_WORDS_FRAC).clip(0, 1)


def echo_factor() -> pl.Expr:
    return (1 - (pl.col("q_echo") - ECHO_OK).clip(lower_bound=0) / (1 - ECHO_OK)).clip(0, 1)
