"""Short training probes on the validation set only: which setting lowers the held-out validation loss?

Trains on the 200 train rows of `bench/train_cpu.py`'s fixed split (the 52 test rows are never read here) with the
trainer's own validation hold-out (the same 20 rows for every probe, grouped like the export), the shipped
defaults plus `--set key=value` overrides (values parsed as JSON), and appends the run's validation curve to
`--log` (JSONL). The lowest validation loss decides between settings (bench/README.md `## train_cpu`, probes).

    python bench/train_probe.py --name neftune5 --set neftune_noise_alpha=5 --max-steps 30 --eval-steps 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def train_every_weight() -> None:
    """Make `training.trainer.train` fine-tune every weight of the base instead of adding LoRA adapters (fp32 master
    weights, bf16 autocast where the CPU has it): the ceiling a LoRA run is judged against."""
    import training.trainer as trainer_module

    def unfreeze_all(model, cfg):
        model = model.float()  # AdamW on bf16 weights loses small updates: fp32 master weights
        for param in model.parameters():
            param.requires_grad_(True)
        return model

    trainer_module.add_lora = unfreeze_all


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--train-rows", type=int, help="train on only the first N rows of the trainer's own train part "
                    "(same validation rows): what fewer training rows cost, to judge a smaller hold-out")
    ap.add_argument("--full-finetune", action="store_true",
                    help="train every weight of the base (fp32 master weights, bf16 autocast where the CPU has it) "
                    "instead of LoRA adapters: the ceiling a LoRA run can be judged against")
    ap.add_argument("--log", type=Path, default=Path(__file__).parent / "results" / "train_probes.jsonl")
    args = ap.parse_args()

    from train_cpu import conversations, write_jsonl

    from training.config import TrainConfig
    from training.trainer import train

    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    if args.full_finetune:
        train_every_weight()
    train_rows, _ = conversations()  # the test rows are discarded unread by this script
    cfg = TrainConfig(**overrides)
    with tempfile.TemporaryDirectory(prefix="train_probe_") as tmp:
        work = Path(tmp)
        write_jsonl(work / "train.jsonl", train_rows)
        t0 = time.perf_counter()
        if args.train_rows:
            from training.data import split_train_val

            train_file, val_file = split_train_val(work / "train.jsonl", work / "split")
            lines = train_file.read_text(encoding="utf-8").splitlines()[:args.train_rows]
            train_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
            m = train(cfg, train_file, val_file, work / "run").metrics
        else:
            m = train(cfg, work / "train.jsonl", None, work / "run").metrics
    rec = {"name": args.name, "set": overrides, "full_finetune": args.full_finetune, "train_rows_cap": args.train_rows, "steps": m["steps"], "total_steps": m["total_steps"],
           "val_before": m["val_loss_before"], "val_best": m["val_loss_best"], "best_step": m["best_step"],
           "evals": [(e["step"], e["val_loss"]) for e in m["evals"]], "train_loss_last": m["train_loss_last"],
           "tokens_per_second": m["tokens_per_second"], "wall_s": round(time.perf_counter() - t0, 1),
           "val_rows": m["data"]["validation"]["kept"], "train_rows": m["data"]["train"]["kept"]}
    print(json.dumps(rec))
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with args.log.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
