"""Inter-annotator agreement: Cohen's kappa per pair of reviewers and Fleiss' kappa over all reviewers (the
textbook formulas on count tables, in NumPy: the same figures as scikit-learn's `cohen_kappa_score` and statsmodels'
`fleiss_kappa`, which tests/test_review_store.py checks, without their ~3 s import each on the lead page's first load),
and Krippendorff's alpha (`krippendorff`).

Pure functions over `{item_id: {reviewer: label}}`; the store feeds them the current human decisions
(skips, undone decisions and rule decisions excluded). A statistic that is undefined on the data (one
label only, fewer than two shared items) is None, never a made-up number.

Reading the figures (Landis & Koch 1977): < 0 poor, 0–0.20 slight, 0.21–0.40 fair, 0.41–0.60 moderate,
0.61–0.80 substantial, 0.81–1 almost perfect. Krippendorff (2004) asks for alpha >= 0.8 to rely on
the labels and >= 0.667 for tentative conclusions.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from typing import Any

VERDICT_CODES = {"accept": 1, "reject": 0}


def _clean(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


def cohen_kappa(table) -> float | None:
    """Cohen's kappa from a square table of counts (rows: one rater's labels, columns: the other's, same order):
    (observed - chance agreement) / (1 - chance agreement); None when chance agreement is 1."""
    import numpy as np

    cm = np.asarray(table, dtype=float)
    n = cm.sum()
    observed = np.trace(cm) / n
    expected = float(cm.sum(axis=1) @ cm.sum(axis=0)) / n**2
    return None if expected >= 1 else _clean((observed - expected) / (1 - expected))


def cohen_pairs(labels: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Cohen's kappa and raw agreement for each pair of reviewers over the items both labelled (one pass over the
    items, counting each pair's (label, label) cells)."""
    cells: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for per_item in labels.values():
        for a, b in itertools.combinations(sorted(per_item), 2):
            cells[a, b][per_item[a], per_item[b]] += 1
    out = []
    for (a, b), counts in sorted(cells.items()):
        n = sum(counts.values())
        cats = sorted({x for pair in counts for x in pair}, key=str)
        kappa = None
        if n >= 2 and len(cats) > 1:
            kappa = cohen_kappa([[counts[x, y] for y in cats] for x in cats])
        agree = sum(c for (x, y), c in counts.items() if x == y) / n
        out.append({"a": a, "b": b, "items": n, "agreement": round(agree, 4), "cohen_kappa": kappa})
    return out


def fleiss_kappa(table) -> float | None:
    """Fleiss' kappa from an items × categories table of counts, every row summing to the same number of raters
    (Fleiss 1971; statsmodels' `fleiss_kappa(method="fleiss")`)."""
    import numpy as np

    t = np.asarray(table, dtype=float)
    raters = t.sum(axis=1).max()
    p_cat = t.sum(axis=0) / (t.shape[0] * raters)
    observed = ((t * t).sum(axis=1) - raters) / (raters * (raters - 1))
    expected = float((p_cat * p_cat).sum())
    return None if expected >= 1 else _clean((observed.mean() - expected) / (1 - expected))


