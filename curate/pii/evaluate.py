"""Precision, recall and F2 of PII detection on labelled text (`studio pii-eval`, bench/pii.py).

Input: presidio-research's format, a JSON list (or JSONL) of
`{"full_text": str, "spans": [{"entity_type", "entity_value", "start_position", "end_position"}]}`.

Both sides are mapped onto common evaluation classes first (GOLD_CLASSES, PREDICTED_CLASSES): the data set's
STREET_ADDRESS, GPE and ZIP_CODE and our ADDRESS are all LOCATION, DOMAIN_NAME is URL, DATE_OF_BIRTH is
DATE_TIME. Gold labels with no class (TITLE, AGE, ORGANIZATION: not detected by default) count as not-PII, so a
prediction there is a false positive — presidio-research's convention.

Two levels, both reported:
- **token level** (presidio-research's `Evaluator`, which the published 0.618 / 0.845 F2 figures use): tokens are
  runs of letters/digits (`\\w+`); a token takes the class of the span covering it. Per class: TP = gold and
  predicted class both c. Overall "PII" is type-agnostic (a PII token predicted as any PII class is a TP), also
  as in presidio-research; a type-aware micro average is given beside it.
- **span level**: a predicted span matches a gold span of the same class when their character overlap is at least
  half of their union (IoU >= 0.5); each span matches at most once.
F2 weighs recall twice as much as precision: a missed name leaks, a redacted non-name costs little.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import StudioError

GOLD_CLASSES: dict[str, str] = {
    "PERSON": "PERSON", "FIRST_NAME": "PERSON", "LAST_NAME": "PERSON",
    "LOCATION": "LOCATION", "GPE": "LOCATION", "STREET_ADDRESS": "LOCATION", "ADDRESS": "LOCATION",
    "ZIP_CODE": "LOCATION", "CITY": "LOCATION", "COUNTRY": "LOCATION",
    "DATE_TIME": "DATE_TIME", "DATE_OF_BIRTH": "DATE_TIME", "BIRTHDAY": "DATE_TIME",
    "NRP": "NRP", "EMAIL_ADDRESS": "EMAIL_ADDRESS", "PHONE_NUMBER": "PHONE_NUMBER", "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN_CODE", "US_SSN": "US_SSN", "IP_ADDRESS": "IP_ADDRESS", "US_DRIVER_LICENSE": "US_DRIVER_LICENSE",
    "DOMAIN_NAME": "URL", "URL": "URL", "MEDICAL_RECORD_NUMBER": "MEDICAL_RECORD_NUMBER",
    "ORDER_NUMBER": "ORDER_NUMBER", "CLAIM_NUMBER": "CLAIM_NUMBER", "POLICY_NUMBER": "POLICY_NUMBER",
    "ACCOUNT_NUMBER": "ACCOUNT_NUMBER",
}
PREDICTED_CLASSES: dict[str, str] = {"ADDRESS": "LOCATION", "DATE_OF_BIRTH": "DATE_TIME"}
BETA = 2.0
_TOKEN = re.compile(r"\w+")


@dataclass
class Sample:
    text: str
    spans: list[tuple[str, int, int]]  # (gold class, start, end), only classes that are scored


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f2(self) -> float:
        p, r = self.precision, self.recall
        return (1 + BETA**2) * p * r / (BETA**2 * p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4), "f2": round(self.f2, 4),
                "tp": self.tp, "fp": self.fp, "fn": self.fn, "support": self.tp + self.fn}


@dataclass
class EvalResult:
    n_texts: int
    token: dict[str, Score] = field(default_factory=dict)
    token_pii: Score = field(default_factory=Score)
    token_micro: Score = field(default_factory=Score)
    span: dict[str, Score] = field(default_factory=dict)
    span_micro: Score = field(default_factory=Score)
    confusion: Counter = field(default_factory=Counter)  # (gold class or "O", predicted class or "O") -> tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_texts": self.n_texts,
            "token_level": {"overall_pii": self.token_pii.to_dict(), "overall_typed_micro": self.token_micro.to_dict(),
                            "per_type": {k: v.to_dict() for k, v in sorted(self.token.items())}},
            "span_level": {"overall_typed_micro": self.span_micro.to_dict(),
                           "per_type": {k: v.to_dict() for k, v in sorted(self.span.items())}},
            "confusion_tokens": [{"gold": g, "predicted": p, "tokens": n}
                                 for (g, p), n in sorted(self.confusion.items())],
        }

    def confusion_table(self) -> tuple[list[str], list[list[Any]]]:
        """Rows = gold class, columns = predicted class (token counts), "O" = not PII."""
        gold = sorted({g for g, _ in self.confusion} - {"O"}) + ["O"]
        pred = sorted({p for _, p in self.confusion} - {"O"}) + ["O"]
        rows = [[g, *[self.confusion.get((g, p), 0) for p in pred]] for g in gold]
        return ["gold \\ predicted", *pred], rows


def load_labelled(path: str | Path) -> list[Sample]:
    """Read presidio-research labelled samples; a malformed one is a one-sentence error naming it."""
    path = Path(path)
    if not path.is_file():
        raise StudioError(f"{path} does not exist; pass a presidio-research JSON file (full_text + spans).")
    raw = path.read_text(encoding="utf-8")
    try:
        data = json.loads(raw) if raw.lstrip().startswith("[") else [json.loads(line) for line in raw.splitlines()
                                                                        if line.strip()]
    except json.JSONDecodeError as err:
        raise StudioError(f"{path} line {err.lineno}: not valid JSON ({err.msg}).") from None
    samples = []
    for i, item in enumerate(data):
        where = f"{path} sample {i}"
        if not isinstance(item, dict) or not isinstance(item.get("full_text"), str):
            raise StudioError(f"{where}: field full_text is missing or not a string; each sample needs full_text and spans.")
        spans = []
        for j, s in enumerate(item.get("spans") or []):
            try:
                label, start, end = s["entity_type"], int(s["start_position"]), int(s["end_position"])
            except (KeyError, TypeError, ValueError):
                raise StudioError(f"{where} span {j}: needs entity_type, start_position and end_position.") from None
            if not 0 <= start < end <= len(item["full_text"]):
                raise StudioError(f"{where} span {j}: positions {start}-{end} fall outside full_text "
                                  f"({len(item['full_text'])} characters).")
            if label in GOLD_CLASSES:
                spans.append((GOLD_CLASSES[label], start, end))
        samples.append(Sample(item["full_text"], spans))
    return samples


def _token_labels(text: str, spans: list[tuple[str, int, int]]) -> list[str]:
    labels = []
    for m in _TOKEN.finditer(text):
        label = "O"
        for kind, start, end in spans:
            if start < m.end() and m.start() < end:
                label = kind
                break
        labels.append(label)
    return labels


def _iou(a: tuple[str, int, int], b: tuple[str, int, int]) -> float:
    inter = min(a[2], b[2]) - max(a[1], b[1])
    return inter / (max(a[2], b[2]) - min(a[1], b[1])) if inter > 0 else 0.0


def score(samples: list[Sample], predictions: list[list[tuple[str, int, int]]]) -> EvalResult:
    """Score predicted (type, start, end) spans per sample; predicted types are mapped with PREDICTED_CLASSES."""
    result = EvalResult(n_texts=len(samples))
    for sample, predicted in zip(samples, predictions, strict=True):
        pred = [(PREDICTED_CLASSES.get(t, t), s, e) for t, s, e in predicted]
        for g, p in zip(_token_labels(sample.text, sample.spans), _token_labels(sample.text, pred), strict=True):
            result.confusion[(g, p)] += 1
            if g != "O":
                result.token.setdefault(g, Score())
            if p != "O":
                result.token.setdefault(p, Score())
            if g != "O" and p != "O":
                result.token_pii.tp += 1
            elif p != "O":
                result.token_pii.fp += 1
            elif g != "O":
                result.token_pii.fn += 1
            if g == p and g != "O":
                result.token[g].tp += 1
            else:
                if p != "O":
                    result.token[p].fp += 1
                if g != "O":
                    result.token[g].fn += 1
        unmatched = list(pred)
        for gold in sample.spans:
            result.span.setdefault(gold[0], Score())
            best = max((p for p in unmatched if p[0] == gold[0]), key=lambda p: _iou(gold, p), default=None)
            if best is not None and _iou(gold, best) >= 0.5:
                result.span[gold[0]].tp += 1
                unmatched.remove(best)
            else:
                result.span[gold[0]].fn += 1
        for p in unmatched:
            result.span.setdefault(p[0], Score()).fp += 1
    for per_type, micro in ((result.token, result.token_micro), (result.span, result.span_micro)):
        for s in per_type.values():
            micro.tp += s.tp
            micro.fp += s.fp
            micro.fn += s.fn
    return result


def evaluate(samples: list[Sample], predict: Callable[[list[str]], list[list[tuple[str, int, int]]]]) -> EvalResult:
    return score(samples, predict([s.text for s in samples]))
