"""What every generator shares: the candidate it returns, review feedback, the model-call interface.

A generator turns candidate indices (0, 1, 2, ...) into `Candidate`s: a finished conversation with its
lineage meta, or a rejection with a drop reason (a filter said no) or a quarantine reason plus the raw model
text (the output could not be read). Index i always builds the same requests, so a rerun over the same
request log replays exactly (see runner.py). Generators never import curate; their text inputs are redacted
by the runner, through `redact_inputs`, before any prompt is built.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from synth.backends import ChatReply, ChatRequest
from synth.parsing import ParseError, clean_text
from synth.prompts import PromptLibrary, PromptTemplate

Redactor = Callable[[list[str]], list[str]]


class ChatFn(Protocol):
    async def __call__(self, request: ChatRequest, stage: str) -> ChatReply: ...


@dataclass
class Candidate:
    index: int
    template: str
    messages: list[dict[str, str]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    drop_reason: str | None = None
    quarantine_reason: str | None = None
    raw: str | None = None

    @property
    def ok(self) -> bool:
        return self.messages is not None and self.drop_reason is None and self.quarantine_reason is None

    def drop(self, reason: str) -> Candidate:
        self.drop_reason = reason
        return self

    def quarantine(self, reason: str, raw: str | None) -> Candidate:
        self.quarantine_reason = reason
        self.raw = raw
        return self


@dataclass
class Feedback:
    """What review taught: approved examples as few-shot exemplars, rejection reasons as things to avoid; and
    `focus`, one line every prompt gets first (`synth.targeting`: the group an audit found under-represented)."""

    exemplars: list[dict[str, str]] = field(default_factory=list)  # {"prompt": ..., "response": ...}
    avoid: list[str] = field(default_factory=list)
    focus: str = ""

    def guidance(self, index: int, k: int = 2) -> str:
        parts = [self.focus] if self.focus else []
        if self.exemplars:
            picks = random.Random(index).sample(self.exemplars, min(k, len(self.exemplars)))
            shots = "\n".join(f"- {e['prompt']}" + (f" → {e['response']}" if e.get("response") else "") for e in picks)
            parts.append(f"Examples reviewers approved:\n{shots}")
        if self.avoid:
            parts.append("Reviewers rejected outputs for these reasons; avoid them: " + "; ".join(self.avoid[:8]) + ".")
        return "\n".join(parts)

    def redact(self, redactor: Redactor) -> None:
        if self.exemplars:
            flat = [t for e in self.exemplars for t in (e["prompt"], e.get("response", ""))]
            out = redactor(flat)
            self.exemplars = [{"prompt": out[2 * i], "response": out[2 * i + 1]} for i in range(len(self.exemplars))]
        if self.avoid:
            self.avoid = redactor(self.avoid)


@dataclass
class GenSettings:
    max_tokens: int = 256
    temperature: float = 0.7

    def request(self, prompt: str, index: int, schema: dict | None = None, max_tokens: int | None = None,
                system: str | None = None, shots: list[tuple[str, str]] | tuple = ()) -> ChatRequest:
        """One chat request; `shots` are (user, assistant) turns put before the prompt as few-shot examples,
        which small models follow far better than examples described inside one long prompt."""
        messages = [{"role": "system", "content": system}] if system else []
        for user, assistant in shots:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        messages.append({"role": "user", "content": prompt})
        # A per-candidate seed makes sampled outputs differ between candidates yet repeat on a rerun.
        return ChatRequest(messages=messages, max_tokens=max_tokens or self.max_tokens,
                           temperature=self.temperature, seed=index if self.temperature > 0 else None, schema=schema)


def string_schema(*keys: str) -> dict[str, Any]:
    return {"type": "object", "properties": {k: {"type": "string", "minLength": 1} for k in keys},
            "required": list(keys), "additionalProperties": False}


class Generator:
    """Base class: subclasses set `name` and implement `generate(chat, indices)`."""

    name: ClassVar[str] = ""

    def __init__(self, prompts: PromptLibrary, settings: GenSettings, feedback: Feedback | None = None) -> None:
        self.prompts = prompts
        self.settings = settings
        self.feedback = feedback or Feedback()
        self.respond_template = prompts.get("respond")

    async def generate(self, chat: ChatFn, indices: list[int]) -> list[Candidate]:
        raise NotImplementedError

    def redact_inputs(self, redactor: Redactor) -> None:
        """Replace every user-provided text this generator will put into prompts by its redacted form."""
        self.feedback.redact(redactor)

    def describe(self) -> dict[str, Any]:
        return {"generator": self.name}

    @staticmethod
    def lineage(template: PromptTemplate, **extra: Any) -> dict[str, Any]:
        return {"template": template.name, "template_version": template.version, **extra}

    async def respond(self, chat: ChatFn, cand: Candidate, instruction: str,
                      shots: list[tuple[str, str]] | tuple = ()) -> Candidate:
        """Fill the assistant turn for a finished user prompt with the `respond` template; `shots` are
        (request, answer) pairs shown first, each request rendered through the same template."""
        prompt = self.respond_template.render(instruction=instruction,
                                              guidance=self.feedback.guidance(cand.index))
        turns = [(self.respond_template.render(instruction=q, guidance=""), a) for q, a in shots]
        reply = await chat(self.settings.request(prompt, cand.index, shots=turns), stage=f"{self.name}:respond")
        if reply.error:
            return cand.quarantine(reply.error, None)
        answer = clean_text(reply.text)
        if not answer:
            return cand.drop("empty_response")
        cand.messages = [{"role": "user", "content": instruction}, {"role": "assistant", "content": answer}]
        cand.meta["response_template"] = self.respond_template.label
        if reply.finish_reason == "length":
            cand.meta["truncated"] = True
        return cand


def reply_json(reply: ChatReply, cand: Candidate, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The reply's JSON object, or None after quarantining the candidate with the reason and raw text."""
    from synth.parsing import parse_json_object

    if reply.error:
        cand.quarantine(reply.error, None)
        return None
    try:
        return parse_json_object(reply.text, required=keys)
    except ParseError as err:
        cand.quarantine(f"unparseable output: {err}", reply.text)
        return None
