"""`studio train`: LoRA / QLoRA fine-tuning of a base model on exported chat JSONL, recorded as a run.

Flow: read train/val files (`training.data`) → load the base model (fp32 on CPU, bf16 on CUDA, or 4-bit
NF4 for qlora) → add LoRA adapters with peft → our own training loop → `adapter/` (+ `merged/` on request),
`metrics.json`, `loss_curve.png` and a `manifest.json` (`studio.runs.Run(kind="train")`) in the run folder.

Why our own loop rather than `transformers.Trainer`: the loss is computed only at supervised positions
(`training.loss`), packed micro-batches are single padding-free rows whose size varies, and resume must
restore the exact data position, RNG and history so a resumed run continues the same loss curve; in our
loop each of those is a few explicit lines, where Trainer needs a custom collator, a `compute_loss`
override, callbacks for early stopping and accelerate's batch skipping. The loop is ~150 lines.

Run folder:
    adapter/                the adapter at the step with the lowest validation loss (+ tokenizer)
    merged/                 base + adapter merged in 16/32-bit (only with `merge`)
    checkpoints/step-N/     adapter, optimizer, scheduler, RNG states and trainer state (for --resume)
    metrics.json            losses per step, validation per eval, tokens/s, data counts, peak memory
    loss_curve.png          train and validation loss against step
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.atomic import atomic_open
from studio.console import Reporter
from studio.errors import StudioError
from studio.workspace import Workspace
from training.config import TrainConfig
from training.data import (
    DataStats,
    TokenizedExample,
    collate,
    epoch_order,
    load_split,
    plan_batches,
    split_train_val,
)
from training.loss import nll_parts, supervised_nll

log = logging.getLogger("studio.train")

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"


@dataclass
class TrainResult:
    run_dir: Path
    adapter_dir: Path
    merged_dir: Path | None
    metrics: dict[str, Any]


# ------------------------------------------------------------------------------------------ model set-up


#: CPU micro-batches are padded to a multiple of this many tokens, which bounds the matmul shapes (see `collate`).
CPU_SHAPE_MULTIPLE = 64


def prepare_process(cuda: bool) -> None:
    """Process settings for training: bitsandbytes imported without a hub attempt, and (CPU) malloc that returns memory.

    Importing bitsandbytes on a CPU with AVX512-BF16 asks the `kernels` package for a hub kernel
    ("kernels-community/quantization-bitsandbytes") and falls back to its built-in path when that fails. The import
    runs here with huggingface_hub in offline mode, so `kernels` only looks in its local cache and no connection is
    attempted (tests/test_training_qlora.py checks with a socket guard); its "failed to load" warning is silenced
    because the built-in path is the intended one.
    glibc's default keeps freed activation buffers in the heap and fragments it, so a CPU step's peak memory
    is a multiple of its live tensors (bench/README.md `## train_cpu`); serving large blocks by mmap returns
    them to the system at once.
    """
    import_bitsandbytes_offline()
    if not cuda:
        _malloc_returns_large_blocks()


def import_bitsandbytes_offline() -> bool:
    """Import bitsandbytes (once) with hub access off; False when it is not installed."""
    import importlib.util
    import sys

    if "bitsandbytes" in sys.modules:
        return True
    if importlib.util.find_spec("bitsandbytes") is None:
        return False
    from huggingface_hub import constants

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    was = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        import bitsandbytes  # noqa: F401
    finally:
        constants.HF_HUB_OFFLINE = was
    return True


def _malloc_returns_large_blocks() -> None:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD: blocks of 1 MiB and more come from (and go back to) mmap
        libc.mallopt(-1, 1 << 20)  # M_TRIM_THRESHOLD: give back free heap top above 1 MiB
    except (OSError, AttributeError):  # not glibc: keep the allocator's defaults
        return


def set_threads(cfg: TrainConfig, cuda: bool) -> int:
    import torch

    from training.cpu import threads_for

    threads = threads_for(cfg.num_threads, cuda)
    torch.set_num_threads(threads)
    return threads


def cpu_bf16(cfg: TrainConfig, cuda: bool) -> bool:
    """Whether this run's CPU matmuls are bfloat16 (`TrainConfig.cpu_bf16`); never on CUDA, which has its own dtypes."""
    from studio.cpu import use_bf16

    return not cuda and use_bf16(cfg.cpu_bf16)


