"""Model signals from a small causal LM (the bundled SmolLM2-135M-Instruct): response perplexity given the
prompt, and the Instruction-Following Difficulty ratio.

Source: Li et al. 2023, "From Quantity to Quality: Boosting LLM Performance with Self-Guided Data Selection
for Instruction Tuning" (Cherry LLM, arXiv:2308.12032). IFD = s(A|Q) / s(A), where s(A|Q) is the mean
cross-entropy of the answer tokens after the instruction and s(A) the same without it. IFD ≥ 1 means the
instruction does not help predict the answer at all (the pair is unrelated or the answer is generic);
the paper drops those. Here s(A) is computed after the bare assistant header of the chat template.

- `q_ppl` = exp(s(A|Q)); `q_ifd` = s(A|Q) / s(A).
- Cost control: the prompt keeps its last `max_prompt_tokens`, the response its first `max_response_tokens`;
  rows are sorted by length and batched up to `batch_tokens`; logits are computed only at answer positions
  (the 49k-wide output layer is a fifth of the model's compute).
- Combined score: 1 up to IFD_OK (the paper's cut-off), falling to 0 at IFD_BAD; perplexity above PPL_OK falls off on a log scale
  to 0 at PPL_BAD (garbled text; values for a 135M model on ordinary English answers are ~5–50).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import polars as pl

IFD_OK = 1.0
IFD_BAD = 1.3
PPL_OK = 200.0
PPL_BAD = 20000.0


@functools.lru_cache(maxsize=2)
def load_scorer(path: str, bf16: bool = False):
    """Tokenizer and model, in bfloat16 with `bf16`: on a CPU with native bf16 matmuls 1.8-2.3× faster than fp32 on
    the demo's rows, q_ppl 0.4 % from fp32's at the median (3 % at most), q_ifd 0.002 (0.02 at most); bench/README.md
    `## score_dtype`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    dtype = torch.bfloat16 if bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype).eval()
    return tok, model


def chatml(role: str, text: str) -> str:
    return f"<|im_start|>{role}\n{text}<|im_end|>\n" if text else f"<|im_start|>{role}\n"


def answer_losses(tok, model, contexts: list[list[int]], answers: list[list[int]], batch_tokens: int,
                  advance: Callable[[int], None] = lambda n: None) -> np.ndarray:
    """Mean cross-entropy of each answer's tokens after its context (one forward pass per batch)."""
    import torch

    n = len(answers)
    losses = np.full(n, np.nan)
    lengths = np.array([len(c) + len(a) for c, a in zip(contexts, answers, strict=True)])
    order = np.argsort(-lengths, kind="stable")
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    start = 0
    while start < n:
        width = max(int(lengths[order[start]]), 1)
        size = max(1, min(64, batch_tokens // width))
        rows = [int(i) for i in order[start:start + size] if answers[i]]
        start += size
        if not rows:
            advance(size)
            continue
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        pos_b, pos_t, targets, owner = [], [], [], []
        for b, i in enumerate(rows):
            seq = contexts[i] + answers[i]
            ids[b, :len(seq)] = torch.tensor(seq)
            mask[b, :len(seq)] = 1
            first = len(contexts[i])
            span = range(max(first, 1), len(seq))  # a token is predicted from the position before it
            pos_b += [b] * len(span)
            pos_t += [t - 1 for t in span]
            targets += [seq[t] for t in span]
            owner += [b] * len(span)
        with torch.inference_mode():
            hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
            logits = model.lm_head(hidden[torch.tensor(pos_b), torch.tensor(pos_t)])
            token_loss = torch.nn.functional.cross_entropy(logits.float(), torch.tensor(targets), reduction="none")
            owner_t = torch.tensor(owner)
            sums = torch.zeros(len(rows)).index_add_(0, owner_t, token_loss)
            counts = torch.zeros(len(rows)).index_add_(0, owner_t, torch.ones_like(token_loss))
        losses[rows] = (sums / counts.clamp(min=1)).numpy()
        advance(size)
    return losses


def model_signals(tok, model, prompts: list[str], responses: list[str], max_prompt_tokens: int,
                  max_response_tokens: int, batch_tokens: int,
                  advance: Callable[[int], None] = lambda n: None) -> pl.DataFrame:
    """q_ppl and q_ifd per (prompt, response) pair; null where the response is empty."""
    enc = functools.partial(tok, add_special_tokens=False, return_attention_mask=False)
    prompt_ids = enc([chatml("user", p) for p in prompts])["input_ids"]
    answer_ids = [a[:max_response_tokens] for a in enc([r + "<|im_end|>" for r in responses])["input_ids"]]
    header = enc(chatml("assistant", ""))["input_ids"]
    conditioned = [p[-max_prompt_tokens:] + header for p in prompt_ids]
    bare = [list(header) for _ in responses]
    loss_q = answer_losses(tok, model, conditioned, answer_ids, batch_tokens, advance)
    loss_a = answer_losses(tok, model, bare, answer_ids, batch_tokens, advance)
    with np.errstate(divide="ignore", invalid="ignore"):
        ifd = loss_q / loss_a
    empty = np.array([not r.strip() for r in responses])
    ppl = np.exp(np.minimum(loss_q, 50.0))
    return pl.DataFrame({
        "q_ppl": np.where(empty, np.nan, ppl),
        "q_ifd": np.where(empty | ~np.isfinite(ifd), np.nan, ifd),
    }).fill_nan(None)


def model_factor() -> pl.Expr:
    ifd = (1 - (pl.col("q_ifd") - IFD_OK).clip(lower_bound=0) / (IFD_BAD - IFD_OK)).clip(0, 1)
    ppl = (1 - (pl.col("q_ppl").log() - math.log(PPL_OK)).clip(lower_bound=0) / math.log(PPL_BAD / PPL_OK)).clip(0, 1)
    return (ifd * ppl).fill_null(1.0)
