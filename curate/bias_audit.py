"""Bias audit of a curated set: who the text talks about, and what it says next to them.

Run by the curate report on the kept rows (and usable on any example table, e.g. an export with a split
column); pure functions over Polars frames, no model. Two measures, each per group (origin, source file,
split), so a trainer sees whether synthetic data or one source skews the set:

- **Representation**: mentions of demographic term sets (gender: female / male words; age: young / older
  words) per 100 rows. A group is flagged when one side's share of its mentions differs from the rest of the
  set by ≥ SKEW_DIFF with a Fisher exact p < SKEW_P (and ≥ MIN_MENTIONS mentions in it): "this source talks
  about women, the others about men" is the skew that a fine-tune learns.
- **Association** (GenBiT, Sengupta et al. 2021, "GenBiT: measure and mitigate gender bias in language
  datasets", Microsoft): for every context word within WINDOW words of a gendered word, the log-ratio
  b(w) = ln P(w | female) / P(w | male) of its smoothed co-occurrence probabilities; the set's score is the
  mean |b| over words seen ≥ MIN_COOCCURRENCE times (GenBiT's `avg_bias_conditional_absolute`, 0 = none).
  A word is flagged when |b| ≥ ASSOCIATION_FLAG (ln 4: four times likelier next to one gender) and both
  genders have ≥ MIN_MENTIONS mentions, so a set that never mentions one gender is reported by representation,
  not by noise. The `genbit` package itself pins nltk 3.6.6 (conflicting with label-studio-sdk) and needs
  pkg_resources, so the method is implemented here on Polars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import polars as pl

#: demographic term sets: dimension → (side → words), matched as lowercase whole words
TERMS: dict[str, dict[str, tuple[str, ...]]] = {
    "gender": {
        "female": ("she", "her", "hers", "herself", "woman", "women", "girl", "girls", "lady", "ladies", "wife",
                   "mother", "mom", "mum", "daughter", "sister", "girlfriend", "grandmother", "grandma", "aunt",
                   "niece", "mrs", "ms", "female", "females", "wives", "mothers", "daughters", "sisters"),
        "male": ("he", "him", "his", "himself", "man", "men", "boy", "boys", "gentleman", "gentlemen", "husband",
                 "father", "dad", "son", "brother", "boyfriend", "grandfather", "grandpa", "uncle", "nephew", "mr",
                 "male", "males", "husbands", "fathers", "sons", "brothers"),
    },
    "age": {
        "young": ("kid", "kids", "child", "children", "teen", "teens", "teenager", "teenagers", "youth", "toddler",
                  "baby", "student", "students"),
        "older": ("elderly", "senior", "seniors", "retired", "retiree", "retirees", "grandparent", "grandparents",
                  "pensioner", "pensioners", "aged"),
    },
}
#: counterpart of each term for counterfactual data augmentation (Lu et al. 2018, "Gender bias in neural natural
#: language processing"; Zmigrod et al. 2019): swapping them both ways turns a row about one side into the same row
#: about the other. "her" becomes "his" (possessive, the commoner use in support text). Age has no such pairs.
COUNTERPARTS: dict[str, dict[str, str]] = {
    "gender": dict(pair for f, m in (
        ("she", "he"), ("herself", "himself"), ("hers", "his"), ("woman", "man"), ("women", "men"), ("girl", "boy"),
        ("girls", "boys"), ("lady", "gentleman"), ("ladies", "gentlemen"), ("wife", "husband"), ("wives", "husbands"),
        ("mother", "father"), ("mothers", "fathers"), ("mom", "dad"), ("daughter", "son"), ("daughters", "sons"),
        ("sister", "brother"), ("sisters", "brothers"), ("girlfriend", "boyfriend"), ("grandmother", "grandfather"),
        ("grandma", "grandpa"), ("aunt", "uncle"), ("niece", "nephew"), ("mrs", "mr"), ("female", "male"),
        ("females", "males")) for pair in ((f, m), (m, f))) | {"her": "his", "his": "her", "him": "her", "mum": "dad", "ms": "mr"},
}
WINDOW = 10
"""Context window (words either side) for co-occurrence, as GenBiT's default fixed window."""
MIN_MENTIONS = 10
MIN_COOCCURRENCE = 5
ASSOCIATION_FLAG = math.log(4)
SKEW_DIFF = 0.3
SKEW_P = 0.01
SMOOTHING = 1.0
"""Add-one smoothing of the co-occurrence probabilities, so a word never seen with one gender has a finite b."""


