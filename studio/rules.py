"""The rule language of the studio, compiled to Polars expressions (never `eval`): the `filter` step keeps
rows a rule holds for, and `studio review auto` decides the review items a rule matches.

A rule compares columns with values: `quality >= 0.5`, `origin in ["real", "edited"]`, `0.2 < quality <= 0.9`,
`"refund" in tags`, joined with `and`, `or`, `not` and parentheses. Values are numbers, quoted strings,
`true`/`false` and lists of them; a comparison names a column on at least one side. `in` tests membership
in a list value, a list column or (text in text) a substring; a column alone is true when it is non-zero,
non-empty or true; `-` negates a number. Keywords are case-insensitive.

A row that lacks a value the rule names (null) never satisfies the rule, `not` included: a filter drops it,
and review leaves it to people (and reports which names were missing). A rule over a column of the wrong type
(text compared with a number) is an error for the filter and a non-match for review.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from studio.errors import StudioError

#: limits that keep parsing far from Python's recursion limit and rules readable
MAX_RULE_CHARS = 2000
MAX_DEPTH = 50

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>>=|<=|==|!=|>|<)
      | (?P<punct>[()\[\],-])
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false"}
_COMPARE = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
            "!=": operator.ne}


class RuleError(StudioError):
    """A rule that does not parse; the message says where and what to write instead."""


@dataclass
class _Token:
    kind: str
    text: str
    pos: int


def _tokens(text: str) -> list[_Token]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise RuleError(f"unexpected character {text[pos:].strip()[0]!r} at position {pos + 1} of the rule {text!r}")
        kind = m.lastgroup or ""
        word, start = m.group(kind), m.start(kind)
        if kind == "name" and word.lower() in _KEYWORDS:
            kind = word.lower()
        out.append(_Token(kind, word, start))
        pos = m.end()
    return out


# The parsed rule is a tree of tuples: ("name", n) ("lit", v) ("list", [v, ...]) ("neg", x) ("not", x)
# ("and", [x, ...]) ("or", [x, ...]) ("cmp", op, a, b) ("in", a, b, negated).
class _Parser:
    """Recursive descent, Python's precedence: or < and < not < comparison (chains allowed) < unary minus."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.names: set[str] = set()

    def parse(self) -> tuple:
        tree = self._or(0)
        if self.i < len(self.toks):
            tok = self.toks[self.i]
            raise RuleError(f"unexpected {tok.text!r} at position {tok.pos + 1} of the rule {self.text!r}")
        return tree

    def _peek(self, kind: str | None = None, text: str | None = None) -> _Token | None:
        tok = self.toks[self.i] if self.i < len(self.toks) else None
        if tok is None or (kind and tok.kind != kind) or (text and tok.text != text):
            return None
        return tok

    def _expect(self, kind: str, text: str, what: str) -> None:
        if self._peek(kind, text) is None:
            tok = self._peek()
            found = f"{tok.text!r} at position {tok.pos + 1}" if tok else "the end"
            raise RuleError(f"expected {what}, found {found} of the rule {self.text!r}")
        self.i += 1

    def _deeper(self, depth: int) -> int:
        if depth >= MAX_DEPTH:
            raise RuleError(f"the rule {self.text[:60]!r}... nests more than {MAX_DEPTH} levels; write it flatter.")
        return depth + 1

    def _or(self, depth: int) -> tuple:
        depth = self._deeper(depth)
        parts = [self._and(depth)]
        while self._peek("or"):
            self.i += 1
            parts.append(self._and(depth))
        return parts[0] if len(parts) == 1 else ("or", parts)

    def _and(self, depth: int) -> tuple:
        parts = [self._not(depth)]
        while self._peek("and"):
            self.i += 1
            parts.append(self._not(depth))
        return parts[0] if len(parts) == 1 else ("and", parts)

    def _not(self, depth: int) -> tuple:
        if self._peek("not"):
            self.i += 1
            return ("not", self._not(self._deeper(depth)))
        return self._compare(depth)

    def _compare(self, depth: int) -> tuple:
        left = self._operand(depth)
        if self._peek("in") or (self._peek("not") and self.i + 1 < len(self.toks) and self.toks[self.i + 1].kind == "in"):
            negated = self._peek("not") is not None
            self.i += 2 if negated else 1
            right = self._operand(depth)
            self._check_pair(left, right, membership=True)
            return ("in", left, right, negated)
        pairs = []
        while (tok := self._peek("op")) is not None:
            self.i += 1
            right = self._operand(depth)
            self._check_pair(left, right)
            pairs.append(("cmp", tok.text, left, right))
            left = right
        if not pairs:
            return left
        return pairs[0] if len(pairs) == 1 else ("and", pairs)

    def _check_pair(self, left: tuple, right: tuple, membership: bool = False) -> None:
        allowed_right = ("name", "lit", "neg", "list") if membership else ("name", "lit", "neg")
        if left[0] not in ("name", "lit", "neg") or right[0] not in allowed_right:
            raise RuleError(f"the rule {self.text!r} compares a condition or a list; compare a column with a value, "
                            "e.g. quality >= 0.5 or origin in [\"real\", \"edited\"].")
        if _column_of(left) and _column_of(right):
            raise RuleError(f"the rule {self.text!r} compares column {_column_of(left)!r} with column "
                            f"{_column_of(right)!r}; compare a column with a value, e.g. quality >= 0.5.")

    def _operand(self, depth: int) -> tuple:
        tok = self._peek()
        if tok is None:
            raise RuleError(f"expected a column or a value, found the end of the rule {self.text!r}")
        if tok.kind == "punct" and tok.text == "-":
            self.i += 1
            inner = self._operand(self._deeper(depth))
            if inner[0] == "lit" and isinstance(inner[1], int | float) and not isinstance(inner[1], bool):
                return ("lit", -inner[1])
            return ("neg", inner)
        if tok.kind == "punct" and tok.text in "([":
            return self._group(depth)
        self.i += 1
        if tok.kind == "name":
            self.names.add(tok.text)
            return ("name", tok.text)
        if tok.kind in ("num", "str", "true", "false"):
            return ("lit", _literal(tok))
        raise RuleError(f"expected a column or a value, found {tok.text!r} at position {tok.pos + 1} of the rule {self.text!r}")

    def _group(self, depth: int) -> tuple:
        """`( rule )`, or a list of values: `[1, 2]`, `("a", "b")`."""
        opening = self.toks[self.i].text
        closing = ")" if opening == "(" else "]"
        self.i += 1
        if opening == "(" and not self._starts_tuple():
            inner = self._or(self._deeper(depth))
            self._expect("punct", ")", "')'")
            return inner
        values = []
        while self._peek("punct", closing) is None:
            tok = self._peek()
            if tok is not None and tok.kind == "punct" and tok.text == "-":
                self.i += 1
                tok = self._peek()
                if tok is None or tok.kind != "num":
                    raise RuleError(f"a list holds only numbers, strings, true or false, in the rule {self.text!r}")
                values.append(-_literal(tok))
            elif tok is None or tok.kind not in ("num", "str", "true", "false"):
                raise RuleError(f"a list holds only numbers, strings, true or false, in the rule {self.text!r}")
            else:
                values.append(_literal(tok))
            self.i += 1
            if self._peek("punct", ","):
                self.i += 1
            elif self._peek("punct", closing) is None:
                self._expect("punct", closing, f"',' or {closing!r}")
        self.i += 1
        return ("list", values)

    def _starts_tuple(self) -> bool:
        """After '(': a value followed by ',' (or ')' straight away) is a tuple, not a group."""
        j = self.i + (1 if self._peek("punct", "-") else 0)
        if j < len(self.toks) and self.toks[j].kind == "punct" and self.toks[j].text == ")":
            return True
        return (j + 1 < len(self.toks) and self.toks[j].kind in ("num", "str", "true", "false")
                and self.toks[j + 1].kind == "punct" and self.toks[j + 1].text == ",")


