"""Run a curation pipeline: read inputs, apply steps in order, write kept/dropped/quarantine and a manifest.

This is the local engine (Polars in-process). Steps never remove rows themselves: after each step the
pipeline moves rows with a non-null `drop_reason` into the dropped table, tagged with the step's name.
Outputs in the run folder: kept.parquet, dropped.parquet, quarantine.jsonl, manifest.json, run.log.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from curate.registry import build_step
from studio.atomic import atomic_open, write_parquet_atomic
from studio.console import Reporter
from studio.errors import StudioError
from studio.readers import CsvMapping, ReadResult, expand_inputs, read_inputs
from studio.runs import Run, staged_output
from studio.workspace import Workspace

log = logging.getLogger("curate")

DROP_COLUMNS = ("drop_reason", "step", "dup_of")


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    config: dict[str, Any] = Field(default_factory=dict)


class PipelineConfig(BaseModel):
    """A curation pipeline, as written in a YAML file:

        inputs: [sample_data/]          # files or folders (CLI arguments add to these)
        format: null                    # force one input format; null = detect per file
        csv_map: prompt=q,response=a    # CSV column mapping, when the defaults do not fit
        steps:
          - normalize
          - exact_dedupe
          - near_dedupe: {threshold: 0.8}
    """

    model_config = ConfigDict(extra="forbid")
    inputs: list[str] = Field(default_factory=list)
    format: str | None = None
    csv_map: str | None = None
    steps: list[StepSpec] = Field(default_factory=list)
    report: bool = True

    @field_validator("steps", mode="before")
    @classmethod
    def _steps_from_yaml(cls, value: Any) -> Any:
        specs = []
        for item in value or []:
            if isinstance(item, str):
                specs.append({"name": item})
            elif isinstance(item, dict) and "name" not in item and len(item) == 1:
                name, cfg = next(iter(item.items()))
                specs.append({"name": name, "config": cfg or {}})
            else:
                specs.append(item)
        return specs

    @classmethod
    def from_yaml(cls, path: str | Path) -> PipelineConfig:
        from studio.config import load_yaml_model

        return load_yaml_model(cls, path, what="pipeline config")

    @classmethod
    def from_step_list(cls, steps: str, **kwargs: Any) -> PipelineConfig:
        return cls(steps=[s.strip() for s in steps.split(",") if s.strip()], **kwargs)


def read_examples(config: PipelineConfig) -> ReadResult:
    result = read_inputs(config.inputs, fmt=config.format, csv_mapping=CsvMapping.parse(config.csv_map))
    if result.kind != "examples":
        raise StudioError(
            f"curate works on examples, but {', '.join(result.formats)} hold plain documents; "
            "use them with `studio synth grounded-qa` instead."
        )
    return result


def _with_drop_columns(df: pl.DataFrame) -> pl.DataFrame:
    missing = [pl.lit(None, dtype=pl.String).alias(c) for c in ("drop_reason", "dup_of") if c not in df.columns]
    return df.with_columns(missing) if missing else df


def run_steps(df: pl.DataFrame, steps: list, run: Run | None = None, reporter: Reporter | None = None
              ) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """Apply steps in order. Returns (kept, [dropped frames per step]). Records per-step stats on `run`."""
    reporter = reporter or Reporter(quiet=True)
    dropped: list[pl.DataFrame] = []
    for step in steps:
        t0 = time.perf_counter()
        rows_in = df.height
        reporter.info(f"[bold]{step.name}[/] on {rows_in:,} rows …")
        step.reporter = reporter
        out = _with_drop_columns(step.process(_with_drop_columns(df)))
        if out.height != rows_in:
            raise AssertionError(f"step {step.name} returned {out.height} rows for {rows_in}: steps must not remove rows")
        is_dropped = pl.col("drop_reason").is_not_null()
        gone = out.filter(is_dropped).with_columns(pl.lit(step.name).alias("step"))
        df = out.filter(~is_dropped)
        if gone.height:
            dropped.append(gone)
        by_reason = dict(gone.group_by("drop_reason").len().sort("drop_reason").iter_rows()) if gone.height else {}
        seconds = time.perf_counter() - t0
        entry = {"step": step.name, "config": step.config.model_dump(mode="json"), "rows_in": rows_in,
                 "kept": df.height, "dropped": by_reason, "seconds": round(seconds, 3), **step.stats}
        log.info("step %s: %d in, %d kept, dropped %s in %.2fs", step.name, rows_in, df.height, by_reason, seconds)
        dropped_note = ", ".join(f"{reason} {n:,}" for reason, n in by_reason.items()) or "none"
        reporter.info(f"  {step.name}: {rows_in:,} rows in {seconds:.2f} s ({rows_in / max(seconds, 1e-9):,.0f} rows/s); "
                      f"kept {df.height:,}, dropped {dropped_note}")
        if run is not None:
            run.steps.append(entry)
            run.time(step.name, seconds)
            for reason, n in by_reason.items():
                run.counts.drop(reason, n)
    return df, dropped


def write_quarantine(records, path: Path) -> None:
    with atomic_open(path) as fh:
        for q in records:
            fh.write(json.dumps(q.to_dict(), ensure_ascii=False))
            fh.write("\n")


def run_pipeline(config: PipelineConfig, out_dir: str | Path | None = None, reporter: Reporter | None = None,
                 workspace: Workspace | None = None, engine: str = "local", ray_address: str | None = None,
                 ray_output: str | None = None, overwrite: bool = False) -> Run:
    """Run `config` with outputs in `out_dir` (default: a new run folder); returns the finished Run.
    A used `out_dir` is refused unless `overwrite` (and then only a folder holding an earlier run's files).

    `engine="ray"` runs the same steps on a Ray cluster (`curate.ray_engine`), on the cluster at `ray_address`
    (default: a local one), optionally also writing kept/ and dropped/ to the object-store URI `ray_output`."""
    reporter = reporter or Reporter(quiet=True)
    if not config.inputs:
        raise StudioError("no inputs to curate; name files or folders on the command line or under `inputs:` in the config.")
    if not config.steps:
        raise StudioError("no steps to run; pass --steps normalize,exact_dedupe or a --config file with `steps:`.")
    if engine not in ("local", "ray"):
        raise StudioError(f"unknown engine {engine!r}; choose local or ray.")
    steps = [build_step(s.name, s.config) for s in config.steps]
    expand_inputs(config.inputs)  # missing paths and empty folders fail before a run folder exists
    if out_dir is not None:  # a named folder: built beside it, swapped in when complete (studio.runs.staged_output)
        with staged_output(out_dir, overwrite) as staged:
            _write_inside(steps, Path(out_dir), staged)
            run = _run_engine(config, steps, staged, Path(out_dir), reporter, workspace, engine, ray_address, ray_output)
        return run.published()
    return _run_engine(config, steps, None, None, reporter, workspace, engine, ray_address, ray_output)


def _write_inside(steps: list, out: Path, staged: Path) -> None:
    """A file a step writes into the output folder (redact_pii's mapping_file) goes into the staging folder,
    so it is published with the run instead of being replaced by it."""
    for step in steps:
        target = getattr(step.config, "mapping_file", None)
        if target and Path(target).resolve().is_relative_to(out.resolve()):
            moved = staged / Path(target).resolve().relative_to(out.resolve())
            step.config = step.config.model_copy(update={"mapping_file": str(moved)})


def _run_engine(config: PipelineConfig, steps: list, out_dir: Path | None, publish_as: Path | None, reporter: Reporter,
                workspace: Workspace | None, engine: str, ray_address: str | None, ray_output: str | None) -> Run:
    if engine == "ray":
        from curate.ray_engine import run_pipeline_ray

        return run_pipeline_ray(config, steps, out_dir, reporter, workspace, address=ray_address, output_uri=ray_output,
                                publish_as=publish_as)
    with Run("curate", out_dir=out_dir, workspace=workspace, config=config.model_dump(mode="json"),
             publish_as=publish_as) as run:
        t0 = time.perf_counter()
        result = read_examples(config)
        for path, fmt in result.formats.items():
            run.add_input(path, format=fmt)
            reporter.info(f"read {path} as [bold]{fmt}[/]")
        run.time("read", time.perf_counter() - t0)
        if result.skipped:
            run.extra["skipped_files"] = [s.to_dict() for s in result.skipped]
            for s in result.skipped:
                reporter.warn(f"skipped {s.path}: {'empty file' if s.reason == 'empty' else s.reason}")
        run.counts.input = result.n_input
        run.counts.quarantined = len(result.quarantine)
        if result.quarantine:
            reporter.warn(f"{len(result.quarantine)} malformed records quarantined (see {run.final_dir / 'quarantine.jsonl'})")
        kept, dropped = run_steps(result.frame(), steps, run=run, reporter=reporter)
        run.counts.kept = kept.height
        dropped, quarantine = redact_what_left_early(steps, dropped, result.quarantine)
        t1 = time.perf_counter()
        write_outputs(run, kept, dropped, quarantine)
        run.time("write", time.perf_counter() - t1)
        if config.report:
            _write_report(run, kept, dropped, reporter)
    return run


def redact_what_left_early(steps: list, dropped: list[pl.DataFrame], quarantine: list) -> tuple[list[pl.DataFrame], list]:
    """When the pipeline redacts PII, rows dropped by steps before `redact_pii` (e.g. `empty` from normalize) and
    the raw text of quarantined lines are redacted too, so no output of the run holds PII the user asked to remove."""
    names = [s.name for s in steps]
    if "redact_pii" not in names or steps[names.index("redact_pii")].config.audit_only:
        return dropped, quarantine
    from dataclasses import replace

    from curate.pii import PiiRedactor

    redact = steps[names.index("redact_pii")]
    early = set(names[:names.index("redact_pii")])
    dropped = [redact.process(frame) if frame.height and frame["step"][0] in early else frame for frame in dropped]
    if quarantine:
        redactor = PiiRedactor(redact.config.model_copy(update={"audit_only": False, "mapping_file": None}))
        texts = redactor.redact_texts([q.raw for q in quarantine])
        quarantine = [replace(q, raw=t) for q, t in zip(quarantine, texts, strict=True)]
    return dropped, quarantine


def write_outputs(run: Run, kept: pl.DataFrame, dropped: list[pl.DataFrame], quarantine) -> None:
    out_dir = run.dir
    kept_out = kept.drop([c for c in DROP_COLUMNS if c in kept.columns])
    write_parquet_atomic(kept_out, out_dir / "kept.parquet")
    run.add_output(out_dir / "kept.parquet", rows=kept_out.height)
    if dropped:
        dropped_df = pl.concat(dropped, how="diagonal_relaxed")
    else:
        dropped_df = _with_drop_columns(kept.clear()).with_columns(pl.lit(None, dtype=pl.String).alias("step"))
    write_parquet_atomic(dropped_df, out_dir / "dropped.parquet")
    run.add_output(out_dir / "dropped.parquet", rows=dropped_df.height)
    write_quarantine(quarantine, out_dir / "quarantine.jsonl")
    run.add_output(out_dir / "quarantine.jsonl", rows=len(quarantine))
    for entry in run.steps:  # a mapping file written into the run folder is one of its outputs
        mapping = entry.get("mapping_file")
        if mapping and Path(mapping).resolve().is_relative_to(out_dir.resolve()) and Path(mapping).is_file():
            run.add_output(mapping, role="pii mapping (raw personal data)")


def _write_report(run: Run, kept: pl.DataFrame, dropped: list[pl.DataFrame], reporter: Reporter) -> None:
    """The HTML report, when the report module is installed (curation issue); otherwise nothing."""
    try:
        from curate.report import write_report
    except ImportError:
        return
    path = write_report(run, kept, dropped)
    run.add_output(path)
    reporter.info(f"report: {run.final_dir / path.name}")
