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
