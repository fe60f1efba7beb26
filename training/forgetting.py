"""Forgetting check for `studio eval`: did the fine-tune cost the model its general ability?

A general-capability set ships with the studio (`training/checks/general_heldout.jsonl`: 32 of self-instruct's
user-oriented instructions with expert answers, Apache-2.0, built by `scripts/build_forgetting_set.py`; the studio
never trains on it). The base model (adapter off) and the fine-tuned model (adapter on) are scored on it as in
`training.evaluate` — assistant-token perplexity and ROUGE-L of greedy answers — and the paired bootstrap
(conversations resampled, both models on the same resample) gives a 95 % interval of each change.

Flagged ("forgot") when the whole interval lies beyond a tolerance: perplexity after / before above
1 + PPL_TOLERANCE, or ROUGE-L after − before below −ROUGE_TOLERANCE. So noise on 32 conversations is never
called forgetting, and a change too small to matter is not either, however certain.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.evaluate import BOOTSTRAP_SAMPLES, EvalSettings, ModelScores, Variant, score_model

GENERAL_SET = Path(__file__).resolve().parent / "checks" / "general_heldout.jsonl"
PPL_TOLERANCE = 0.10
"""A rise of general perplexity by more than 10 % (the whole 95 % interval of the ratio above 1.10)."""
PACKED_TOKENS = 512
ROUGE_TOLERANCE = 0.02
"""A fall of general ROUGE-L F1 by more than 0.02 (the whole 95 % interval below −0.02)."""


@dataclass
class ForgettingCheck:
    """Scores each variant of the model on the general set; with a before/after pair, judges the change."""

    data: Path = GENERAL_SET
    max_examples: int | None = None
    generate_examples: int | None = None
    """Conversations also answered for ROUGE-L (None: all; 0: perplexity only, a few seconds on CPU, where
    generation costs ~1 s per answer per variant on 2 cores)."""
    max_new_tokens: int = 32
    batch_size: int = 16
    name: str = "forgetting"

    def run(self, model, tokenizer, variants: list[Variant], settings: EvalSettings, device) -> dict[str, Any]:
        from training.data import read_conversations

        conversations, _ = read_conversations(self.data)
        conversations = conversations[:self.max_examples] if self.max_examples else conversations
        # max_length is the token budget of one packed perplexity batch here: the set's conversations are short
        sub = EvalSettings(max_examples=None, max_new_tokens=self.max_new_tokens, batch_size=self.batch_size,
                           max_length=max(settings.max_length, PACKED_TOKENS))
        scores = []
        for label, context in variants:
            with context():
                scores.append(score_model(label, model, tokenizer, conversations, sub, device,
                                          generate_first=self.generate_examples))
        rouge = bool(scores[0].rouge)
        result: dict[str, Any] = {"data": str(self.data), "examples": len(conversations),
                                  "generated": len(scores[0].rouge),
                                  "scores": {s.label: {"perplexity": round(s.perplexity, 4),
                                                       "rouge_l": round(s.rouge_l, 4) if rouge else None} for s in scores}}
        if len(scores) == 2:
            result |= judge(*scores)
        return result

    def report(self, result: dict[str, Any]) -> str:
        import html

        rows = "".join(f"<tr><th>{html.escape(label)}</th><td>{v['perplexity']}</td><td>{v['rouge_l']}</td></tr>"
                       for label, v in result["scores"].items())
        out = (f"<h2>Forgetting check</h2><p>General-capability set: {result['examples']} conversations of "
               f"{html.escape(Path(result['data']).name)} (self-instruct user-oriented tasks, never trained on). "
               f"Flagged when the whole 95 % interval of the change is beyond the tolerance: perplexity ratio above "
               f"{1 + PPL_TOLERANCE:.2f} or ROUGE-L change below −{ROUGE_TOLERANCE}.</p>"
               f"<table><tr><th></th><th>perplexity</th><th>ROUGE-L</th></tr>{rows}</table>")
        if "verdict" in result:
            r, d = result["perplexity_ratio"], result.get("rouge_l_change")
            css = "worse" if result["flagged"] else "better"
            rouge = (f"ROUGE-L change on {result['generated']} answers: {d['value']:+} [{d['ci95'][0]:+}, {d['ci95'][1]:+}]"
                     if d else "ROUGE-L not computed (perplexity only)")
            out += (f"<p>Perplexity after / before: {r['value']} [{r['ci95'][0]}, {r['ci95'][1]}]; {rouge}. "
                    f'<span class="{css}">{html.escape(result["verdict"])}</span></p>')
        return out


def judge(before: ModelScores, after: ModelScores, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap of the perplexity ratio and the ROUGE-L change, and the verdict against the tolerances."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = len(before.nll_sums)
    idx = rng.integers(0, n, size=(samples, n))

    def ppl(s: ModelScores):
        return np.exp(np.asarray(s.nll_sums)[idx].sum(1) / np.maximum(np.asarray(s.token_counts)[idx].sum(1), 1))

    ratio = ppl(after) / ppl(before)
    r_lo, r_hi = (float(np.percentile(ratio, q)) for q in (2.5, 97.5))
    out: dict[str, Any] = {
        "perplexity_ratio": {"value": round(after.perplexity / before.perplexity, 4), "ci95": [round(r_lo, 4), round(r_hi, 4)]},
        "tolerance": {"perplexity_ratio": 1 + PPL_TOLERANCE, "rouge_l_change": -ROUGE_TOLERANCE}}
    reasons = []
    if r_lo > 1 + PPL_TOLERANCE:
        reasons.append(f"general perplexity rose by more than {PPL_TOLERANCE:.0%} (ratio ≥ {r_lo:.2f})")
    if before.rouge:
        m = len(before.rouge)
        gidx = rng.integers(0, m, size=(samples, m))
        change = np.asarray(after.rouge)[gidx].mean(1) - np.asarray(before.rouge)[gidx].mean(1)
        d_lo, d_hi = (float(np.percentile(change, q)) for q in (2.5, 97.5))
        out["rouge_l_change"] = {"value": round(after.rouge_l - before.rouge_l, 4), "ci95": [round(d_lo, 4), round(d_hi, 4)]}
        if d_hi < -ROUGE_TOLERANCE:
            reasons.append(f"general ROUGE-L fell by more than {ROUGE_TOLERANCE} (by ≥ {-d_hi:.3f})")
    verdict = ("FORGETTING: " + "; ".join(reasons)) if reasons else "no forgetting beyond the tolerance"
    return out | {"flagged": bool(reasons), "verdict": verdict}
