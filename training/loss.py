"""Next-token loss on supervised (assistant) positions only, shared by the trainer and `studio eval`.

The output head runs only at the positions whose next token is a label (`logits_to_keep` with an index
tensor), so a batch never materialises vocabulary-sized logits for prompt or padding tokens, and callers
that stream over batches (perplexity) hold one batch's logits at a time, never all of them.
"""

from __future__ import annotations

from training.data import IGNORE


def supervised_nll(model, batch: dict):
    """(sum of token NLLs as a 0-dim tensor with grad, number of supervised tokens) for one batch."""
    import torch
    import torch.nn.functional as F

    labels = batch["labels"]
    targets = labels[:, 1:]
    valid = targets != IGNORE
    n_tokens = int(valid.sum())
    positions = valid.any(dim=0).nonzero().squeeze(1)
    if n_tokens == 0:
        return torch.zeros((), device=labels.device), 0
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    out = model(**inputs, use_cache=False, logits_to_keep=positions)
    logits = out.logits
    chosen = targets[:, positions]
    nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), chosen.reshape(-1),
                          ignore_index=IGNORE, reduction="sum")
    return nll, n_tokens
