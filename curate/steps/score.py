"""score: per-example quality signals as `q_*` columns and one combined `quality` in [0, 1]; drops nothing.

Sits after dedupe and before `filter` (which drops by rules such as `quality >= 0.5`), and before a
semantic dedupe that should keep the best of each group. Each signal family lives in its own module under
`curate/quality/`, which names its source and thresholds:

| columns | module | source |
|---|---|---|
| q_prompt_tokens, q_response_tokens, q_tokens | lengths | SmolLM2 tokenizer; "Long Is More for Alignment" |
| q_dup_line_frac … q_top{2,3,4}gram_frac, q_dup5gram_frac, q_words | repetition | Gopher App. A1 / DataTrove |
| q_alpha_words_frac, q_non_alpha_frac, q_echo | text_shape | Gopher quality filter; Alpaca-cleaned |
| q_refusal, q_boilerplate | refusal | unfiltered-ShareGPT/WizardLM cleaning lists |
| q_lang, q_lang_conf | language | langid.py |
| q_offensive, q_offensive_response | offensive | alt-profanity-check (linear SVM, shipped model) |
| q_ppl, q_ifd | ifd | "From Quantity to Quality" (Li et al. 2023) |
| q_judge (read, not computed) | — | an LLM judge run by synth, when `judge: true` |

`quality` is the product of one factor per family, each in [0, 1] and 1 for an unremarkable example, so
one serious fault (a refusal, heavy repetition, an echoed prompt) sinks the score by itself and the
reason can be read off the q_ columns. Heuristics are Polars expressions over whole batches; the model
signal is batched and truncated (see `max_prompt_tokens`, `max_response_tokens`).
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from curate.quality import ifd, language, lengths, offensive, refusal, repetition, text_shape
from curate.step import Step, StepConfig
from curate.views import view_text
from studio.errors import StudioError


class ScoreConfig(StepConfig):
    model: bool = True
    """Compute the SmolLM2 signals (q_ppl, q_ifd). About 2 forward passes per row on CPU."""
    model_path: str = "default"
    """`default` (bundled SmolLM2-135M-Instruct) or a local transformers causal-LM folder."""
    max_prompt_tokens: int = 128
    """The prompt's last tokens kept for the model signal."""
    max_response_tokens: int = 128
    """The response's first tokens scored by the model signal."""
    model_sample: int | None = None
    """Run the model signal on at most this many rows (a seeded random sample); the others get null q_ppl /
    q_ifd and their `quality` leaves the model factor out. For previews and demos on slow machines."""
    batch_tokens: int = 4096
    bf16: Literal["auto", "on", "off"] = "auto"
    """Run the model signal in bfloat16: `auto` where the CPU multiplies bf16 natively (AVX512-BF16 or AMX; ~2×
    faster, q_ppl 0.4 % from fp32's at the median, 3 % at most), `off` for fp32 everywhere (values that do not depend
    on the machine or on the rows batched together). The dtype used is in the step's stats (`model_dtype`)."""
    threads: int = 0
    """torch threads for the model signal; 0 (default): the cores idle when the step starts (`studio.cpu.auto_threads`:
    one on a busy machine, where a second thread fights the other work)."""
    max_tokens: int = 4096
    """Context length of the model to be trained: longer conversations get a lower score."""
    languages: list[str] = ["en"]
    """Expected languages (ISO 639-1); a confident other language lowers the score. Empty: any."""
    offensive: bool = True
    """Classify every user and assistant turn for offensive language (q_offensive, q_offensive_response); an
    offensive response lowers `quality`. ~1 s to load, then thousands of turns/s."""
    judge: bool = False
    """Fold an existing `q_judge` column (0-1, from an LLM judge run through the synth backends) into
    `quality`. Off by default: a judge needs an LLM endpoint and this step never calls one itself."""


