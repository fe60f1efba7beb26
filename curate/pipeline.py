"""Run a curation pipeline: read inputs, apply steps in order, write kept/dropped/quarantine and a manifest.

This is the local engine (Polars in-process). Steps never remove rows themselves: after each step the
pipeline moves rows with a non-null `drop_reason` into the dropped table, tagged with the step's name.
Outputs in the run folder: kept.parquet, dropped.parquet, quarantine.jsonl, manifest.json, run.log.
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl

from curate.bookkeeping import (
    early_redaction,
    record_step,
    redact_quarantine,
    with_drop_columns,
    write_quarantine_and_mappings,
    write_report,
)
from curate.config import PipelineConfig, read_examples
from curate.registry import build_step
from studio.atomic import write_parquet_atomic
from studio.console import Reporter
from studio.errors import StudioError
from studio.readers import expand_inputs
from studio.runs import Run, staged_output
from studio.schema import DROP_COLUMNS
from studio.workspace import Workspace


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
        out = with_drop_columns(step.process(with_drop_columns(df)))
        if out.height != rows_in:
            raise AssertionError(f"step {step.name} returned {out.height} rows for {rows_in}: steps must not remove rows")
        is_dropped = pl.col("drop_reason").is_not_null()
        gone = out.filter(is_dropped).with_columns(pl.lit(step.name).alias("step"))
        df = out.filter(~is_dropped)
        if gone.height:
            dropped.append(gone)
        by_reason = dict(gone.group_by("drop_reason").len().sort("drop_reason").iter_rows()) if gone.height else {}
        record_step(run, reporter, step, rows_in, df.height, by_reason, time.perf_counter() - t0, step.stats)
    return df, dropped


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
        dropped = redact_what_left_early(steps, dropped)
        quarantine = redact_quarantine(steps, result.quarantine)
        t1 = time.perf_counter()
        write_outputs(run, kept, dropped, quarantine)
        run.time("write", time.perf_counter() - t1)
        if config.report:
            write_report(run, kept, dropped, reporter)
    return run


def redact_what_left_early(steps: list, dropped: list[pl.DataFrame]) -> list[pl.DataFrame]:
    """Rows dropped by steps before `redact_pii` (e.g. `empty` from normalize), redacted with that step, so no
    output of the run holds PII the user asked to remove."""
    plan = early_redaction(steps)
    if plan is None:
        return dropped
    redact, early = plan
    return [redact.process(frame) if frame.height and frame["step"][0] in early else frame for frame in dropped]


def write_outputs(run: Run, kept: pl.DataFrame, dropped: list[pl.DataFrame], quarantine) -> None:
    out_dir = run.dir
    kept_out = kept.drop([c for c in DROP_COLUMNS if c in kept.columns])
    write_parquet_atomic(kept_out, out_dir / "kept.parquet")
    run.add_output(out_dir / "kept.parquet", rows=kept_out.height)
    if dropped:
        dropped_df = pl.concat(dropped, how="diagonal_relaxed")
    else:
        dropped_df = with_drop_columns(kept.clear()).with_columns(pl.lit(None, dtype=pl.String).alias("step"))
    write_parquet_atomic(dropped_df, out_dir / "dropped.parquet")
    run.add_output(out_dir / "dropped.parquet", rows=dropped_df.height)
    write_quarantine_and_mappings(run, quarantine)
