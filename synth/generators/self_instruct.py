"""Self-Instruct: seed tasks → new instructions → responses, keeping only instructions new to the pool.

Seeds are any example file; the self-instruct / Stanford Alpaca seed-task file (`instruction`, `instances`)
is read natively, and each example keeps its seeds' ids and task names (`seed_ids`, `seed_tasks`).

Filters, as in Self-Instruct (Wang et al., 2023, §2.3 and its `bootstrap_instructions.py`) and Stanford
Alpaca's `generate_instruction.py`:
- novelty: ROUGE-L F-measure against every instruction already in the pool (seeds + accepted) must be
  ≤ 0.7, else the candidate is dropped as `too_similar` (`NoveltyFilter`, ROUGE_L_THRESHOLD);
- keywords: instructions naming things a text model cannot handle (image, graph, file, map, draw, plot,
  go to, video, audio, music, flowchart, diagram, ...) are dropped as `unsupported_keyword`;
- length: ≤ 3 words or > 150 words is dropped as `bad_length`;
- instructions starting with punctuation or a non-ASCII letter, or with "Write a program", are dropped.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any, ClassVar

from synth.generators.base import Candidate, ChatFn, Generator
from synth.parsing import clean_text

ROUGE_L_THRESHOLD = 0.7
MIN_WORDS, MAX_WORDS = 3, 150
BLOCKLIST = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
             "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram")
SEEDS_PER_PROMPT = 4
#: Seeds (of the sampled ones) shown with their answers before the new instruction is answered.
RESPONSE_SHOTS = 2
#: Longest seed answer used as a few-shot answer (characters), to keep the request inside a small context.
SHOT_MAX_CHARS = 600
INSTRUCTION_MAX_TOKENS = 96


class NoveltyFilter:
    """Pool of instructions; a new one is novel when its ROUGE-L F1 to every pool member is ≤ threshold."""

    def __init__(self, pool: list[str] | None = None, threshold: float = ROUGE_L_THRESHOLD) -> None:
        from rouge_score import rouge_scorer

        self.threshold = threshold
        self._scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        self.pool: list[str] = list(pool or [])

    def most_similar(self, text: str) -> tuple[float, str | None]:
        best, best_text = 0.0, None
        for other in self.pool:
            score = self._scorer.score(other, text)["rougeL"].fmeasure
            if score > best:
                best, best_text = score, other
        return best, best_text

    def admit(self, text: str) -> tuple[bool, float]:
        """Add `text` to the pool when novel; returns (admitted, highest similarity)."""
        score, _ = self.most_similar(text)
        if score > self.threshold:
            return False, score
        self.pool.append(text)
        return True, score


def instruction_filter_reason(text: str) -> str | None:
    """The Self-Instruct heuristic filters; None when the instruction passes."""
    words = text.split()
    if len(words) <= MIN_WORDS or len(words) > MAX_WORDS:
        return "bad_length"
    lowered = text.lower()
    if any(re.search(rf"\b{re.escape(w)}\b", lowered) for w in BLOCKLIST):
        return "unsupported_keyword"
    if lowered.startswith("write a program"):
        return "unsupported_keyword"
    if not text[0].isascii() or not text[0].isalnum():
        return "bad_start"
    return None


class SelfInstruct(Generator):
    """New instructions from seed tasks, then their answers, both prompted with seeds as few-shot chat turns.

    The instruction request shows SEEDS_PER_PROMPT sampled seed instructions as earlier assistant turns of
    the same user request (`self_instruct` template), so the model's next turn is one more instruction in
    the seeds' style; the answer request shows RESPONSE_SHOTS of the same seeds with their answers first.
    Small models (the bundled 135M) copy this form far more reliably than a description of the task with
    numbered examples inside one prompt (measured in bench/README.md, synth acceptance).
    """

    name: ClassVar[str] = "self-instruct"

    def __init__(self, seeds: list[dict[str, str]], *args: Any, rouge_threshold: float = ROUGE_L_THRESHOLD,
                 **kwargs: Any) -> None:
        """`seeds`: [{"id": example id, "instruction": text, "response": text, "task": name or None}]."""
        super().__init__(*args, **kwargs)
        if not seeds:
            raise ValueError("self-instruct needs at least one seed task")
        self.seeds = seeds
        self.template = self.prompts.get("self_instruct")
        self.novelty = NoveltyFilter([s["instruction"] for s in seeds], threshold=rouge_threshold)

    def redact_inputs(self, redactor) -> None:
        super().redact_inputs(redactor)
        texts = redactor([t for s in self.seeds for t in (s["instruction"], s.get("response", ""))])
        self.seeds = [{**s, "instruction": texts[2 * i], "response": texts[2 * i + 1]} for i, s in enumerate(self.seeds)]
        self.novelty.pool = [s["instruction"] for s in self.seeds]

    async def generate(self, chat: ChatFn, indices: list[int]) -> list[Candidate]:
        cands = await asyncio.gather(*(self._instruction(chat, i) for i in indices))
        # Novelty is judged in index order so a rerun admits the same instructions.
        for cand in cands:
            if cand.drop_reason is None and cand.quarantine_reason is None:
                admitted, score = self.novelty.admit(cand.meta["instruction"])
                cand.meta["max_rouge_l"] = round(score, 3)
                if not admitted:
                    cand.drop("too_similar")
        pending = [c for c in cands if c.drop_reason is None and c.quarantine_reason is None]
        await asyncio.gather(*(self.respond(chat, c, c.meta.pop("instruction"), self._answer_shots(c.index))
                               for c in pending))
        for c in cands:
            c.meta.pop("instruction", None)
        return list(cands)

    def _picks(self, index: int) -> list[dict[str, str]]:
        return random.Random(index).sample(self.seeds, min(SEEDS_PER_PROMPT, len(self.seeds)))

    def _answer_shots(self, index: int) -> list[tuple[str, str]]:
        """The sampled seeds with a short answer, as (request, answer) turns before the new request."""
        shots = [(s["instruction"], s["response"]) for s in self._picks(index)
                 if s.get("response") and len(s["response"]) <= SHOT_MAX_CHARS]
        return shots[:RESPONSE_SHOTS]

    async def _instruction(self, chat: ChatFn, index: int) -> Candidate:
        picks = self._picks(index)
        ask = self.template.render(guidance=self.feedback.guidance(index))
        lineage = {"seed_ids": [s["id"] for s in picks]}
        if any(s.get("task") for s in picks):
            lineage["seed_tasks"] = [s.get("task") for s in picks]
        cand = Candidate(index, self.template.label, meta=self.lineage(self.template, **lineage))
        reply = await chat(self.settings.request(ask, index, max_tokens=INSTRUCTION_MAX_TOKENS,
                                                 shots=[(ask, s["instruction"]) for s in picks]),
                           stage="self-instruct:instruction")
        if reply.error:
            return cand.quarantine(reply.error, None)
        instruction = clean_text(reply.text)
        if reply.finish_reason == "length":
            return cand.drop("truncated_instruction")
        reason = instruction_filter_reason(" ".join(instruction.split())) if instruction else "bad_length"
        if reason:
            return cand.drop(reason)
        cand.meta["instruction"] = instruction
        return cand
