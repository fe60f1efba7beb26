"""Benchmark: the score step's model signal (q_ppl, q_ifd) in bfloat16 against fp32, same rows, same run.

    PYTHONPATH=. python bench/score_dtype.py [--rows 50] [--repeat 2] [--threads 2]

Rows: the first `--rows` conversations of sample_data's product_qa.jsonl and support_chat.jsonl (the demo's
data), scored with the bundled SmolLM2-135M-Instruct as the score step does (prompt's last 128 tokens, response's
first 128). Runs alternate fp32 / bf16 `--repeat` times; prints seconds, the ratio, and how far bf16's values are
from fp32's (relative for q_ppl, absolute for q_ifd). bf16 is fast only where the CPU multiplies it natively
(AVX512-BF16 or AMX; `studio.cpu.native_bf16`), which is when the score step's `bf16: auto` picks it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import numpy as np
    import torch

    from curate.quality import ifd
    from studio.cpu import native_bf16
    from studio.models import resolve_base_model
    from studio.readers import read_inputs

    frame = read_inputs([ROOT / "sample_data" / "product_qa.jsonl", ROOT / "sample_data" / "support_chat.jsonl"]).frame()
    conversations = frame["messages"].to_list()[:args.rows]
    prompts = ["\n".join(m["content"] for m in c if m["role"] == "user") for c in conversations]
    responses = ["\n".join(m["content"] for m in c if m["role"] == "assistant") for c in conversations]
    torch.set_num_threads(args.threads)
    path = str(resolve_base_model("default"))
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    values = {}
    for _ in range(args.repeat):
        for name, bf16 in (("fp32", False), ("bf16", True)):
            tok, model = ifd.load_scorer(path, bf16)
            start = time.perf_counter()
            values[name] = ifd.model_signals(tok, model, prompts, responses, 128, 128, 4096)
            times[name].append(time.perf_counter() - start)
    a, b = values["bf16"], values["fp32"]
    ppl = np.abs(a["q_ppl"].to_numpy() / b["q_ppl"].to_numpy() - 1)
    ifd_gap = np.abs(a["q_ifd"].to_numpy() - b["q_ifd"].to_numpy())
    fp32, bf16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
    print(f"{len(prompts)} rows, {args.threads} threads, native bf16: {native_bf16()}")
    print("| dtype | seconds (runs) | median | ratio |")
    print("|---|---|---:|---:|")
    print(f"| fp32 | {', '.join(f'{t:.2f}' for t in times['fp32'])} | {fp32:.2f} | 1.00 |")
    print(f"| bf16 | {', '.join(f'{t:.2f}' for t in times['bf16'])} | {bf16:.2f} | {fp32 / bf16:.2f}× faster |")
    print(f"bf16 vs fp32: q_ppl relative gap median {np.nanmedian(ppl):.4f}, max {np.nanmax(ppl):.4f}; "
          f"q_ifd absolute gap median {np.nanmedian(ifd_gap):.4f}, max {np.nanmax(ifd_gap):.4f}")


if __name__ == "__main__":
    main()