@dataclass
class BiasAudit:
    representation: pl.DataFrame
    """group_by, group, rows, then per dimension side: mentions and per-100-rows rate."""
    association: pl.DataFrame
    """word, female, male (co-occurrence counts), bias (ln ratio), sorted by |bias|."""
    scores: dict[str, Any]
    """female / male mentions, female share, avg |bias| (GenBiT), words scored."""
    flags: list[str] = field(default_factory=list)
    """Sentences naming the largest skews; empty when nothing crosses the thresholds."""
    skews: list[dict[str, Any]] = field(default_factory=list)
    """The representation skews behind the first flags, as figures (see `skews`)."""


def _tokens(texts: pl.Series) -> pl.DataFrame:
    """doc, pos, word: one row per lowercase word of each text."""
    return (pl.DataFrame({"text": texts.fill_null("")}).with_row_index("doc")
            .select("doc", pl.col("text").str.to_lowercase().str.extract_all(r"[a-z]+(?:'[a-z]+)?").alias("word"))
            .explode("word").drop_nulls("word")
            .with_columns(pl.int_range(pl.len()).over("doc").alias("pos")))


def _side_of(dimension: str) -> pl.Expr:
    expr = pl.lit(None, dtype=pl.String)
    for side, words in TERMS[dimension].items():
        expr = pl.when(pl.col("word").is_in(list(words))).then(pl.lit(side)).otherwise(expr)
    return expr


def representation(texts: pl.Series, groups: dict[str, pl.Series]) -> pl.DataFrame:
    """Mentions of each term set per group of each grouping (`groups`: name → group label per text)."""
    tokens = _tokens(texts).with_columns([_side_of(d).alias(d) for d in TERMS])
    per_doc = pl.DataFrame({"doc": pl.int_range(0, texts.len(), eager=True).cast(pl.UInt32)})
    for dim, sides in TERMS.items():
        for side in sides:
            n = tokens.filter(pl.col(dim) == side).group_by("doc").len().rename({"len": f"{dim}:{side}"})
            per_doc = per_doc.join(n, on="doc", how="left")
    per_doc = per_doc.fill_null(0)
    cols = [c for c in per_doc.columns if c != "doc"]
    out = []
    for name, labels in groups.items():
        table = (per_doc.with_columns(labels.cast(pl.String).fill_null("(none)").alias("group"))
                 .group_by("group").agg(pl.len().alias("rows"), *[pl.col(c).sum() for c in cols])
                 .with_columns(pl.lit(name).alias("group_by")))
        out.append(table.select("group_by", "group", "rows", *cols).sort("group"))
    return pl.concat(out) if out else pl.DataFrame()


