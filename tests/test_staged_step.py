"""Global steps written once, as stages (`curate.step.StagedStep`), in this one file: both engines run them and
give the same rows, drop reasons and stats, with nothing about the steps in either executor."""

from __future__ import annotations

import sys

import numpy as np
import polars as pl
import pytest

from curate.bookkeeping import with_drop_columns
from curate.config import PipelineConfig
from curate.pipeline import run_steps
from curate.step import KEY, ROW, Context, Out, Stage, StagedStep, StepConfig
from studio.console import Reporter
from studio.readers import read_inputs
from studio.runs import Run


class LongestPerFile(StagedStep):
    """Keep, per input file, the conversation with the longest last turn; the others are dropped as `shorter`."""

    name = "longest_per_file"
    Config = StepConfig

    def map(self, df: pl.DataFrame) -> pl.DataFrame:
        return df.select(pl.col("source").str.replace(r":\d+$", "").alias("_key"), ROW, "id",
                         pl.col("messages").list.last().struct.field("content").str.len_chars().alias("length"))

    def reduce(self, entries: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
        ranked = entries.sort(["_key", "length", ROW], descending=[False, True, False])
        best = ranked.group_by("_key", maintain_order=True).first().select("_key", pl.col("id").alias("dup_of"))
        losers = ranked.join(best, on="_key").filter(pl.col("id") != pl.col("dup_of"))
        marks = losers.select(ROW, pl.lit("shorter").alias("drop_reason"), "dup_of")
        return marks, {"files": best.height}


class ShortPerFile(StagedStep):
    """Of the conversations whose last turn is shorter than the median (fitted on the driver from every other
    row's length), keep the longest per input file; the other short ones are dropped as `short`. Every stage kind:
    block (keeps lengths) → driver (the median, looked up by row) → block (entries by file) → key (looks up ids)."""

    name = "short_per_file"
    Config = StepConfig

    def stages(self) -> list[Stage]:
        return [Stage("block", self.lengths), Stage("driver", self.median), Stage("block", self.short),
                Stage("key", self.longest)]

    def lengths(self, ctx: Context, df: pl.DataFrame) -> Out:
        length = df.select(pl.col("messages").list.last().struct.field("content").str.len_chars()).to_series()
        return Out(keep={"length": length.to_numpy(), "id": df.get_column("id")})

    def median(self, ctx: Context, _: list) -> Out:
        sample = np.arange(0, ctx.total, 2)
        return Out(result=float(np.median(ctx.lookup(sample, ("length",))["length"])), stats={"sampled": sample.size})

    def short(self, ctx: Context, df: pl.DataFrame) -> Out:
        rows = df.get_column(ROW).to_numpy()
        length = ctx.lookup(rows, ("length",))["length"]
        entries = df.select(pl.col("source").str.replace(r":\d+$", "").alias(KEY), ROW).with_columns(
            pl.Series("length", length)).filter(pl.col("length") < ctx.value)
        return Out(entries=entries)

    def longest(self, ctx: Context, entries: pl.DataFrame) -> Out:
        ranked = entries.sort([KEY, "length", ROW], descending=[False, True, False])
        best = ranked.group_by(KEY, maintain_order=True).first().select(KEY, pl.col(ROW).alias("_best"))
        losers = ranked.join(best, on=KEY).filter(pl.col(ROW) != pl.col("_best")).sort(ROW)
        best_rows = np.unique(losers.get_column("_best").to_numpy())
        ids = ctx.lookup(best_rows, ("id",))["id"]
        dup_of = ids.gather(np.searchsorted(best_rows, losers.get_column("_best").to_numpy()))
        marks = losers.select(ROW, pl.lit("short").alias("drop_reason")).with_columns(dup_of.alias("dup_of"))
        return Out(rows=marks, stats={"short": entries.height})


@pytest.fixture(scope="module")
def inputs(sample_data) -> list[str]:
    return [str(sample_data / n) for n in ("support_chat.jsonl", "product_qa.jsonl", "faq_alpaca.json")]


def run_on_ray(step, inputs, tmp_path_factory) -> tuple[pl.DataFrame, pl.DataFrame, Run, int]:
    """(kept, dropped, run, blocks) of `step` run by the Ray executor on `inputs`, read as several blocks."""
    import ray

    from curate import ray_engine

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import a test module
    started = not ray.is_initialized()  # conftest's session cluster (ray_cluster) may be up already
    if started:
        ray.init(num_cpus=2, _temp_dir=str(tmp_path_factory.mktemp("ray")), include_dashboard=False, log_to_driver=False)
    try:
        blocks = ray_engine.read_blocks(PipelineConfig(inputs=inputs), ray_data=False).blocks
        with Run("curate", out_dir=tmp_path_factory.mktemp("run")) as run:
            kept, dropped = ray_engine.run_steps_ray(blocks, [step], run, Reporter(quiet=True))
            run.counts.input, run.counts.kept = blocks.rows, kept.rows
        ray_kept = pl.concat([pl.from_arrow(ray.get(r)) for r in kept.refs]).drop(ROW)
        ray_dropped = pl.concat([pl.from_arrow(ray.get(r)) for _, d in dropped for r in d.refs]).drop(ROW)
    finally:
        if started:
            ray.shutdown()
    return ray_kept, ray_dropped, run, len(blocks.refs)


def test_a_toy_staged_step_runs_the_same_on_both_engines(inputs, tmp_path_factory):
    local_step = LongestPerFile()
    local_kept, local_dropped = run_steps(with_drop_columns(read_inputs(inputs).frame()), [local_step])
    assert local_kept.height == 3 and sum(d.height for d in local_dropped) == read_inputs(inputs).n_input - 3

    ray_kept, ray_dropped, run, _ = run_on_ray(LongestPerFile(), inputs, tmp_path_factory)
    assert ray_kept.equals(local_kept)
    assert ray_dropped.sort("id").equals(pl.concat(local_dropped).sort("id"))
    assert ray_dropped.get_column("drop_reason").unique().to_list() == ["shorter"]
    assert local_step.stats == {"files": 3} and run.steps[0]["files"] == 3


def test_a_toy_step_with_every_stage_kind_runs_the_same_on_both_engines(inputs, tmp_path_factory):
    local_step = ShortPerFile()
    frame = with_drop_columns(read_inputs(inputs).frame())
    local_kept, local_dropped = run_steps(frame, [local_step])
    local_dropped = pl.concat(local_dropped)
    assert local_dropped.height == local_step.stats["short"] - 3 > 0  # the short ones but the longest of each file
    assert local_dropped.get_column("dup_of").is_in(local_kept.get_column("id").to_list()).all()

    # several blocks, so lookups cross blocks and the marks travel to the blocks holding their rows
    ray_kept, ray_dropped, run, blocks = run_on_ray(ShortPerFile(), inputs, tmp_path_factory)
    assert blocks > 1
    assert ray_kept.equals(local_kept)
    assert ray_dropped.equals(local_dropped)
    assert run.steps[0]["short"] == local_step.stats["short"]
    assert run.steps[0]["sampled"] == local_step.stats["sampled"] == (frame.height + 1) // 2
