"""Self-Instruct: seed tasks → new instructions → responses, keeping only instructions new to the pool.

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

from synth.generators.base import Candidate, ChatFn, Generator, reply_json, string_schema

ROUGE_L_THRESHOLD = 0.7
MIN_WORDS, MAX_WORDS = 3, 150
BLOCKLIST = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
             "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram")
SEEDS_PER_PROMPT = 3


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
    name: ClassVar[str] = "self-instruct"

    def __init__(self, seeds: list[dict[str, str]], *args: Any, rouge_threshold: float = ROUGE_L_THRESHOLD,
                 **kwargs: Any) -> None:
        """`seeds`: [{"id": example id, "instruction": text}], the human-written seed tasks."""
        super().__init__(*args, **kwargs)
        if not seeds:
            raise ValueError("self-instruct needs at least one seed task")
        self.seeds = seeds
        self.template = self.prompts.get("self_instruct")
        self.novelty = NoveltyFilter([s["instruction"] for s in seeds], threshold=rouge_threshold)

    def redact_inputs(self, redactor) -> None:
        super().redact_inputs(redactor)
        texts = redactor([s["instruction"] for s in self.seeds])
        self.seeds = [{**s, "instruction": t} for s, t in zip(self.seeds, texts, strict=True)]
        self.novelty.pool = list(texts)

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
        await asyncio.gather(*(self.respond(chat, c, c.meta.pop("instruction")) for c in pending))
        for c in cands:
            c.meta.pop("instruction", None)
        return list(cands)

    async def _instruction(self, chat: ChatFn, index: int) -> Candidate:
        rng = random.Random(index)
        picks = rng.sample(self.seeds, min(SEEDS_PER_PROMPT, len(self.seeds)))
        examples = "\n".join(f"{k + 1}. {s['instruction']}" for k, s in enumerate(picks))
        prompt = self.template.render(examples=examples, guidance=self.feedback.guidance(index))
        cand = Candidate(index, self.template.label,
                         meta=self.lineage(self.template, seed_ids=[s["id"] for s in picks]))
        reply = await chat(self.settings.request(prompt, index, schema=string_schema("instruction")),
                           stage="self-instruct:instruction")
        obj = reply_json(reply, cand, ("instruction",))
        if obj is None:
            return cand
        instruction = " ".join(str(obj["instruction"]).split())
        reason = instruction_filter_reason(instruction)
        if reason:
            return cand.drop(reason)
        cand.meta["instruction"] = instruction
        return cand
