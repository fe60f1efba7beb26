"""`studio eval`: how well a model answers a held-out chat set, before and after fine-tuning.

Given an adapter folder (from `studio train`), the same loaded weights are scored twice — with the adapter
disabled ("before", the base model) and enabled ("after") — on:

- **perplexity on assistant tokens**: exp(mean NLL of the reference answers given their conversation),
  streamed batch by batch: each batch's logits exist only at supervised positions and are reduced to a sum
  before the next batch runs (`training.loss.supervised_nll`), so memory does not grow with the data set;
- **ROUGE-L F1** (Lin 2004, the `rouge-score` package with stemming) and **exact match** (after
  whitespace/case normalisation) of greedy generations against the reference final assistant turn;
- optionally an **LLM-judge score** (0-1) from any OpenAI-compatible endpoint (off by default);
- optional **checks** run on the same loaded weights and variants (`EvalCheck`): the forgetting check
  (`training.forgetting`, a general-capability set) and the red-team check (`training.redteam`), each with
  its own section in the report and key in eval.json and the run manifest, and a `flagged` verdict.

Writes `eval.json` and a self-contained `report.html` (comparison table, side-by-side generations) to the
run folder, recorded as a `studio.runs.Run(kind="eval")`.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from studio.atomic import atomic_open
from studio.console import Reporter
from studio.errors import StudioError
from studio.runs import manifest_beside
from studio.workspace import Workspace
from training.data import TokenizedExample, collate, encode_conversation, end_of_turn_ids, read_conversations

log = logging.getLogger("studio.eval")

#: A judge scores (prompt messages, reference, prediction) → 0..1.
Judge = Callable[[list[dict[str, str]], str, str], float]
#: One way to run the loaded weights: (label, context manager factory), e.g. ("before (base)", disable_adapter).
Variant = tuple[str, Callable[[], Any]]


class EvalCheck(Protocol):
    """A check `run_eval` runs on the loaded model after the main scores (see training.forgetting / redteam)."""

    name: str

    def run(self, model, tokenizer, variants: list[Variant], settings: EvalSettings, device) -> dict[str, Any]:
        """JSON-able result; with two variants (before, after) it holds `flagged` and a `verdict` sentence."""

    def report(self, result: dict[str, Any]) -> str:
        """The check's HTML section of report.html."""


@dataclass
class EvalSettings:
    max_examples: int | None = 64
    max_new_tokens: int = 64
    batch_size: int = 8
    max_length: int = 1024
    samples_in_report: int = 10
    num_threads: int | None = None
    ab_pairs: bool = False
    """For an adapter: also write ab_pairs.jsonl, base vs fine-tuned generations as blind pairwise review items
    (the pairwise JSONL shape `studio review load` reads; `studio eval --to-review` queues them)."""


@dataclass
class ModelScores:
    """One model's scores on the eval set, with the per-conversation values the bootstrap resamples."""

    label: str
    nll_sums: list[float]
    token_counts: list[int]
    rouge: list[float]
    exact: list[float]
    judged: list[float] | None = None
    predictions: list[str] = field(default_factory=list)
    intervals: dict[str, list[float]] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return sum(self.token_counts)

    @property
    def loss(self) -> float:
        return sum(self.nll_sums) / max(self.tokens, 1)

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)

    @property
    def rouge_l(self) -> float:
        return sum(self.rouge) / max(len(self.rouge), 1)

    @property
    def exact_match(self) -> float:
        return sum(self.exact) / max(len(self.exact), 1)

    @property
    def judge(self) -> float | None:
        return None if self.judged is None else sum(self.judged) / max(len(self.judged), 1)

    def row(self) -> dict[str, Any]:
        out = {"perplexity": round(self.perplexity, 4), "loss": round(self.loss, 6), "rouge_l": round(self.rouge_l, 4),
               "exact_match": round(self.exact_match, 4), "assistant_tokens": self.tokens}
        if self.judge is not None:
            out["judge"] = round(self.judge, 4)
        for metric, (lo, hi) in self.intervals.items():
            out[f"{metric}_ci95"] = [round(lo, 4), round(hi, 4)]
        return out