def autocast(bf16: bool):
    """The context the forward passes run in: bf16 autocast on CPU when `bf16`, else nothing."""
    import contextlib

    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def attn_implementation(cfg: TrainConfig, cuda: bool) -> str:
    import importlib.util

    if cfg.attn_implementation != "auto":
        return cfg.attn_implementation
    return "flash_attention_2" if cuda and importlib.util.find_spec("flash_attn") else "sdpa"


def bnb_config(cfg: TrainConfig):
    import torch
    from transformers import BitsAndBytesConfig

    try:
        if not import_bitsandbytes_offline():
            raise ImportError("not installed")
    except (ImportError, RuntimeError, OSError) as exc:
        raise StudioError(f"qlora needs bitsandbytes, which did not load ({exc}); run `make install`, or use "
                          "--method lora.") from None

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=cfg.quant_type,
                              bnb_4bit_use_double_quant=cfg.double_quant,
                              bnb_4bit_compute_dtype=getattr(torch, cfg.compute_dtype),
                              bnb_4bit_quant_storage=getattr(torch, cfg.compute_dtype))


def load_tokenizer(base_dir: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    if not getattr(tok, "chat_template", None):
        raise StudioError(f"the base model in {base_dir} has no chat template; use an instruct/chat model.")
    return tok


def load_base_model(base_dir: Path, method: str, cfg: TrainConfig, cuda: bool):
    """The frozen base: 4-bit NF4 for qlora; for lora bf16 on CUDA, and on CPU bf16 or fp32 (`cpu_bf16`)."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"attn_implementation": attn_implementation(cfg, cuda)}
    if method == "qlora":
        kwargs |= {"quantization_config": bnb_config(cfg), "dtype": getattr(torch, cfg.compute_dtype),
                   "device_map": {"": 0 if cuda else "cpu"}}
    else:
        kwargs |= {"dtype": torch.bfloat16 if cuda or cpu_bf16(cfg, cuda) else torch.float32}
    model = AutoModelForCausalLM.from_pretrained(base_dir, **kwargs)
    if method == "qlora" and not cuda:
        keep_4bit_weights_differentiable(model)
    if cuda and method != "qlora":
        model.to("cuda")
    model.config.use_cache = False
    return model


def keep_4bit_weights_differentiable(model) -> None:
    """Stop bitsandbytes repacking the 4-bit weights for CPU inference during a training run.

    On a CPU with AVX512-BF16, the first forward pass of a `Linear4bit` in eval mode without gradients (our
    validation at step 0) converts its weights for good to a packed layout whose kernel (`gemv_4bit`) has no
    autograd formula: every later training step then drops the gradient through the frozen base matmuls (torch
    warns "an autograd kernel was not registered"), and only the residual and LoRA paths carry it back."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def enable_checkpointing(model) -> None:
    kwargs = {"use_reentrant": False}  # non-reentrant: works with frozen inputs, no enable_input_require_grads
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def load_trainable_model(base_dir: Path, method: str, cfg: TrainConfig, cuda: bool):
    """The base model, with gradient checkpointing when configured, and fresh LoRA adapters: what SFT and DPO train."""
    model = load_base_model(base_dir, method, cfg, cuda)
    if cfg.gradient_checkpointing:
        enable_checkpointing(model)
    return add_lora(model, cfg)


def add_lora(model, cfg: TrainConfig):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.lora_target_modules, bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def build_optimizer(name: str, params, cfg: TrainConfig):
    import torch

    kwargs = {"lr": cfg.learning_rate, "betas": (0.9, cfg.adam_beta2), "weight_decay": cfg.weight_decay}
    if name == "adamw":
        return torch.optim.AdamW(params, **kwargs)
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise StudioError(f"optimizer {name} needs bitsandbytes (pip install bitsandbytes); or set optimizer: adamw.") from None
    cls = {"paged_adamw_32bit": bnb.optim.PagedAdamW32bit, "paged_adamw_8bit": bnb.optim.PagedAdamW8bit,
           "adamw_8bit": bnb.optim.AdamW8bit}[name]
    return cls(params, **kwargs)


def merge_adapter(base_dir: Path, adapter_dir: Path, out_dir: Path, method: str, cfg: TrainConfig, cuda: bool) -> Path:
    """Base + adapter in one model, merged in fp32 for qlora — never into 4-bit weights.

    For qlora the base is loaded 4-bit exactly as in training and *dequantized* (the weights the adapter was
    trained against) before merging; rounding a merged model back to 4 bits would drift from the adapter.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if method == "qlora":
        # The same NF4 codes as in training (the compute dtype does not change them), dequantized straight to fp32
        # and before any forward pass (on CPU bitsandbytes repacks the weights on the first one, and dequantizing
        # those gives garbage). fp32, because LoRA moves the weights by less than bf16's resolution: a bf16 merge
        # rounded much of a small adapter away (measured: a logit gap of 0.21 against an effect of 0.29).
        fp32 = cfg.model_copy(update={"compute_dtype": "float32"})
        base = AutoModelForCausalLM.from_pretrained(base_dir, quantization_config=bnb_config(fp32),
                                                    dtype=torch.float32, device_map={"": 0 if cuda else "cpu"})
        base = base.dequantize()
    else:
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.bfloat16 if cuda else torch.float32)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    load_tokenizer(base_dir).save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def neftune_scale(lengths: list[int], shape, alpha: float, dim: int, packing: bool):
    """NEFTune's per-token noise scale alpha/sqrt(L·d) (Jain et al. 2023), L = the length of the token's own example
    (in a packed row, not the row's), 0 on padding; `shape` is the micro-batch's (rows, width)."""
    import torch

    scale = torch.zeros(tuple(shape), dtype=torch.float32)
    start = 0
    for row, n in enumerate(lengths):
        value = alpha / math.sqrt(n * dim)
        if packing:
            scale[0, start:start + n] = value
            start += n
        else:
            scale[row, :n] = value
    return scale


def neftune_hook(current_scale):
    """A forward hook for the input embeddings that adds uniform(-1, 1) × `current_scale()` noise in training mode
    only (validation, eval and generation see clean embeddings), and nothing when `current_scale()` is None."""
    import torch

    def hook(module, inputs, output):
        scale = current_scale()
        if not module.training or scale is None:
            return None
        return output + torch.empty_like(output).uniform_(-1, 1) * scale.to(output.dtype).unsqueeze(-1)

    return hook


# ------------------------------------------------------------------------------------------------ plan


def build_plan(lengths: list[int], cfg: TrainConfig) -> list[list[int]]:
    """Every micro-batch of the run, in order: epoch e uses permutation (seed, e); fixed for a given config."""
    plan: list[list[int]] = []
    target = cfg.max_steps * cfg.grad_accum if cfg.max_steps else None
    epoch = 0
    while True:
        batches = plan_batches(lengths, epoch_order(len(lengths), cfg.seed, epoch), cfg.batch_size, cfg.max_length,
                               cfg.packing)
        if target is not None:
            plan += batches
            if len(plan) >= target:
                return plan[:target]
        else:
            left = cfg.epochs - epoch
            if left <= 0:
                return plan
            plan += batches if left >= 1 else batches[:max(1, int(len(batches) * left))]
        epoch += 1


def data_fingerprint(train_sha: str, cfg: TrainConfig) -> str:
    """What fixes the batch plan; a checkpoint only resumes a run with the same one."""
    keys = ("base_model", "max_length", "overlong", "packing", "batch_size", "grad_accum", "epochs", "max_steps", "seed")
    blob = json.dumps([train_sha, {k: getattr(cfg, k) for k in keys}], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def lr_factor(schedule: str, warmup: int, total: int):
    """Multiplier of the peak learning rate at 0-based step s: linear warm-up that starts above 0, then the schedule.

    Warm-up step s runs at (s+1)/(warmup+1) of the peak, so even a one-step warm-up trains; transformers'
    schedules start at 0, which made a 1-step run train at learning rate 0.
    """

    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / (warmup + 1)
        if schedule == "constant":
            return 1.0
        progress = (s - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else max(0.0, 1 - progress)

    return factor


# ---------------------------------------------------------------------------------------------- loop


class Trainer:
    """One training run's state; `run()` does the loop. Built by `train()`."""

    def __init__(self, cfg: TrainConfig, model, tokenizer, train_ex: list[TokenizedExample],
                 val_ex: list[TokenizedExample], out_dir: Path, optimizer_name: str, cuda: bool,
                 reporter: Reporter) -> None:
        import torch

        self.cfg, self.model, self.tokenizer, self.cuda, self.reporter = cfg, model, tokenizer, cuda, reporter
        self.bf16 = cpu_bf16(cfg, cuda)
        self.device = torch.device("cuda" if cuda else "cpu")
        self.train_ex, self.val_ex = train_ex, val_ex
        self.out_dir = out_dir
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.plan = build_plan([len(e.input_ids) for e in train_ex], cfg)
        self.total_steps = math.ceil(len(self.plan) / cfg.grad_accum)
        self.val_plan = plan_batches([len(e.input_ids) for e in val_ex], list(range(len(val_ex))), cfg.batch_size,
                                     cfg.max_length, cfg.packing)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(optimizer_name, self.params, cfg)
        self.warmup_steps = int(cfg.warmup_ratio * self.total_steps)
        self.eval_every = cfg.steps_between_evals(self.total_steps)
        self.save_every = cfg.steps_between_saves(self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_factor(cfg.lr_scheduler, self.warmup_steps, self.total_steps))
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.evals: list[dict[str, Any]] = []
        self.best_val = math.inf
        self.best_step: int | None = None
        self.bad_evals = 0
        self.tokens = 0
        self.train_seconds = 0.0
        self.stopped_early = False
        self._neft_scale = None
        if cfg.neftune_noise_alpha > 0:
            self._install_neftune()

    # -- batches
    def _batch(self, examples: list[TokenizedExample], indices: list[int], training: bool = False) -> dict:
        batch = collate([examples[i] for i in indices], self.pad_id, self.cfg.packing,
                        multiple_of=1 if self.cuda else CPU_SHAPE_MULTIPLE,
                        with_prompt_labels=training and self.cfg.prompt_loss_weight > 0)
        if training and self.cfg.neftune_noise_alpha > 0:
            batch["neftune_scale"] = neftune_scale([len(examples[i].input_ids) for i in indices], batch["input_ids"].shape,
                                                   self.cfg.neftune_noise_alpha,
                                                   self.model.get_input_embeddings().embedding_dim, self.cfg.packing)
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _install_neftune(self) -> None:
        self.model.get_input_embeddings().register_forward_hook(neftune_hook(lambda: self._neft_scale))

    def validation_loss(self) -> float:
        import torch

        self.model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for indices in self.val_plan:
                with autocast(self.bf16):
                    nll, n = supervised_nll(self.model, self._batch(self.val_ex, indices))
                total += float(nll)
                count += n
        self.model.train()
        return total / max(count, 1)

    def train_step(self) -> dict[str, Any]:
        import torch

        micro = self.plan[self.step * self.cfg.grad_accum:(self.step + 1) * self.cfg.grad_accum]
        batches = [self._batch(self.train_ex, indices, training=True) for indices in micro]
        n_label = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)
        n_tokens = sum(sum(len(self.train_ex[i].input_ids) for i in indices) for indices in micro)
        t0 = time.perf_counter()
        loss_sum = 0.0
        weight = self.cfg.prompt_loss_weight
        for batch in batches:
            self._neft_scale = batch.pop("neftune_scale", None)
            with autocast(self.bf16):
                nll, prompt_nll, _ = nll_parts(self.model, batch, with_prompt=weight > 0)
            # the prompt tokens add weight × their loss, normalised like the assistant tokens' (by their count), so
            # the assistant gradient is what it is without the option; what is logged stays the assistant loss
            loss = nll if prompt_nll is None else nll + weight * prompt_nll
            (loss / max(n_label, 1)).backward()
            loss_sum += float(nll.detach())
        self._neft_scale = None
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm))
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        self.step += 1
        self.tokens += n_tokens
        self.train_seconds += seconds
        record = {"step": self.step, "loss": round(loss_sum / max(n_label, 1), 6), "lr": lr,
                  "grad_norm": round(grad_norm, 6), "tokens": n_tokens, "label_tokens": n_label,
                  "seconds": round(seconds, 4)}
        self.history.append(record)
        return record

    def evaluate_and_track(self) -> float:
        val = self.validation_loss()
        self.evals.append({"step": self.step, "val_loss": round(val, 6)})
        if self.step == 0:
            self.best_val = val  # the base model's loss: the adapter must beat it to count as best
        elif val < self.best_val - self.cfg.early_stopping_min_delta:
            self.best_val, self.best_step, self.bad_evals = val, self.step, 0
            self.save_adapter(self.out_dir / "adapter")
        else:
            self.bad_evals += 1
            patience = self.cfg.early_stopping_patience
            if patience is not None and self.bad_evals >= patience:
                self.stopped_early = True
        log.info("step %d: validation loss %.4f (best %.4f at step %s)", self.step, val, self.best_val, self.best_step)
        return val

    # -- checkpoints
    def save_adapter(self, where: Path) -> None:
        tmp = where.with_name(where.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp)
        self.tokenizer.save_pretrained(tmp)
        shutil.rmtree(where, ignore_errors=True)
        tmp.rename(where)

    def save_checkpoint(self, fingerprint: str) -> Path:
        import torch

        where = self.out_dir / CHECKPOINTS / f"step-{self.step:06d}"
        tmp = where.with_name(where.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp)
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), tmp / "scheduler.pt")
        rng = {"python": random.getstate(), "torch": torch.get_rng_state()}
        if self.cuda:
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(rng, tmp / "rng.pt")
        state = {"step": self.step, "fingerprint": fingerprint, "history": self.history, "evals": self.evals,
                 "best_val": self.best_val, "best_step": self.best_step, "bad_evals": self.bad_evals,
                 "tokens": self.tokens, "train_seconds": self.train_seconds, "total_steps": self.total_steps}
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")
        shutil.rmtree(where, ignore_errors=True)
        tmp.rename(where)
        older = sorted((self.out_dir / CHECKPOINTS).glob("step-??????"))[:-self.cfg.save_total_limit]
        for old in older:
            shutil.rmtree(old, ignore_errors=True)
        log.info("checkpoint saved: %s", where)
        return where

    def load_checkpoint(self, where: Path, fingerprint: str) -> None:
        import torch
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        state = json.loads((where / STATE_FILE).read_text(encoding="utf-8"))
        if state["fingerprint"] != fingerprint:
            raise StudioError(f"checkpoint {where} was made with other training data or data settings (max_length, "
                              "packing, batch size, seed, epochs/steps); restore them or start a new --out folder.")
        weights = load_file(str(where / "adapter_model.safetensors"), device=str(self.device))
        set_peft_model_state_dict(self.model, weights)
        # weights_only: a checkpoint file holds tensors and plain values only, so a planted one cannot run code
        self.optimizer.load_state_dict(torch.load(where / "optimizer.pt", map_location=self.device, weights_only=True))
        self.scheduler.load_state_dict(torch.load(where / "scheduler.pt", weights_only=True))
        rng = torch.load(where / "rng.pt", weights_only=True)
        random.setstate(rng["python"])
        torch.set_rng_state(rng["torch"])
        if self.cuda and "cuda" in rng:
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.step = state["step"]
        self.history, self.evals = state["history"], state["evals"]
        self.best_val, self.best_step, self.bad_evals = state["best_val"], state["best_step"], state["bad_evals"]
        self.tokens, self.train_seconds = state["tokens"], state["train_seconds"]

    # -- the loop
    def run(self, fingerprint: str, stop_after_steps: int | None = None) -> None:
        """Train to the end (or early stop); `stop_after_steps` stops as an interruption would, after a checkpoint."""
        self.model.train()
        if not self.evals:
            self.evaluate_and_track()
        with _progress(self.reporter, self.total_steps, self.step) as update:
            while self.step < self.total_steps and not self.stopped_early:
                record = self.train_step()
                update(record, self.tokens / max(self.train_seconds, 1e-9))
                last = self.step == self.total_steps
                if self.step % self.eval_every == 0 or last:
                    self.evaluate_and_track()
                if stop_after_steps is not None and self.step >= stop_after_steps and not last:
                    self.save_checkpoint(fingerprint)
                    return
                if self.step % self.save_every == 0 and not last and not self.stopped_early:
                    self.save_checkpoint(fingerprint)
        if self.best_step is None:  # validation never improved on the base: keep the last adapter
            self.save_adapter(self.out_dir / "adapter")

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps or self.stopped_early


