"""CPU training benchmark: does the shipped trainer make the bundled model better, and how fast and small is it?

Data: the 252 user-oriented instructions of self-instruct with text-davinci-003's answers
(`../shared/data/instructions/predictions/text-davinci-003_predictions.jsonl`), as chat conversations (user =
instruction + input, assistant = the answer). A fixed 200/52 split by prompt: instructions ordered by the sha256 of
their text, the first ones go to the test set until it holds 52 rows (rows sharing an instruction stay together).

Runs, each in its own process so its peak RSS (ru_maxrss) is its own:
- `old-lora`: the trainer as it was before issue 15 (commit 504945a, taken with `git archive`), LoRA, its own
  defaults, on the same train file; bounded to one micro-batch (max_steps 1, grad_accum 1; its micro-batch is
  4 × 1024 packed tokens) because one of its default optimizer steps takes ~6 minutes. Gives its tokens/s and RSS.
- `lora`, `qlora`: today's trainer with the shipped defaults (`TrainConfig(method=...)`, nothing else set); it holds
  out its own validation set from the 200 train rows (grouped like the export).
- `eval-lora`, `eval-qlora`: `studio eval` on the 52 test rows, base vs adapter: perplexity on assistant tokens,
  ROUGE-L and exact match with 95% bootstrap intervals, and the paired change.

    python bench/train_cpu.py --json bench/results/train_cpu.json        # full run: ~35-45 minutes on 2 cores
    python bench/train_cpu.py --max-steps 3 --eval-examples 8 --skip-old  # smoke run: a few minutes

Targets (issue 15): perplexity ≥ 25 % lower than the base for both methods, ROUGE-L not lower, QLoRA peak RSS below
LoRA's and both below 2 GB, each training ≤ 10 minutes, tokens/s ≥ 3 × the old trainer's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "instructions" / "predictions" / "text-davinci-003_predictions.jsonl"
OLD_COMMIT = "504945a"
TEST_ROWS = 52


def conversations() -> tuple[list[dict], list[dict]]:
    if not DATA.is_file():
        sys.exit(f"train_cpu: {DATA} is missing; this benchmark needs ../shared/data beside the repository.")
    rows = [json.loads(line) for line in DATA.open(encoding="utf-8") if line.strip()]
    groups: dict[str, list[dict]] = {}
    for r in rows:
        user = r["instruction"].strip() + (f"\n\n{r['input'].strip()}" if (r.get("input") or "").strip() else "")
        convo = {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": r["response"].strip()}]}
        groups.setdefault(r["instruction"].strip(), []).append(convo)
    order = sorted(groups, key=lambda k: hashlib.sha256(k.encode()).hexdigest())
    test: list[dict] = []
    train: list[dict] = []
    for key in order:
        (test if len(test) + len(groups[key]) <= TEST_ROWS else train).extend(groups[key])
    return train, test


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# ---------------------------------------------------------------------------------------------------- children


def child_train(method: str, work: Path, max_steps: int | None) -> dict:
    from training.config import TrainConfig
    from training.trainer import train

    kwargs = {"method": method}
    if max_steps:
        kwargs["max_steps"] = max_steps
    name = f"run-{method}"
    if os.environ.get("TRAIN_CPU_OLD"):  # the old trainer: one micro-batch of its default size
        kwargs |= {"max_steps": 1, "grad_accum": 1}
        name = f"old-{method}"
    t0 = time.perf_counter()
    result = train(TrainConfig(**kwargs), work / "train.jsonl", None, work / name)
    m = result.metrics
    return {"wall_s": round(time.perf_counter() - t0, 1), "train_s": m["train_seconds"], "tokens": m["tokens"],
            "tokens_per_second": m["tokens_per_second"], "steps": m["steps"], "val_loss_before": m["val_loss_before"],
            "val_loss_best": m["val_loss_best"], "adapter": str(result.adapter_dir), "peak_rss_mb": round(peak_rss_mb())}


def child_eval(method: str, work: Path, examples: int | None) -> dict:
    import torch

    from training.evaluate import EvalSettings, run_eval

    settings = EvalSettings(max_examples=examples, num_threads=torch.get_num_threads())
    t0 = time.perf_counter()
    res = run_eval(str(work / f"run-{method}" / "adapter"), work / "test.jsonl", work / f"eval-{method}", settings)
    return {"wall_s": round(time.perf_counter() - t0, 1), "examples": res["examples"], "scores": res["scores"],
            "change": res.get("change", {}), "peak_rss_mb": round(peak_rss_mb())}


def spawn(kind: str, method: str, work: Path, args, pythonpath: Path = REPO) -> dict:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    if pythonpath != REPO:
        env["TRAIN_CPU_OLD"] = "1"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--method", method, "--work", str(work)]
    if args.max_steps:
        cmd += ["--max-steps", str(args.max_steps)]
    if args.eval_examples:
        cmd += ["--eval-examples", str(args.eval_examples)]
    print(f"  {kind} {method} ...", flush=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=work)
    if proc.returncode != 0:
        sys.exit(f"train_cpu: {kind} {method} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"    done in {out['wall_s']} s, peak RSS {out['peak_rss_mb']} MB", flush=True)
    return out


def old_tree(dest: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", OLD_COMMIT, "studio", "training", "curate", "synth",
                              "review_app"], capture_output=True, check=True).stdout
    tar = dest / "old.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as fh:
        fh.extractall(dest / "old", filter="data")
    return dest / "old"


# ------------------------------------------------------------------------------------------------------ report


def verdict(change: dict) -> str:
    lo, hi = change["ci95"]
    return "real" if lo > 0 or hi < 0 else "within noise"


def report(res: dict) -> str:
    lines = ["| run | steps | train s | tokens | tokens/s | peak RSS MB | val loss before → best |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name in ("old-lora", "lora", "qlora"):
        r = res.get(name)
        if r:
            lines.append(f"| {name} | {r['steps']} | {r['train_s']} | {r['tokens']} | {r['tokens_per_second']} | "
                         f"{r['peak_rss_mb']} | {r['val_loss_before']} → {r['val_loss_best']} |")
    lines += ["", "| method | metric | base | fine-tuned | relative | change 95% CI | verdict |",
              "|---|---|---:|---:|---:|---|---|"]
    for method in ("lora", "qlora"):
        ev = res.get(f"eval-{method}")
        if not ev:
            continue
        before, after = ev["scores"]["before (base)"], ev["scores"]["after (adapter)"]
        for metric in ("perplexity", "rouge_l", "exact_match"):
            b, a = before[metric], after[metric]
            rel = f"{(a - b) / b:+.1%}" if b else "n/a"
            ch = ev["change"].get(metric)
            ci = f"[{ch['ci95'][0]:+.4f}, {ch['ci95'][1]:+.4f}]" if ch else ""
            lines.append(f"| {method} | {metric} | {b:.4f} | {a:.4f} | {rel} | {ci} | {verdict(ch) if ch else ''} |")
    old = res.get("old-lora", {}).get("tokens_per_second")
    if old:
        for name in ("lora", "qlora"):
            if res.get(name):
                lines.append(f"\n{name}: {res[name]['tokens_per_second'] / old:.1f}× the old trainer's tokens/s")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, help="write all figures here")
    ap.add_argument("--max-steps", type=int, help="smoke runs only: cap the optimizer steps (default: shipped)")
    ap.add_argument("--eval-examples", type=int, help="smoke runs only: score the first N test rows (default: all 52)")
    ap.add_argument("--skip-old", action="store_true", help="do not run the old trainer")
    ap.add_argument("--methods", nargs="+", default=["lora", "qlora"], choices=["lora", "qlora"])
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child", choices=["train", "eval"], help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        fn = child_train if args.child == "train" else child_eval
        extra = args.max_steps if args.child == "train" else args.eval_examples
        print(json.dumps(fn(args.method, args.work, extra)))
        return

    train, test = conversations()
    print(f"train_cpu: {len(train)} train / {len(test)} test conversations (split by prompt); "
          f"{os.cpu_count()} CPUs", flush=True)
    res: dict = {"train_rows": len(train), "test_rows": len(test), "cpus": os.cpu_count(),
                 "max_steps": args.max_steps, "eval_examples": args.eval_examples}
    with tempfile.TemporaryDirectory(prefix="train_cpu_") as tmp:
        work = Path(tmp)
        write_jsonl(work / "train.jsonl", train)
        write_jsonl(work / "test.jsonl", test)
        if not args.skip_old:
            res["old-lora"] = spawn("train", "lora", work, args, pythonpath=old_tree(work))
        for method in args.methods:
            res[method] = spawn("train", method, work, args)
            res[f"eval-{method}"] = spawn("eval", method, work, args)
    text = report(res)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
