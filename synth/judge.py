"""LLM-as-judge: a written rubric scores an example 1–5 on accuracy, relevance, clarity and usefulness.

`q_judge` is the rubric mean mapped onto 0–1 ((mean − 1) / 4), the scale of every other `q_*` signal and
the one the `score` step folds into `quality` (`judge: true`); the four raw 1–5 scores are kept as
`judge_<criterion>`. In synth runs, candidates whose rubric mean is below `threshold` are dropped as
`judge_below_threshold`. The default threshold 3.0 ("acceptable" on the rubric) is lenient; AlpaGasus
(Chen et al., 2024) kept ChatGPT-rated examples ≥ 4.5 of 5 with a strong judge. How well a judge model
agrees with a known preference is measured by bench/judge_agreement.py (figures in bench/README.md): the
bundled 135M model does not judge better than chance, so synth's local default leaves it off and gates on
the `score` step's quality signals instead. The rubric is the versioned template `judge.v<N>.txt`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from studio.schema import prompt_text, response_text
from synth.generators.base import Candidate, ChatFn, GenSettings
from synth.parsing import ParseError, parse_json_object
from synth.prompts import PromptLibrary

CRITERIA = ("accuracy", "relevance", "clarity", "usefulness")
RUBRIC_COLUMNS = tuple(f"judge_{c}" for c in CRITERIA)
DEFAULT_THRESHOLD = 3.0
#: Longest request or answer text put into one judge prompt, in characters (~1,000 tokens together): keeps
#: the prompt inside a small model's context slot; the cut is marked in the prompt.
MAX_TEXT_CHARS = 2000
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {c: {"type": "integer", "enum": [1, 2, 3, 4, 5]} for c in CRITERIA},
    "required": list(CRITERIA),
    "additionalProperties": False,
}


def rubric_scores(obj: dict[str, Any]) -> dict[str, int]:
    """The four 1–5 scores from a judge reply; ParseError when one is missing or out of range."""
    scores = {}
    for c in CRITERIA:
        try:
            value = int(round(float(obj[c])))
        except (KeyError, TypeError, ValueError):
            raise ParseError(f"judge output has no numeric {c!r}") from None
        if not 1 <= value <= 5:
            raise ParseError(f"judge score {c}={value} is outside 1-5")
        scores[c] = value
    return scores


def q_judge(scores: dict[str, int]) -> float:
    """The rubric mean on the 0–1 scale of the other quality signals."""
    return round((sum(scores.values()) / len(scores) - 1) / 4, 4)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + " [...cut]"


class Judge:
    def __init__(self, prompts: PromptLibrary, threshold: float = DEFAULT_THRESHOLD, max_tokens: int = 64) -> None:
        self.template = prompts.get("judge")
        self.threshold = threshold
        self.settings = GenSettings(max_tokens=max_tokens, temperature=0.0)

    async def score(self, chat: ChatFn, candidates: list[Candidate]) -> None:
        await asyncio.gather(*(self._one(chat, c) for c in candidates if c.ok))

    async def _one(self, chat: ChatFn, cand: Candidate) -> None:
        prompt = self.template.render(instruction=_clip(prompt_text(cand.messages)),
                                      response=_clip(response_text(cand.messages)))
        reply = await chat(self.settings.request(prompt, cand.index, schema=JUDGE_SCHEMA), stage="judge")
        if reply.error:
            cand.quarantine(f"judge: {reply.error}", None)
            return
        try:
            scores = rubric_scores(parse_json_object(reply.text))
        except ParseError as err:
            cand.quarantine(f"unparseable judge output: {err}", reply.text)
            return
        cand.meta["judge"] = {"template": self.template.label, **scores}
        cand.meta["q_judge"] = q_judge(scores)
        if sum(scores.values()) / len(scores) < self.threshold:
            cand.drop("judge_below_threshold")