def _progress(reporter: Reporter, total: int, done: int):
    """A progress bar with step count, loss, tokens/s, elapsed time and ETA; yields update(record, tok_s)."""
    import contextlib

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    @contextlib.contextmanager
    def bar():
        if reporter.quiet:
            yield lambda record, tok_s: log.info("step %d loss %.4f %.0f tok/s", record["step"], record["loss"], tok_s)
            return
        columns = [TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
                   TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tok_s]} tok/s"),
                   TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
        with Progress(*columns, console=reporter.console) as progress:
            task = progress.add_task("train", total=total, completed=done, loss="-", tok_s="-")

            def update(record: dict, tok_s: float) -> None:
                progress.update(task, advance=1, loss=f"{record['loss']:.4f}", tok_s=f"{tok_s:,.0f}")
                log.info("step %d loss %.4f %.0f tok/s", record["step"], record["loss"], tok_s)

            yield update

    return bar()


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = sorted((out_dir / CHECKPOINTS).glob("step-??????"))
    return found[-1] if found else None


# ---------------------------------------------------------------------------------------------- entry


def train(cfg: TrainConfig, train_path: str | Path, val_path: str | Path | None, out_dir: str | Path | None, *,
          resume: bool = False, reporter: Reporter | None = None, workspace: Workspace | None = None,
          stop_after_steps: int | None = None) -> TrainResult:
    """Fine-tune `cfg.base_model` on `train_path`, validating on `val_path`; everything lands in `out_dir`.

    Without `val_path`, a validation set is held out of `train_path` by duplicate group and prompt (`split_train_val`).
    Without `out_dir`, the run folder is `<workspace>/runs/<run id>` (or `runs/<run id>`).
    """
    import torch

    from studio.models import resolve_base_model
    from studio.runs import Run

    reporter = reporter or Reporter(quiet=True)
    out_dir = Path(out_dir) if out_dir is not None else None
    train_path = Path(train_path)
    for p in (train_path, *([Path(val_path)] if val_path else [])):
        if not p.is_file():
            raise StudioError(f"data file {p} does not exist; pass the JSONL written by `studio export --format openai`.")
    cuda = torch.cuda.is_available()
    prepare_process(cuda)
    method = cfg.resolved_method(cuda)
    optimizer_name, substituted = cfg.resolved_optimizer(method, cuda)
    substitutions = [substituted] if substituted else []
    if method == "qlora" and not cuda:
        substitutions.append("4-bit NF4 matmuls run on CPU through bitsandbytes' CPU backend (bf16 compute)")
    if cfg.attn_implementation == "flash_attention_2" and not attn_implementation(cfg, cuda).startswith("flash"):
        substitutions.append("flash attention needs CUDA; SDPA used")
    if resume and out_dir is None:
        raise StudioError("--resume needs --out: the run folder whose checkpoints to continue from.")
    checkpoint = latest_checkpoint(out_dir) if resume else None
    if resume and checkpoint is None:
        raise StudioError(f"--resume: no checkpoint in {out_dir / CHECKPOINTS}; run without --resume to start.")
    threads = set_threads(cfg, cuda)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    base_dir = resolve_base_model(cfg.base_model)
    bf16 = cpu_bf16(cfg, cuda)
    if bf16 and method == "lora":
        substitutions.append("bf16 matmuls on this CPU (native bf16); the frozen base is held in bf16, the adapter "
                             "in fp32 (--cpu-bf16 off: fp32)")
    run_config = {**cfg.model_dump(), "method": method, "optimizer": optimizer_name, "threads": threads,
                  "device": "cuda" if cuda else "cpu", "cpu_bf16": bf16}
    with Run("train", out_dir=out_dir, workspace=workspace, config=run_config) as run:
        out_dir = run.dir
        for note in substitutions:
            reporter.info(f"on this machine: {note}")
            log.info("substituted: %s", note)
        run.extra["substitutions"] = substitutions
        if val_path is None:
            run.add_input(train_path, role="train+validation (split by duplicate group and prompt)")
            train_path, val_path = split_train_val(train_path, out_dir / "data")
        else:
            run.add_input(train_path, role="train")
            run.add_input(val_path, role="validation")
        run.extra |= {"base_model": cfg.base_model, "base_model_path": str(base_dir), "method": method}
        tokenizer = load_tokenizer(base_dir)
        t0 = time.perf_counter()
        train_ex, train_stats = load_split(tokenizer, train_path, cfg.max_length, cfg.overlong)
        val_ex, val_stats = load_split(tokenizer, val_path, cfg.max_length, cfg.overlong)
        run.time("tokenize", time.perf_counter() - t0)
        _report_data(reporter, train_stats, val_stats, cfg.max_length)
        t0 = time.perf_counter()
        model = load_trainable_model(base_dir, method, cfg, cuda)
        run.time("load_model", time.perf_counter() - t0)
        trainer = Trainer(cfg, model, tokenizer, train_ex, val_ex, out_dir, optimizer_name, cuda, reporter)
        _announce_plan(reporter, trainer, cfg)
        fingerprint = data_fingerprint(run.inputs[0]["sha256"], cfg)
        if checkpoint is not None:
            trainer.load_checkpoint(checkpoint, fingerprint)
            run.extra["resumed_from"] = str(checkpoint)
            reporter.info(f"resuming from {checkpoint} (step {trainer.step} of {trainer.total_steps})")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        trainer.run(fingerprint, stop_after_steps=stop_after_steps)
        metrics = _metrics(trainer, cfg, method, train_stats, val_stats, cuda)
        run.time("train", trainer.train_seconds)
        merged = None
        if trainer.finished and cfg.merge:
            merged = merge_adapter(base_dir, out_dir / "adapter", out_dir / "merged", method, cfg, cuda)
            metrics["merged_dir"] = str(merged)
        _write_metrics(out_dir, metrics)
        plot_losses(trainer.history, trainer.evals, out_dir / "loss_curve.png")
        _count(run, train_stats)
        run.extra["metrics"] = _summary(metrics)
        run.extra["data"] = {"train": train_stats.to_dict(), "validation": val_stats.to_dict()}
        run.add_output(out_dir / "metrics.json")
        if (out_dir / "adapter" / "adapter_model.safetensors").exists():
            run.add_output(out_dir / "adapter" / "adapter_model.safetensors", role="adapter")
    return TrainResult(out_dir, out_dir / "adapter", merged, metrics)


