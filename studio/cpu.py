"""How many of this machine's cores are idle right now: the thread count a CPU-heavy step may use by default
(`studio train`, `studio eval`, the score step's model signal) without slowing what else runs; and whether the CPU
multiplies bfloat16 natively (the dtype those steps pick on a machine without a GPU)."""

from __future__ import annotations

import os
import time


def _cpu_times(cpus: set[int]) -> dict[int, tuple[int, int]] | None:
    """(busy, total) jiffies of each of `cpus` from /proc/stat, or None where there is no /proc (macOS, Windows)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            lines = [ln.split() for ln in fh if ln.startswith("cpu") and not ln.startswith("cpu ")]
    except OSError:
        return None
    out = {}
    for parts in lines:
        cpu = int(parts[0][3:])
        if cpu not in cpus:
            continue
        values = [int(v) for v in parts[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        out[cpu] = (sum(values) - idle, sum(values))
    return out


def idle_cores(window: float = 0.5) -> int:
    """Cores this process may use: the CPUs available to it that were mostly idle over the last `window` seconds.

    Measured now rather than read from the load average, which still counts a run that ended a minute ago.
    At least 1; without /proc, every available CPU.
    """
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    first = _cpu_times(cpus)
    if not first:
        return max(1, len(cpus))
    time.sleep(window)
    second = _cpu_times(cpus) or first
    busy = 0.0
    for cpu, (b0, t0) in first.items():
        b1, t1 = second.get(cpu, (b0, t0))
        busy += (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
    return max(1, min(len(cpus), round(len(cpus) - busy)))


def auto_threads(requested: int) -> int:
    """The torch thread count for `requested`: itself when positive, else the idle cores (`idle_cores`), capped by
    $OMP_NUM_THREADS where a scheduler set it (Ray sets it to a worker's CPUs), so a step never takes cores that
    other work is using: on the 2-core machines two threads beside other work ran ~3× slower than one
    (../shared/ENVIRONMENT.md)."""
    if requested > 0:
        return requested
    cores = idle_cores()
    cap = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, min(cores, int(cap))) if cap.isdigit() and int(cap) > 0 else cores


def native_bf16() -> bool:
    """True when the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), where bf16 matmuls beat fp32."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(setting: str) -> bool:
    """A CPU dtype setting resolved: `on` bfloat16, `off` fp32, `auto` bfloat16 where the CPU multiplies it natively
    (`TrainConfig.cpu_bf16`, the score step's `bf16`)."""
    return setting == "on" or (setting == "auto" and native_bf16())
