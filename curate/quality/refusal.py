"""Refusals and canned boilerplate in responses, by phrase lists matched as case-insensitive regexes.

Sources: the phrase lists used to strip refusals and "as an AI" moralising from instruction sets —
ehartford's WizardLM_alpaca_evol_instruct_70k_unfiltered / ShareGPT_Vicuna_unfiltered cleaning scripts and
the gururise/AlpacaDataCleaned audit — plus customer-support boilerplate that teaches a model to say
nothing ("Thank you for contacting us ..."). A refusal multiplies the combined score by REFUSAL_FACTOR,
boilerplate by BOILERPLATE_FACTOR: a refusal is rarely what a fine-tuning set should teach, boilerplate
is sometimes fine in moderation.
"""

from __future__ import annotations

import polars as pl

REFUSAL_FACTOR = 0.2
BOILERPLATE_FACTOR = 0.6

REFUSAL_PATTERNS = [
    r"as an ai(?: language)? model",
    r"as a (?:large )?language model",
    r"i(?:'m| am) (?:just )?an ai\b",
    r"i(?:'m| am) sorry,? but i (?:can(?:no|')t|am (?:not able|unable))",
    r"i (?:can(?:no|')t|won't|am unable to|am not able to) (?:help|assist|provide|comply|fulfill|do that|answer)",
    r"i(?:'m| am) (?:not able|unable) to (?:help|assist|provide|comply|answer)",
    r"i (?:do not|don't) have (?:personal )?(?:opinions|feelings|beliefs|emotions|the ability)",
    r"(?:against|violates?) (?:my|openai's|the) (?:guidelines|policy|policies|programming)",
    r"my (?:knowledge )?cutoff",
    r"i must (?:respectfully )?decline",
]
BOILERPLATE_PATTERNS = [
    r"thank you for (?:contacting|reaching out to) us",
    r"we appreciate your (?:patience|business|understanding)",
    r"(?:please )?(?:do not|don't) hesitate to (?:contact|reach out)",
    r"feel free to (?:contact|reach out|ask)",
    r"is there anything else (?:i|we) can (?:help|assist)",
    r"i hope this (?:helps|information helps)",
    r"your (?:call|request|ticket) is important to us",
]


def _any(patterns: list[str]) -> str:
    return "(?i)(?:" + "|".join(patterns) + ")"


def refusal_signals(response: pl.Expr) -> list[pl.Expr]:
    return [
        response.str.contains(_any(REFUSAL_PATTERNS)).fill_null(False).alias("q_refusal"),
        response.str.count_matches(_any(BOILERPLATE_PATTERNS)).fill_null(0).alias("q_boilerplate"),
    ]


def refusal_factor() -> pl.Expr:
    return (pl.when(pl.col("q_refusal")).then(REFUSAL_FACTOR).otherwise(1.0)
            * pl.when(pl.col("q_boilerplate") > 0).then(BOILERPLATE_FACTOR).otherwise(1.0))