def _announce_plan(reporter: Reporter, t: Trainer, cfg: TrainConfig) -> None:
    """Say before training how many optimizer steps the run takes, and warn when that is too few to learn."""
    from training.config import MIN_STEPS

    planned = sum(len(t.train_ex[i].input_ids) for batch in t.plan for i in batch)
    reporter.info(f"plan: {t.total_steps} optimizer steps of {cfg.grad_accum} micro-batch(es), "
                  f"~{planned / max(1, t.total_steps):,.0f} tokens a step; warm-up {t.warmup_steps} step(s), "
                  f"validation every {t.eval_every}")
    if t.total_steps < MIN_STEPS:
        reporter.warn(f"only {t.total_steps} optimizer step(s): too few for the adapter to learn much. Lower "
                      f"--grad-accum (now {cfg.grad_accum}) or --batch-size (now {cfg.batch_size}), or raise "
                      f"--epochs (now {cfg.epochs:g}) or --max-steps.")


def _report_data(reporter: Reporter, train: DataStats, val: DataStats, max_length: int) -> None:
    for name, s in (("train", train), ("validation", val)):
        dropped = ", ".join(f"{n} {r}" for r, n in s.dropped.items()) or "none dropped"
        reporter.info(f"{name}: {s.kept}/{s.records} conversations, {s.tokens:,} tokens ({s.label_tokens:,} assistant); "
                      f"{dropped}; {s.truncated} truncated; {s.quarantined} malformed")
        if s.dropped or s.truncated:
            hint = ("raise --max-length or set overlong: truncate to keep more" if s.dropped
                    else "their ends are cut; raise --max-length to keep them whole")
            reporter.warn(f"{name}: {sum(s.dropped.values())} conversation(s) dropped and {s.truncated} truncated at "
                          f"max_length {max_length}; {hint}.")


