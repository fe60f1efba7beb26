"""Document-grounded QA: documents → chunks → a sentence of the chunk → the question it answers → the answer.

Answer first, then the question (answer-aware question generation, as in SQuAD-style QG): each candidate
takes one fact sentence of one chunk (`evidence_spans`: whole sentences of 8-60 words, not headings, table
rows or the overlap carried from the chunk before; sentences with a number first) and asks the model to turn
it into the question it answers, as JSON whose schema makes it one line ending in "?" (two fixed few-shot
turns from outside the documents show the shape). The answer is then, by `answer`:
- "quote" (default): the sentence itself, markdown emphasis and bullets removed: extractive, so it is
  supported by its chunk by construction. The bundled SmolLM2-135M wrote answers from the chunk that failed
  the groundedness check 25 times in 40 candidates (bench/README.md, synth_generators); quoted, none do.
- "model": a second call answers the question from the chunk (template `grounded_qa_answer`), for capable
  models; the groundedness check then decides.

Checks, each a drop reason: the question must share QUESTION_MIN_SHARED content words with its evidence
sentence (`question_off_evidence`: a question about something else is not answered by it; Gemma 3 270M base
mostly repeats a few-shot question, SmolLM2 with a looser prompt asked about other things); the answer must pass
the groundedness check (`not_grounded`), a lexical support test in the spirit of RAGAS faithfulness without
a second model call: at least GROUNDED_MIN_OVERLAP of the answer's content words (lower-cased, ≥ 3 letters,
not stop words) must occur in the chunk.

Chunking: a document is cut into passages of its pages (PDF page breaks, `\f`) and sections (Markdown `#`
headings, which the PDF/DOCX/HTML readers write too); paragraphs are packed greedily up to CHUNK_CHARS
characters, so a chunk stays well inside a small model's context (a longer paragraph is cut at sentence
ends); a chunk never spans two pages, and spans two sections only while it is short (< a third of
CHUNK_CHARS). Each chunk after the first of a section starts with the section's heading and the last sentences of
the chunk before (up to OVERLAP_CHARS), so a fact cut at a chunk boundary is still whole in one chunk.
Every example records its document, chunk, page (for paged formats), section, the evidence span (character
offsets in the chunk) and the overlap in meta.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from studio.documents import PAGE_BREAK
from synth.generators.base import Candidate, ChatFn, Generator, reply_json
from synth.parsing import clean_text

CHUNK_CHARS = 700
OVERLAP_CHARS = 160
GROUNDED_MIN_OVERLAP = 0.6
#: Content words a question must share with its evidence sentence (one let SmolLM2's unrelated questions through).
QUESTION_MIN_SHARED = 2
EVIDENCE_MIN_WORDS, EVIDENCE_MAX_WORDS = 8, 60
ANSWER_MODES = ("quote", "model")
#: One line, a capital first, ending in the only "?": what a question looks like (enforced by the server's grammar).
QUESTION_SCHEMA = {"type": "object", "required": ["question"], "additionalProperties": False,
                   "properties": {"question": {"type": "string", "pattern": r"^[A-Z][^?\n\"\\]{8,150}[?]$"}}}
QUESTION_MAX_TOKENS = 64
#: Few-shot turns (section, fact, question) from outside the documents, so no document's wording leaks in.
SHOTS = (("Library cards", "Books can be borrowed for 21 days and renewed twice online.",
          "How long can I keep a book I borrowed?"),
         ("Gym membership", "Members who cancel within 14 days of joining get the joining fee back.",
          "Do I get the joining fee back if I cancel right after signing up?"))
_STOP = frozenset("""the and for are but not you your with this that from have has had was were will would can
could should may might must our their they them its into about what when where which who how why does did
any all each per than then there these those been being also only more most such own same some very""".split())
_WORD = re.compile(r"[a-z0-9][a-z0-9'-]{2,}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
#: Sentence ends inside a block: after . ! ? (or ?** closing bold) before a capital, not after an abbreviation
#: such as p.m. or e.g.; and before a list item that a long paragraph's re-flow put inside a line.
_EVIDENCE_END = re.compile(r"(?:(?<![.\s][a-zA-Z]\.)(?<=[.!?])|(?<=[.!?]\*)|(?<=[.!?]\*\*))\s+(?=[\"'(*A-Z0-9])|\s+(?=[-+]\s)")
_ITEM = re.compile(r"^(?:[-*+]|\d+[.)])\s+")
_MARKUP = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+|[*`]")
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


def evidence_spans(chunk: str, heading: str | None = None,
                   skip: set[str] | frozenset = frozenset()) -> list[tuple[int, int]]:
    """(start, end) character offsets in `chunk` of the sentences worth a question: whole sentences of
    EVIDENCE_MIN_WORDS-EVIDENCE_MAX_WORDS words ending in . or !, outside the chunk's `heading` line, Markdown
    headings and table rows, and not in `skip` (sentences an earlier chunk already offered: the carried
    overlap). Sentences with a digit (a limit, price or deadline: what customers ask about most) come first,
    the rest in document order."""
    spans = []
    for block_start, block_end in _blocks(chunk, heading):
        at = block_start
        for part in _EVIDENCE_END.split(chunk[block_start:block_end]):
            at = chunk.index(part, at)
            text = answer_text(part)
            if EVIDENCE_MIN_WORDS <= len(text.split()) <= EVIDENCE_MAX_WORDS and text[-1] in ".!" and text not in skip:
                spans.append((at, at + len(part)))
            at += len(part)
    return sorted(spans, key=lambda span: not any(ch.isdigit() for ch in chunk[span[0]:span[1]]))


def _blocks(chunk: str, heading: str | None) -> list[tuple[int, int]]:
    """(start, end) of the prose blocks of a chunk: paragraphs (hard-wrapped lines joined) and list items;
    headings, the chunk's heading line and table rows are left out."""
    blocks: list[list[int]] = []
    offset, prose = 0, False
    for number, line in enumerate(chunk.splitlines(keepends=True)):
        body = line.strip()
        skipped = not body or "|" in body or bool(_HEADING.match(body)) or (number == 0 and body == heading)
        if not skipped:
            start = offset + line.index(body)
            if prose and not _ITEM.match(body):
                blocks[-1][1] = start + len(body)
            else:
                blocks.append([start, start + len(body)])
        prose = not skipped
        offset += len(line)
    return [(start, end) for start, end in blocks]