def association(texts: pl.Series) -> tuple[pl.DataFrame, dict[str, Any]]:
    """GenBiT's co-occurrence log-ratio per context word, and the set-level scores."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    tokens = _tokens(texts).with_columns(_side_of("gender").alias("gender"))
    gendered = tokens.filter(pl.col("gender").is_not_null()).select("doc", pl.col("pos").alias("gpos"), "gender")
    context = tokens.filter(pl.col("gender").is_null() & ~pl.col("word").is_in(list(ENGLISH_STOP_WORDS))
                            & (pl.col("word").str.len_chars() > 2)).select("doc", "pos", "word")
    n_f = int((gendered["gender"] == "female").sum())
    n_m = int((gendered["gender"] == "male").sum())
    pairs = (gendered.join(context, on="doc")
             .filter((pl.col("pos") - pl.col("gpos")).abs() <= WINDOW)
             .group_by("word").agg((pl.col("gender") == "female").sum().alias("female"),
                                   (pl.col("gender") == "male").sum().alias("male")))
    vocab = max(pairs.height, 1)
    tot_f, tot_m = int(pairs["female"].sum() or 0), int(pairs["male"].sum() or 0)
    scored = (pairs.with_columns(
        (((pl.col("female") + SMOOTHING) / (tot_f + SMOOTHING * vocab))
         / ((pl.col("male") + SMOOTHING) / (tot_m + SMOOTHING * vocab))).log().round(3).alias("bias"))
        .filter((pl.col("female") + pl.col("male")) >= MIN_COOCCURRENCE)
        .sort(pl.col("bias").abs(), "word", descending=[True, False]))
    scores = {"female_mentions": n_f, "male_mentions": n_m,
              "female_share": round(n_f / (n_f + n_m), 3) if n_f + n_m else None,
              "avg_abs_bias": round(float(scored["bias"].abs().mean()), 3) if scored.height else None,
              "words_scored": scored.height}
    return scored, scores


def _fisher_p(a: int, b: int, c: int, d: int) -> float:
    from scipy.stats import fisher_exact

    return float(fisher_exact([[a, b], [c, d]]).pvalue)


def skews(rep: pl.DataFrame) -> list[dict[str, Any]]:
    """Groups whose share of one side of a dimension differs from the rest of the set (see module doc), largest
    difference first: where (group_by, group), which axis, the side over- and the side under-represented in that
    group, the figures, and the sentence the report shows (`flag`). `studio synth --target-skew` aims at these."""
    found: list[dict[str, Any]] = []
    for name in rep["group_by"].unique(maintain_order=True).to_list() if rep.height else []:
        part = rep.filter(pl.col("group_by") == name)
        if part.height < 2:
            continue
        for dim, sides in TERMS.items():
            a_col, b_col = (f"{dim}:{s}" for s in sides)
            a_all, b_all = int(part[a_col].sum()), int(part[b_col].sum())
            for row in part.iter_rows(named=True):
                a, b = row[a_col], row[b_col]
                ra, rb = a_all - a, b_all - b
                if a + b < MIN_MENTIONS or ra + rb == 0:
                    continue
                diff = a / (a + b) - ra / (ra + rb)
                if abs(diff) < SKEW_DIFF or (p_value := _fisher_p(a, b, ra, rb)) >= SKEW_P:
                    continue
                over, under = list(sides) if diff > 0 else list(sides)[::-1]
                share, rest = (a / (a + b), ra / (ra + rb)) if diff > 0 else (b / (a + b), rb / (ra + rb))
                found.append({"group_by": name, "group": row["group"], "axis": dim, "over": over, "under": under,
                              "mentions": a + b, "share": round(share, 3), "rest_share": round(rest, 3),
                              "p_value": float(f"{p_value:.3g}"),
                              "flag": f"{name} {row['group']}: {share:.0%} of its {a + b} {dim} mentions are "
                                      f"{over}, against {rest:.0%} in the rest of the set"})
    return sorted(found, key=lambda f: -abs(f["share"] - f["rest_share"]))


def skew_flags(rep: pl.DataFrame) -> list[str]:
    """The sentences of `skews`, largest first."""
    return [s["flag"] for s in skews(rep)]


def association_flags(assoc: pl.DataFrame, scores: dict[str, Any], top: int = 5) -> list[str]:
    if min(scores["female_mentions"], scores["male_mentions"]) < MIN_MENTIONS:
        return []
    strong = assoc.filter(pl.col("bias").abs() >= ASSOCIATION_FLAG)
    out = []
    for side, sign in (("female", 1), ("male", -1)):
        words = strong.filter(pl.col("bias") * sign > 0).head(top)
        if words.height:
            listed = ", ".join(f"{w} ({math.exp(abs(b)):.0f}×)" for w, b in zip(words["word"], words["bias"], strict=True))
            out.append(f"words far likelier next to {side} words (GenBiT log-ratio ≥ ln 4): {listed}")
    return out


def audit(texts: pl.Series, groups: dict[str, pl.Series]) -> BiasAudit:
    """Representation per group, GenBiT association over all texts, and the flags (largest skew first)."""
    rep = representation(texts, groups)
    assoc, scores = association(texts)
    found = skews(rep)
    return BiasAudit(rep, assoc, scores, [s["flag"] for s in found] + association_flags(assoc, scores), found)
