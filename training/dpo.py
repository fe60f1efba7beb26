"""`studio train --objective dpo`: Direct Preference Optimization of a LoRA/QLoRA adapter on preference pairs.

Input: the JSONL of `studio export --format dpo`, one pair a line: `{"prompt": [messages ending with a user turn],
"chosen": [one assistant message], "rejected": [one assistant message]}`. The run is recorded like an SFT run
(`studio.runs.Run(kind="train")`, the export's manifest beside the input named as upstream, its dataset version
recorded) and writes `adapter/`, `metrics.json` and `manifest.json`.

The objective is DPO's sigmoid loss — Rafailov, Sharma, Mitchell, Ermon, Manning, Finn, "Direct Preference
Optimization: Your Language Model is Secretly a Reward Model", NeurIPS 2023 (arXiv:2305.18290), eq. 7:

    loss = -log σ(β · [(log πθ(y_c|x) - log π_ref(y_c|x)) - (log πθ(y_r|x) - log π_ref(y_r|x))])

with β = 0.1 (the paper's and TRL's default). log π(y|x) is the sum of the answer's token log-probabilities,
end-of-turn token included (the same assistant tokens SFT learns, `training.data.encode_conversation`). The
reference model is the policy with its adapter disabled (peft `disable_adapter()`): no second copy of the model.
It never changes, so its log-probabilities are computed once before training (TRL's `precompute_ref_log_probs`).

Figures (before and after training, on the training pairs and on held-out pairs): preference accuracy — the share
of pairs whose implicit reward margin β·[(πθ-π_ref)(chosen) - (πθ-π_ref)(rejected)] is > 0 — and the mean margin.
A fresh LoRA adapter adds exactly zero (its B matrix starts at 0), so before training the policy *is* the
reference: every margin is 0 and the accuracy 0. So the base model's own preference (share of pairs where it
gives the chosen answer the higher log-probability) is recorded too, as the baseline a reader can compare with.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.atomic import atomic_open
from studio.console import Reporter
from studio.errors import StudioError
from studio.jsonl import json_objects
from studio.workspace import Workspace
from training.config import TrainConfig
from training.data import TokenizedExample, collate, encode_conversation
from training.loss import supervised_nll

#: Share of prompts held out when no --val file is given (at least one prompt once there are 4 or more).
HELD_OUT_FRACTION = 0.2


@dataclass
class Pair:
    """One preference pair: the prompt and its chosen and rejected answers, as in the export."""

    line: int
    prompt: list[dict[str, str]]
    chosen: dict[str, str]
    rejected: dict[str, str]


@dataclass
class TokenizedPair:
    chosen: TokenizedExample
    rejected: TokenizedExample


@dataclass
class DpoResult:
    run_dir: Path
    adapter_dir: Path
    metrics: dict[str, Any]


def _messages(value: Any) -> bool:
    return (isinstance(value, list) and bool(value) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value))


def read_pairs(path: str | Path) -> list[Pair]:
    """The pairs of a `--format dpo` JSONL file; anything else is refused with the file, line and field."""
    path = Path(path)
    hint = "pass the pairs written by `studio export --format dpo`"
    if not path.is_file():
        raise StudioError(f"preference pairs file {path} does not exist; {hint}.")
    pairs = []
    for line_no, record in json_objects(path, hint):
        for field in ("prompt", "chosen", "rejected"):
            if not _messages(record.get(field)):
                raise StudioError(f"{path} line {line_no}: field `{field}` is missing or not a list of "
                                  f"{{role, content}} messages; {hint}.")
        if record["prompt"][-1]["role"] != "user":
            raise StudioError(f"{path} line {line_no}: field `prompt` must end with a user turn; {hint}.")
        for field in ("chosen", "rejected"):
            if len(record[field]) != 1 or record[field][0]["role"] != "assistant":
                raise StudioError(f"{path} line {line_no}: field `{field}` must hold one assistant message; {hint}.")
        pairs.append(Pair(line_no, record["prompt"], record["chosen"][0], record["rejected"][0]))
    if not pairs:
        raise StudioError(f"{path} holds no preference pairs; {hint}.")
    return pairs


def hold_out(pairs: list[Pair], fraction: float = HELD_OUT_FRACTION) -> tuple[list[Pair], list[Pair]]:
    """(train, held-out): whole prompts held out, chosen by a hash of the prompt so the split never depends on order."""
    def key(p: Pair) -> str:
        return hashlib.sha256(json.dumps(p.prompt, sort_keys=True).encode()).hexdigest()

    prompts = sorted({key(p) for p in pairs})
    held = set(prompts[:max(1, math.floor(len(prompts) * fraction))]) if len(prompts) >= 4 else set()
    return [p for p in pairs if key(p) not in held], [p for p in pairs if key(p) in held]


def tokenize_pairs(tokenizer, pairs: list[Pair], max_length: int) -> tuple[list[TokenizedPair], int]:
    """Both sides of each pair as (ids, labels on the answer); pairs with a side longer than max_length are dropped."""
    out, dropped = [], 0
    for p in pairs:
        chosen = encode_conversation(tokenizer, [*p.prompt, p.chosen])
        rejected = encode_conversation(tokenizer, [*p.prompt, p.rejected])
        if max(len(chosen.input_ids), len(rejected.input_ids)) > max_length:
            dropped += 1
            continue
        out.append(TokenizedPair(chosen, rejected))
    return out, dropped


def sequence_logps(model, examples: list[TokenizedExample], pad_id: int, bf16: bool, device) -> Any:
    """log π(answer | prompt) of each example (sum over its answer tokens), with grad when grad is enabled."""
    import torch

    from training.trainer import autocast

    out = []
    for ex in examples:
        batch = {k: v.to(device) for k, v in collate([ex], pad_id, packing=False).items()}
        with autocast(bf16):
            nll, _ = supervised_nll(model, batch)
        out.append(-nll)
    return torch.stack(out)


def pair_logps(model, pairs: list[TokenizedPair], pad_id: int, bf16: bool, device) -> Any:
    """(n, 2) tensor: log-probabilities of the chosen and the rejected answer of each pair."""
    import torch

    examples = [ex for p in pairs for ex in (p.chosen, p.rejected)]
    if not examples:
        return torch.zeros((0, 2))
    return sequence_logps(model, examples, pad_id, bf16, device).reshape(-1, 2)


def dpo_loss(policy, reference, beta: float):
    """(mean sigmoid DPO loss, per-pair implicit reward margins) from (n, 2) chosen/rejected log-probabilities."""
    import torch.nn.functional as F

    ratios = policy - reference
    margins = beta * (ratios[:, 0] - ratios[:, 1])
    return -F.logsigmoid(margins).mean(), margins.detach()


def preference_figures(margins) -> dict[str, Any]:
    """Preference accuracy (share of margins > 0; a tie does not favour chosen) and the mean margin."""
    n = int(margins.numel())
    if n == 0:
        return {"pairs": 0, "preference_accuracy": None, "mean_reward_margin": None}
    return {"pairs": n, "preference_accuracy": round(float((margins > 0).float().mean()), 4),
            "mean_reward_margin": round(float(margins.mean()), 5)}


def pairs_export(path: Path) -> dict[str, Any] | None:
    """The export run beside the pairs file: its run id and dataset version (None outside a version)."""
    manifest = path.parent / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return {"run_id": data.get("run_id"), "version": (data.get("versioning") or {}).get("version"),
            "manifest": str(manifest)}


def train_dpo(cfg: TrainConfig, train_path: str | Path, val_path: str | Path | None, out_dir: str | Path | None, *,
              reporter: Reporter | None = None, workspace: Workspace | None = None) -> DpoResult:
    """DPO of a fresh LoRA/QLoRA adapter on `cfg.base_model` with the pairs in `train_path`.

    Held-out pairs: `val_path`, else whole prompts held out of `train_path` (`hold_out`). Steps: `cfg.max_steps`,
    else `cfg.epochs` passes of `cfg.batch_size` pairs × `cfg.grad_accum` micro-batches. The CPU settings (threads,
    bf16 matmuls), model loading, LoRA and optimizer are the SFT trainer's (`training.trainer`).
    """
    reporter = reporter or Reporter(quiet=True)
    train_path = Path(train_path)
    train_pairs = read_pairs(train_path)  # a bad file is refused before torch loads
    if val_path is not None:
        held_pairs = read_pairs(val_path)
    else:
        train_pairs, held_pairs = hold_out(train_pairs)

    import torch

    from studio.models import resolve_base_model
    from studio.runs import Run
    from training.trainer import (
        attn_implementation,
        build_optimizer,
        cpu_bf16,
        load_tokenizer,
        load_trainable_model,
        lr_factor,
        prepare_process,
        set_threads,
    )

    cuda = torch.cuda.is_available()
    prepare_process(cuda)
    method = cfg.resolved_method(cuda)
    optimizer_name, substituted = cfg.resolved_optimizer(method, cuda)
    threads = set_threads(cfg, cuda)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    base_dir = resolve_base_model(cfg.base_model)
    bf16 = cpu_bf16(cfg, cuda)
    device = torch.device("cuda" if cuda else "cpu")
    run_config = {**cfg.model_dump(), "objective": "dpo", "method": method, "optimizer": optimizer_name,
                  "threads": threads, "device": device.type, "cpu_bf16": bf16,
                  "attn_implementation": attn_implementation(cfg, cuda)}
    with Run("train", out_dir=Path(out_dir) if out_dir else None, workspace=workspace, config=run_config) as run:
        out = run.dir
        if substituted:
            reporter.info(f"on this machine: {substituted}")
        run.add_input(train_path, role="preference pairs (train" + ("" if val_path else " + held-out") + ")")
        if val_path is not None:
            run.add_input(val_path, role="preference pairs (held-out)")
        export = pairs_export(train_path)
        run.extra |= {"objective": "dpo", "base_model": cfg.base_model, "base_model_path": str(base_dir),
                      "method": method, "pairs_export": export}
        tokenizer = load_tokenizer(base_dir)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        train_tok, train_dropped = tokenize_pairs(tokenizer, train_pairs, cfg.max_length)
        held_tok, held_dropped = tokenize_pairs(tokenizer, held_pairs, cfg.max_length)
        if not train_tok:
            raise StudioError(f"no training pair of {train_path} fits in max_length {cfg.max_length} tokens; "
                              "raise --max-length.")
        reporter.info(f"preference pairs: {len(train_tok)} train, {len(held_tok)} held out; "
                      f"{train_dropped + held_dropped} longer than max_length {cfg.max_length} dropped")
        t0 = time.perf_counter()
        model = load_trainable_model(base_dir, method, cfg, cuda)
        run.time("load_model", time.perf_counter() - t0)

        def logps(pairs: list[TokenizedPair]):
            with torch.no_grad():
                return pair_logps(model, pairs, pad_id, bf16, device)

        model.eval()
        t0 = time.perf_counter()
        with model.disable_adapter():  # the reference: the base model itself, no second copy
            ref_train, ref_held = logps(train_tok), logps(held_tok)
        before = {"train": preference_figures(dpo_loss(logps(train_tok), ref_train, cfg.dpo_beta)[1]),
                  "held_out": preference_figures(dpo_loss(logps(held_tok), ref_held, cfg.dpo_beta)[1])}
        base_prefers = {name: (round(float((ref[:, 0] > ref[:, 1]).float().mean()), 4) if len(ref) else None)
                        for name, ref in (("train", ref_train), ("held_out", ref_held))}
        run.time("reference", time.perf_counter() - t0)

        per_step = cfg.batch_size * cfg.grad_accum
        total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(train_tok) / per_step))
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = build_optimizer(optimizer_name, params, cfg)
        warmup = math.floor(cfg.warmup_ratio * total_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg.lr_scheduler, warmup, total_steps))
        reporter.info(f"plan: {total_steps} DPO steps of {per_step} pair(s), β {cfg.dpo_beta}, lr {cfg.learning_rate:g}")
        order: list[int] = []
        history = []
        model.train()
        t_train = time.perf_counter()
        for step in range(1, total_steps + 1):
            t0 = time.perf_counter()
            loss_sum, margins = 0.0, []
            for _ in range(cfg.grad_accum):
                batch = []
                while len(batch) < min(cfg.batch_size, len(train_tok)):
                    if not order:
                        order = list(range(len(train_tok)))
                        rng.shuffle(order)
                    batch.append(order.pop())
                policy = pair_logps(model, [train_tok[i] for i in batch], pad_id, bf16, device)
                loss, m = dpo_loss(policy, ref_train[batch].to(device), cfg.dpo_beta)
                (loss / cfg.grad_accum).backward()
                loss_sum += float(loss.detach()) / cfg.grad_accum
                margins.append(m)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            record = {"step": step, "loss": round(loss_sum, 6), "lr": lr, "grad_norm": round(grad_norm, 6),
                      **{k: v for k, v in preference_figures(torch.cat(margins)).items() if k != "pairs"},
                      "seconds": round(time.perf_counter() - t0, 3)}
            history.append(record)
            reporter.info(f"step {step}/{total_steps}: loss {record['loss']:.4f}, batch preference accuracy "
                          f"{record['preference_accuracy']:.2f}, mean margin {record['mean_reward_margin']:+.4f}")
        train_seconds = time.perf_counter() - t_train
        run.time("train", train_seconds)
        model.eval()
        after = {"train": preference_figures(dpo_loss(logps(train_tok), ref_train, cfg.dpo_beta)[1]),
                 "held_out": preference_figures(dpo_loss(logps(held_tok), ref_held, cfg.dpo_beta)[1])}
        adapter_dir = out / "adapter"
        model.save_pretrained(adapter_dir)
        tokenizer.save_pretrained(adapter_dir)
        metrics = {"objective": "dpo", "base_model": cfg.base_model, "method": method, "beta": cfg.dpo_beta,
                   "steps": total_steps, "train_seconds": round(train_seconds, 3),
                   "pairs": {"train": len(train_tok), "held_out": len(held_tok),
                             "dropped_longer_than_max_length": train_dropped + held_dropped},
                   "before": before, "after": after, "base_prefers_chosen": base_prefers,
                   "pairs_export": export, "history": history}
        with atomic_open(out / "metrics.json") as fh:
            json.dump(metrics, fh, indent=1)
            fh.write("\n")
        run.counts.input = len(train_pairs) + len(held_pairs)
        run.counts.kept = len(train_tok) + len(held_tok)
        if train_dropped + held_dropped:
            run.counts.drop("longer than max_length", train_dropped + held_dropped)
        run.extra["metrics"] = {"steps": total_steps, "train_loss_last": history[-1]["loss"],
                                "preference_accuracy_before": before["train"]["preference_accuracy"],
                                "preference_accuracy_after": after["train"]["preference_accuracy"],
                                "held_out_preference_accuracy_after": after["held_out"]["preference_accuracy"],
                                "mean_reward_margin_after": after["train"]["mean_reward_margin"]}
        run.add_output(out / "metrics.json")
        run.add_output(adapter_dir / "adapter_model.safetensors", role="adapter")
    return DpoResult(out, adapter_dir, metrics)
