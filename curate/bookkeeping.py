"""Run bookkeeping both engines share, written once: the drop columns every step sees, each step's entry in the
manifest (stats, timings, drop counts) and its progress line, redaction of what left before `redact_pii` ran,
the quarantine and PII-mapping outputs, and the HTML report."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

from studio.atomic import atomic_open
from studio.console import Reporter
from studio.runs import Run

log = logging.getLogger("curate")


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
    if run is None:
        return
    run.steps.append({"step": step.name, "config": step.config.model_dump(mode="json"), "rows_in": rows_in,
                      "kept": kept, "dropped": by_reason, "seconds": round(seconds, 3),
                      **({"engine": engine} if engine else {}), **stats})
    run.time(step.name, seconds)
    for reason, n in by_reason.items():
        run.counts.drop(reason, n)


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