#: Bootstrap resamples for the confidence intervals (Efron & Tibshirani 1993: 1,000 for percentile intervals).
BOOTSTRAP_SAMPLES = 1000


def _metric_values(s: ModelScores, idx) -> dict[str, Any]:
    """Each metric on the resampled conversations idx (an int array of shape [B, n]), as arrays of length B."""
    import numpy as np

    nll, tok = np.asarray(s.nll_sums)[idx].sum(1), np.asarray(s.token_counts)[idx].sum(1)
    out = {"perplexity": np.exp(nll / np.maximum(tok, 1)), "rouge_l": np.asarray(s.rouge)[idx].mean(1),
           "exact_match": np.asarray(s.exact)[idx].mean(1)}
    if s.judged is not None:
        out["judge"] = np.asarray(s.judged)[idx].mean(1)
    return out


def bootstrap(scores: list[ModelScores], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict[str, dict[str, Any]]:
    """95 % percentile intervals of every metric, and (for a before/after pair) of the paired difference.

    Conversations are resampled with replacement; both models are scored on the same resample, so the
    interval of the difference reflects the pairing. A difference is `real` when its interval excludes 0.
    Sets each `ModelScores.intervals`; returns {metric: {"delta": d, "ci95": [lo, hi], "real": bool}}.
    """
    import numpy as np

    n = len(scores[0].rouge)
    idx = np.random.default_rng(seed).integers(0, n, size=(samples, n))
    values = [_metric_values(s, idx) for s in scores]
    for s, v in zip(scores, values, strict=True):
        s.intervals = {m: [float(np.percentile(a, 2.5)), float(np.percentile(a, 97.5))] for m, a in v.items()}
    if len(scores) != 2:
        return {}
    before, after = scores[0].row(), scores[1].row()
    diffs = {}
    for metric in values[0]:
        d = values[1][metric] - values[0][metric]
        lo, hi = float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))
        diffs[metric] = {"delta": round(after[metric] - before[metric], 4), "ci95": [round(lo, 4), round(hi, 4)],
                         "real": bool(lo > 0 or hi < 0)}
    return diffs


# -------------------------------------------------------------------------------------------- metrics


def split_reference(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], str] | None:
    """(the conversation before its last assistant turn, that turn's text); None without an assistant turn."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] == "assistant":
            return messages[:i], messages[i]["content"]
    return None


def example_nll(model, examples: Iterable[TokenizedExample], pad_id: int, batch_tokens: int,
                device) -> tuple[list[float], list[int]]:
    """(NLL sum, supervised tokens) of each example, consumed lazily in packed batches of ≤ batch_tokens.

    Each batch's logits exist one chunk at a time and are reduced before the next batch runs, so memory does
    not grow with the data set; per-example sums are what the bootstrap resamples.
    """
    import torch

    from training.loss import token_nll

    sums: list[float] = []
    counts: list[int] = []
    pending: list[TokenizedExample] = []
    used = 0

    def flush() -> None:
        batch = {k: v.to(device) for k, v in collate(pending, pad_id, packing=True).items()}
        per_token = token_nll(model, batch).double().cpu()
        start = 0
        for ex in pending:  # supervised tokens come in example order; each example's first label is IGNORE
            n = ex.n_label_tokens
            sums.append(float(per_token[start:start + n].sum()))
            counts.append(n)
            start += n

    was_training = model.training
    model.eval()
    with torch.no_grad():
        for ex in examples:
            if pending and used + len(ex.input_ids) > batch_tokens:
                flush()
                pending, used = [], 0
            pending.append(ex)
            used += len(ex.input_ids)
        if pending:
            flush()
    model.train(was_training)
    if sum(counts) == 0:
        raise StudioError("no assistant tokens to score; the data has no assistant turns.")
    return sums, counts


def perplexity(model, examples: Iterable[TokenizedExample], pad_id: int, batch_tokens: int, device) -> tuple[float, float, int]:
    """(perplexity, mean NLL, supervised tokens) over examples (see `example_nll`)."""
    sums, counts = example_nll(model, examples, pad_id, batch_tokens, device)
    mean = sum(sums) / sum(counts)
    return math.exp(mean), mean, sum(counts)


def generate(model, tokenizer, prompts: list[list[dict[str, str]]], max_new_tokens: int, batch_size: int,
             device) -> list[str]:
    """Greedy completions of each prompt conversation (left-padded batches, stops at end-of-turn)."""
    import torch

    tokenizer.padding_side = "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop = sorted(end_of_turn_ids(tokenizer))
    outputs: list[str] = []
    model.eval()
    for start in range(0, len(prompts), batch_size):
        texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                 for p in prompts[start:start + batch_size]]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop,
                                 pad_token_id=pad_id)
        outputs += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return [o.strip() for o in outputs]


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def exact_matches(predictions: list[str], references: list[str]) -> list[float]:
    return [float(_normalize(p) == _normalize(r)) for p, r in zip(predictions, references, strict=True)]


def rouge_l_scores(predictions: list[str], references: list[str]) -> list[float]:
    """ROUGE-L F1 of each prediction against its reference (Lin 2004, with stemming)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)]


