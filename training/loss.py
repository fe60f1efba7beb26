"""Next-token loss on supervised (assistant) positions only, shared by the trainer and `studio eval`.

The model's backbone runs once; the output head and the cross-entropy then run only at the positions whose
next token is a label, in chunks of `CHUNK` positions, each chunk under activation checkpointing. So a batch
never holds vocabulary-sized logits for more than one chunk at a time, in the forward pass or the backward
pass (the head is recomputed per chunk when gradients flow): the same idea as Liger's fused linear
cross-entropy, in plain PyTorch so it runs on CPU as on CUDA. With 49,152 vocabulary entries a 4,096-token
packed row would otherwise hold 0.8 GB of fp32 logits plus as much again for their gradient.
"""

from __future__ import annotations

from training.data import IGNORE

#: Positions per head + cross-entropy chunk: 256 × 49,152 fp32 logits = 50 MB (and as much for their gradient).
CHUNK = 256


def _split_model(model):
    """(backbone, output head) of a causal LM, through a peft wrapper when there is one."""
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone = getattr(causal, causal.base_model_prefix, None)
    head = causal.get_output_embeddings()
    if backbone is None or head is None:
        return None, None
    return backbone, head


def _chunk_nll(head, hidden, targets, reduction: str = "sum"):
    import torch.nn.functional as F

    logits = head(hidden).float()
    return F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction=reduction)


def token_nll(model, batch: dict, chunk: int = CHUNK):
    """NLL of every supervised token of a batch (no grad), in order: row by row, position by position."""
    import torch

    with torch.no_grad():
        labels = batch["labels"]
        targets = labels[:, 1:]
        valid = targets != IGNORE
        if int(valid.sum()) == 0:
            return torch.zeros(0)
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        backbone, head = _split_model(model)
        if backbone is None:
            import torch.nn.functional as F

            logits = model(**inputs, use_cache=False).logits[:, :-1][valid]
            return F.cross_entropy(logits.float(), targets[valid], reduction="none")
        hidden = backbone(**inputs, use_cache=False).last_hidden_state[:, :-1][valid]
        chosen = targets[valid]
        return torch.cat([_chunk_nll(head, hidden[s:s + chunk], chosen[s:s + chunk], "none")
                          for s in range(0, hidden.shape[0], chunk)])


def supervised_nll(model, batch: dict, chunk: int = CHUNK):
    """(sum of token NLLs as a 0-dim tensor with grad, number of supervised tokens) for one batch."""
    total, _, n_tokens = nll_parts(model, batch, chunk)
    return total, n_tokens


def nll_parts(model, batch: dict, chunk: int = CHUNK, with_prompt: bool = False):
    """(assistant-token NLL sum, prompt-token NLL sum or None, assistant tokens) for one batch, from one backbone pass.

    The prompt part (instruction modelling, Shi et al. 2024) is computed only when `with_prompt` and the batch has
    `prompt_labels` (the prompt tokens' ids, IGNORE elsewhere; `training.data.collate`).
    """
    import torch

    labels = batch["labels"]
    targets = labels[:, 1:]
    valid = targets != IGNORE
    n_tokens = int(valid.sum())
    prompt_targets = batch.get("prompt_labels") if with_prompt else None
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "prompt_labels")}
    prompt_valid = None
    if prompt_targets is not None:
        prompt_targets = prompt_targets[:, 1:]
        prompt_valid = prompt_targets != IGNORE
    if n_tokens == 0 and (prompt_valid is None or not bool(prompt_valid.any())):
        return torch.zeros((), device=labels.device), None, 0
    backbone, head = _split_model(model)
    if backbone is None:  # an architecture without the usual backbone/head split: logits at labelled positions
        return _nll_from_logits(model, inputs, targets, valid), None, n_tokens
    hidden = backbone(**inputs, use_cache=False).last_hidden_state[:, :-1]
    total = _sum_nll(head, hidden[valid], targets[valid], chunk)
    prompt = None if prompt_valid is None else _sum_nll(head, hidden[prompt_valid], prompt_targets[prompt_valid], chunk)
    return total, prompt, n_tokens


def _sum_nll(head, hidden, chosen, chunk: int):
    import torch
    from torch.utils.checkpoint import checkpoint

    total = torch.zeros((), device=hidden.device, dtype=torch.float32)
    grad = torch.is_grad_enabled()
    for start in range(0, hidden.shape[0], chunk):
        h, t = hidden[start:start + chunk], chosen[start:start + chunk]
        total = total + (checkpoint(_chunk_nll, head, h, t, use_reentrant=False) if grad else _chunk_nll(head, h, t))
    return total


def _nll_from_logits(model, inputs: dict, targets, valid):
    import torch.nn.functional as F

    positions = valid.any(dim=0).nonzero().squeeze(1)
    logits = model(**inputs, use_cache=False, logits_to_keep=positions).logits
    chosen = targets[:, positions]
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), chosen.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")