def _count(run, stats: DataStats) -> None:
    run.counts.input = stats.records
    run.counts.kept = stats.kept
    run.counts.quarantined = stats.quarantined
    for reason, n in stats.dropped.items():
        run.counts.drop(reason, n)


def _metrics(t: Trainer, cfg: TrainConfig, method: str, train: DataStats, val: DataStats, cuda: bool) -> dict[str, Any]:
    import torch

    first_val = t.evals[0]["val_loss"] if t.evals else None
    metrics = {
        "base_model": cfg.base_model, "method": method, "steps": t.step, "total_steps": t.total_steps,
        "stopped_early": t.stopped_early, "finished": t.finished,
        "val_loss_before": first_val, "val_loss_best": None if math.isinf(t.best_val) else round(t.best_val, 6),
        "val_loss_last": t.evals[-1]["val_loss"] if t.evals else None, "best_step": t.best_step,
        "train_loss_last": t.history[-1]["loss"] if t.history else None,
        "tokens": t.tokens, "train_seconds": round(t.train_seconds, 3),
        "tokens_per_second": round(t.tokens / t.train_seconds, 2) if t.train_seconds else None,
        "trainable_parameters": sum(p.numel() for p in t.params),
        "data": {"train": train.to_dict(), "validation": val.to_dict()},
        "history": t.history, "evals": t.evals,
    }
    if cuda:
        metrics["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return metrics


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("steps", "val_loss_before", "val_loss_best", "val_loss_last", "train_loss_last", "tokens_per_second",
            "stopped_early", "peak_gpu_memory_gib")
    return {k: metrics[k] for k in keys if k in metrics}


def _write_metrics(out_dir: Path, metrics: dict[str, Any]) -> None:
    with atomic_open(out_dir / "metrics.json") as fh:
        json.dump(metrics, fh, indent=1)
        fh.write("\n")


def plot_losses(history: list[dict], evals: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if history:
        ax.plot([h["step"] for h in history], [h["loss"] for h in history], label="train loss", lw=1.2)
    if evals:
        ax.plot([e["step"] for e in evals], [e["val_loss"] for e in evals], "o-", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats / assistant token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