def fleiss(labels: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Fleiss' kappa over the items with the most common number of raters (it needs a fixed count)."""
    counts = Counter(len(v) for v in labels.values() if len(v) >= 2)
    if not counts:
        return {"fleiss_kappa": None, "items": 0, "raters_per_item": None}
    raters, _ = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    rows = [Counter(v.values()) for v in labels.values() if len(v) == raters]
    categories = sorted({x for row in rows for x in row}, key=str)
    if len(rows) < 2 or len(categories) < 2:
        return {"fleiss_kappa": None, "items": len(rows), "raters_per_item": raters}
    table = [[row[c] for c in categories] for row in rows]
    return {"fleiss_kappa": fleiss_kappa(table), "items": len(rows), "raters_per_item": raters}


def krippendorff_alpha(labels: dict[str, dict[str, Any]], level: str) -> float | None:
    """Krippendorff's alpha (any number of raters per item, missing values allowed)."""
    import krippendorff
    import numpy as np

    items = [v for v in labels.values() if len(v) >= 2]
    reviewers = sorted({r for v in items for r in v})
    if len(items) < 2 or len(reviewers) < 2:
        return None
    data = np.full((len(reviewers), len(items)), np.nan)
    for j, per_item in enumerate(items):
        for i, r in enumerate(reviewers):
            if r in per_item:
                data[i, j] = float(per_item[r])
    if len(set(data[~np.isnan(data)].tolist())) < 2:
        return None
    try:
        return _clean(krippendorff.alpha(reliability_data=data, level_of_measurement=level))
    except ValueError:
        return None


def agreement_report(verdicts: dict[str, dict[str, str]], ratings: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Agreement on accept/reject verdicts (pairwise Cohen, Fleiss, nominal alpha) and on 1–5 ratings
    (ordinal alpha)."""
    coded = {item: {r: VERDICT_CODES[v] for r, v in per.items() if v in VERDICT_CODES} for item, per in verdicts.items()}
    multi = {item: per for item, per in coded.items() if len(per) >= 2}
    rated = {item: per for item, per in ratings.items() if len(per) >= 2}
    return {
        "items_with_overlap": len(multi),
        "pairs": cohen_pairs(multi),
        "fleiss": fleiss(multi),
        "verdict_alpha": krippendorff_alpha(multi, "nominal"),
        "rating_alpha": krippendorff_alpha(rated, "ordinal"),
        "rated_items_with_overlap": len(rated),
    }


def _alpha_from_counts(counts, level: str) -> float | None:
    """Krippendorff's alpha from an items × values table of counts (columns in value order), as
    `krippendorff_alpha` computes it from the reviewers × items matrix (the library reduces that to these counts)."""
    import krippendorff
    import numpy as np

    if counts.height < 2 or counts.width < 2:
        return None
    values = [int(c) for c in counts.columns]
    try:
        return _clean(krippendorff.alpha(value_counts=counts.to_numpy().astype(float), value_domain=np.array(values),
                                         level_of_measurement=level))
    except ValueError:
        return None


def agreement_from_votes(votes) -> dict[str, Any]:
    """`agreement_report` from a Polars frame of people's current votes (item_id, person, verdict, rating; one row per
    item and person), computed on count tables in Polars: the same figures without a Python loop over items."""
    import polars as pl

    coded = votes.filter(pl.col("verdict").is_in(list(VERDICT_CODES))).with_columns(
        pl.col("verdict").replace_strict(VERDICT_CODES, return_dtype=pl.Int64).alias("code"))
    multi = coded.filter(pl.len().over("item_id") >= 2)
    rated = (votes.filter(pl.col("rating").is_not_null()).filter(pl.len().over("item_id") >= 2)
             .with_columns(pl.col("rating").cast(pl.Int64).alias("code")))

    def counts(frame):  # items × values present, in value order
        if frame.is_empty():
            return pl.DataFrame()
        table = frame.group_by("item_id", "code").len().pivot(on="code", index="item_id", values="len")
        cols = sorted((c for c in table.columns if c != "item_id"), key=int)
        return table.select(cols).fill_null(0)

    pairs = []
    if not multi.is_empty():
        left = multi.select("item_id", a="person", x="code")
        cells = (left.join(multi.select("item_id", b="person", y="code"), on="item_id").filter(pl.col("a") < pl.col("b"))
                 .group_by("a", "b", "x", "y").len().sort("a", "b"))
        for (a, b), cell in cells.group_by("a", "b", maintain_order=True):
            n = int(cell["len"].sum())
            cats = sorted(set(cell["x"]) | set(cell["y"]))
            got = {(x, y): c for x, y, c in cell.select("x", "y", "len").iter_rows()}
            kappa = cohen_kappa([[got.get((x, y), 0) for y in cats] for x in cats]) if n >= 2 and len(cats) > 1 else None
            agree = sum(c for (x, y), c in got.items() if x == y) / n
            pairs.append({"a": a, "b": b, "items": n, "agreement": round(agree, 4), "cohen_kappa": kappa})
    verdict_counts = counts(multi)
    fleiss_out: dict[str, Any] = {"fleiss_kappa": None, "items": 0, "raters_per_item": None}
    if verdict_counts.height:
        n_raters = verdict_counts.sum_horizontal()
        sizes = n_raters.value_counts(name="n").rows()
        raters, _ = max(((int(k), int(n)) for k, n in sizes), key=lambda kv: (kv[1], kv[0]))
        table = verdict_counts.filter(n_raters == raters)
        table = table.select(c for c in table.columns if table[c].sum() > 0)
        fleiss_out = {"fleiss_kappa": fleiss_kappa(table.to_numpy()) if table.height >= 2 and table.width >= 2 else None,
                      "items": table.height, "raters_per_item": raters}
    rating_counts = counts(rated)
    return {
        "items_with_overlap": verdict_counts.height,
        "pairs": pairs,
        "fleiss": fleiss_out,
        "verdict_alpha": _alpha_from_counts(verdict_counts, "nominal"),
        "rating_alpha": _alpha_from_counts(rating_counts, "ordinal"),
        "rated_items_with_overlap": rating_counts.height,
    }
