"""Language of each example, by langid.py (Lui & Baldwin 2012, "langid.py: An Off-the-shelf Language
Identification Tool"): a naive Bayes model over byte n-grams, 97 languages, bundled with the package.

`q_lang` is the ISO 639-1 code of prompt + response, `q_lang_conf` its normalised probability. The
combined score multiplies by OFF_LANGUAGE_FACTOR when `languages` is set and the language is not in it and
langid is confident (≥ MIN_CONFIDENCE); short texts are often misidentified, so an unsure call costs nothing.
"""

from __future__ import annotations

import functools

import polars as pl

OFF_LANGUAGE_FACTOR = 0.3
MIN_CONFIDENCE = 0.9
#: langid reads this many characters per text: enough to decide, and bounded cost for long documents.
MAX_CHARS = 1000


@functools.lru_cache(maxsize=1)
def _identifier():
    from langid.langid import LanguageIdentifier, model

    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


def language_signals(text: pl.Series) -> pl.DataFrame:
    ident = _identifier()
    # langid classifies one string at a time (a model call); the texts are cut to MAX_CHARS first.
    results = [ident.classify(t) if t.strip() else ("und", 0.0) for t in text.fill_null("").str.slice(0, MAX_CHARS).to_list()]
    return pl.DataFrame({"q_lang": [r[0] for r in results], "q_lang_conf": [float(r[1]) for r in results]},
                        schema={"q_lang": pl.String, "q_lang_conf": pl.Float64})


def language_factor(languages: list[str]) -> pl.Expr:
    if not languages:
        return pl.lit(1.0)
    off = ~pl.col("q_lang").is_in(languages) & (pl.col("q_lang_conf") >= MIN_CONFIDENCE)
    return pl.when(off).then(OFF_LANGUAGE_FACTOR).otherwise(1.0)
