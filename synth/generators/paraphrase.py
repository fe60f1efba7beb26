"""Paraphrase augmentation: the same request in other words, keeping the approved answer.

Candidate i paraphrases example i mod n in style (i // n) mod len(STYLES), so a larger n walks through
styles. A paraphrase is dropped as `not_a_paraphrase` when it equals the original after normalisation or
its ROUGE-L F1 to the original exceeds MAX_ROUGE_L (0.9: near-copies teach nothing; the bound mirrors the
0.7 novelty cut of Self-Instruct, loosened because a paraphrase must stay on the same content).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from studio.schema import normalize_text, prompt_text, response_text
from synth.generators.base import Candidate, ChatFn, Generator
from synth.parsing import clean_text

MAX_ROUGE_L = 0.9
STYLES = ("", "Use a more informal tone.", "Make it shorter.", "Phrase it as a question.")


class Paraphrase(Generator):
    name: ClassVar[str] = "paraphrase"

    def __init__(self, examples: list[dict[str, Any]], *args: Any, **kwargs: Any) -> None:
        """`examples`: rows in the studio schema (id, messages, ...) with a user and an assistant turn."""
        super().__init__(*args, **kwargs)
        self.examples = [{"id": e["id"], "prompt": prompt_text(e["messages"]), "response": response_text(e["messages"])}
                         for e in examples if prompt_text(e["messages"]) and response_text(e["messages"])]
        if not self.examples:
            raise ValueError("paraphrase needs examples with a user and an assistant turn")
        self.template = self.prompts.get("paraphrase")
        from rouge_score import rouge_scorer

        self._scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

    def redact_inputs(self, redactor) -> None:
        super().redact_inputs(redactor)
        n = len(self.examples)
        out = redactor([e["prompt"] for e in self.examples] + [e["response"] for e in self.examples])
        self.examples = [{**e, "prompt": out[i], "response": out[n + i]} for i, e in enumerate(self.examples)]

    async def generate(self, chat: ChatFn, indices: list[int]) -> list[Candidate]:
        return list(await asyncio.gather(*(self._one(chat, i) for i in indices)))

    async def _one(self, chat: ChatFn, index: int) -> Candidate:
        source = self.examples[index % len(self.examples)]
        style = STYLES[(index // len(self.examples)) % len(STYLES)]
        steer = " ".join(x for x in (style, self.feedback.focus) if x)
        prompt = self.template.render(instruction=source["prompt"], style=steer)
        cand = Candidate(index, self.template.label,
                         meta=self.lineage(self.template, seed_ids=[source["id"]], style=style or "plain"))
        reply = await chat(self.settings.request(prompt, index), stage="paraphrase")
        if reply.error:
            return cand.quarantine(reply.error, None)
        text = clean_text(reply.text).split("\n\n")[0].strip()
        if not text:
            return cand.quarantine("unparseable output: no paraphrase", reply.text)
        similarity = self._scorer.score(source["prompt"], text)["rougeL"].fmeasure
        cand.meta["rouge_l_to_source"] = round(similarity, 3)
        if normalize_text(text).lower() == normalize_text(source["prompt"]).lower() or similarity > MAX_ROUGE_L:
            return cand.drop("not_a_paraphrase")
        cand.messages = [{"role": "user", "content": text}, {"role": "assistant", "content": source["response"]}]
        return cand
