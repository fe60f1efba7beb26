"""What the CPU can do right now: how many cores are idle, and whether it has native bfloat16 matmuls.

Both decide defaults of `studio train` and `studio eval` on machines without a GPU (see `TrainConfig.num_threads`
and `TrainConfig.cpu_bf16`).
"""

from __future__ import annotations

from studio.cpu import idle_cores, native_bf16

__all__ = ["idle_cores", "native_bf16", "threads_for"]


def threads_for(requested: int | None, cuda: bool) -> int:
    """The torch thread count a run uses: the one asked for, torch's default on CUDA, else the idle cores."""
    import torch

    if requested:
        return requested
    return torch.get_num_threads() if cuda else idle_cores()