class Score(Step):
    name = "score"
    Config = ScoreConfig
    needs_model = True

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        cfg = self.config
        if cfg.judge and "q_judge" not in df.columns:
            raise StudioError("score: `judge: true` needs a q_judge column; run the LLM judge "
                              "(`studio judge DATASET`) on these examples first, or set judge: false.")
        texts = df.select(view_text("prompt").alias("_p"), view_text("response").alias("_r"), view_text("all").alias("_a"))
        prompt, response = pl.col("_p"), pl.col("_r")

        from studio.models import resolve_base_model

        model_dir = str(resolve_base_model(cfg.model_path))
        tok = lengths.load_tokenizer(model_dir)
        signals = pl.DataFrame({
            "q_prompt_tokens": lengths.token_counts(tok, texts["_p"]),
            "q_response_tokens": lengths.token_counts(tok, texts["_r"]),
            "q_tokens": lengths.token_counts(tok, texts["_a"]),
        })
        shape = texts.select(*text_shape.shape_signals(prompt, response), *refusal.refusal_signals(response))
        lang = language.language_signals(texts.select(pl.concat_str([prompt, response], separator="\n")).to_series())
        parts = [signals, repetition.repetition_signals(texts["_r"]), shape, lang]
        if cfg.offensive:
            parts.append(offensive.offensive_signals(df))
        if cfg.model:
            parts.append(self._model_signals(model_dir, texts["_p"].to_list(), texts["_r"].to_list()))
        scored = pl.concat(parts, how="horizontal")

        factors = [lengths.length_factor(cfg.max_tokens), repetition.repetition_factor(), text_shape.alpha_factor(),
                   text_shape.echo_factor(), refusal.refusal_factor(), language.language_factor(cfg.languages)]
        if cfg.offensive:
            factors.append(offensive.offensive_factor())
        if cfg.model:
            factors.append(ifd.model_factor())
        if cfg.judge:
            factors.append(pl.col("q_judge").cast(pl.Float64).clip(0, 1).fill_null(1.0))
            scored = scored.with_columns(df["q_judge"])
        quality = pl.reduce(lambda a, b: a * b, factors).clip(0, 1).alias("quality")
        scored = scored.with_columns(quality.round(4))
        if cfg.judge:
            scored = scored.drop("q_judge")
        self.stats["quality_mean"] = round(float(scored["quality"].mean() or 0.0), 4)
        self.stats["refusals"] = int(scored["q_refusal"].sum())
        if cfg.offensive:
            self.stats["offensive_rows"] = int((scored["q_offensive"] >= offensive.THRESHOLD).sum())
            self.stats["offensive_responses"] = int((scored["q_offensive_response"] >= offensive.THRESHOLD).sum())
        return df.drop([c for c in scored.columns if c in df.columns]).hstack(scored)

    def _model_signals(self, model_dir: str, prompts: list[str], responses: list[str]) -> pl.DataFrame:
        import numpy as np

        from curate.embeddings import torch_threads
        from studio.console import Reporter

        cfg = self.config
        reporter = self.reporter or Reporter(quiet=True)
        rows = np.arange(len(prompts))
        if cfg.model_sample is not None and len(prompts) > cfg.model_sample:
            rows = np.sort(np.random.default_rng(0).choice(len(prompts), size=cfg.model_sample, replace=False))
        from studio.cpu import auto_threads, use_bf16

        bf16 = use_bf16(cfg.bf16)
        with torch_threads(auto_threads(cfg.threads)):
            tok, model = ifd.load_scorer(model_dir, bf16)
            with reporter.progress("scoring with SmolLM2 (2 passes)", total=2 * rows.size) as advance:
                part = ifd.model_signals(tok, model, [prompts[i] for i in rows], [responses[i] for i in rows],
                                         cfg.max_prompt_tokens, cfg.max_response_tokens, cfg.batch_tokens, advance)
        self.stats["model_rows"] = int(rows.size)
        self.stats["model_dtype"] = "bfloat16" if bf16 else "float32"
        full = pl.DataFrame({"_i": np.arange(len(prompts))})
        return full.join(part.with_columns(pl.Series("_i", rows)), on="_i", how="left").sort("_i").drop("_i")


STEP = Score
