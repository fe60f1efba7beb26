"""`TrainConfig`: every setting of `studio train` in one pydantic model, with defaults and their sources.

Loaded from `--config train.yaml` (keys = field names) and overridden by command-line flags. The defaults
follow the QLoRA paper — Dettmers, Pagnoni, Holtzman, Zettlemoyer, "QLoRA: Efficient Finetuning of Quantized
LLMs", NeurIPS 2023 (arXiv:2305.14314), §3-§4 and Appendix B.2 (hyperparameters for 7B-13B models):

| setting | value | source |
|---|---|---|
| 4-bit storage type | NF4 | §3 "4-bit NormalFloat" |
| double quantization | on | §3 "Double Quantization" |
| compute dtype | bfloat16 | §3, Appendix B.2 |
| LoRA targets | all linear layers | §4 "LoRA on all linear transformer block layers are required to match full finetuning" |
| LoRA r / alpha | 64 / 16 | Appendix B.2 |
| optimizer | paged AdamW 32-bit on CUDA | §3 "Paged Optimizers", Appendix B.2 (paging needs CUDA; AdamW on CPU) |
| Adam beta2 | 0.999 | Appendix B.2 |
| max grad norm | 0.3 | Appendix B.2 |
| loss | on target (assistant) tokens only | §5 "train on target" |

Where the paper's settings are sized for 7B-65B models on tens of thousands of examples, the defaults are
sized for what this studio trains on: a few hundred reviewed examples and a small model. With the paper's
batch of 16 and one epoch, 64 examples give 4 optimizer steps, the first spent in warm-up at learning rate 0
(measured: validation loss unchanged). So:

| setting | value | why |
|---|---|---|
| epochs | 3 | Stanford Alpaca and `transformers.TrainingArguments` (3); LIMA trains 1,000 examples for 15 |
| micro-batch | 1 packed row of `max_length` (1,024) tokens | one row of 4,096 tokens spends more time in attention than in the linear layers of a 135M model and holds 4,096² attention scores per head on CPU; 1,024 tokens ≈ 5 instructions |
| grad_accum | 2 (≈ 2k tokens, ≈ 10 examples a step) | 200 examples → ~20 steps an epoch, ~60 in a run |
| learning rate | 1e-3 | small models tolerate and need larger LoRA rates than 7B (SmolLM2's own SFT used 1e-3 on full weights; LoRA with alpha/r = 0.25 scales updates down); measured in bench/README.md `train_cpu` |
| schedule | cosine, warm-up 5 % starting above 0 | Alpaca / TRL examples; the first step never runs at lr 0 |
| validation | ~8 times a run, early stop after 3 without gain, best adapter kept | catches over-fitting on small data |
| LoRA dropout | 0 (QLoRA: 0.1) | on CPU drawing the dropout masks took 20 % of a training step (profiled, bench/README.md `train_cpu`); early stopping on validation loss guards against over-fitting instead; Unsloth's default is 0 too |
| CPU matmuls | bfloat16 where the CPU has native bf16 (AVX512-BF16, AMX) | LoRA on one core: 54 tokens/s in fp32, 89 with bf16 autocast, 126 with the frozen base held in bf16 and no dropout (adapters stay fp32) |
| CPU threads | the cores idle when the run starts | 2 idle cores trained 1.8× faster than 1; under load 1 thread was ~3× faster than 2 (ENVIRONMENT.md), so busy cores are left alone |

A run planned with fewer than `MIN_STEPS` optimizer steps is announced before it starts, with what to change.

Options from the literature that are available but off by default, because they did not lower the validation loss
of the bundled model on 180 instructions (probes in bench/README.md `train_cpu`): `prompt_loss_weight`
(instruction modelling: Shi et al., "Instruction Tuning With Loss Over Instructions", NeurIPS 2024,
arXiv:2405.14394) and `neftune_noise_alpha` (Jain et al., "NEFTune: Noisy Embeddings Improve Instruction
Finetuning", ICLR 2024, arXiv:2310.05914).

Other defaults are ours and say why in their description.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Method = Literal["auto", "qlora", "lora"]
#: Fewer optimizer steps than this is announced before the run starts.
MIN_STEPS = 10
#: Validations in a run when eval_steps is not set.
EVALS_PER_RUN = 8
Optimizer = Literal["auto", "adamw", "paged_adamw_32bit", "paged_adamw_8bit", "adamw_8bit"]


class TrainConfig(BaseModel):
    """Settings of one fine-tuning run (`studio train`). Unknown keys in a YAML file are an error."""

    model_config = ConfigDict(extra="forbid")

    # -- what to train
    objective: Literal["sft", "dpo"] = Field("sft", description="sft: next-token loss on exported chat data; dpo: "
                                             "Direct Preference Optimization on exported preference pairs "
                                             "(`studio export --format dpo`; see `training/dpo.py`).")
    base_model: str = Field("default", description="A local folder with a transformers checkpoint, or `default` "
                            "(the bundled SmolLM2-135M-Instruct, converted once from its GGUF).")
    method: Method = Field("auto", description="qlora (4-bit NF4 base + LoRA; CUDA or CPU through bitsandbytes), lora "
                           "(full-precision base + LoRA; fp32 on CPU, bf16 on CUDA), or auto = qlora on CUDA, lora "
                           "on CPU.")

    # -- LoRA (QLoRA paper, Appendix B.2)
    lora_r: int = Field(64, ge=1, description="LoRA rank (QLoRA: 64).")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling numerator; the update is scaled by alpha/r (QLoRA: 16).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input. 0: on CPU the dropout masks "
                                "took a fifth of each step, and early stopping guards against over-fitting (QLoRA: 0.1).")
    lora_target_modules: str | list[str] = Field("all-linear", description="Modules that get adapters; `all-linear` = "
                                                 "every linear layer of the transformer blocks, not the output head (QLoRA §4).")

    dpo_beta: float = Field(0.1, gt=0, description="DPO: how far the policy may move from the reference (the base, "
                            "adapter off); 0.1 as in the DPO paper and TRL.")

    # -- quantization (QLoRA §3)
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit storage type (QLoRA: NF4).")
    double_quant: bool = Field(True, description="Quantize the quantization constants too (QLoRA: saves ~0.37 bit/param).")
    compute_dtype: Literal["bfloat16", "float16", "float32"] = Field("bfloat16", description="dtype the 4-bit weights "
                                                                    "are dequantized to for matmuls (QLoRA: bf16).")

    # -- optimisation (QLoRA Appendix B.2)
    optimizer: Optimizer = Field("auto", description="auto = paged_adamw_32bit for qlora on CUDA (QLoRA paper), torch "
                                 "AdamW otherwise. paged_* and adamw_8bit need CUDA: on CPU they become AdamW and "
                                 "the run log says so.")
    learning_rate: float = Field(1e-3, gt=0, description="Peak learning rate. 1e-3 suits the bundled 135M model on "
                                 "small data (bench/README.md `train_cpu`); QLoRA used 2e-4 for 7B/13B, 1e-4 above.")
    lr_scheduler: Literal["constant", "cosine", "linear"] = Field("cosine", description="After warmup (Alpaca, TRL "
                                                                   "examples: cosine; QLoRA: constant).")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Fraction of steps with linear warmup; the first step "
                                "already runs at lr/(warmup+1), never at 0.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay on the LoRA weights (QLoRA: 0).")
    adam_beta2: float = Field(0.999, gt=0, lt=1, description="(QLoRA: 0.999).")
    max_grad_norm: float = Field(0.3, gt=0, description="Gradient clipping (QLoRA: 0.3).")
    batch_size: int = Field(1, ge=1, description="Examples per micro-batch (unpacked), or rows of max_length tokens "
                            "per packed micro-batch (1 row = 1,024 tokens by default; raise it on a GPU).")
    grad_accum: int = Field(2, ge=1, description="Micro-batches per optimizer step (default ≈ 2k tokens a step).")
    epochs: float = Field(3.0, gt=0, description="Passes over the training set (ignored when max_steps is set; "
                          "Alpaca and transformers use 3).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps to run; overrides epochs.")
    prompt_loss_weight: float = Field(0.0, ge=0, le=1, description="Weight of the prompt (non-assistant) tokens' "
                                      "next-token loss, added to the assistant tokens' (instruction modelling, Shi et "
                                      "al. 2024; Axolotl's train_on_inputs is 1). Validation and eval score "
                                      "assistant tokens only.")
    neftune_noise_alpha: float = Field(0.0, ge=0, description="NEFTune (Jain et al. 2023): uniform noise of scale "
                                       "alpha/sqrt(length × hidden size) added to the input embeddings of each "
                                       "training example (TRL's neftune_noise_alpha; the paper uses 5). 0 = off.")
    seed: int = Field(42, description="Seeds LoRA init, dropout and the data order (one permutation per epoch).")

    # -- data
    max_length: int = Field(1024, ge=16, description="Longest conversation in tokens after the chat template.")
    overlong: Literal["drop", "truncate"] = Field("drop", description="What to do with a conversation longer than "
                                                  "max_length: drop it (counted), or cut it at max_length (counted; "
                                                  "dropped anyway when no assistant token is left).")
    packing: bool = Field(True, description="Pack several short examples into one row of up to batch_size × max_length "
                          "tokens; position ids restart at each example so no example attends to another "
                          "(padding-free, flash-attention varlen on CUDA, block-diagonal mask with SDPA/eager).")

    # -- memory / speed
    gradient_checkpointing: bool = Field(True, description="Recompute activations in the backward pass: less memory, "
                                         "~30% more compute.")
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = Field(
        "auto", description="auto = flash_attention_2 when installed on CUDA, else sdpa.")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads. Default on CPU: the cores idle when the "
                                    "run starts (measured over 0.5 s, at least 1); 2 idle cores trained 1.8× faster "
                                    "than 1, but a busy core slows every thread (ENVIRONMENT.md).")
    cpu_bf16: Literal["auto", "on", "off"] = Field("auto", description="On CPU, run the matmuls in bfloat16 (LoRA: the "
                                                   "frozen base held in bf16, adapters in fp32). auto = on where the "
                                                   "CPU has native bf16 (AVX512-BF16, AMX): 2.3× faster there.")

    # -- evaluation, checkpoints, early stop
    eval_steps: int | None = Field(None, ge=1, description="Validation loss every this many optimizer steps (and at "
                                   "the end); default: about 8 times a run.")
    save_steps: int | None = Field(None, ge=1, description="Checkpoint (adapter, optimizer, scheduler, RNG, data "
                                   "position) every this many steps; `--resume` continues from the newest. Default: "
                                   "at every validation.")
    save_total_limit: int = Field(2, ge=1, description="Checkpoints kept (older ones are deleted).")
    early_stopping_patience: int | None = Field(3, ge=1, description="Stop after this many validations without "
                                                "improvement; None = never stop early.")
    early_stopping_min_delta: float = Field(0.0, ge=0, description="Smallest val-loss decrease that counts as better.")
    merge: bool = Field(False, description="Also save base + adapter merged into one 16-bit model (merged into the "
                        "dequantized base for qlora, never into 4-bit weights).")

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        from studio.config import load_yaml_mapping

        return cls.validated(load_yaml_mapping(path, what="training config"), source=str(path))

    @classmethod
    def validated(cls, data: dict, source: str = "settings") -> TrainConfig:
        from studio.config import validated

        return validated(cls, data, source, hint=" (see `studio train --help`)")

    def resolved_method(self, cuda: bool) -> str:
        """The method actually used: qlora runs on CUDA and, through bitsandbytes' CPU backend, on CPU."""
        if self.method == "auto":
            return "qlora" if cuda else "lora"
        return self.method

    def resolved_optimizer(self, method: str, cuda: bool) -> tuple[str, str | None]:
        """(optimizer used, why it differs from the one asked for or None): paging and 8-bit states need CUDA."""
        if self.optimizer == "auto":
            return ("paged_adamw_32bit" if method == "qlora" and cuda else "adamw"), None
        if self.optimizer != "adamw" and not cuda:
            return "adamw", f"{self.optimizer} needs CUDA (bitsandbytes paging / 8-bit states); AdamW used on CPU"
        return self.optimizer, None

    def steps_between_evals(self, total_steps: int) -> int:
        return self.eval_steps or max(1, round(total_steps / EVALS_PER_RUN))

    def steps_between_saves(self, total_steps: int) -> int:
        return self.save_steps or self.steps_between_evals(total_steps)
