"""The torch thread count of `studio train` and `studio eval` on machines without a GPU (`TrainConfig.num_threads`),
from the cores idle right now. Whether the CPU multiplies bfloat16 natively (`TrainConfig.cpu_bf16`) is
`studio.cpu.use_bf16`, shared with the score step.
"""

from __future__ import annotations

from studio.cpu import idle_cores

__all__ = ["idle_cores", "threads_for"]


def threads_for(requested: int | None, cuda: bool) -> int:
    """The torch thread count a run uses: the one asked for, torch's default on CUDA, else the idle cores."""
    import torch

    if requested:
        return requested
    return torch.get_num_threads() if cuda else idle_cores()
