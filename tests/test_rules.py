"""One rule language (`studio.rules`) for the filter step and review's auto-decisions: the same rule keeps the
same examples in both, nulls never satisfy a rule, and wrong types are an error for the filter only."""

from __future__ import annotations

import polars as pl
import pytest

from curate.registry import build_step
from review_app.store import ReviewStore
from studio.errors import StudioError
from studio.rules import parse_rule

ROWS = [  # id, quality, origin, tags (category), pii_count
    ("a", 0.95, "real", "refund", 0), ("b", 0.85, "synthetic", "refund", 0), ("c", 0.3, "real", "shipping", 0),
    ("d", None, "real", "refund", 0), ("e", 0.92, "edited", "warranty", 2),
]
RULE = '0.8 < quality <= 1 and origin in ["real", "edited"] and ("refund" in tags or not pii_count > 0)'


def _examples() -> list[dict]:
    return [{"id": i * 16, "messages": [{"role": "user", "content": f"q {i}"}, {"role": "assistant", "content": f"a {i}"}],
             "origin": o, "source": f"t:{i}", "meta": f'{{"category": "{t}"}}', "quality": q, "pii_count": p}
            for i, q, o, t, p in ROWS]


def test_a_rule_keeps_the_same_rows_in_the_filter_step_and_in_review(tmp_path):
    frame = pl.DataFrame([{**{k: v for k, v in r.items() if k != "meta"}, "tags": [r["meta"].split('"')[3]],
                           "drop_reason": None} for r in _examples()],
                         schema_overrides={"drop_reason": pl.String, "quality": pl.Float64})
    kept = build_step("filter", {"rules": [RULE]}).process(frame).filter(pl.col("drop_reason").is_null())
    with ReviewStore(tmp_path / "r.db", bcrypt_rounds=4) as store:
        store.load_dataset(_examples())
        result = store.auto_decide(RULE, "hc")
        decided = sorted(d["item_id"] for d in store.decisions(source="rule"))
    assert kept.get_column("id").to_list() == decided == ["a" * 16]  # d has no quality, e has PII and no refund tag
    assert result["missing"] == {"quality": 1}


def test_null_never_satisfies_a_rule_even_negated():
    frame = pl.DataFrame({"quality": [0.2, None], "origin": ["real", "real"]})
    assert parse_rule("not quality > 0.5").mask(frame).to_list() == [True, False]
    assert parse_rule("quality > 0.5 or origin == 'real'").mask(frame).to_list() == [True, False]


def test_wrong_types_fail_the_filter_but_are_a_non_match_in_review():
    frame = pl.DataFrame({"origin": ["real"], "drop_reason": [None]}, schema_overrides={"drop_reason": pl.String})
    with pytest.raises(StudioError, match="origin >= 3"):
        build_step("filter", {"rules": ["origin >= 3"]}).process(frame)
    assert parse_rule("origin >= 3").mask(frame).to_list() == [False]
    assert parse_rule("origin >= 3").matches({"origin": "real"}) is False
