"""Document-grounded QA: documents → chunks → a question the chunk answers → the answer from the chunk.

Two plain-text calls per pair (template `grounded_qa` asks for a question, `grounded_qa_answer` answers it
from the chunk): small local models follow two short instructions far better than one JSON request.

Chunking: paragraphs (blank-line separated) packed greedily up to CHUNK_CHARS characters, so a chunk stays
well inside a small model's context; a paragraph longer than that is cut at sentence ends.
Groundedness check (a lexical support test in the spirit of RAGAS faithfulness, without a second model
call): at least GROUNDED_MIN_OVERLAP of the answer's content words (lower-cased, ≥ 3 letters, not stop
words) must occur in the chunk, else the pair is dropped as `not_grounded`. Each example records its
document id, chunk id and the overlap in meta.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Any, ClassVar

from synth.generators.base import Candidate, ChatFn, Generator
from synth.parsing import clean_text

CHUNK_CHARS = 700
GROUNDED_MIN_OVERLAP = 0.6
FOCI = ("", "Ask about a specific number, limit or deadline if the passage has one.",
        "Ask what a customer should do in a specific situation.", "Ask about an exception or condition.",
        "Start the question with 'Can I'.", "Start the question with 'How long'.",
        "Ask as a worried customer.", "Ask about the cost or price if the passage names one.")
_STOP = frozenset("""the and for are but not you your with this that from have has had was were will would can
could should may might must our their they them its into about what when where which who how why does did
any all each per than then there these those been being also only more most such own same some very""".split())
_WORD = re.compile(r"[a-z0-9][a-z0-9'-]{2,}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def chunk_document(text: str, max_chars: int = CHUNK_CHARS) -> list[str]:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    pieces: list[str] = []
    for p in paragraphs:
        if len(p) <= max_chars:
            pieces.append(p)
            continue
        current = ""
        for sentence in _SENTENCE_END.split(p):
            if current and len(current) + len(sentence) + 1 > max_chars:
                pieces.append(current)
                current = ""
            current = f"{current} {sentence}".strip()
        if current:
            pieces.append(current)
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + len(piece) + 2 <= max_chars:
            chunks[-1] = f"{chunks[-1]}\n\n{piece}"
        else:
            chunks.append(piece)
    return chunks


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def grounded_overlap(answer: str, chunk: str) -> float:
    """Share of the answer's content words that occur in the chunk (1.0 for an answer with none)."""
    words = content_words(answer)
    if not words:
        return 0.0
    vocab = set(content_words(chunk))
    return sum(w in vocab for w in words) / len(words)


class GroundedQA(Generator):
    name: ClassVar[str] = "grounded-qa"

    def __init__(self, documents: list[dict[str, str]], *args: Any, chunk_chars: int = CHUNK_CHARS,
                 min_overlap: float = GROUNDED_MIN_OVERLAP, **kwargs: Any) -> None:
        """`documents`: [{"id", "text", "source"}] as `studio.readers.read_inputs` gives them."""
        super().__init__(*args, **kwargs)
        self.template = self.prompts.get("grounded_qa")
        self.answer_template = self.prompts.get("grounded_qa_answer")
        self.min_overlap = min_overlap
        self.chunk_chars = chunk_chars
        self.chunks = self._chunk(documents)
        if not self.chunks:
            raise ValueError("grounded-qa needs at least one non-empty document")

    def _chunk(self, documents: list[dict[str, str]]) -> list[dict[str, str]]:
        chunks = []
        for doc in documents:
            for k, text in enumerate(chunk_document(doc["text"], self.chunk_chars)):
                digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
                chunks.append({"doc_id": doc["id"], "chunk_id": f"{doc['id']}:{k}:{digest}", "text": text,
                               "source": doc.get("source", "")})
        return chunks

    def redact_inputs(self, redactor) -> None:
        super().redact_inputs(redactor)
        texts = redactor([c["text"] for c in self.chunks])
        self.chunks = [{**c, "text": t} for c, t in zip(self.chunks, texts, strict=True)]

    async def generate(self, chat: ChatFn, indices: list[int]) -> list[Candidate]:
        return list(await asyncio.gather(*(self._one(chat, i) for i in indices)))

    async def _one(self, chat: ChatFn, index: int) -> Candidate:
        chunk = self.chunks[index % len(self.chunks)]
        focus = FOCI[(index // len(self.chunks)) % len(FOCI)]
        prompt = self.template.render(chunk=chunk["text"], focus=focus, guidance=self.feedback.guidance(index))
        cand = Candidate(index, self.template.label, meta=self.lineage(
            self.template, doc_id=chunk["doc_id"], chunk_id=chunk["chunk_id"], doc_source=chunk["source"]))
        cand.meta["answer_template"] = self.answer_template.label
        reply = await chat(self.settings.request(prompt, index, max_tokens=min(64, self.settings.max_tokens)),
                           stage="grounded-qa:question")
        if reply.error:
            return cand.quarantine(reply.error, None)
        question = clean_text(reply.text).split("\n")[0].strip()
        if "?" not in question:
            return cand.quarantine("unparseable output: no question", reply.text)
        question = question[: question.rindex("?") + 1]
        answer_prompt = self.answer_template.render(chunk=chunk["text"], question=question)
        reply = await chat(self.settings.request(answer_prompt, index), stage="grounded-qa:answer")
        if reply.error:
            return cand.quarantine(reply.error, None)
        answer = clean_text(reply.text)
        if not answer:
            return cand.drop("empty_response")
        overlap = grounded_overlap(answer, chunk["text"])
        cand.meta["grounded_overlap"] = round(overlap, 3)
        if reply.finish_reason == "length":
            cand.meta["truncated"] = True
        if overlap < self.min_overlap:
            return cand.drop("not_grounded")
        cand.messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        return cand
