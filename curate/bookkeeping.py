"""Run bookkeeping both engines share, written once: what the read recorded, the step loop with each step's
entry in the manifest (stats, timings, drop counts) and its progress line, redaction of what left before
`redact_pii` ran, the outputs' order (kept, dropped, quarantine, PII mapping, report) and the run's counts.

An engine (`curate.pipeline.LocalEngine`: Polars frames; `curate.ray_engine.RayEngine`: blocks in Ray's object
store) supplies only what depends on where the rows live — run one step, redact a dropped part, write kept and
dropped — through the `Engine` protocol; everything a manifest records is decided here, once."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import polars as pl

from studio.atomic import atomic_open
from studio.console import Reporter
from studio.runs import Run

log = logging.getLogger("curate")

#: an engine's rows: a Polars frame (local) or blocks in an object store (Ray)
Rows = TypeVar("Rows")


class Engine(Protocol, Generic[Rows]):
    """What one executor does with its rows; the bookkeeping around it is in this module."""

    #: recorded in each step's manifest entry and progress line (None: the local engine, which records none)
    name: str | None

    def rows(self, data: Rows) -> int:
        """How many rows `data` holds."""

    def apply(self, step, data: Rows) -> tuple[Rows, Rows | None, dict[str, int], dict[str, Any]]:
        """Run `step` on `data`: (kept rows, dropped rows tagged with `step` or None, drops by reason, step stats)."""

    def redact(self, step, dropped: Rows) -> Rows:
        """`dropped` passed through the `redact_pii` step `step`."""

    def write(self, run: Run, kept: Rows, dropped: list[Rows], n_input: int
              ) -> tuple[pl.DataFrame, list[pl.DataFrame]] | None:
        """Write kept and dropped into the run folder and add them as outputs; returns the frames the HTML report
        reads, or None where the engine wrote no single-file outputs to read them from."""


def with_drop_columns(df: pl.DataFrame) -> pl.DataFrame:
    """`df` with `drop_reason` and `dup_of` (null) where it lacks them: what every step is handed."""
    missing = [pl.lit(None, dtype=pl.String).alias(c) for c in ("drop_reason", "dup_of") if c not in df.columns]
    return df.with_columns(missing) if missing else df


def record_step(run: Run | None, reporter: Reporter, step, rows_in: int, kept: int, by_reason: dict[str, int],
                seconds: float, stats: dict[str, Any], engine: str | None = None) -> None:
    """Log one finished step, print its line, and add its entry, timing and drop counts to the run."""
    where = f" ({engine})" if engine else ""
    log.info("step %s%s: %d in, %d kept, dropped %s in %.2fs", step.name, where, rows_in, kept, by_reason, seconds)
    dropped_note = ", ".join(f"{reason} {n:,}" for reason, n in by_reason.items()) or "none"
    reporter.info(f"  {step.name}: {rows_in:,} rows in {seconds:.2f} s ({rows_in / max(seconds, 1e-9):,.0f} rows/s); "
                  f"kept {kept:,}, dropped {dropped_note}")
    for warning in stats.get("warnings", []):  # a step's advice on its own settings (also in the manifest)
        reporter.warn(f"{step.name}: {warning}")
    if run is None:
        return
    run.steps.append({"step": step.name, "config": step.config.model_dump(mode="json"), "rows_in": rows_in,
                      "kept": kept, "dropped": by_reason, "seconds": round(seconds, 3),
                      **({"engine": engine} if engine else {}), **stats})
    run.time(step.name, seconds)
    for reason, n in by_reason.items():
        run.counts.drop(reason, n)


def record_read(run: Run, reporter: Reporter, formats: dict[str, str], quarantine: list, n_input: int,
                seconds: float, skipped: list | None = None) -> None:
    """The inputs, how long reading took, the files skipped and the quarantined lines, on the run and the console."""
    for path, fmt in formats.items():
        run.add_input(path, format=fmt)
        reporter.info(f"read {path} as [bold]{fmt}[/]")
    run.time("read", seconds)
    if skipped:
        run.extra["skipped_files"] = [s.to_dict() for s in skipped]
        for s in skipped:
            reporter.warn(f"skipped {s.path}: {'empty file' if s.reason == 'empty' else s.reason}")
    run.counts.input = n_input
    run.counts.quarantined = len(quarantine)
    if quarantine:
        reporter.warn(f"{len(quarantine)} malformed records quarantined (see {run.final_dir / 'quarantine.jsonl'})")


def apply_steps(engine: Engine[Rows], data: Rows, steps: list, run: Run | None, reporter: Reporter
                ) -> tuple[Rows, list[tuple[str, Rows]]]:
    """Apply steps in order. Returns (kept rows, [(step name, its dropped rows)] for the steps that dropped any);
    each step's line and manifest entry are recorded on the way (`record_step`)."""
    dropped: list[tuple[str, Rows]] = []
    where = f" ({engine.name})" if engine.name else ""
    for step in steps:
        t0 = time.perf_counter()
        rows_in = engine.rows(data)
        reporter.info(f"[bold]{step.name}[/] on {rows_in:,} rows{where} …")
        data, gone, by_reason, stats = engine.apply(step, data)
        if gone is not None and engine.rows(gone):
            dropped.append((step.name, gone))
        record_step(run, reporter, step, rows_in, engine.rows(data), by_reason, time.perf_counter() - t0, stats,
                    engine=engine.name)
    return data, dropped


