"""GPU benchmark: our QLoRA trainer vs plain TRL `SFTTrainer` + peft + bitsandbytes, packing off and on.

Same data, same model, same sequence length, same LoRA, same effective batch, one run each:
- model: a Llama with TinyLlama-1.1B's shape (hidden 2048, 22 layers, 32 heads, 4 KV heads, intermediate 5632,
  vocab 32000) and random weights (seeded, saved once in bf16 so both trainers load identical weights);
- tokenizer: made locally (word-level, one token per word, ChatML template) — nothing is fetched;
- data: conversations of uniformly random length 64-1024 tokens; the assistant copies the user's words, so the
  loss is learnable and both trainers' losses after N steps can be compared;
- both: 4-bit NF4 + double quant, bf16 compute, LoRA r=16 alpha=16 dropout 0.05 on all linear layers, lr 2e-4,
  8 sequences (or 8 × 1024 packed tokens) per optimizer step, max length 1024, loss on assistant tokens only
  (TRL: conversational prompt/completion data → its default completion-only loss), gradient checkpointing on
  (TRL's default);
- TRL keeps its other defaults (optimizer adamw_torch_fused, its packing strategy "bfd" with padding-free).

Measured per run (each in its own process so peak memory is its own): non-padding tokens/s over steps after the
first 3, peak GPU memory (torch.cuda.max_memory_allocated), mean train loss of the last 5 steps, and MFU =
6 · parameters · tokens/s / the GPU's dense bf16 peak. Prints a table with ours/TRL ratios and writes JSON.

Run on the GPU machine (needs CUDA, bitsandbytes, trl, datasets; see bench/README.md):
    PYTHONPATH=.:$WHEELS python bench/train_gpu.py --steps 30 --json $OUT/train_gpu.json
Budget: about 6-8 minutes on one H100 (4 runs × (load + 30 steps)).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TINYLLAMA = dict(hidden_size=2048, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
                 intermediate_size=5632, vocab_size=32000, max_position_embeddings=2048, rms_norm_eps=1e-5,
                 tie_word_embeddings=False)
CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>", "user", "assistant", "system"]
#: Dense bf16 peak FLOP/s by GPU name fragment (NVIDIA data sheets; H100 SXM/H200: 989 TF, H100 PCIe: 756 TF).
PEAK_BF16 = [("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("A100", 312e12), ("L40S", 362e12)]
RUNS = ["trl-unpacked", "trl-packed", "ours-unpacked", "ours-packed"]
LORA = dict(r=16, alpha=16, dropout=0.05)
BATCH, MAX_LEN, LR, SEED = 8, 1024, 2e-4, 0
WARMUP_STEPS = 3


def require_cuda() -> None:
    try:
        import torch
    except ImportError:
        sys.exit("train_gpu: torch is not installed; this benchmark runs on the GPU machine.")
    if not torch.cuda.is_available():
        sys.exit("train_gpu: no CUDA GPU here; this benchmark needs one (QLoRA 4-bit via bitsandbytes). "
                 "Run it on the GPU machine; nothing was measured.")
    missing = [m for m in ("bitsandbytes", "trl", "datasets", "peft") if __import__("importlib").util.find_spec(m) is None]
    if missing:
        sys.exit(f"train_gpu: missing packages {', '.join(missing)}; install their wheels (bench/README.md).")


# ------------------------------------------------------------------------------------------ fixtures


def make_tokenizer(folder: Path, n_words: int):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for i in range(n_words):
        vocab[f"w{i}"] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # special tokens are matched before this
    core.add_special_tokens(SPECIALS[:6])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="<|im_end|>",
                                  pad_token="<pad>")
    tok.chat_template = CHATML
    tok.save_pretrained(folder)
    return tok


def make_model(folder: Path) -> int:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    config = LlamaConfig(**TINYLLAMA, bos_token_id=1, eos_token_id=5, pad_token_id=3)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def make_data(folder: Path, n: int, tok) -> tuple[Path, Path, Path]:
    """Chat JSONL (ours) and prompt/completion JSONL (TRL) of the same conversations; lengths 64-1024 tokens."""
    rnd = random.Random(SEED)
    words = len(tok) - len(SPECIALS)
    rows = []
    for _ in range(n):
        target = rnd.randint(64, MAX_LEN)
        half = max(1, (target - 12) // 2)  # template overhead ≈ 12 tokens; the answer copies the question
        text = " ".join(f"w{rnd.randrange(words)}" for _ in range(half))
        rows.append([{"role": "user", "content": text}, {"role": "assistant", "content": text}])
    chat = folder / "train.jsonl"
    pc = folder / "train_pc.jsonl"
    val = folder / "val.jsonl"
    chat.write_text("".join(json.dumps({"messages": r}) + "\n" for r in rows))
    pc.write_text("".join(json.dumps({"prompt": r[:1], "completion": r[1:]}) + "\n" for r in rows))
    val.write_text("".join(json.dumps({"messages": r}) + "\n" for r in rows[:16]))
    return chat, pc, val


# ---------------------------------------------------------------------------------------------- runs


def run_ours(work: Path, packing: bool, steps: int) -> dict:
    import torch

    from studio.console import Reporter
    from training.config import TrainConfig
    from training.trainer import train

    cfg = TrainConfig(base_model=str(work / "model"), method="qlora", lora_r=LORA["r"], lora_alpha=LORA["alpha"],
                      lora_dropout=LORA["dropout"], learning_rate=LR, batch_size=BATCH, grad_accum=1,
                      max_length=MAX_LEN, packing=packing, max_steps=steps, eval_steps=10_000, save_steps=10_000,
                      early_stopping_patience=None, warmup_ratio=0.0, seed=SEED, overlong="truncate")
    torch.cuda.reset_peak_memory_stats()
    result = train(cfg, work / "train.jsonl", work / "val.jsonl", work / f"ours-{packing}", reporter=Reporter(quiet=True))
    hist = result.metrics["history"][WARMUP_STEPS:]
    return {"tokens_per_s": sum(h["tokens"] for h in hist) / sum(h["seconds"] for h in hist),
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
            "loss_last5": sum(h["loss"] for h in result.metrics["history"][-5:]) / 5}


def run_trl(work: Path, packing: bool, steps: int) -> dict:
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(work / "model")
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(work / "model", quantization_config=quant, dtype=torch.bfloat16,
                                                 device_map={"": 0})
    data = load_dataset("json", data_files=str(work / "train_pc.jsonl"), split="train")
    args = SFTConfig(output_dir=str(work / f"trl-{packing}"), max_steps=steps, per_device_train_batch_size=BATCH,
                     learning_rate=LR, max_length=MAX_LEN, packing=packing, logging_steps=1, save_strategy="no",
                     report_to="none", seed=SEED, bf16=True, warmup_steps=0)
    lora = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"], target_modules="all-linear",
                      task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok, peft_config=lora)

    counted = {"tokens": 0}
    collate = trainer.data_collator

    def counting_collator(features):
        batch = collate(features)
        mask = batch.get("attention_mask")
        counted["tokens"] += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        return batch

    trainer.data_collator = counting_collator
    marks: list[tuple[float, int]] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            torch.cuda.synchronize()
            marks.append((time.perf_counter(), counted["tokens"]))

    trainer.add_callback(Clock())
    torch.cuda.reset_peak_memory_stats()
    trainer.train()
    (t0, k0), (t1, k1) = marks[WARMUP_STEPS - 1], marks[-1]
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"tokens_per_s": (k1 - k0) / (t1 - t0), "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
            "loss_last5": sum(losses[-5:]) / 5}


def one(name: str, work: Path, steps: int) -> dict:
    packing = name.endswith("-packed")
    t = time.perf_counter()
    result = (run_ours if name.startswith("ours") else run_trl)(work, packing, steps)
    result["wall_s"] = time.perf_counter() - t
    return result


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--examples", type=int, default=600)
    ap.add_argument("--only", choices=RUNS, action="append", help="run only these (repeatable)")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--one", choices=RUNS, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    require_cuda()
    import torch

    if args.one:  # child process: one run, result as the last stdout line
        print("RESULT " + json.dumps(one(args.one, args.work, args.steps)), flush=True)
        return
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="train_gpu-") as tmp:
        work = Path(tmp)
        tok = make_tokenizer(work / "model", n_words=TINYLLAMA["vocab_size"] - len(SPECIALS))
        n_params = make_model(work / "model")
        make_data(work, args.examples, tok)
        gpu = torch.cuda.get_device_name(0)
        peak = next((f for key, f in PEAK_BF16 if key in gpu), 989e12)
        results = {}
        for name in args.only or RUNS:
            proc = subprocess.run([sys.executable, __file__, "--one", name, "--work", str(work), "--steps", str(args.steps)],
                                  capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("RESULT ")), None)
            if line is None:
                print(f"{name} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                continue
            results[name] = json.loads(line.removeprefix("RESULT "))
            results[name]["mfu"] = 6 * n_params * results[name]["tokens_per_s"] / peak
            print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
    header = f"{'run':<15}{'tokens/s':>11}{'peak GiB':>10}{'loss@N':>9}{'MFU':>7}{'wall s':>8}"
    print(f"\n{gpu}, {n_params / 1e9:.2f}B params, {args.steps} steps, batch {BATCH} × max {MAX_LEN}, "
          f"peak bf16 {peak / 1e12:.0f} TFLOP/s\n{header}")
    for name, r in results.items():
        print(f"{name:<15}{r['tokens_per_s']:>11,.0f}{r['peak_gib']:>10.2f}{r['loss_last5']:>9.3f}{r['mfu']:>7.1%}"
              f"{r['wall_s']:>8.0f}")
    for mode in ("unpacked", "packed"):
        ours, trl = results.get(f"ours-{mode}"), results.get(f"trl-{mode}")
        if ours and trl:
            print(f"ours/TRL {mode}: tokens/s ×{ours['tokens_per_s'] / trl['tokens_per_s']:.2f}, "
                  f"peak memory ×{ours['peak_gib'] / trl['peak_gib']:.2f}, loss {ours['loss_last5'] - trl['loss_last5']:+.3f}")
    if "ours-packed" in results and "trl-packed" in results:
        print(f"target (≥2× TRL packed tokens/s): ours packed ×"
              f"{results['ours-packed']['tokens_per_s'] / results['trl-packed']['tokens_per_s']:.2f}")
    print(f"total {time.perf_counter() - t_start:.0f}s")
    if args.json:
        args.json.write_text(json.dumps({"gpu": gpu, "params": n_params, "steps": args.steps, "results": results}, indent=1))


if __name__ == "__main__":
    main()
