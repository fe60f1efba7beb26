"""Document-grounded QA: documents → chunks → a question the chunk answers → the answer from the chunk.

Two plain-text calls per pair (template `grounded_qa` asks for a question, `grounded_qa_answer` answers it
from the chunk): small local models follow two short instructions far better than one JSON request.

Chunking: a document is cut into passages of its pages (PDF page breaks, `\f`) and sections (Markdown `#`
headings, which the PDF/DOCX/HTML readers write too); paragraphs are packed greedily up to CHUNK_CHARS
characters, so a chunk stays well inside a small model's context (a longer paragraph is cut at sentence
ends); a chunk never spans two pages, and spans two sections only while it is short (< a third of
CHUNK_CHARS). Each chunk after the first of a section starts with the section's heading and the last sentences of
the chunk before (up to OVERLAP_CHARS), so a fact cut at a chunk boundary is still whole in one chunk.
Every example records its document, chunk, page (for paged formats) and section in meta.
Groundedness check (a lexical support test in the spirit of RAGAS faithfulness, without a second model
call): at least GROUNDED_MIN_OVERLAP of the answer's content words (lower-cased, ≥ 3 letters, not stop
words) must occur in the chunk, else the pair is dropped as `not_grounded`. Each example records its
document id, chunk id and the overlap in meta.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from studio.documents import PAGE_BREAK
from synth.generators.base import Candidate, ChatFn, Generator
from synth.parsing import clean_text

CHUNK_CHARS = 700
OVERLAP_CHARS = 160
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
_HEADING = re.compile(r"^#{1,6}\s+(.*)$")


@dataclass
class Chunk:
    text: str
    page: int | None = None  # 1-based page of the chunk's first paragraph (PDF); None for unpaged documents
    section: str | None = None  # heading of the chunk's first paragraph


def _paragraphs(text: str, max_chars: int) -> list[tuple[int | None, str | None, str]]:
    """(page, section, paragraph or sentence run ≤ max_chars) in order; headings set the section."""
    pages = text.split(PAGE_BREAK)
    out: list[tuple[int | None, str | None, str]] = []
    section = None
    for number, page in enumerate(pages, start=1):
        for para in (p.strip() for p in re.split(r"\n\s*\n", page)):
            if not para:
                continue
            lines = para.split("\n")
            while lines and _HEADING.match(lines[0]):
                section = _HEADING.match(lines.pop(0)).group(1).strip()
            para = "\n".join(lines).strip()
            if not para:
                continue
            where = (number if len(pages) > 1 else None, section)
            if len(para) <= max_chars:
                out.append((*where, para))
                continue
            current = ""
            for sentence in _SENTENCE_END.split(para):
                if current and len(current) + len(sentence) + 1 > max_chars:
                    out.append((*where, current))
                    current = ""
                current = f"{current} {sentence}".strip()
            if current:
                out.append((*where, current))
    return out


def _tail(text: str, max_chars: int) -> str:
    """The last whole sentences of `text` within max_chars ("" when even the last one is longer)."""
    tail = ""
    for sentence in reversed(_SENTENCE_END.split(text)):
        candidate = f"{sentence} {tail}".strip()
        if len(candidate) > max_chars:
            break
        tail = candidate
    return tail


def chunk_document(text: str, max_chars: int = CHUNK_CHARS, overlap_chars: int = OVERLAP_CHARS) -> list[Chunk]:
    """Passages of ≤ ~max_chars with their page and section; see the module docstring."""
    chunks: list[Chunk] = []
    body = ""
    for page, section, para in _paragraphs(text, max_chars):
        last = chunks[-1] if chunks else None
        same_place = last is not None and last.page == page and (last.section == section or len(body) < max_chars // 3)
        if same_place and len(body) + len(para) + 2 <= max_chars:
            body = f"{body}\n\n{para}"
            chunks[-1].text = _with_heading(chunks[-1].section, body)
            continue
        carry = _tail(body, overlap_chars) if last is not None and last.section == section else ""
        body = f"{carry}\n\n{para}" if carry else para
        chunks.append(Chunk(_with_heading(section, body), page, section))
    return chunks


def _with_heading(section: str | None, body: str) -> str:
    return f"{section}\n\n{body}" if section else body


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

    def _chunk(self, documents: list[dict[str, str]]) -> list[dict[str, Any]]:
        """All chunks, taken round-robin over the documents (first chunk of each, then the second, ...), so the
        first candidates already cover every document."""
        per_doc = []
        for doc in documents:
            chunks = []
            for k, chunk in enumerate(chunk_document(doc["text"], self.chunk_chars)):
                digest = hashlib.sha256(chunk.text.encode("utf-8")).hexdigest()[:8]
                where = {"doc_page": chunk.page, "doc_section": chunk.section}
                chunks.append({"doc_id": doc["id"], "chunk_id": f"{doc['id']}:{k}:{digest}", "text": chunk.text,
                               "source": doc.get("source", ""),
                               "where": {k: v for k, v in where.items() if v is not None}})
            per_doc.append(chunks)
        return [c for group in itertools.zip_longest(*per_doc) for c in group if c is not None]

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
            self.template, doc_id=chunk["doc_id"], chunk_id=chunk["chunk_id"], doc_source=chunk["source"],
            **chunk["where"]))
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
