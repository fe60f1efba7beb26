"""`studio demo`: the whole chain on the bundled sample data, ending with a summary table.

Each stage is a function that takes the demo context and returns rows for the summary; issues that add a
stage (PII, synth, review, export, train) add a function to STAGES. Must finish in under 10 minutes on a
2-core machine.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.console import Reporter
from studio.errors import StudioError
from studio.workspace import WORKSPACE_FILE, Workspace

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The curation steps the demo runs, in order.
#: `redact_pii` runs right after `normalize`, so personal data is gone before anything reaches a model or the
#: review app; `pseudonym` mode keeps the text natural for fine-tuning (a reviewer reads "Laurie Macdonald",
#: not "<PERSON>", and the same customer keeps the same fake name across turns and rows).
DEMO_STEPS: list[str | dict[str, Any]] = ["normalize", {"redact_pii": {"mode": "pseudonym"}}, "exact_dedupe", "near_dedupe"]


@dataclass
class DemoContext:
    workspace: Workspace
    data_dir: Path
    reporter: Reporter
    outputs: dict[str, Path] = field(default_factory=dict)
    summary: list[list[Any]] = field(default_factory=list)

    def add(self, stage: str, what: str, value: Any, where: Path | str = "") -> None:
        self.summary.append([stage, what, value, str(where)])


def sample_inputs(data_dir: Path) -> list[Path]:
    """The example files of sample_data (not its policy documents), plus the malformed file to show quarantine."""
    files = sorted(p for p in data_dir.iterdir() if p.suffix in (".jsonl", ".json", ".csv") and p.name != "planted.json")
    broken = data_dir / "malformed" / "broken_chat.jsonl"
    return files + ([broken] if broken.exists() else [])


def stage_curate(ctx: DemoContext) -> None:
    from curate.pipeline import PipelineConfig, run_pipeline

    cfg = PipelineConfig(inputs=[str(p) for p in sample_inputs(ctx.data_dir)], steps=DEMO_STEPS)
    run = run_pipeline(cfg, out_dir=ctx.workspace.runs_dir / "demo-curate", reporter=ctx.reporter, workspace=ctx.workspace)
    ctx.outputs["curated"] = run.dir / "kept.parquet"
    counts = run.counts.to_dict()
    ctx.add("curate", "rows in", counts["input"], run.dir)
    for reason, n in counts["dropped"].items():
        ctx.add("curate", f"dropped: {reason}", n)
    ctx.add("curate", "quarantined (malformed)", counts["quarantined"], run.dir / "quarantine.jsonl")
    ctx.add("curate", "kept", counts["kept"], ctx.outputs["curated"])


def stage_export(ctx: DemoContext) -> None:
    import polars as pl

    from studio.writers import write_examples

    out = ctx.workspace.data_dir / "demo_train.jsonl"
    n = write_examples(pl.read_parquet(ctx.outputs["curated"]), out, "openai")
    ctx.outputs["export"] = out
    ctx.add("export", "openai chat records", n, out)


#: Demo stages in order.
STAGES = [stage_curate, stage_export]


def run_demo(directory: Path, data_dir: Path | None = None, fresh: bool = True, reporter: Reporter | None = None) -> DemoContext:
    reporter = reporter or Reporter()
    data_dir = Path(data_dir or REPO_ROOT / "sample_data")
    if not data_dir.is_dir():
        raise StudioError(f"sample data folder {data_dir} does not exist; pass --data DIR.")
    directory = Path(directory)
    if fresh and (directory / WORKSPACE_FILE).exists():
        shutil.rmtree(directory)
    ws = Workspace(directory) if (directory / WORKSPACE_FILE).exists() else Workspace.init(directory, name="demo")
    ctx = DemoContext(workspace=ws, data_dir=data_dir, reporter=reporter)
    t0 = time.perf_counter()
    for stage in STAGES:
        t = time.perf_counter()
        reporter.info(f"\n[bold cyan]── {stage.__name__.removeprefix('stage_')} ──[/]")
        stage(ctx)
        reporter.info(f"   done in {time.perf_counter() - t:.1f}s")
    reporter.table(f"demo summary ({time.perf_counter() - t0:.0f}s, workspace {ws.root})",
                   ["stage", "what", "value", "where"], ctx.summary)
    return ctx