def _literal(tok: _Token) -> float | int | str | bool:
    if tok.kind == "num":
        return float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
    if tok.kind == "str":
        return re.sub(r"\\(.)", r"\1", tok.text[1:-1])
    return tok.kind == "true"


def _column_of(node: tuple) -> str | None:
    while node[0] == "neg":
        node = node[1]
    return node[1] if node[0] == "name" else None


@dataclass
class Rule:
    """A parsed rule: its text, the column names it reads, and its Polars expression for a given schema."""

    text: str
    tree: tuple
    names: set[str] = field(default_factory=set)

    def expression(self, schema: Mapping[str, pl.DataType]) -> pl.Expr:
        """True where the rule holds; false where it does not or where a named column is null."""
        present = [pl.col(n).is_not_null() for n in sorted(self.names)]
        return pl.all_horizontal([*present, _boolean(self.tree, schema)]).fill_null(False)

    def missing_names(self, values: Mapping[str, Any]) -> set[str]:
        return {n for n in self.names if values.get(n) is None}

    def matches(self, values: Mapping[str, Any]) -> bool:
        """Whether the rule holds for one record (a dict of column values); wrong types are a non-match."""
        if self.missing_names(values):
            return False
        try:
            frame = pl.DataFrame({n: [values[n]] for n in sorted(self.names)}) if self.names else pl.DataFrame({"_": [0]})
            return bool(frame.select(self.expression(frame.schema).alias("m")).item())
        except (RuleError, pl.exceptions.PolarsError, OverflowError, TypeError, ValueError):
            return False

    def mask(self, frame: pl.DataFrame) -> pl.Series:
        """Per row of `frame`, whether the rule holds; all false when the columns' types do not fit the rule."""
        try:
            return frame.with_columns(self.expression(frame.schema).alias("__rule")).get_column("__rule")
        except (RuleError, pl.exceptions.PolarsError, OverflowError, TypeError, ValueError):
            return pl.Series("__rule", [False] * frame.height, pl.Boolean)


