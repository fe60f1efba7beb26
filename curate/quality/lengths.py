"""Token lengths of prompt, response and whole conversation, counted with the bundled SmolLM2 tokenizer
(a 49k-vocabulary BPE like most chat models'), so `q_tokens <= 4096` in a filter means model tokens.

In the combined score, short responses cost a little: Zhao et al. 2024, "Long Is More for Alignment"
(arXiv:2402.04833) found that picking the longest responses is a strong instruction-selection baseline.
The factor ramps from SHORT_FACTOR for a one-token answer to 1 at FULL_CREDIT_TOKENS; a conversation
longer than `max_tokens` (the context the model will be trained with) gets TOO_LONG_FACTOR.
"""

from __future__ import annotations

import functools

import polars as pl

FULL_CREDIT_TOKENS = 32
SHORT_FACTOR = 0.5
TOO_LONG_FACTOR = 0.5


@functools.lru_cache(maxsize=2)
def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def token_counts(tokenizer, texts: pl.Series) -> pl.Series:
    """Tokens per text (no special tokens), via the fast tokenizer's batch encoder."""
    values = texts.fill_null("").to_list()
    encoded = tokenizer(values, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    return pl.Series([len(ids) for ids in encoded], dtype=pl.Int64)


def length_factor(max_tokens: int) -> pl.Expr:
    ramp = SHORT_FACTOR + (1 - SHORT_FACTOR) * (pl.col("q_response_tokens") / FULL_CREDIT_TOKENS)
    too_long = pl.when(pl.col("q_tokens") > max_tokens).then(TOO_LONG_FACTOR).otherwise(1.0)
    return ramp.clip(SHORT_FACTOR, 1.0) * too_long
