"""The `studio` command: one Typer app that wires the packages together (the application layer).

Foundation commands live here; each package adds its own commands through a `register(app)` function
in its `commands` module (listed in COMMAND_MODULES). The global options become a
`studio.context.CommandContext` on the click context, which every command reads (`reporter()`,
`current_workspace()`). Heavy imports stay inside command bodies so `studio --help` answers in well
under a second.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

# Polars' allocator (jemalloc) gives freed pages back over 10 s by default, so the copies of the text a read makes on
# its way (parsed columns, the canonical JSON hashed for ids) stayed resident into the step after it and raised a
# command's peak. Over 1 s they are mostly gone when the step peaks: on all of t0 ~50 MiB lower at the same CPU time
# (200 ms: ~65 MiB lower for ~0.2 s more system time; 0 ms: ~0.3 s more); see bench/README.md, curate_e2e. Read when
# Polars loads, so it is set before any import of it; a value the user set wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:1000,muzzy_decay_ms:0")

import typer  # noqa: E402

from studio.context import CommandContext, current_workspace, reporter
from studio.errors import StudioError
from studio.workspace import review_db

app = typer.Typer(
    name="studio",
    help=(
        "Fine-Tuning Data Studio: turn raw domain data into fine-tuning data you can trust.\n\n"
        "The flow is curate → synth → review → export → train. Start with `studio demo` to see it end to end "
        "on the bundled sample data, or `studio init my-workspace` to begin your own."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: Modules that add commands with `register(app)`; each package owns its own.
COMMAND_MODULES: tuple[str, ...] = (
    "curate.commands",
    "review_app.commands",
    "review_app.labelstudio_commands",
    "review_app.versions_commands",
    "synth.commands",
    "training.commands",
)


@app.callback()
def _main(
    ctx: typer.Context,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or info messages (errors and result tables still show).")] = False,
    workspace: Annotated[str | None, typer.Option("--workspace", "-w", help="Workspace folder (default: $STUDIO_WORKSPACE, or the nearest folder upwards with studio.yaml).", show_default=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also print the run log to the terminal (including one line per LLM request).")] = False,
) -> None:
    ctx.obj = CommandContext(quiet=quiet, workspace=workspace)
    _console_logging(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        _quiet_libraries()


def _quiet_libraries() -> None:
    """Library chatter a user cannot act on stays off the terminal (it still reaches run.log where it is logged):
    transformers' per-load "Loading weights" bars and its deprecation notices about its own internals, and the
    `kernels` package's offline notice when bitsandbytes loads (we keep it offline on purpose)."""
    import os
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read by transformers and huggingface_hub at import
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers(\.|$)")
    logging.getLogger("kernels").setLevel(logging.ERROR)


