"""Resumable, fault-tolerant synth runs: generate until exactly n examples are kept, never paying twice.

Every answered model call is appended, as soon as it finishes, to a shard file of the run folder
(`responses/shard-NNNN.jsonl`, one JSON line per answer, keyed by the request hash). A run is a
deterministic replay: candidate i always builds the same requests, and a request whose key is already in
the log is answered from it without touching the network. So after `kill -9`, rerunning with `--resume`
replays the finished part from the shards, sends only the requests that never got an answer, and ends with
exactly the requested number of unique examples. Identical requests in flight at once are sent once.

Candidates are made in rounds (the generator, then the judge, then the caller's `postprocess`, e.g. the
curate steps) until n are kept or `max_candidates` were tried. Accounting, checked before the manifest is
written: candidates = kept + dropped (by reason) + quarantined (unparseable output or a request that failed
after all retries, each with its reason and the raw text). Outputs: kept.parquet (studio schema + q_judge +
quality, each null when that gate did not run),
dropped.parquet, quarantine.jsonl, manifest.json.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from studio.atomic import atomic_open, write_parquet_atomic
from studio.console import Reporter
from studio.errors import StudioError
from studio.runs import Run
from studio.schema import make_example
from studio.workspace import Workspace
from synth.backends import BackendConfig, ChatReply, ChatRequest, OpenAIBackend
from synth.generators.base import Candidate, Feedback, Generator, GenSettings, Redactor
from synth.judge import DEFAULT_THRESHOLD, Judge

log = logging.getLogger("synth.runner")

GENERATORS = ("self-instruct", "evol-instruct", "grounded-qa", "paraphrase", "edge-cases")
JOB_FILE = "synth_job.json"
#: Stop after this many candidates per requested example, so a prompt that never passes cannot run forever.
MAX_CANDIDATE_FACTOR = 5
#: Settings that may differ between a run and its --resume without changing any request.
RESUME_MAY_CHANGE = ("concurrency", "timeout_s", "max_retries", "backoff_base_s", "backoff_max_s")

#: (new rows, rows accepted so far) → one (row, drop reason or None) per new row; may rewrite a row (PII).
PostProcess = Callable[[list[dict[str, Any]], list[dict[str, Any]]], list[tuple[dict[str, Any], str | None]]]


class SynthJob(BaseModel):
    """Everything that decides which requests a run sends (saved as synth_job.json; compared on --resume)."""

    model_config = ConfigDict(extra="forbid")
    generator: str
    n: int = Field(ge=1, description="examples to produce")
    inputs: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list, description="edge-cases: categories or reasons")
    backend: BackendConfig = Field(default_factory=BackendConfig)
    max_tokens: int = Field(256, ge=8)
    temperature: float = Field(0.7, ge=0, le=2)
    judge: bool = True
    judge_threshold: float = Field(DEFAULT_THRESHOLD, ge=1, le=5)
    min_quality: float = Field(0.0, ge=0, le=1, description="the caller's score-step gate (0: none)")
    max_candidate_factor: int = Field(MAX_CANDIDATE_FACTOR, ge=1)
    redact: bool = True
    prompts_dir: str | None = None
    options: dict[str, Any] = Field(default_factory=dict, description="generator-specific settings")
    from_review: str | None = None
    target_skew: dict[str, Any] | None = Field(None, description="the audit finding aimed at (synth.targeting)")

    def request_shaping(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for key in RESUME_MAY_CHANGE:
            data["backend"].pop(key, None)
        return data


# ------------------------------------------------------------------------------------------ request log


class RequestLog:
    """Append-only shards of answered requests. Older shards are read, never rewritten; a torn last line
    (the process died mid-write, even inside a multi-byte character) is ignored, and that request is simply
    sent again. Each answer is fsynced before it counts as answered, so a power cut loses none that was paid."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.answered: dict[str, dict[str, Any]] = {}
        shards = sorted(folder.glob("shard-*.jsonl"))
        for shard in shards:
            with open(shard, "rb") as fh:
                for line in fh:
                    try:
                        rec = json.loads(line)
                    except ValueError:  # JSON or UTF-8 cut short
                        continue
                    if isinstance(rec, dict) and isinstance(rec.get("key"), str):
                        self.answered.setdefault(rec["key"], rec)
        self.loaded = len(self.answered)
        self.path = folder / f"shard-{len(shards):04d}.jsonl"
        self._fh = None

    def append(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open for the run
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.answered[record["key"]] = record

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


@dataclass
class CallStats:
    sent: int = 0
    from_log: int = 0
    failed: int = 0
    by_stage: dict[str, dict[str, int]] = field(default_factory=dict)

    def note(self, stage: str, what: str) -> None:
        entry = self.by_stage.setdefault(stage, {"sent": 0, "from_log": 0, "failed": 0})
        entry[what] += 1
        setattr(self, what, getattr(self, what) + 1)


class CachedChat:
    """The model call generators use: answered from the request log when it can, else sent (once)."""

    def __init__(self, backend: OpenAIBackend, log_: RequestLog) -> None:
        self.backend = backend
        self.log = log_
        self.stats = CallStats()
        self._in_flight: dict[str, asyncio.Future] = {}
        self.on_reply: Callable[[], None] | None = None  # e.g. refresh a progress bar's token count

    async def __call__(self, request: ChatRequest, stage: str) -> ChatReply:
        key = request.key(self.backend.model)
        if key in self.log.answered:
            self.stats.note(stage, "from_log")
            return _reply_from_record(self.log.answered[key])
        if key in self._in_flight:
            return await asyncio.shield(self._in_flight[key])
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            reply = await self.backend.complete(request, idempotency_key=key)
            if reply.error is None:
                self.log.append({"key": key, "stage": stage, "model": self.backend.model,
                                 "request": {"messages": request.messages, "max_tokens": request.max_tokens,
                                             "temperature": request.temperature, "seed": request.seed,
                                             "schema": request.schema is not None},
                                 "reply": reply.to_dict(), "at": round(time.time(), 3)})
                self.stats.note(stage, "sent")
            else:
                self.stats.note(stage, "failed")
            if self.on_reply is not None:
                self.on_reply()
            future.set_result(reply)
            return reply
        except BaseException as err:
            future.set_exception(err)
            raise
        finally:
            self._in_flight.pop(key, None)


def _reply_from_record(rec: dict[str, Any]) -> ChatReply:
    r = rec["reply"]
    # Tokens of a replayed answer were paid for in the earlier process; they count there, not again here.
    return ChatReply(text=r["text"], finish_reason=r.get("finish_reason"), attempts=0)


# ------------------------------------------------------------------------------------------ the run


@dataclass
class Outcome:
    kept: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    candidates: int = 0
    acceptance: dict[str, dict[str, int]] = field(default_factory=dict)

    def tally(self, template: str, kept: bool) -> None:
        entry = self.acceptance.setdefault(template, {"candidates": 0, "kept": 0})
        entry["candidates"] += 1
        entry["kept"] += kept


async def generate_examples(generator: Generator, chat: CachedChat, n: int, run_id: str, model: str,
                            judge: Judge | None = None, postprocess: PostProcess | None = None,
                            max_candidates: int | None = None, progress: Callable[[int, int], None] | None = None
                            ) -> Outcome:
    """Rounds of candidates until n examples are kept (or max_candidates tried). Deterministic given the log.

    `progress(newly kept, candidates tried so far)` is called as a round starts and as each example is kept."""
    out = Outcome()
    max_candidates = max_candidates or n * MAX_CANDIDATE_FACTOR
    seen: set[str] = set()
    while len(out.kept) < n and out.candidates < max_candidates:
        need = n - len(out.kept)
        rate = len(out.kept) / out.candidates if out.candidates else 1.0
        size = min(max_candidates - out.candidates, max(need, math.ceil(need / max(rate, 0.25))))
        indices = list(range(out.candidates, out.candidates + size))
        out.candidates += size
        if progress:
            progress(0, out.candidates)
        cands = await generator.generate(chat, indices)
        if judge is not None:
            await judge.score(chat, cands)
        rows: list[tuple[Candidate, dict[str, Any]]] = []
        for cand in cands:
            if cand.quarantine_reason:
                out.quarantine.append({"candidate": cand.index, "generator": generator.name,
                                       "template": cand.template, "reason": cand.quarantine_reason,
                                       "raw": cand.raw or "", "meta": cand.meta})
                out.tally(cand.template, False)
                continue
            if cand.drop_reason or cand.messages is None:
                out.dropped.append(_row(cand, run_id, model, generator.name, cand.drop_reason or "no_output"))
                out.tally(cand.template, False)
                continue
            row = _row(cand, run_id, model, generator.name, None)
            if row["id"] in seen:
                row["drop_reason"] = "duplicate"
                out.dropped.append(row)
                out.tally(cand.template, False)
                continue
            seen.add(row["id"])
            rows.append((cand, row))
        verdicts = postprocess([r for _, r in rows], out.kept) if postprocess and rows else \
            [(r, None) for _, r in rows]
        for (cand, _), (row, reason) in zip(rows, verdicts, strict=True):
            if reason is None and len(out.kept) >= n:
                reason = "surplus"  # over the requested n: kept in dropped.parquet, not lost
            if reason:
                out.dropped.append({**row, "drop_reason": reason})
                out.tally(cand.template, False)
            else:
                out.kept.append(row)
                out.tally(cand.template, True)
                if progress:
                    progress(1, out.candidates)
    return out


def _row(cand: Candidate, run_id: str, model: str, generator: str, reason: str | None) -> dict[str, Any]:
    meta = {"generator": generator, "model": model, **cand.meta}
    messages = cand.messages or []
    row = make_example(messages, source=run_id, origin="synthetic", meta=meta) if messages else \
        {"id": f"candidate-{cand.index}", "messages": [], "origin": "synthetic", "source": run_id,
         "meta": json.dumps(meta, ensure_ascii=False, sort_keys=True)}
    row["q_judge"] = cand.meta.get("q_judge")
    row["quality"] = None  # set by a postprocess that scores (the score step's gate)
    row["drop_reason"] = reason
    return row


def run_synth(job: SynthJob, generator: Generator, backend: OpenAIBackend, out_dir: Path | None = None,
              workspace: Workspace | None = None, reporter: Reporter | None = None, resume: bool = False,
              redactor: Redactor | None = None, postprocess: PostProcess | None = None,
              inputs: list[Path] | None = None) -> Run:
    """Run `job` with `generator` on `backend`; write outputs and the manifest; return the finished Run."""
    reporter = reporter or Reporter(quiet=True)
    run = Run("synth", out_dir=run_folder(out_dir, workspace, resume), workspace=workspace,
              config=job.model_dump(mode="json"))
    bind_job(run, job.request_shaping(), resume)

    remote = backend.is_remote
    if remote and job.redact:
        if redactor is None:
            raise StudioError("a remote backend needs a PII redactor before sending data; pass one, or turn "
                              "redaction off explicitly with --no-redact.")
    with run:
        for path in inputs or []:
            run.add_input(path)
        run.extra["privacy"] = {"backend_remote": remote, "pii_redacted_before_sending": bool(remote and job.redact),
                                "redaction_turned_off_by_user": bool(remote and not job.redact)}
        if remote and job.redact:
            t0 = time.perf_counter()
            generator.redact_inputs(redactor)
            run.time("redact", time.perf_counter() - t0)
        elif remote:
            reporter.warn("PII redaction is OFF: raw examples and documents are sent to the remote endpoint.")
        request_log = RequestLog(run.dir / "responses")
        chat = CachedChat(backend, request_log)
        judge = Judge(generator.prompts, threshold=job.judge_threshold) if job.judge else None
        if request_log.loaded:
            reporter.info(f"resuming: {request_log.loaded} answered requests found in {request_log.folder}")
        t0 = time.perf_counter()
        try:
            with reporter.progress(f"synth {generator.name}: kept", total=job.n, unit="examples") as bar:
                advance = _progress_line(bar, backend)
                chat.on_reply = lambda: advance(0)
                outcome = asyncio.run(_generate(generator, chat, job, run.run_id, backend, judge, postprocess, advance))
        finally:
            request_log.close()
            backend.close()
        run.time("generate", time.perf_counter() - t0)
        _write_outputs(run, outcome)
        run.counts.input = outcome.candidates
        run.counts.kept = len(outcome.kept)
        for row in outcome.dropped:
            run.counts.drop(row["drop_reason"])
        run.counts.quarantined = len(outcome.quarantine)
        usage = backend.usage.to_dict(backend.price)
        run.extra.update({
            "requested": job.n,
            "produced": len(outcome.kept),
            "backend": backend.describe(),
            "generator": generator.describe(),
            "requests": {"sent": chat.stats.sent, "answered_from_log": chat.stats.from_log,
                         "failed_after_retries": chat.stats.failed, "log_entries_at_start": request_log.loaded,
                         "by_stage": chat.stats.by_stage},
            "usage": usage,
            "acceptance": {t: {**a, "rate": round(a["kept"] / a["candidates"], 3) if a["candidates"] else None}
                           for t, a in sorted(outcome.acceptance.items())},
        })
        if len(outcome.kept) < job.n:
            reporter.warn(f"only {len(outcome.kept)} of {job.n} examples passed after {outcome.candidates} candidates "
                          f"(the cap is {job.max_candidate_factor}× n); see dropped.parquet for the reasons.")
    return run


def _progress_line(bar: Callable[..., None], backend: OpenAIBackend) -> Callable[..., None]:
    """`advance(kept, candidates=None)` for the run's one progress bar: kept of n (with its ETA), plus the
    candidates tried and the tokens spent so far."""
    tried = [0]

    def advance(kept: int, candidates: int | None = None) -> None:
        if candidates is not None:
            tried[0] = candidates
        tokens = backend.usage.prompt_tokens + backend.usage.completion_tokens
        bar(kept, status=f"{tried[0]} candidates · {tokens:,} tokens")

    return advance


async def _generate(generator, chat, job, run_id, backend, judge, postprocess, advance) -> Outcome:
    try:
        return await generate_examples(generator, chat, job.n, run_id, backend.model, judge=judge,
                                       postprocess=postprocess, max_candidates=job.n * job.max_candidate_factor,
                                       progress=advance)
    finally:
        await backend.aclose()


def bind_job(run: Run, shaping: dict[str, Any], resume: bool, what: str = "synth") -> None:
    """Tie a run folder to the settings that decide its requests: saved on the first run; on --resume the
    saved settings must match (else replaying the request log would answer different questions)."""
    job_file = run.dir / JOB_FILE
    if resume:
        saved = _load_job(job_file)
        if saved["job"] != shaping:
            changed = sorted(k for k in {**saved["job"], **shaping} if saved["job"].get(k) != shaping.get(k))
            raise StudioError(f"--resume: {run.dir} was started with different settings ({', '.join(changed)}); "
                              "rerun with the same arguments, or drop --resume to start a new run.")
        run.run_id = saved["run_id"]
    elif job_file.exists():
        raise StudioError(f"{run.dir} already holds a {what} run; pass --resume to finish it or choose another --out.")
    else:
        with atomic_open(job_file) as fh:
            json.dump({"run_id": run.run_id, "job": shaping}, fh, indent=2)


def run_folder(out_dir: Path | None, workspace: Workspace | None, resume: bool) -> Path | None:
    if resume and out_dir is None:
        raise StudioError("--resume needs --out DIR: the folder of the run to finish.")
    if resume and not (Path(out_dir) / JOB_FILE).is_file():
        raise StudioError(f"--resume: {out_dir} holds no run to resume ({JOB_FILE} is missing); check --out.")
    return out_dir


def _load_job(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise StudioError(f"--resume: cannot read {path} ({err}); start a new run instead.") from None


def _write_outputs(run: Run, outcome: Outcome) -> None:
    import polars as pl

    from studio.schema import polars_schema

    schema = {**polars_schema(), "q_judge": pl.Float64, "quality": pl.Float64}
    kept = pl.DataFrame([{k: r[k] for k in schema} for r in outcome.kept], schema=schema)
    write_parquet_atomic(kept, run.dir / "kept.parquet")
    run.add_output(run.dir / "kept.parquet", rows=kept.height)
    dropped = pl.DataFrame([{k: r.get(k) for k in [*schema, "drop_reason"]} for r in outcome.dropped],
                           schema={**schema, "drop_reason": pl.String})
    write_parquet_atomic(dropped, run.dir / "dropped.parquet")
    run.add_output(run.dir / "dropped.parquet", rows=dropped.height)
    with atomic_open(run.dir / "quarantine.jsonl") as fh:
        for q in outcome.quarantine:
            fh.write(json.dumps(q, ensure_ascii=False) + "\n")
    run.add_output(run.dir / "quarantine.jsonl", rows=len(outcome.quarantine))


def build_generator(job: SynthJob, rows: list[dict[str, Any]], kind: str | None,
                    feedback: Feedback | None = None) -> Generator:
    """The generator `job.generator` over rows read by `studio.readers.read_inputs` (examples or documents)."""
    from synth.prompts import PromptLibrary

    prompts = PromptLibrary([Path(job.prompts_dir)] if job.prompts_dir else [])
    settings = GenSettings(max_tokens=job.max_tokens, temperature=job.temperature)
    common = {"prompts": prompts, "settings": settings, "feedback": feedback}
    name = job.generator
    try:
        if name == "grounded-qa":
            _need(kind == "documents", "grounded-qa reads documents (.md/.txt files or JSONL with a `text` field)")
            from synth.generators.grounded_qa import GroundedQA

            return GroundedQA(rows, **common, **job.options)
        if name in ("self-instruct", "evol-instruct", "paraphrase"):
            _need(kind == "examples", f"{name} reads examples (chat/Alpaca/ShareGPT/CSV files), not documents")
            from studio.schema import prompt_text, response_text

            tasks = [{"id": r["id"], "instruction": prompt_text(r["messages"]), "response": response_text(r["messages"]),
                      "task": json.loads(r.get("meta") or "{}").get("task")}
                     for r in rows if prompt_text(r["messages"])]
            if name == "self-instruct":
                from synth.generators.self_instruct import SelfInstruct

                return SelfInstruct(tasks, **common, **job.options)
            if name == "evol-instruct":
                from synth.generators.evol_instruct import EvolInstruct

                return EvolInstruct(tasks, **common, **job.options)
            from synth.generators.paraphrase import Paraphrase

            return Paraphrase(rows, **common, **job.options)
        if name == "edge-cases":
            from synth.generators.edge_cases import EdgeCases

            reasons = list(job.categories) + (feedback.avoid if feedback else [])
            return EdgeCases(reasons, **common, **job.options)
    except (ValueError, TypeError) as err:
        raise StudioError(f"{name}: {err}.") from None
    raise StudioError(f"unknown generator {name!r}; choose one of {', '.join(GENERATORS)}.")


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise StudioError(message + ".")
