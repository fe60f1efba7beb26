"""`studio judge DATASET`: the synth LLM judge's rubric over any data set (real or synthetic), resumable.

Each example's request and answer go through the same rubric (`judge.v<N>.txt`), backends, request log and
PII redaction as a synth run: with a remote backend the texts are redacted before they are sent, and every
answered request is logged at once, so `--resume` after a kill sends only what never got an answer.
Writes judged.parquet (every input row and column, plus `q_judge` in 0–1 and the four 1–5 `judge_*` rubric
scores; null where the judge's answer could not be read), unjudged.jsonl (those rows' reasons and the raw
replies) and manifest.json. `score` with `judge: true` folds `q_judge` into `quality`.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from studio.atomic import atomic_open, write_parquet_atomic
from studio.console import Reporter
from studio.errors import StudioError
from studio.runs import Run
from studio.schema import prompt_text, response_text
from studio.workspace import Workspace
from synth.backends import BackendConfig, OpenAIBackend
from synth.generators.base import Candidate, Redactor
from synth.judge import CRITERIA, RUBRIC_COLUMNS, Judge
from synth.runner import RESUME_MAY_CHANGE, CachedChat, RequestLog, bind_job, run_folder

#: Examples judged per round: bounds the coroutines alive at once and paces the progress bar.
BATCH = 256


class JudgeJob(BaseModel):
    """What decides the judge requests of a run (saved with the run; compared on --resume)."""

    model_config = ConfigDict(extra="forbid")
    inputs: list[str] = Field(default_factory=list)
    backend: BackendConfig = Field(default_factory=BackendConfig)
    max_tokens: int = Field(64, ge=16)
    redact: bool = True
    prompts_dir: str | None = None

    def request_shaping(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for key in RESUME_MAY_CHANGE:
            data["backend"].pop(key, None)
        return data


def judge_dataset(job: JudgeJob, rows: list[dict[str, Any]], backend: OpenAIBackend, out_dir: Path | None = None,
                  workspace: Workspace | None = None, reporter: Reporter | None = None, resume: bool = False,
                  redactor: Redactor | None = None, inputs: list[Path] | None = None) -> Run:
    """Score every row (studio schema) with the rubric; write judged.parquet and the manifest; return the Run."""
    from synth.prompts import PromptLibrary

    reporter = reporter or Reporter(quiet=True)
    if backend.is_remote and job.redact and redactor is None:
        raise StudioError("a remote backend needs a PII redactor before sending data; pass one, or turn "
                          "redaction off explicitly with --no-redact.")
    run = Run("judge", out_dir=run_folder(out_dir, workspace, resume), workspace=workspace,
              config=job.model_dump(mode="json"))
    bind_job(run, job.request_shaping(), resume, what="judge")
    judge = Judge(PromptLibrary([Path(job.prompts_dir)] if job.prompts_dir else []), max_tokens=job.max_tokens)
    with run:
        for path in inputs or []:
            run.add_input(path)
        remote = backend.is_remote
        run.extra["privacy"] = {"backend_remote": remote, "pii_redacted_before_sending": bool(remote and job.redact),
                                "redaction_turned_off_by_user": bool(remote and not job.redact)}
        if remote and not job.redact:
            reporter.warn("PII redaction is OFF: raw examples are sent to the remote endpoint.")
        t0 = time.perf_counter()
        cands = _candidates(rows, redactor if remote and job.redact else None)
        run.time("prepare", time.perf_counter() - t0)
        request_log = RequestLog(run.dir / "responses")
        chat = CachedChat(backend, request_log)
        if request_log.loaded:
            reporter.info(f"resuming: {request_log.loaded} answered requests found in {request_log.folder}")
        t0 = time.perf_counter()
        try:
            with reporter.progress("judging", total=len(cands), unit="examples") as advance:
                asyncio.run(_judge_all(judge, chat, backend, cands, advance))
        finally:
            request_log.close()
            backend.close()
        run.time("judge", time.perf_counter() - t0)
        judged = _write_outputs(run, rows, cands)
        run.counts.input = run.counts.kept = len(rows)
        run.extra.update({
            "judge": {"template": judge.template.label, "judged": judged, "unjudged": len(rows) - judged},
            "backend": backend.describe(),
            "requests": {"sent": chat.stats.sent, "answered_from_log": chat.stats.from_log,
                         "failed_after_retries": chat.stats.failed, "log_entries_at_start": request_log.loaded},
            "usage": backend.usage.to_dict(backend.price),
        })
    return run


def _candidates(rows: list[dict[str, Any]], redactor: Redactor | None) -> list[Candidate]:
    """One judge candidate per row (a user turn and an assistant turn); texts redacted first when asked."""
    texts = [t for r in rows for t in (prompt_text(r["messages"]), response_text(r["messages"]))]
    if redactor is not None and texts:
        texts = redactor(texts)
    cands = []
    for i in range(len(rows)):
        prompt, response = texts[2 * i], texts[2 * i + 1]
        cand = Candidate(i, "judge", messages=[{"role": "user", "content": prompt},
                                               {"role": "assistant", "content": response}])
        if not response.strip():
            cand.quarantine("no assistant answer to judge", None)
        cands.append(cand)
    return cands


async def _judge_all(judge: Judge, chat: CachedChat, backend: OpenAIBackend, cands: list[Candidate],
                     advance) -> None:
    try:
        for start in range(0, len(cands), BATCH):
            batch = cands[start:start + BATCH]
            await judge.score(chat, batch)
            advance(len(batch))
    finally:
        await backend.aclose()


def _write_outputs(run: Run, rows: list[dict[str, Any]], cands: list[Candidate]) -> int:
    """judged.parquet (the rows plus the judge's columns) and unjudged.jsonl; returns how many were judged."""
    import polars as pl

    added = ("q_judge", *RUBRIC_COLUMNS)
    frame = pl.DataFrame(rows, infer_schema_length=None).drop(added, strict=False)
    scores = [c.meta.get("judge") if c.quarantine_reason is None else None for c in cands]
    columns = {"q_judge": pl.Series([c.meta.get("q_judge") if s else None for c, s in zip(cands, scores, strict=True)],
                                    dtype=pl.Float64)}
    for crit, col in zip(CRITERIA, RUBRIC_COLUMNS, strict=True):
        columns[col] = pl.Series([s[crit] if s else None for s in scores], dtype=pl.Int8)
    frame = frame.with_columns(**columns)
    write_parquet_atomic(frame, run.dir / "judged.parquet")
    run.add_output(run.dir / "judged.parquet", rows=frame.height)
    with atomic_open(run.dir / "unjudged.jsonl") as fh:
        for row, cand in zip(rows, cands, strict=True):
            if cand.quarantine_reason is not None:
                fh.write(json.dumps({"id": row.get("id"), "source": row.get("source"), "reason": cand.quarantine_reason,
                                     "raw": cand.raw or ""}, ensure_ascii=False) + "\n")
    run.add_output(run.dir / "unjudged.jsonl")
    return sum(s is not None for s in scores)
