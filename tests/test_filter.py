"""filter: rules parse into Polars expressions, each rule drops with its own reason, bad rules fail clearly."""

from __future__ import annotations

import polars as pl
import pytest

from curate.registry import build_step
from curate.steps.filter import Filter, RuleError, parse_rule
from studio.errors import StudioError


def _frame() -> pl.DataFrame:
    return pl.DataFrame({
        "id": ["a", "b", "c", "d", "e"],
        "quality": [0.9, 0.4, 0.7, None, 0.6],
        "q_tokens": [100, 50, 5000, 80, 4096],
        "origin": ["real", "real", "synthetic", "real", "synthetic"],
        "drop_reason": [None, None, None, None, "exact_duplicate"],
        "dup_of": [None] * 5,
    }, schema_overrides={"drop_reason": pl.String, "dup_of": pl.String})


def test_each_rule_drops_with_its_own_reason_first_failure_wins():
    step = Filter({"rules": ["quality >= 0.5", {"name": "too_long", "rule": "q_tokens <= 4096"}]})
    out = step.process(_frame())
    assert out.get_column("drop_reason").to_list() == [
        None, "filter:quality >= 0.5", "filter:too_long", "filter:quality >= 0.5", "exact_duplicate"]
    assert step.stats["rule_drops"] == {"filter:quality >= 0.5": 2, "filter:too_long": 1}


def test_and_or_not_parentheses_and_strings():
    out = Filter({"rules": ['(origin == "real" and quality > 0.8) or not q_tokens < 4000']}).process(_frame())
    assert out.get_column("drop_reason").to_list()[:4] == [None, "filter:(origin == \"real\" and quality > 0.8) or not q_tokens < 4000", None,
                                                           "filter:(origin == \"real\" and quality > 0.8) or not q_tokens < 4000"]


def test_rule_naming_a_missing_column_is_one_clear_error():
    with pytest.raises(StudioError) as err:
        Filter({"rules": ["score >= 0.5"]}).process(_frame())
    msg = str(err.value)
    assert "'score >= 0.5'" in msg and "'score'" in msg and "quality, q_tokens" in msg


@pytest.mark.parametrize("rule", ["quality >=", "quality => 0.5", "__import__('os') == 1", "quality >= 0.5 and",
                                  "quality >= abc", "(quality >= 0.5", ""])
def test_malformed_rules_are_rejected_when_the_step_is_built(rule):
    with pytest.raises(StudioError, match="step filter: config field rules"):
        build_step("filter", {"rules": [rule]})
    if rule:
        with pytest.raises(RuleError):
            parse_rule(rule)


def test_comparing_text_with_a_number_names_the_rule():
    with pytest.raises(StudioError, match="origin >= 3"):
        Filter({"rules": ["origin >= 3"]}).process(_frame())