def answer_text(sentence: str) -> str:
    """A quoted sentence as an answer: bullet marks and markdown emphasis removed, spaces collapsed."""
    return " ".join(_MARKUP.sub("", sentence).split())


class GroundedQA(Generator):
    name: ClassVar[str] = "grounded-qa"

    def __init__(self, documents: list[dict[str, str]], *args: Any, chunk_chars: int = CHUNK_CHARS,
                 min_overlap: float = GROUNDED_MIN_OVERLAP, answer: str = "quote", **kwargs: Any) -> None:
        """`documents`: [{"id", "text", "source"}] as `studio.readers.read_inputs` gives them; `answer`: quote
        or model (see the module docstring)."""
        super().__init__(*args, **kwargs)
        if answer not in ANSWER_MODES:
            raise ValueError(f"grounded-qa answer must be one of {', '.join(ANSWER_MODES)}, not {answer!r}")
        self.template = self.prompts.get("grounded_qa")
        self.answer_template = self.prompts.get("grounded_qa_answer") if answer == "model" else None
        self.answer_mode = answer
        self.min_overlap = min_overlap
        self.chunk_chars = chunk_chars
        self.chunks = self._with_evidence(self._chunk(documents))
        if not self.chunks:
            raise ValueError("grounded-qa needs at least one document with a whole sentence to ask about")

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
                               "source": doc.get("source", ""), "section": chunk.section,
                               "where": {k: v for k, v in where.items() if v is not None}})
            per_doc.append(chunks)
        return [c for group in itertools.zip_longest(*per_doc) for c in group if c is not None]

    @staticmethod
    def _with_evidence(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Chunks with their evidence spans; a sentence is offered by the first chunk of its document that
        holds it only, and chunks left with none (a table, a list of fragments) are left out."""
        offered: dict[str, set[str]] = {}
        out = []
        for chunk in chunks:
            seen = offered.setdefault(chunk["doc_id"], set())
            spans = evidence_spans(chunk["text"], chunk["section"], seen)
            seen.update(answer_text(chunk["text"][a:b]) for a, b in spans)
            if spans:
                out.append({**chunk, "evidence": spans})
        return out

    def redact_inputs(self, redactor) -> None:
        super().redact_inputs(redactor)
        texts = redactor([c["text"] for c in self.chunks])
        self.chunks = self._with_evidence([{**c, "text": t} for c, t in zip(self.chunks, texts, strict=True)])

    async def generate(self, chat: ChatFn, indices: list[int]) -> list[Candidate]:
        return list(await asyncio.gather(*(self._one(chat, i) for i in indices)))

    def _question_prompt(self, section: str | None, evidence: str, index: int | None = None) -> str:
        guidance = self.feedback.guidance(index) if index is not None else ""
        return self.template.render(section=section or "General", evidence=evidence, guidance=guidance)

    async def _one(self, chat: ChatFn, index: int) -> Candidate:
        chunk = self.chunks[index % len(self.chunks)]
        start, end = chunk["evidence"][(index // len(self.chunks)) % len(chunk["evidence"])]
        evidence = answer_text(chunk["text"][start:end])
        cand = Candidate(index, self.template.label, meta=self.lineage(
            self.template, doc_id=chunk["doc_id"], chunk_id=chunk["chunk_id"], doc_source=chunk["source"],
            **chunk["where"], evidence=[start, end], answer_mode=self.answer_mode))
        shots = [(self._question_prompt(section, fact), json.dumps({"question": q})) for section, fact, q in SHOTS]
        request = self.settings.request(self._question_prompt(chunk["section"], evidence, index), index,
                                        schema=QUESTION_SCHEMA, shots=shots,
                                        max_tokens=min(QUESTION_MAX_TOKENS, self.settings.max_tokens))
        obj = reply_json(await chat(request, stage="grounded-qa:question"), cand, ("question",))
        if obj is None:
            return cand
        question = " ".join(str(obj["question"]).split())
        if "?" not in question:
            return cand.quarantine("unparseable output: no question", json.dumps(obj))
        question = question[: question.index("?") + 1]
        if len(set(content_words(question)) & set(content_words(evidence))) < QUESTION_MIN_SHARED:
            cand.meta["question"] = question
            return cand.drop("question_off_evidence")
        answer = evidence
        if self.answer_template is not None:
            cand.meta["answer_template"] = self.answer_template.label
            reply = await chat(self.settings.request(self.answer_template.render(chunk=chunk["text"], question=question),
                                                     index), stage="grounded-qa:answer")
            if reply.error:
                return cand.quarantine(reply.error, None)
            answer = clean_text(reply.text)
            if not answer:
                return cand.drop("empty_response")
            if reply.finish_reason == "length":
                cand.meta["truncated"] = True
        overlap = grounded_overlap(answer, chunk["text"])
        cand.meta["grounded_overlap"] = round(overlap, 3)
        if overlap < self.min_overlap:
            return cand.drop("not_grounded")
        cand.messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        return cand
