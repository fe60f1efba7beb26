"""filter: drop rows that fail a rule over their columns, each rule its own reason (`filter:<name>`).

Runs late in a pipeline, after `score` has added `quality` and `q_*` columns. A rule is written in the studio's
rule language (`studio/rules.py`, the same as `studio review auto`'s) — `quality >= 0.5`, `q_tokens <= 4096`,
`origin == "real" or quality > 0.8`, `origin in ["real", "edited"]` — and compiled to a Polars expression.
A row is kept only when every rule is true for it; a row with a null in a column the rule names fails it. The
first rule a row fails names its drop reason: `filter:<name>` where the name is given by the user, else the
rule text.

    - filter:
        rules:
          - quality >= 0.5                            # reason filter:quality >= 0.5
          - {name: too_long, rule: "q_tokens <= 4096"}  # reason filter:too_long

No thresholds of its own: the numbers are the user's (see the `score` step for the signals' sources).
"""

from __future__ import annotations

import polars as pl
from pydantic import BaseModel, ConfigDict, field_validator

from curate.step import Step, StepConfig
from studio.errors import StudioError
from studio.rules import RuleError, parse_rule


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
            parsed = parse_rule(rule.rule)
            missing = [c for c in sorted(parsed.names) if c not in df.columns]
            if missing:
                raise StudioError(
                    f"filter rule {rule.rule!r} names column {missing[0]!r}, which the data does not have; "
                    f"available columns: {', '.join(df.columns)}."
                )
            try:
                fails = pl.col("drop_reason").is_null() & ~parsed.expression(df.schema)
                df = df.with_columns(fails.alias("_fails"))
            except RuleError as err:
                raise StudioError(f"filter rule {rule.rule!r}: {err}") from None
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
