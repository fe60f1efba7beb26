"""`studio eval`: how well a model answers a held-out chat set, before and after fine-tuning.

Given an adapter folder (from `studio train`), the same loaded weights are scored twice — with the adapter
disabled ("before", the base model) and enabled ("after") — on:

- **perplexity on assistant tokens**: exp(mean NLL of the reference answers given their conversation),
  streamed batch by batch: each batch's logits exist only at supervised positions and are reduced to a sum
  before the next batch runs (`training.loss.supervised_nll`), so memory does not grow with the data set;
- **ROUGE-L F1** (Lin 2004, the `rouge-score` package with stemming) and **exact match** (after
  whitespace/case normalisation) of greedy generations against the reference final assistant turn;
- optionally an **LLM-judge score** (0-1) from any OpenAI-compatible endpoint (off by default).

Writes `eval.json` and a self-contained `report.html` (comparison table, side-by-side generations) to the
run folder, recorded as a `studio.runs.Run(kind="eval")`.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.atomic import atomic_open
from studio.console import Reporter
from studio.errors import StudioError
from studio.workspace import Workspace
from training.data import TokenizedExample, collate, encode_conversation, end_of_turn_ids, read_conversations

log = logging.getLogger("studio.eval")

#: A judge scores (prompt messages, reference, prediction) → 0..1.
Judge = Callable[[list[dict[str, str]], str, str], float]


@dataclass
class EvalSettings:
    max_examples: int | None = 64
    max_new_tokens: int = 64
    batch_size: int = 8
    max_length: int = 1024
    samples_in_report: int = 10
    num_threads: int | None = None


@dataclass
class ModelScores:
    label: str
    perplexity: float
    loss: float
    rouge_l: float
    exact_match: float
    judge: float | None = None
    predictions: list[str] = field(default_factory=list)
    tokens: int = 0

    def row(self) -> dict[str, Any]:
        out = {"perplexity": round(self.perplexity, 4), "loss": round(self.loss, 6), "rouge_l": round(self.rouge_l, 4),
               "exact_match": round(self.exact_match, 4), "assistant_tokens": self.tokens}
        if self.judge is not None:
            out["judge"] = round(self.judge, 4)
        return out


# -------------------------------------------------------------------------------------------- metrics


def split_reference(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], str] | None:
    """(the conversation before its last assistant turn, that turn's text); None without an assistant turn."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] == "assistant":
            return messages[:i], messages[i]["content"]
    return None


def perplexity(model, examples: Iterable[TokenizedExample], pad_id: int, batch_tokens: int, device) -> tuple[float, float, int]:
    """(perplexity, mean NLL, supervised tokens) over examples, consumed lazily in packed batches of ≤ batch_tokens."""
    import torch

    from training.loss import supervised_nll

    total, count = 0.0, 0
    pending: list[TokenizedExample] = []
    used = 0

    def flush() -> None:
        nonlocal total, count
        batch = {k: v.to(device) for k, v in collate(pending, pad_id, packing=True).items()}
        nll, n = supervised_nll(model, batch)
        total += float(nll)
        count += n

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
    if count == 0:
        raise StudioError("no assistant tokens to score; the data has no assistant turns.")
    mean = total / count
    return math.exp(mean), mean, count


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


def exact_match(predictions: list[str], references: list[str]) -> float:
    return sum(_normalize(p) == _normalize(r) for p, r in zip(predictions, references, strict=True)) / max(len(references), 1)


def rouge_l(predictions: list[str], references: list[str]) -> float:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)]
    return sum(scores) / max(len(scores), 1)


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
                device, judge: Judge | None = None) -> ModelScores:
    eot = end_of_turn_ids(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    examples = (encode_conversation(tokenizer, c, eot) for c in conversations)
    ppl, loss, tokens = perplexity(model, examples, pad_id, settings.max_length, device)
    pairs = [split_reference(c) for c in conversations]
    prompts = [p for p, _ in pairs]
    refs = [r for _, r in pairs]
    preds = generate(model, tokenizer, prompts, settings.max_new_tokens, settings.batch_size, device)
    judged = None
    if judge is not None:
        judged = sum(judge(p, r, o) for p, r, o in zip(prompts, refs, preds, strict=True)) / max(len(refs), 1)
    return ModelScores(label, ppl, loss, rouge_l(preds, refs), exact_match(preds, refs), judged, preds, tokens)


# ---------------------------------------------------------------------------------------------- loading


def load_for_eval(model_ref: str, cuda: bool, base_override: str | None = None):
    """(model, tokenizer, base path, is_adapter) for an adapter folder, a merged/plain model folder, or `default`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.models import resolve_base_model

    dtype = torch.bfloat16 if cuda else torch.float32
    path = Path(model_ref)
    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        base_name = base_override or json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
        base_dir = resolve_base_model(base_name)
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
    if cuda:
        model.to("cuda")
    model.eval()
    return model, tokenizer, base_dir, is_adapter


def run_eval(model_ref: str, data_path: str | Path, out_dir: str | Path | None, settings: EvalSettings | None = None, *,
             judge: Judge | None = None, base_override: str | None = None, reporter: Reporter | None = None,
             workspace: Workspace | None = None) -> dict[str, Any]:
    """Score a model (and, for an adapter, its base) on a chat JSONL; write eval.json and report.html."""
    import torch

    from studio.runs import Run

    settings = settings or EvalSettings()
    reporter = reporter or Reporter(quiet=True)
    data_path = Path(data_path)
    if not data_path.is_file():
        raise StudioError(f"evaluation data {data_path} does not exist; pass a chat JSONL (e.g. the validation split).")
    cuda = torch.cuda.is_available()
    torch.set_num_threads(settings.num_threads or (torch.get_num_threads() if cuda else 1))
    device = torch.device("cuda" if cuda else "cpu")
    conversations, quarantined = read_conversations(data_path)
    usable = [c for c in conversations if split_reference(c) is not None and split_reference(c)[0]]
    if settings.max_examples:
        usable = usable[:settings.max_examples]
    if not usable:
        raise StudioError(f"{data_path}: no conversation with a prompt and an assistant answer to evaluate.")
    config = {"model": model_ref, "settings": settings.__dict__, "judge": judge is not None,
              "judge_pii_redacted": getattr(judge, "redact", None) is not None}
    with Run("eval", out_dir=out_dir, workspace=workspace, config=config) as run:
        out_dir = run.dir
        run.add_input(data_path, role="eval")
        model, tokenizer, base_dir, is_adapter = load_for_eval(model_ref, cuda, base_override)
        eot = end_of_turn_ids(tokenizer)
        fitting = [c for c in usable if len(encode_conversation(tokenizer, c, eot).input_ids) <= settings.max_length]
        too_long = len(usable) - len(fitting)
        usable = fitting
        if not usable:
            raise StudioError(f"{data_path}: every conversation is longer than max_length {settings.max_length}.")
        run.extra |= {"model": model_ref, "base_model_path": str(base_dir)}
        scores: list[ModelScores] = []
        t0 = time.perf_counter()
        if is_adapter:
            reporter.info(f"scoring the base model (adapter off) on {len(usable)} conversations ...")
            with model.disable_adapter():
                scores.append(score_model("before (base)", model, tokenizer, usable, settings, device, judge))
            reporter.info("scoring the fine-tuned model (adapter on) ...")
            scores.append(score_model("after (adapter)", model, tokenizer, usable, settings, device, judge))
        else:
            reporter.info(f"scoring {model_ref} on {len(usable)} conversations ...")
            scores.append(score_model(model_ref, model, tokenizer, usable, settings, device, judge))
        run.time("score", time.perf_counter() - t0)
        result = {"model": model_ref, "data": str(data_path), "examples": len(usable), "skipped_too_long": too_long,
                  "scores": {s.label: s.row() for s in scores}}
        with atomic_open(out_dir / "eval.json") as fh:
            json.dump(result, fh, indent=1)
        write_report(out_dir / "report.html", model_ref, data_path, usable, scores, settings.samples_in_report)
        run.counts.input = len(conversations) + quarantined
        run.counts.kept = len(usable)
        run.counts.quarantined = quarantined
        run.counts.drop("longer than max_length", too_long)
        run.counts.drop("not evaluated (no answer, or beyond max_examples)", len(conversations) - len(usable) - too_long)
        run.extra["metrics"] = result["scores"]
        run.add_output(out_dir / "eval.json")
        run.add_output(out_dir / "report.html")
    result["report"] = str(out_dir / "report.html")
    return result


# ---------------------------------------------------------------------------------------------- report


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.35em .7em;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.better{color:#0a7a2f;font-weight:600}.worse{color:#b3261e;font-weight:600}
pre{white-space:pre-wrap;margin:0;font-family:inherit}.prompt{color:#555;font-size:.9em}"""

#: metric → True when higher is better
_METRICS = {"perplexity": False, "loss": False, "rouge_l": True, "exact_match": True, "judge": True}


def write_report(path: Path, model_ref: str, data_path: Path, conversations: list, scores: list[ModelScores],
                 n_samples: int) -> Path:
    """One HTML file with no external assets: metrics table (with change) and side-by-side generations."""
    e = html.escape
    rows = []
    for metric, higher in _METRICS.items():
        values = [s.row().get(metric) for s in scores]
        if all(v is None for v in values):
            continue
        cells = "".join(f'<td class="num">{v if v is not None else "–"}</td>' for v in values)
        if len(scores) == 2 and None not in values:
            delta = values[1] - values[0]
            good = (delta > 0) == higher and delta != 0
            cells += f'<td class="num {"better" if good else "worse" if delta else ""}">{delta:+.4f}</td>'
        rows.append(f"<tr><th>{e(metric)}</th>{cells}</tr>")
    head = "".join(f"<th>{e(s.label)}</th>" for s in scores) + ("<th>change</th>" if len(scores) == 2 else "")
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
ROUGE-L (F1) and exact match compare greedy generations with the reference last assistant turn.</p>
<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>
<h2>Sample generations</h2>
<table><tr>{sample_head}</tr>{''.join(samples)}</table>
</body></html>
"""
    with atomic_open(path) as fh:
        fh.write(doc)
    return path
