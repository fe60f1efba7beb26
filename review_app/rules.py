"""Auto-decision rules: a tiny, safe expression language over an item's scores (no `eval`).

`studio review auto --accept "quality >= 0.9 and pii_count == 0"` parses the rule with Python's `ast`
module and walks only the node types below; anything else (calls, attributes, subscripts, lambdas) is
refused with one sentence. Names are an item's fields: `quality`, `pii_count`, any score (`q_*`),
`origin`, `source`, `n_messages`, `tags`. A name the item does not have is *missing*: a rule that names a
missing field does not match that item (whatever the rule says, `not` included), so a rule over a column
that no step has produced yet matches nothing (and the caller is told which names were missing).

Grammar: comparisons (`< <= > >= == !=`, chains allowed, `in` / `not in` against a list or tuple of
constants, or `"x" in tags`), joined with `and` / `or` / `not`, parentheses, numbers, strings, True,
False.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from studio.errors import StudioError

_COMPARE = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}


#: limits that keep parsing and evaluating a rule far from Python's recursion limit
MAX_RULE_CHARS = 2000
MAX_DEPTH = 50


class RuleError(StudioError):
    """A rule that cannot be parsed; the message says what to write instead."""


class _Missing:
    """Marker for a field the item does not have."""


MISSING = _Missing()


@dataclass
class Rule:
    """A parsed rule. `matches(values)` is True/False; names not in `values` make comparisons false."""

    text: str
    tree: ast.expr
    names: set[str] = field(default_factory=set)

    def matches(self, values: Mapping[str, Any]) -> bool:
        if self.missing_names(values):  # a rule over a field the item lacks never matches, negated or not
            return False
        return bool(_eval(self.tree, values))

    def missing_names(self, values: Mapping[str, Any]) -> set[str]:
        return {n for n in self.names if values.get(n) is None}


def parse_rule(text: str) -> Rule:
    """Parse a rule such as `quality >= 0.9 and pii_count == 0`; raises RuleError naming the bad part."""
    if not text or not text.strip():
        raise RuleError("the rule is empty; write e.g. \"quality >= 0.9 and pii_count == 0\".")
    if len(text) > MAX_RULE_CHARS:
        raise RuleError(f"the rule is {len(text)} characters long; a rule has at most {MAX_RULE_CHARS}.")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as err:
        raise RuleError(f"cannot parse the rule {text!r} ({err.msg} at column {err.offset}); "
                        "write comparisons joined by and/or, e.g. \"quality >= 0.9 and pii_count == 0\".") from None
    except (RecursionError, MemoryError, ValueError):  # nested too deeply for the parser, or a NUL character
        raise RuleError(f"cannot parse the rule {text[:60]!r}...: it is nested too deeply or holds a NUL character; "
                        f"nest at most {MAX_DEPTH} levels.") from None
    names: set[str] = set()
    _check(tree, text, names)
    return Rule(text=text.strip(), tree=tree, names=names)


def _check(node: ast.AST, text: str, names: set[str], depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise RuleError(f"the rule {text[:60]!r}... nests more than {MAX_DEPTH} levels; write it flatter.")
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            _check(v, text, names, depth + 1)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        _check(node.operand, text, names, depth + 1)
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _COMPARE and not isinstance(op, ast.In | ast.NotIn):
                raise RuleError(f"the rule {text!r} uses an unsupported comparison; use < <= > >= == != in.")
        for part in (node.left, *node.comparators):
            _check(part, text, names, depth + 1)
    elif isinstance(node, ast.Name):
        names.add(node.id)
    elif isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool):
        pass
    elif isinstance(node, ast.List | ast.Tuple):
        for elt in node.elts:
            if not isinstance(elt, ast.Constant):
                raise RuleError(f"the rule {text!r} has a list with a non-constant element; list only numbers or strings.")
    else:
        snippet = ast.get_source_segment(text.strip(), node) or type(node).__name__
        raise RuleError(f"the rule {text!r} contains {snippet!r}, which rules do not allow; use field names, "
                        "numbers, strings, comparisons and and/or/not only.")


def _value(node: ast.expr, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        v = values.get(node.id)
        return MISSING if v is None else v
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [e.value for e in node.elts]  # type: ignore[attr-defined]
    return _eval(node, values)


def _eval(node: ast.expr, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.BoolOp):
        results = (_eval(v, values) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp):
        inner = _value(node.operand, values)
        if isinstance(node.op, ast.Not):
            return not inner if inner is not MISSING else False
        if inner is MISSING or isinstance(inner, str | list):  # minus a string or a list: not a number, no match
            return MISSING
        return -inner
    if isinstance(node, ast.Compare):
        left = _value(node.left, values)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _value(right_node, values)
            if left is MISSING or right is MISSING:
                return False
            try:
                if isinstance(op, ast.In | ast.NotIn):
                    ok = left in right
                    ok = ok if isinstance(op, ast.In) else not ok
                else:
                    ok = _COMPARE[type(op)](left, right)
            except TypeError:  # e.g. a string compared with a number: not a match
                return False
            if not ok:
                return False
            left = right
        return True
    v = _value(node, values)
    return False if v is MISSING else bool(v)