def finish_run(engine: Engine[Rows], run: Run, steps: list, kept: Rows, dropped: list[tuple[str, Rows]],
               quarantine: list, n_input: int, reporter: Reporter, report: bool) -> None:
    """After the steps: the kept count, early drops and quarantined lines redacted (when the pipeline redacts),
    kept / dropped / quarantine / PII mapping written (timed as `write`), then the HTML report if asked for."""
    run.counts.kept = engine.rows(kept)
    parts = [part for _, part in redact_early_drops(engine, steps, dropped)]
    quarantine = redact_quarantine(steps, quarantine)
    t0 = time.perf_counter()
    frames = engine.write(run, kept, parts, n_input)
    write_quarantine_and_mappings(run, quarantine)
    run.time("write", time.perf_counter() - t0)
    if report and frames is not None:
        write_report(run, frames[0], frames[1], reporter)


def redact_early_drops(engine: Engine[Rows], steps: list, dropped: list[tuple[str, Rows]]
                       ) -> list[tuple[str, Rows]]:
    """Rows dropped by steps before `redact_pii` (e.g. `empty` from normalize), redacted with that step, so no
    output of the run holds PII the user asked to remove."""
    plan = early_redaction(steps)
    if plan is None:
        return dropped
    redact, early = plan
    return [(name, engine.redact(redact, part) if name in early else part) for name, part in dropped]


def early_redaction(steps: list) -> tuple[Any, set[str]] | None:
    """When the pipeline redacts PII (not audit-only): the `redact_pii` step and the names of the steps before it,
    whose dropped rows left unredacted and must be redacted with the same step before they are written."""
    names = [s.name for s in steps]
    if "redact_pii" not in names or steps[names.index("redact_pii")].config.audit_only:
        return None
    return steps[names.index("redact_pii")], set(names[:names.index("redact_pii")])


def redact_quarantine(steps: list, quarantine: list) -> list:
    """The raw text of quarantined lines, redacted when the pipeline redacts PII."""
    plan = early_redaction(steps)
    if plan is None or not quarantine:
        return quarantine
    from curate.pii import PiiRedactor

    redactor = PiiRedactor(plan[0].config.model_copy(update={"audit_only": False, "mapping_file": None}))
    texts = redactor.redact_texts([q.raw for q in quarantine])
    return [replace(q, raw=t) for q, t in zip(quarantine, texts, strict=True)]


def write_quarantine_and_mappings(run: Run, quarantine: list) -> None:
    """`quarantine.jsonl`, and a PII mapping file a step wrote into the run folder, as outputs of the run."""
    path = run.dir / "quarantine.jsonl"
    with atomic_open(path) as fh:
        for q in quarantine:
            fh.write(json.dumps(q.to_dict(), ensure_ascii=False))
            fh.write("\n")
    run.add_output(path, rows=len(quarantine))
    for entry in run.steps:
        mapping = entry.get("mapping_file")
        if mapping and Path(mapping).resolve().is_relative_to(run.dir.resolve()) and Path(mapping).is_file():
            run.add_output(mapping, role="pii mapping (raw personal data)")


def write_report(run: Run, kept: pl.DataFrame, dropped: list[pl.DataFrame], reporter: Reporter) -> None:
    """report.html in the run folder."""
    from curate.report import write_report as write_html

    path = write_html(run, kept, dropped)
    run.add_output(path)
    reporter.info(f"report: {run.final_dir / path.name}")
