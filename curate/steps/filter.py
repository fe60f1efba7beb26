"""filter: drop rows that fail a rule over their columns, each rule its own reason (`filter:<name>`).

Runs late in a pipeline, after `score` has added `quality` and `q_*` columns. A rule is a small expression
— `quality >= 0.5`, `q_tokens <= 4096`, `origin == "real" or quality > 0.8` — parsed by a tiny grammar into
a Polars expression (never `eval`): comparisons `column OP literal` with OP one of `>= <= > < == !=`,
literals numbers, quoted strings, `true`/`false`, combined with `and`, `or`, `not` and parentheses.
A row is kept only when every rule is true for it; a missing value (null) fails the rule. The first rule a
row fails names its drop reason: `filter:<name>` where the name is given by the user, else the rule text.

    - filter:
        rules:
          - quality >= 0.5                            # reason filter:quality >= 0.5
          - {name: too_long, rule: "q_tokens <= 4096"}  # reason filter:too_long

No thresholds of its own: the numbers are the user's (see the `score` step for the signals' sources).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl
from pydantic import BaseModel, ConfigDict, field_validator

from curate.step import Step, StepConfig
from studio.errors import StudioError

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<num>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|-?\.\d+(?:[eE][-+]?\d+)?)
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>>=|<=|==|!=|>|<)
      | (?P<paren>[()])
      | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_COMPARE = {
    ">=": lambda c, v: c >= v, "<=": lambda c, v: c <= v, ">": lambda c, v: c > v,
    "<": lambda c, v: c < v, "==": lambda c, v: c == v, "!=": lambda c, v: c != v,
}
_KEYWORDS = {"and", "or", "not", "true", "false"}


class RuleError(ValueError):
    """A rule that does not parse; the message says where."""


@dataclass
class _Token:
    kind: str
    text: str
    pos: int


def _tokens(rule: str) -> list[_Token]:
    out, pos = [], 0
    while pos < len(rule):
        if rule[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(rule, pos)
        if not m or m.end() == pos:
            raise RuleError(f"unexpected character {rule[pos:].strip()[0]!r} at position {pos + 1}")
        kind = m.lastgroup or ""
        text, start = m.group(kind), m.start(kind)
        if kind == "name" and text.lower() in _KEYWORDS:
            kind = text.lower()
        out.append(_Token(kind, text, start))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent: or_expr := and_expr ("or" and_expr)*; and_expr := unary ("and" unary)*;
    unary := "not" unary | "(" or_expr ")" | NAME OP literal."""

    def __init__(self, rule: str) -> None:
        self.rule = rule
        self.toks = _tokens(rule)
        self.i = 0
        self.columns: list[str] = []

    def parse(self) -> pl.Expr:
        if not self.toks:
            raise RuleError("the rule is empty")
        expr = self._or()
        if self.i < len(self.toks):
            tok = self.toks[self.i]
            raise RuleError(f"unexpected {tok.text!r} at position {tok.pos + 1}")
        return expr

    def _peek(self) -> _Token | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _take(self, kind: str, what: str) -> _Token:
        tok = self._peek()
        if tok is None or tok.kind != kind:
            found = f"{tok.text!r} at position {tok.pos + 1}" if tok else "the end of the rule"
            raise RuleError(f"expected {what}, found {found}")
        self.i += 1
        return tok

    def _or(self) -> pl.Expr:
        expr = self._and()
        while (tok := self._peek()) and tok.kind == "or":
            self.i += 1
            expr = expr | self._and()
        return expr

    def _and(self) -> pl.Expr:
        expr = self._unary()
        while (tok := self._peek()) and tok.kind == "and":
            self.i += 1
            expr = expr & self._unary()
        return expr

    def _unary(self) -> pl.Expr:
        tok = self._peek()
        if tok and tok.kind == "not":
            self.i += 1
            return ~self._unary()
        if tok and tok.kind == "paren" and tok.text == "(":
            self.i += 1
            expr = self._or()
            close = self._take("paren", "')'")
            if close.text != ")":
                raise RuleError(f"expected ')' at position {close.pos + 1}")
            return expr
        name = self._take("name", "a column name")
        op = self._take("op", "a comparison (>=, <=, >, <, ==, !=)")
        value = self._literal()
        self.columns.append(name.text)
        return _COMPARE[op.text](pl.col(name.text), value)

    def _literal(self) -> float | int | str | bool:
        tok = self._peek()
        if tok is None:
            raise RuleError("expected a value, found the end of the rule")
        self.i += 1
        if tok.kind == "num":
            return float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
        if tok.kind == "str":
            return re.sub(r"\\(.)", r"\1", tok.text[1:-1])
        if tok.kind in ("true", "false"):
            return tok.kind == "true"
        raise RuleError(f"expected a number, a quoted string, true or false, found {tok.text!r} at position {tok.pos + 1}")


def parse_rule(rule: str) -> tuple[pl.Expr, list[str]]:
    """The Polars expression of a rule and the columns it reads. Raises RuleError."""
    parser = _Parser(rule)
    return parser.parse(), parser.columns


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule: str
    name: str | None = None
    """Drop reason suffix; default: the rule text."""

    @property
    def reason(self) -> str:
        return f"filter:{self.name or ' '.join(self.rule.split())}"


class FilterConfig(StepConfig):
    rules: list[Rule]
    """Keep conditions; a row failing one is dropped with reason `filter:<name or rule>`."""

    @field_validator("rules", mode="before")
    @classmethod
    def _rules_from_strings(cls, value):
        items = value if isinstance(value, list) else [value]
        rules = [{"rule": item} if isinstance(item, str) else item for item in items]
        for r in rules:
            if isinstance(r, dict) and isinstance(r.get("rule"), str):
                try:
                    parse_rule(r["rule"])
                except RuleError as err:
                    raise ValueError(f"rule {r['rule']!r}: {err}") from None
        return rules


class Filter(Step):
    name = "filter"
    Config = FilterConfig

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        counts: dict[str, int] = {}
        for rule in self.config.rules:
            expr, columns = parse_rule(rule.rule)
            missing = [c for c in columns if c not in df.columns]
            if missing:
                raise StudioError(
                    f"filter rule {rule.rule!r} names column {missing[0]!r}, which the data does not have; "
                    f"available columns: {', '.join(df.columns)}."
                )
            fails = pl.col("drop_reason").is_null() & ~expr.fill_null(False)
            try:
                df = df.with_columns(fails.alias("_fails"))
            except pl.exceptions.PolarsError as err:
                first = str(err).strip().splitlines()[0]
                raise StudioError(f"filter rule {rule.rule!r} cannot be evaluated on this data ({first}); "
                                  "compare numbers with number columns and quoted text with text columns.") from None
            counts[rule.reason] = int(df.get_column("_fails").sum())
            df = df.with_columns(
                pl.when(pl.col("_fails")).then(pl.lit(rule.reason)).otherwise(pl.col("drop_reason")).alias("drop_reason")
            ).drop("_fails")
        self.stats["rule_drops"] = counts
        return df


STEP = Filter