def parse_rule(text: str) -> Rule:
    """Parse a rule such as `quality >= 0.9 and pii_count == 0`; raises RuleError naming the bad part."""
    if not text or not text.strip():
        raise RuleError("the rule is empty; write e.g. \"quality >= 0.9 and pii_count == 0\".")
    if len(text) > MAX_RULE_CHARS:
        raise RuleError(f"the rule is {len(text)} characters long; a rule has at most {MAX_RULE_CHARS}.")
    if "\x00" in text:
        raise RuleError("the rule holds a NUL character; type it again.")
    parser = _Parser(text.strip())
    tree = parser.parse()
    return Rule(text=text.strip(), tree=tree, names=parser.names)


def _value(node: tuple) -> pl.Expr:
    kind = node[0]
    if kind == "name":
        return pl.col(node[1])
    if kind == "lit":
        return pl.lit(node[1])
    if kind == "neg":
        return -_value(node[1])
    raise RuleError("a list or a condition cannot be compared with < > ==; compare a column with a value.")


def _dtype(node: tuple, schema: Mapping[str, pl.DataType]) -> pl.DataType | None:
    while node[0] == "neg":
        node = node[1]
    return schema.get(node[1]) if node[0] == "name" else None


def _boolean(node: tuple, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    kind = node[0]
    if kind == "and":
        return pl.all_horizontal([_boolean(n, schema) for n in node[1]])
    if kind == "or":
        return pl.any_horizontal([_boolean(n, schema) for n in node[1]])
    if kind == "not":
        return ~_boolean(node[1], schema)
    if kind == "cmp":
        _, op, a, b = node
        return _COMPARE[op](_value(a), _value(b))
    if kind == "in":
        return _membership(node, schema)
    if kind == "lit":
        return pl.lit(bool(node[1]))
    if kind == "list":
        return pl.lit(bool(node[1]))
    return _truthy(_value(node), _dtype(node, schema))


def _membership(node: tuple, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    _, left, right, negated = node
    if right[0] == "list":
        found = pl.lit(left[1] in right[1]) if left[0] == "lit" else _value(left).is_in(right[1])
    else:
        dtype = _dtype(right, schema)
        needle = left[1] if left[0] == "lit" else None
        if needle is None:
            raise RuleError("`in` tests a value against a list or a column, e.g. \"refund\" in tags.")
        if isinstance(dtype, pl.List):
            found = _value(right).list.contains(pl.lit(needle))
        elif dtype == pl.String and isinstance(needle, str):
            found = _value(right).str.contains(needle, literal=True)
        else:
            raise RuleError(f"`in` needs a list or text column on its right; {_column_of(right)!r} is {dtype}.")
    return ~found if negated else found


def _truthy(expr: pl.Expr, dtype: pl.DataType | None) -> pl.Expr:
    if dtype == pl.Boolean:
        return expr
    if dtype == pl.String:
        return expr.str.len_chars() > 0
    if isinstance(dtype, pl.List):
        return expr.list.len() > 0
    if dtype is not None and dtype.is_numeric():
        return expr != 0
    raise RuleError(f"a column of type {dtype} cannot stand alone in a rule; compare it with a value.")