class OpenAIJudge:
    """LLM-as-judge over any OpenAI-compatible endpoint: asks for a 1-10 rating, returns it scaled to 0..1.

    The API key comes from the environment (OPENAI_API_KEY), never from a file or the command line, and only
    when `base_url` is the endpoint it belongs to (`studio.credentials.api_key_for`).
    """

    PROMPT = ("You grade an assistant's answer against a reference answer. Reply with one integer from 1 (wrong or "
              "useless) to 10 (as correct and complete as the reference) and nothing else.\n\n"
              "Conversation:\n{conversation}\n\nReference answer:\n{reference}\n\nAssistant's answer:\n{prediction}")

    def __init__(self, base_url: str, model: str, timeout: float = 60.0,
                 redact: Callable[[list[str]], list[str]] | None = None) -> None:
        """`redact` (e.g. `curate.pii.PiiRedactor().redact_texts`) replaces personal data in every text sent."""
        from openai import OpenAI

        from studio.credentials import api_key_for

        self.client = OpenAI(base_url=base_url, api_key=api_key_for(base_url) or "none", timeout=timeout,
                             max_retries=2)
        self.model = model
        self.redact = redact

    def __call__(self, prompt: list[dict[str, str]], reference: str, prediction: str) -> float:
        conversation = "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
        if self.redact is not None:
            conversation, reference, prediction = self.redact([conversation, reference, prediction])
        reply = self.client.chat.completions.create(
            model=self.model, temperature=0, max_tokens=4,
            messages=[{"role": "user", "content": self.PROMPT.format(conversation=conversation, reference=reference,
                                                                       prediction=prediction)}])
        found = re.search(r"\d+", reply.choices[0].message.content or "")
        return (min(max(int(found.group()), 1), 10) - 1) / 9 if found else 0.0


