"""Evol-Instruct: rewrite existing instructions into harder (in-depth) or new, rarer (in-breadth) ones.

In-depth methods and the in-breadth "mutation" follow WizardLM (Xu et al., 2023, §3.1 and Appendix A):
add constraints, deepen, concretise, increase reasoning steps; in-breadth creates a new prompt of the same
domain. The elimination filter follows the paper's §3.2: an evolved instruction is dropped when it equals
its parent (`not_evolved`), copies the rewriter's own words ("given prompt", "rewritten prompt":
`prompt_leak`) or is empty. Each example records the evolution step in meta
(`evolution: {kind, method, parent_id, depth}`).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from studio.schema import normalize_text
from synth.generators.base import Candidate, ChatFn, Generator
from synth.parsing import clean_text

IN_DEPTH_METHODS: dict[str, str] = {
    "add_constraints": "Add one more constraint or requirement to it.",
    "deepen": "If it asks about a certain issue, increase the depth and breadth of the inquiry.",
    "concretize": "Replace general concepts with more specific ones.",
    "increase_reasoning": "If it can be solved with a few simple steps, rewrite it to explicitly ask for "
                          "multiple-step reasoning.",
}
OPERATIONS: list[tuple[str, str]] = [("in-depth", m) for m in IN_DEPTH_METHODS] + [("in-breadth", "breadth")]
LEAK_PHRASES = ("given prompt", "rewritten prompt", "#rewritten", "prompt rewriter", "new prompt")


class EvolInstruct(Generator):
    name: ClassVar[str] = "evol-instruct"

    def __init__(self, parents: list[dict[str, str]], *args: Any, operations: list[str] | None = None,
                 **kwargs: Any) -> None:
        """`parents`: [{"id", "instruction"}] to evolve; `operations`: a subset of method names + "breadth"."""
        super().__init__(*args, **kwargs)
        if not parents:
            raise ValueError("evol-instruct needs at least one instruction to evolve")
        self.parents = parents
        self.ops = [op for op in OPERATIONS if operations is None or op[1] in operations]
        if not self.ops:
            raise ValueError(f"no known evolution operation in {operations}")
        self.depth_template = self.prompts.get("evol_in_depth")
        self.breadth_template = self.prompts.get("evol_in_breadth")

    def redact_inputs(self, redactor) -> None:
        super().redact_inputs(redactor)
        texts = redactor([p["instruction"] for p in self.parents])
        self.parents = [{**p, "instruction": t} for p, t in zip(self.parents, texts, strict=True)]

    def plan(self, index: int) -> tuple[dict[str, str], str, str]:
        parent = self.parents[index % len(self.parents)]
        kind, method = self.ops[(index // len(self.parents)) % len(self.ops)]
        return parent, kind, method

    async def generate(self, chat: ChatFn, indices: list[int]) -> list[Candidate]:
        return list(await asyncio.gather(*(self._one(chat, i) for i in indices)))

    async def _one(self, chat: ChatFn, index: int) -> Candidate:
        parent, kind, method = self.plan(index)
        template = self.depth_template if kind == "in-depth" else self.breadth_template
        values = {"instruction": parent["instruction"], "guidance": self.feedback.guidance(index)}
        if kind == "in-depth":
            values["method"] = IN_DEPTH_METHODS[method]
        cand = Candidate(index, template.label, meta=self.lineage(
            template, seed_ids=[parent["id"]],
            evolution={"kind": kind, "method": method, "parent_id": parent["id"], "depth": 1}))
        reply = await chat(self.settings.request(template.render(**values), index), stage=f"evol-instruct:{kind}")
        if reply.error:
            return cand.quarantine(reply.error, None)
        evolved = clean_text(reply.text).split("\n\n")[0].strip()
        if not evolved:
            return cand.quarantine("unparseable output: no rewritten instruction", reply.text)
        if normalize_text(evolved).lower() == normalize_text(parent["instruction"]).lower():
            return cand.drop("not_evolved")
        if any(p in evolved.lower() for p in LEAK_PHRASES):
            return cand.drop("prompt_leak")
        return await self.respond(chat, cand, evolved)
