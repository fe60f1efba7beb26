"""Run a curation pipeline: read inputs, apply steps in order, write kept/dropped/quarantine and a manifest.

This is the local engine (Polars in-process). Steps never remove rows themselves: after each step the
pipeline moves rows with a non-null `drop_reason` into the dropped table, tagged with the step's name.
Outputs in the run folder: kept.parquet, dropped.parquet, quarantine.jsonl, manifest.json, run.log.
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl

from curate.bookkeeping import apply_steps, finish_run, record_read, with_drop_columns
from curate.config import PipelineConfig, read_examples
from curate.registry import build_step
from studio.atomic import write_parquet_atomic
from studio.console import Reporter
from studio.errors import StudioError
from studio.readers import expand_inputs
from studio.runs import Run, staged_output
from studio.schema import DROP_COLUMNS
from studio.workspace import Workspace


class LocalEngine:
    """The local engine's part of a run (see `curate.bookkeeping.Engine`): rows are one Polars frame in this
    process; each step's dropped rows are the frame of its rows with a `drop_reason`, tagged with `step`."""

    name = None

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter

    def rows(self, data: pl.DataFrame) -> int:
        return data.height

    def apply(self, step, df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int], dict]:
        rows_in = df.height
        step.reporter = self.reporter
        out = with_drop_columns(step.process(with_drop_columns(df)))
        if out.height != rows_in:
            raise AssertionError(f"step {step.name} returned {out.height} rows for {rows_in}: steps must not remove rows")
        is_dropped = pl.col("drop_reason").is_not_null()
        gone = out.filter(is_dropped).with_columns(pl.lit(step.name).alias("step"))
        by_reason = dict(gone.group_by("drop_reason").len().sort("drop_reason").iter_rows()) if gone.height else {}
        return out.filter(~is_dropped), gone, by_reason, step.stats

    def redact(self, step, dropped: pl.DataFrame) -> pl.DataFrame:
        return step.process(dropped)

    def write(self, run: Run, kept: pl.DataFrame, dropped: list[pl.DataFrame], n_input: int
              ) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
        """kept.parquet (without the drop columns) and dropped.parquet (every step's dropped rows, in step order)."""
        kept_out = kept.drop([c for c in DROP_COLUMNS if c in kept.columns])
        write_parquet_atomic(kept_out, run.dir / "kept.parquet")
        run.add_output(run.dir / "kept.parquet", rows=kept_out.height)
        if dropped:
            dropped_df = pl.concat(dropped, how="diagonal_relaxed")
        else:
            dropped_df = with_drop_columns(kept.clear()).with_columns(pl.lit(None, dtype=pl.String).alias("step"))
        write_parquet_atomic(dropped_df, run.dir / "dropped.parquet")
        run.add_output(run.dir / "dropped.parquet", rows=dropped_df.height)
        return kept, dropped


def run_steps(df: pl.DataFrame, steps: list, run: Run | None = None, reporter: Reporter | None = None
              ) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """Apply steps in order. Returns (kept, [dropped frames per step]). Records per-step stats on `run`."""
    reporter = reporter or Reporter(quiet=True)
    kept, dropped = apply_steps(LocalEngine(reporter), df, steps, run, reporter)
    return kept, [frame for _, frame in dropped]


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
        record_read(run, reporter, result.formats, result.quarantine, result.n_input, time.perf_counter() - t0,
                    skipped=result.skipped)
        engine = LocalEngine(reporter)
        kept, dropped = apply_steps(engine, result.frame(), steps, run, reporter)
        finish_run(engine, run, steps, kept, dropped, result.quarantine, result.n_input, reporter, config.report)
    return run