def score_model(label: str, model, tokenizer, conversations: list[list[dict[str, str]]], settings: EvalSettings,
                device, judge: Judge | None = None, generate_first: int | None = None) -> ModelScores:
    """Perplexity on every conversation; generation (ROUGE-L, exact match, judge) on the first `generate_first`
    of them (None: all)."""
    eot = end_of_turn_ids(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    examples = (encode_conversation(tokenizer, c, eot) for c in conversations)
    sums, counts = example_nll(model, examples, pad_id, settings.max_length, device)
    pairs = [split_reference(c) for c in conversations[:generate_first]]
    prompts = [p for p, _ in pairs]
    refs = [r for _, r in pairs]
    preds = generate(model, tokenizer, prompts, settings.max_new_tokens, settings.batch_size, device)
    judged = None
    if judge is not None:
        judged = [judge(p, r, o) for p, r, o in zip(prompts, refs, preds, strict=True)]
    return ModelScores(label, sums, counts, rouge_l_scores(preds, refs), exact_matches(preds, refs), judged, preds)


# ---------------------------------------------------------------------------------------------- loading


def load_for_eval(model_ref: str, cuda: bool, base_override: str | None = None):
    """(model, tokenizer, base path, is_adapter) for an adapter folder, a merged/plain model folder, or `default`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.models import resolve_base_model
    from training.trainer import import_bitsandbytes_offline

    import_bitsandbytes_offline()  # peft imports it when installed; never with a hub attempt
    dtype = torch.bfloat16 if cuda else torch.float32
    path = Path(model_ref)
    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        base_name = base_override or json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
        base_dir = resolve_base_model(base_name)
        quantized = _quantization_of_run(path)
        if quantized is not None:  # a qlora adapter is scored on the 4-bit base it was trained against
            from training.trainer import bnb_config, prepare_process

            prepare_process(cuda)
            model = AutoModelForCausalLM.from_pretrained(base_dir, quantization_config=bnb_config(quantized),
                                                         dtype=getattr(torch, quantized.compute_dtype),
                                                         device_map={"": 0 if cuda else "cpu"})
        else:
            model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
        model = PeftModel.from_pretrained(model, path)
        tok_dir = path if (path / "tokenizer_config.json").exists() else base_dir
        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        is_adapter = True
    else:
        base_dir = resolve_base_model(model_ref)
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        is_adapter = False
    if cuda and not getattr(model, "is_loaded_in_4bit", False):
        model.to("cuda")
    model.eval()
    return model, tokenizer, base_dir, is_adapter


def _quantization_of_run(adapter_dir: Path):
    """The TrainConfig of the qlora run that wrote adapter_dir (its run manifest is one folder up), else None."""
    from training.config import TrainConfig

    recorded = (manifest_beside(adapter_dir) or {}).get("config") or {}
    if recorded.get("method") != "qlora":
        return None
    keys = ("quant_type", "double_quant", "compute_dtype")
    return TrainConfig(**{k: recorded[k] for k in keys if k in recorded})


def answerable(conversations: list[list[dict[str, str]]]) -> list[list[dict[str, str]]]:
    """The conversations that can be scored: a prompt, then an assistant answer to compare with."""
    return [c for c in conversations if (ref := split_reference(c)) is not None and ref[0]]


def within_length(tokenizer, conversations: list[list[dict[str, str]]], max_length: int) -> list[list[dict[str, str]]]:
    """The conversations whose chat-template tokens fit `max_length`."""
    eot = end_of_turn_ids(tokenizer)
    return [c for c in conversations if len(encode_conversation(tokenizer, c, eot).input_ids) <= max_length]


def run_eval(model_ref: str, data_path: str | Path, out_dir: str | Path | None, settings: EvalSettings | None = None, *,
             judge: Judge | None = None, base_override: str | None = None, reporter: Reporter | None = None,
             workspace: Workspace | None = None, checks: list[EvalCheck] | None = None) -> dict[str, Any]:
    """Score a model (and, for an adapter, its base) on a chat JSONL, then run `checks` on the same variants;
    write eval.json and report.html."""
    import torch

    from studio.runs import Run

    settings = settings or EvalSettings()
    reporter = reporter or Reporter(quiet=True)
    data_path = Path(data_path)
    if not data_path.is_file():
        raise StudioError(f"evaluation data {data_path} does not exist; pass a chat JSONL (e.g. the validation split).")
    cuda = torch.cuda.is_available()
    from training.cpu import threads_for

    torch.set_num_threads(threads_for(settings.num_threads, cuda))
    device = torch.device("cuda" if cuda else "cpu")
    conversations, quarantined = read_conversations(data_path)
    usable = answerable(conversations)
    if settings.max_examples:
        usable = usable[:settings.max_examples]
    if not usable:
        raise StudioError(f"{data_path}: no conversation with a prompt and an assistant answer to evaluate.")
    checks = checks or []
    config = {"model": model_ref, "settings": settings.__dict__, "judge": judge is not None,
              "judge_pii_redacted": getattr(judge, "redact", None) is not None, "checks": [c.name for c in checks]}
    with Run("eval", out_dir=out_dir, workspace=workspace, config=config) as run:
        out_dir = run.dir
        run.add_input(data_path, role="eval")
        model, tokenizer, base_dir, is_adapter = load_for_eval(model_ref, cuda, base_override)
        fitting = within_length(tokenizer, usable, settings.max_length)
        too_long = len(usable) - len(fitting)
        usable = fitting
        if not usable:
            raise StudioError(f"{data_path}: every conversation is longer than max_length {settings.max_length}.")
        run.extra |= {"model": model_ref, "base_model_path": str(base_dir)}
        scores: list[ModelScores] = []
        t0 = time.perf_counter()
        variants: list[Variant] = ([("before (base)", model.disable_adapter), ("after (adapter)", contextlib.nullcontext)]
                                   if is_adapter else [(model_ref, contextlib.nullcontext)])
        for label, context in variants:
            reporter.info(f"scoring {label} on {len(usable)} conversations ...")
            with context():
                scores.append(score_model(label, model, tokenizer, usable, settings, device, judge))
        run.time("score", time.perf_counter() - t0)
        differences = bootstrap(scores)
        result = {"model": model_ref, "data": str(data_path), "examples": len(usable), "skipped_too_long": too_long,
                  "scores": {s.label: s.row() for s in scores}, "bootstrap_samples": BOOTSTRAP_SAMPLES}
        if differences:
            result["change"] = differences
        for check in checks:
            reporter.info(f"{check.name} check ...")
            t1 = time.perf_counter()
            result[check.name] = check.run(model, tokenizer, variants, settings, device)
            run.time(check.name, time.perf_counter() - t1)
            run.extra[check.name] = {k: v for k, v in result[check.name].items() if k != "answers"}
            if result[check.name].get("flagged"):
                reporter.warn(f"{check.name}: {result[check.name]['verdict']}")
        with atomic_open(out_dir / "eval.json") as fh:
            json.dump(result, fh, indent=1)
        write_report(out_dir / "report.html", model_ref, data_path, usable, scores, settings.samples_in_report,
                     differences, "".join(check.report(result[check.name]) for check in checks))
        run.counts.input = len(conversations) + quarantined
        run.counts.kept = len(usable)
        run.counts.quarantined = quarantined
        run.counts.drop("longer than max_length", too_long)
        run.counts.drop("not evaluated (no answer, or beyond max_examples)", len(conversations) - len(usable) - too_long)
        run.extra["metrics"] = result["scores"]
        if differences:
            run.extra["change"] = differences
        run.add_output(out_dir / "eval.json")
        run.add_output(out_dir / "report.html")
        if settings.ab_pairs and is_adapter:
            ab = write_ab_pairs(out_dir / AB_PAIRS_FILE, usable, scores[0].predictions, scores[1].predictions,
                                base_name=Path(str(base_dir)).name, adapter=model_ref, eval_run=run.run_id)
            run.extra["ab_pairs"] = ab
            run.add_output(out_dir / AB_PAIRS_FILE, rows=ab["items"])
    result["report"] = str(out_dir / "report.html")
    return result


# ---------------------------------------------------------------------------------------------- blind A/B
AB_PAIRS_FILE = "ab_pairs.jsonl"
#: the provenance `model` of each side in ab_pairs.jsonl (the A/B report counts wins of FINE_TUNED over BASE)
BASE_LABEL, FINE_TUNED_LABEL = "base", "fine-tuned"


def train_run_of(adapter: str | Path) -> str | None:
    """The run id of the training run that wrote an adapter folder (its manifest is one folder up)."""
    manifest = Path(adapter).parent / "manifest.json"
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("run_id") if manifest.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def write_ab_pairs(path: Path, conversations: list, base_preds: list[str], tuned_preds: list[str], *, base_name: str,
                   adapter: str, eval_run: str) -> dict[str, Any]:
    """Base and fine-tuned generations for the held-out prompts as blind pairwise items (one JSON object a line:
    messages = the prompt, two candidates with provenance, blind: true). Prompts where both models wrote the
    same text, or one wrote nothing, are left out and counted."""
    train_run = train_run_of(adapter)
    rows, same, empty = [], 0, 0
    for conv, base, tuned in zip(conversations, base_preds, tuned_preds, strict=True):
        prompt, _ = split_reference(conv)
        if not base.strip() or not tuned.strip():
            empty += 1
            continue
        if _normalize(base) == _normalize(tuned):
            same += 1
            continue
        rows.append({"messages": prompt, "blind": True, "source": f"eval:{eval_run}", "origin": "ab",
                     "meta": {"ab_eval_run": eval_run, "ab_train_run": train_run},
                     "candidates": [{"content": base, "model": BASE_LABEL, "run": base_name, "origin": "base"},
                                    {"content": tuned, "model": FINE_TUNED_LABEL, "run": train_run or adapter,
                                     "origin": "adapter"}]})
    with atomic_open(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"items": len(rows), "same_answer": same, "empty_answer": empty, "train_run": train_run}


# ---------------------------------------------------------------------------------------------- report


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.35em .7em;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.better{color:#0a7a2f;font-weight:600}.worse{color:#b3261e;font-weight:600}
pre{white-space:pre-wrap;margin:0;font-family:inherit}.prompt{color:#555;font-size:.9em}"""

#: metric → True when higher is better
_METRICS = {"perplexity": False, "loss": False, "rouge_l": True, "exact_match": True, "judge": True}


def _interval(s: ModelScores, metric: str) -> str:
    found = s.intervals.get(metric)
    return f"<br><small>[{found[0]:.4f}, {found[1]:.4f}]</small>" if found else ""


def write_report(path: Path, model_ref: str, data_path: Path, conversations: list, scores: list[ModelScores],
                 n_samples: int, differences: dict[str, dict[str, Any]] | None = None, checks_html: str = "") -> Path:
    """One HTML file with no external assets: metrics table (with change), the checks' sections and
    side-by-side generations."""
    e = html.escape
    rows = []
    for metric, higher in _METRICS.items():
        values = [s.row().get(metric) for s in scores]
        if all(v is None for v in values):
            continue
        cells = "".join(f'<td class="num">{v if v is not None else "–"}{_interval(s, metric)}</td>'
                        for s, v in zip(scores, values, strict=True))
        change = (differences or {}).get(metric)
        if change is not None:
            delta, (lo, hi) = change["delta"], change["ci95"]
            good = (delta > 0) == higher and delta != 0
            verdict = ("better" if good else "worse") if change["real"] else "no real change"
            css = ("better" if good else "worse") if change["real"] else ""
            cells += (f'<td class="num {css}">{delta:+.4f}<br><small>[{lo:+.4f}, {hi:+.4f}]</small></td>'
                      f"<td>{verdict}</td>")
        rows.append(f"<tr><th>{e(metric)}</th>{cells}</tr>")
    head = "".join(f"<th>{e(s.label)}</th>" for s in scores) + (
        "<th>change [95 % CI]</th><th>verdict</th>" if differences else "")
    samples = []
    for i, conv in enumerate(conversations[:n_samples]):
        prompt, reference = split_reference(conv)
        shown = "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
        cells = "".join(f"<td><pre>{e(s.predictions[i])}</pre></td>" for s in scores)
        samples.append(f'<tr><td><pre class="prompt">{e(shown)}</pre></td><td><pre>{e(reference)}</pre></td>{cells}</tr>')
    sample_head = "<th>conversation</th><th>reference</th>" + "".join(f"<th>{e(s.label)}</th>" for s in scores)
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>eval: {e(model_ref)}</title>
<style>{_CSS}</style></head><body>
<h1>Evaluation of {e(model_ref)}</h1>
<p>Data: {e(str(data_path))} ({len(conversations)} conversations). Perplexity and loss are on assistant tokens;
ROUGE-L (F1) and exact match compare greedy generations with the reference last assistant turn. Brackets are
95 % bootstrap intervals ({BOOTSTRAP_SAMPLES} resamples of the conversations, paired for the change); a change
counts as real only when its interval excludes 0.</p>
<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>
{checks_html}
<h2>Sample generations</h2>
<table><tr>{sample_head}</tr>{''.join(samples)}</table>
</body></html>
"""
    with atomic_open(path) as fh:
        fh.write(doc)
    return path
