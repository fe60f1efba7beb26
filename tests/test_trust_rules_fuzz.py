"""Property-based fuzzing of the review rule parser (`studio.rules`, shared with the filter step): whatever text a lead types and whatever
values an item holds, parsing either gives a rule or raises one RuleError sentence, and matching gives True or
False, never another exception (type errors, deep nesting and NUL characters included)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from studio.rules import RuleError, parse_rule

TOKENS = ["quality", "pii_count", "origin", "source", "tags", "q_x", "not", "and", "or", "in", "not in", "-", "(",
          ")", "[", "]", ",", "<", "<=", ">", ">=", "==", "!=", "0.9", "1", "1e999", "'real'", '"a"', "True", "None",
          "**", "x.y", "f()", "lambda: 1", "\x00", "'", "\\"]
rule_text = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=30).map(" ".join),
    st.integers(1, 400).map(lambda n: "not " * n + "quality > 0"),
    st.integers(1, 400).map(lambda n: "(" * n + "quality" + ")" * n),
    st.integers(1, 400).map(lambda n: "-" * n + "quality > 0"),
    st.text(max_size=60),
)
field_value = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8),
                        st.lists(st.text(max_size=4), max_size=3))
item_values = st.fixed_dictionaries({name: field_value for name in ("quality", "pii_count", "origin", "source", "tags",
                                                                     "q_x")})


@settings(max_examples=300, deadline=None)
@given(rule_text, item_values)
def test_any_rule_text_parses_or_fails_with_one_sentence_and_matching_never_raises(text, values):
    try:
        rule = parse_rule(text)
    except RuleError as err:
        assert str(err) and "\n" not in str(err)
        return
    assert rule.matches(values) in (True, False)
    assert rule.missing_names(values) <= rule.names


def test_type_errors_and_deep_nesting_are_a_no_match_or_a_rule_error():
    values = {"quality": 0.5, "origin": "real", "tags": ["a"], "pii_count": 0}
    assert parse_rule("-origin > 1").matches(values) is False  # raised TypeError before
    assert parse_rule("not -tags").matches(values) is False
    for deep in ("not " * 2000 + "quality", "-" * 1500 + "quality", "not " * 60 + "quality"):
        try:
            parse_rule(deep)
        except RuleError as err:
            assert "nest" in str(err) or "characters long" in str(err)
        else:
            raise AssertionError("a rule nested that deeply was accepted")