def _console_logging(level: int) -> None:
    """One terminal log handler of ours at `level`. Without it, a library's fallback `logging.basicConfig()`
    (absl, via rouge-score, adds one on its first message) prints every INFO record to the console, such as
    httpx's line per LLM request."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == "studio-console"), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.set_name("studio-console")
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    handler.stream = sys.stderr  # not setStream(): that flushes the old stream, which a test runner may have closed
    handler.setLevel(level)
    if level < root.level or root.level == logging.NOTSET:
        root.setLevel(level)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to make a workspace in (created if missing).")],
    name: Annotated[str | None, typer.Option(help="Workspace name (default: the folder name).")] = None,
) -> None:
    """Create a workspace: `studio.yaml`, `data/`, `runs/`, `guidelines.md` (the review DB appears on first use).

    Example: `studio init claims-studio && cd claims-studio`
    """
    from studio.workspace import Workspace

    ws = Workspace.init(directory, name=name)
    reporter().info(f"workspace ready at [bold]{ws.root}[/]; run commands from inside it.")


@app.command()
def curate(
    inputs: Annotated[list[Path] | None, typer.Argument(help="Input files or folders (JSONL, JSON, CSV, Parquet).", show_default=False)] = None,
    steps: Annotated[str | None, typer.Option("--steps", "-s", help="Comma-separated steps, e.g. normalize,exact_dedupe (see `studio steps`).")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Pipeline YAML (inputs, format, steps with settings).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (default: a new run folder under the workspace's runs/).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="Force the input format: openai, alpaca, sharegpt, prompt-completion, csv, parquet.")] = None,
    csv_map: Annotated[str | None, typer.Option("--csv-map", help="CSV columns, e.g. prompt=question,response=answer[,system=sys].")] = None,
    engine: Annotated[str, typer.Option(help="local (Polars in this process) or ray (Ray Data; see --ray-address).")] = "local",
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Ray cluster HOST:6379 for --engine ray (default: start a local one).")] = None,
    ray_output: Annotated[str | None, typer.Option("--ray-output", help="Also write kept/ and dropped/ Parquet parts here, e.g. s3://bucket/prefix (--engine ray).")] = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write report.html in the output folder.")] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier run in --out DIR (only files that run wrote; the new run replaces it when complete).")] = False,
) -> None:
    """Clean a data set: read inputs, run steps, write what was kept and what was dropped, and why.

    Writes `kept.parquet`, `dropped.parquet` (each dropped row with `drop_reason`, `step`, and `dup_of`
    for duplicates), `quarantine.jsonl` (malformed input lines with file, line and reason), `manifest.json`
    and `run.log` to the output folder. Counts always add up: input = kept + dropped + quarantined.

    Examples:

        studio curate sample_data/ --steps normalize,exact_dedupe --out out/clean

        studio curate data.csv --csv-map prompt=question,response=answer --steps normalize -o out/

        studio curate --config pipeline.yaml
    """
    from curate.pipeline import PipelineConfig, run_pipeline

    if config:
        cfg = PipelineConfig.from_yaml(config)
        if steps:
            cfg.steps = PipelineConfig.from_step_list(steps).steps
    else:
        cfg = PipelineConfig.from_step_list(steps or "")
    if inputs:
        cfg.inputs = [*cfg.inputs, *map(str, inputs)]
    if fmt:
        cfg.format = fmt
    if csv_map:
        cfg.csv_map = csv_map
    cfg.report = report and cfg.report
    rep = reporter()
    ws = current_workspace()
    run = run_pipeline(cfg, out_dir=out, reporter=rep, workspace=ws, engine=engine, ray_address=ray_address,
                       ray_output=ray_output, overwrite=overwrite)
    _print_counts(rep, run)




def _print_counts(rep, run) -> None:
    counts = run.counts.to_dict()
    rows = [["input rows", counts["input"]], ["kept", counts["kept"]]]
    rows += [[f"dropped: {reason}", n] for reason, n in counts["dropped"].items()]
    rows += [["quarantined (malformed)", counts["quarantined"]]]
    rep.table(f"{run.kind} run {run.run_id}", ["", "rows"], rows)
    rep.out.print(f"outputs in [bold]{run.dir}[/] (manifest: {run.manifest_path.name})")


@app.command("steps")
def list_steps() -> None:
    """List the curation steps `--steps` and pipeline files can use, with what each does."""
    from curate.registry import step_names, step_summary

    rep = reporter()
    rep.table("curation steps", ["step", "what it does"], [[n, step_summary(n)] for n in step_names()])


@app.command()
def export(
    dataset: Annotated[Path | None, typer.Argument(help="A data set file to convert (kept.parquet from curate, or any readable file). Leave out to export what review approved.", show_default=False)] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="openai, alpaca, sharegpt, prompt-completion, dpo (review export); csv and parquet only with DATASET.")] = "openai",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file with DATASET (default export.jsonl). Without DATASET: a folder for a copy outside the versions (default: the next version, exports/vN/).", show_default=False)] = None,
    with_id: Annotated[bool, typer.Option("--with-id", help="With DATASET: add each example's id to its record.")] = False,
    db: Annotated[str | None, typer.Option("--db", help="Review DB URL or SQLite file (default: the workspace's review.db).", show_default=False)] = None,
    split: Annotated[str, typer.Option("--split", help="Split names and fractions; duplicates and variants of one prompt stay in one split.")] = "train=0.9,val=0.05,test=0.05",
    seed: Annotated[int, typer.Option(help="Seed of the split assignment (same seed, same files).")] = 0,
    policy: Annotated[str, typer.Option(help="How reviewers' verdicts combine: unanimous, majority or any.")] = "unanimous",
    min_agreement: Annotated[float | None, typer.Option("--min-agreement", help="Keep items whose share of accepting reviewer verdicts is at least this (0-1).", show_default=False)] = None,
    synthetic: Annotated[bool, typer.Option("--include-synthetic/--no-synthetic", help="Export approved synthetic examples too.")] = True,
    hf_dataset: Annotated[bool, typer.Option("--hf-dataset", help="Also write a datasets.save_to_disk folder (hf_dataset/).")] = False,
    parquet: Annotated[bool, typer.Option("--parquet", help="Also write each split as <split>.parquet (the same records).")] = False,
    leak_check: Annotated[str, typer.Option("--leak-check", help="Curate dedupe steps that link near duplicates and paraphrases across all exported examples and earlier versions' val/test before splitting; none to skip.")] = "near_dedupe,semantic_dedupe",
    stratify: Annotated[str | None, typer.Option(help="Meta field (e.g. category) whose mix each split keeps.", show_default=False)] = None,
    tokenizer: Annotated[Path | None, typer.Option(help="Local tokenizer folder: check every example's token length.", show_default=False)] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", help="Longest example allowed with --tokenizer (default: its model_max_length).", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier export in --out DIR.")] = False,
) -> None:
    """Write training data: approved review items as a new dataset version with a card, or one file as is.

    Without DATASET: the examples review approved (edits applied) become the workspace's next version,
    `exports/v1/`, `exports/v2/`, ... (never changed afterwards; `studio versions` lists them), or a copy in
    `--out DIR`: one JSONL per split, `ids.jsonl`, a dataset card `README.md` and `manifest.json`; every line
    is checked against the format. Splits are sticky: what an earlier version held keeps its split, and near
    duplicates and paraphrases of earlier val/test examples join them (`--leak-check`).
    `--format dpo` writes preference pairs (edited over original answer, accepted over rejected answer).

    Examples:

        studio export --split train=0.9,val=0.05,test=0.05 --seed 1      # the next version, exports/vN/

        studio export --format openai --out export/ --parquet

        studio export --format dpo --out export_dpo/ --policy majority --min-agreement 0.75

        studio export out/clean/kept.parquet --format sharegpt --out train_sharegpt.jsonl
    """
    rep = reporter()
    ws = current_workspace()
    if dataset is None:
        _export_review(rep, ws, fmt=fmt, out=out, db=db, split=split, seed=seed, policy=policy,
                       min_agreement=min_agreement, synthetic=synthetic, hf_dataset=hf_dataset, stratify=stratify,
                       tokenizer=tokenizer, max_tokens=max_tokens, overwrite=overwrite, parquet=parquet,
                       leak_check=leak_check)
        return
    from studio.readers import read_inputs
    from studio.runs import Run
    from studio.writers import write_examples

    out = out or Path("export.jsonl")
    result = read_inputs([dataset])
    if result.kind != "examples":
        raise StudioError(f"{dataset} holds plain documents, not examples; there is nothing to export.")
    if not result.rows:
        raise StudioError(f"{dataset} has no valid examples to export ({len(result.quarantine)} malformed records).")
    with Run("export", workspace=ws, config={"format": fmt, "with_id": with_id}) as run:
        run.add_input(dataset)
        n = write_examples(result.frame(), out, fmt, with_id=with_id)
        run.counts.input = result.n_input
        run.counts.kept = n
        run.counts.quarantined = len(result.quarantine)
        run.add_output(out, rows=n, format=fmt)
    rep.out.print(f"wrote {n:,} {fmt} records to [bold]{out}[/]")


def _export_review(rep, ws, *, out: Path | None, db: str | None, **options) -> None:
    from review_app.export import ExportConfig, run_export
    from review_app.store import ReviewStore
    from studio.splits import parse_split_spec
    from studio_app.leak_check import LeakCheck

    if out is None and ws is None:
        raise StudioError("without --out the export becomes the workspace's next version: run inside a workspace "
                          "(studio init) or name an output folder with --out DIR.")
    url = review_db(db, ws)
    cfg = ExportConfig(format=options["fmt"], out=out, splits=parse_split_spec(options["split"]), seed=options["seed"],
                       policy=options["policy"], min_agreement=options["min_agreement"],
                       include_synthetic=options["synthetic"], hf_dataset=options["hf_dataset"],
                       stratify=options["stratify"], tokenizer=options["tokenizer"], max_tokens=options["max_tokens"],
                       overwrite=options["overwrite"], parquet=options["parquet"])
    leak_check = LeakCheck.parse(options["leak_check"])
    with ReviewStore(url) as store:
        run = run_export(store, cfg, workspace=ws, reporter=rep, db_label=url, find_links=leak_check)
    info, versioning = run.extra["export"], run.extra["versioning"]
    rows = [[s, n, str(run.dir / f"{s}.jsonl") if n else "(empty)"] for s, n in info["splits"].items()]
    rows += [[f"left out: {r}", n, ""] for r, n in {**info["filtered"], **run.counts.dropped}.items()]
    rows += [[p, n, ""] for p, n in versioning["placement"].items()]
    title = f"version {versioning['version']}" if versioning["version"] else "export"
    rep.table(f"{title} {run.run_id} ({cfg.format})", ["split / placement", "records", "file"], rows)
    rep.out.print(f"dataset card [bold]{run.dir / 'README.md'}[/], manifest {run.manifest_path}")


@app.command()
def lineage(
    example_id: Annotated[str, typer.Argument(help="An example id (the reviewed item's id or the id of its edited version), or EXPORT_FILE:LINE, a line of an export's split file.")],
    db: Annotated[str | None, typer.Option("--db", help="Review DB URL or SQLite file (default: the workspace's review.db).", show_default=False)] = None,
    root: Annotated[Path | None, typer.Option(help="Folder of run folders (default: the workspace's runs/).", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the chain as JSON.")] = False,
) -> None:
    """Where one example came from and where it went: raw file and line → curate run and steps → synth run
    → review decisions (with edits as diffs) → exports and versions → training runs and their metrics.

    Examples:

        studio lineage 3f2a9c0d1e4b5a6c7d8e

        studio lineage exports/v1/test.jsonl:12      # line 12 of version v1's test file, and every run trained on v1
    """
    import json

    from review_app.lineage import render_lineage, trace
    from review_app.store import ReviewStore

    ws = current_workspace()
    with ReviewStore(review_db(db, ws)) as store:
        chain = trace(example_id, store, workspace=ws, runs_root=root)
    target = _synth_target(chain)
    if target:
        chain["synth"]["target_skew"] = target
    if as_json:
        typer.echo(json.dumps(chain, indent=2, ensure_ascii=False, default=str))
        return
    text = render_lineage(chain)
    if target:  # the synth section's last line: which audit finding the run was aimed at
        text = text.replace("\n\n4. review", "\n" + "\n".join(_target_lines(target)) + "\n\n4. review", 1)
    reporter().out.print(text, markup=False, highlight=False)


def _synth_target(chain: dict) -> dict | None:
    """The audit finding a synthetic example's run was aimed at (`studio synth --target-skew`): from the synth
    manifest (with the mentions before and after), else from the example's own meta."""
    import json

    synth = chain.get("synth")
    if not synth:
        return None
    if synth.get("manifest"):
        try:
            m = json.loads(Path(synth["manifest"]).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            m = {}
        found = m.get("target_skew") or (m.get("config") or {}).get("target_skew")
        if found:
            return found
    return (chain["example"].get("meta") or {}).get("skew_target")


def _target_lines(t: dict) -> list[str]:
    group = t.get("under") or t.get("group")
    where = f"{t['group_by']} {t['group']}" if "group_by" in t else t.get("in", "?")
    lines = [f"    aimed at {group} ({t.get('axis')}), under-represented in {where}; audit of run {t.get('audit_run')}"]
    if t.get("flag"):
        lines.append(f"      finding: {t['flag']}")
    moved = t.get("mentions")
    if moved and moved["generated"]["share"] is not None and moved["seeds"]["share"] is not None:
        lines.append(f"      {group} share of {t['axis']} mentions: seed rows {moved['seeds']['share']:.0%} "
                     f"→ generated {moved['generated']['share']:.0%}")
    return lines


@app.command()
def runs(
    kind: Annotated[str | None, typer.Option(help="Only runs of this kind (curate, export, synth, review, train, ...).")] = None,
    root: Annotated[Path | None, typer.Option(help="Folder of run folders (default: the workspace's runs/).")] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many runs.")] = 30,
) -> None:
    """List runs, newest first, with kind, time and row counts (an export that made a dataset version shows its
    name, e.g. `export v2`; a synth run aimed at an audit finding its group, e.g. `synth aimed at male (gender)`).

    Example: `studio runs --kind curate`
    """
    from studio.runs import list_runs

    ws = current_workspace()
    found = list_runs(ws, root=root, kind=kind)
    if not found:
        where = root or (ws.runs_dir if ws else "runs/")
        reporter().info(f"no runs found in {where}.")
        return
    if kind in ("train", "eval"):
        _model_runs_table(found[:limit], kind, list_runs(ws, root=root, kind="export"))
        return
    rows = []
    for m in found[:limit]:
        c = m.get("counts", {})
        dropped = sum(c.get("dropped", {}).values())
        version = (m.get("versioning") or {}).get("version")
        aimed = (m.get("target_skew") or {}).get("under")
        label = f" {version}" if version else f" aimed at {aimed} ({m['target_skew'].get('axis')})" if aimed else ""
        rows.append([m.get("run_id", "?"), m.get("kind", "?") + label, m.get("started_at", "?"), m.get("status", "?"),
                     c.get("input", 0), c.get("kept", 0), dropped, c.get("quarantined", 0)])
    reporter().table("runs", ["run", "kind", "started (UTC)", "status", "input", "kept", "dropped", "quarantined"], rows)


def _model_runs_table(found: list[dict], kind: str, exports: list[dict]) -> None:
    """Training/eval runs: which model, method and data (sha256 + upstream export manifest, and the dataset version
    of each input file, found by its sha256 so a copied file counts too), and the metrics."""
    version_of_sha = {o["sha256"]: v for e in exports if (v := (e.get("versioning") or {}).get("version"))
                      for o in e.get("outputs", []) if o.get("sha256")}
    rows = []
    for m in found:
        data = "; ".join(f"{Path(i['path']).name} {str(i.get('sha256') or '')[:12]}"
                         + (f" ({version_of_sha[i['sha256']]})" if i.get("sha256") in version_of_sha else "")
                         for i in m.get("inputs", []))
        upstream = ", ".join(m.get("upstream_manifests", [])) or "–"
        metrics = m.get("metrics", {})
        if kind == "train":
            shown = (f"val loss {metrics.get('val_loss_before')} → {metrics.get('val_loss_best')}, "
                     f"{metrics.get('steps')} steps, {metrics.get('tokens_per_second')} tok/s")
            rows.append([m.get("run_id", "?"), m.get("status", "?"), m.get("base_model", "?"), m.get("method", "?"),
                         data, upstream, shown])
        else:
            shown = "; ".join(f"{label}: ppl {s.get('perplexity')}, rougeL {s.get('rouge_l')}" for label, s in metrics.items())
            rows.append([m.get("run_id", "?"), m.get("status", "?"), m.get("model", "?"), "–", data, upstream, shown])
    reporter().table(f"{kind} runs", ["run", "status", "model", "method", "data (sha256)", "upstream manifests", "metrics"], rows)


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Workspace folder for the demo (created if missing).")] = Path("demo_workspace"),
    data: Annotated[Path | None, typer.Option(help="Sample data folder (default: the repository's sample_data/).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh/--reuse", help="Start from an empty workspace.")] = True,
) -> None:
    """Run the whole chain on the bundled sample data and end with a summary table.

    Example: `studio demo --dir /tmp/demo`
    """
    from studio_app.demo import run_demo

    run_demo(directory, data_dir=data, fresh=fresh, reporter=reporter())


def _register_package_commands() -> None:
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(app)
    # the app layer joins training's eval to the review store (blind A/B; training never imports review_app)
    from studio_app import ab
    from training.commands import AB_HOOKS

    AB_HOOKS.update(to_review=ab.send_to_review, ab_report=ab.ab_report)


_register_package_commands()


def main() -> None:
    """Console-script entry point: user errors become one red line and exit code 2, never a traceback."""
    try:
        app()
    except StudioError as err:
        from rich.console import Console

        Console(stderr=True, highlight=False).print(f"[red]error:[/] {err}", soft_wrap=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as err:  # a bug, not a user error: short message, full traceback only on request
        import os
        import traceback

        if os.environ.get("STUDIO_DEBUG"):
            traceback.print_exc()
        print(f"internal error: {type(err).__name__}: {err} (set STUDIO_DEBUG=1 for the traceback; "
              "please report it)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
