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
| LoRA r / alpha / dropout | 64 / 16 / 0.1 | Appendix B.2 (dropout 0.1 for ≤13B, 0.05 for 33B/65B) |
| optimizer | paged AdamW 32-bit | §3 "Paged Optimizers", Appendix B.2 |
| learning rate | 2e-4 (1e-4 for 33B/65B) | Appendix B.2 |
| schedule | constant, warmup ratio 0.03 | Appendix B.2 |
| Adam beta2 | 0.999 | Appendix B.2 |
| max grad norm | 0.3 | Appendix B.2 |
| batch size | 16 | Appendix B.2 (7B/13B) |
| loss | on target (assistant) tokens only | §5 "train on target" |

Other defaults are ours and say why in their description.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from studio.errors import StudioError

Method = Literal["auto", "qlora", "lora"]
Optimizer = Literal["auto", "adamw", "paged_adamw_32bit", "paged_adamw_8bit", "adamw_8bit"]


class TrainConfig(BaseModel):
    """Settings of one fine-tuning run (`studio train`). Unknown keys in a YAML file are an error."""

    model_config = ConfigDict(extra="forbid")

    # -- what to train
    base_model: str = Field("default", description="A local folder with a transformers checkpoint, or `default` "
                            "(the bundled SmolLM2-135M-Instruct, converted once from its GGUF).")
    method: Method = Field("auto", description="qlora (4-bit NF4 base + LoRA, CUDA only), lora (full-precision base "
                           "+ LoRA; fp32 on CPU, bf16 on CUDA), or auto = qlora on CUDA, lora otherwise.")

    # -- LoRA (QLoRA paper, Appendix B.2)
    lora_r: int = Field(64, ge=1, description="LoRA rank (QLoRA: 64).")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling numerator; the update is scaled by alpha/r (QLoRA: 16).")
    lora_dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on the LoRA input (QLoRA: 0.1 up to 13B, 0.05 above).")
    lora_target_modules: str | list[str] = Field("all-linear", description="Modules that get adapters; `all-linear` = "
                                                 "every linear layer of the transformer blocks, not the output head (QLoRA §4).")

    # -- quantization (QLoRA §3)
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit storage type (QLoRA: NF4).")
    double_quant: bool = Field(True, description="Quantize the quantization constants too (QLoRA: saves ~0.37 bit/param).")
    compute_dtype: Literal["bfloat16", "float16", "float32"] = Field("bfloat16", description="dtype the 4-bit weights "
                                                                    "are dequantized to for matmuls (QLoRA: bf16).")

    # -- optimisation (QLoRA Appendix B.2)
    optimizer: Optimizer = Field("auto", description="auto = paged_adamw_32bit for qlora (QLoRA paper), torch AdamW "
                                 "otherwise. paged_* and adamw_8bit need bitsandbytes and CUDA.")
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate (QLoRA: 2e-4 for 7B/13B, 1e-4 for 33B/65B).")
    lr_scheduler: Literal["constant", "cosine", "linear"] = Field("constant", description="After warmup (QLoRA: constant).")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Fraction of steps with linear warmup (QLoRA: 0.03).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay on the LoRA weights (QLoRA: 0).")
    adam_beta2: float = Field(0.999, gt=0, lt=1, description="(QLoRA: 0.999).")
    max_grad_norm: float = Field(0.3, gt=0, description="Gradient clipping (QLoRA: 0.3).")
    batch_size: int = Field(4, ge=1, description="Examples per micro-batch (unpacked), or per_batch × max_length "
                            "tokens per packed micro-batch.")
    grad_accum: int = Field(4, ge=1, description="Micro-batches per optimizer step; batch_size × grad_accum = 16 is "
                            "QLoRA's batch size for 7B/13B.")
    epochs: float = Field(1.0, gt=0, description="Passes over the training set (ignored when max_steps is set).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps to run; overrides epochs.")
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
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads; default 1 on CPU. On 2-core machines "
                                    "1 thread was ~3× faster than 2 under load (ENVIRONMENT.md).")

    # -- evaluation, checkpoints, early stop
    eval_steps: int = Field(50, ge=1, description="Validation loss every this many optimizer steps (and at the end).")
    save_steps: int = Field(50, ge=1, description="Checkpoint (adapter, optimizer, scheduler, RNG, data position) "
                            "every this many steps; `--resume` continues from the newest.")
    save_total_limit: int = Field(2, ge=1, description="Checkpoints kept (older ones are deleted).")
    early_stopping_patience: int | None = Field(3, ge=1, description="Stop after this many validations without "
                                                "improvement; None = never stop early.")
    early_stopping_min_delta: float = Field(0.0, ge=0, description="Smallest val-loss decrease that counts as better.")
    merge: bool = Field(False, description="Also save base + adapter merged into one 16-bit model (merged into the "
                        "dequantized base for qlora, never into 4-bit weights).")

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise StudioError(f"training config {path} does not exist.")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise StudioError(f"{path} is not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise StudioError(f"{path} must hold a mapping of settings (e.g. `learning_rate: 2e-4`).")
        return cls.validated(data, source=str(path))

    @classmethod
    def validated(cls, data: dict, source: str = "settings") -> TrainConfig:
        try:
            return cls(**data)
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "?"
            raise StudioError(f"{source}: field '{field}': {first['msg']} (see `studio train --help`).") from None

    def resolved_method(self, cuda: bool) -> str:
        """The method actually used; qlora without CUDA is a user error."""
        if self.method == "auto":
            return "qlora" if cuda else "lora"
        if self.method == "qlora" and not cuda:
            raise StudioError("qlora needs a CUDA GPU (bitsandbytes 4-bit); on this machine use --method lora.")
        return self.method

    def resolved_optimizer(self, method: str) -> str:
        if self.optimizer == "auto":
            return "paged_adamw_32bit" if method == "qlora" else "adamw"
        return self.optimizer
