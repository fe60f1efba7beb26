"""`studio demo`: the whole chain on the bundled sample data, ending with a summary table.

Each stage is a function that takes the demo context and returns rows for the summary; issues that add a
stage (PII, synth, review, export, train, pairwise, dpo) add a function to STAGES. Must finish in under 10 minutes on a
2-core machine.
"""

from __future__ import annotations

import contextlib
import os
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
DEMO_STEPS: list[str | dict[str, Any]] = ["normalize", {"redact_pii": {"mode": "pseudonym"}}, "exact_dedupe", "near_dedupe",
                                          {"score": {"model_sample": 50}}, "semantic_dedupe"]


@dataclass
class DemoContext:
    workspace: Workspace
    data_dir: Path
    reporter: Reporter
    outputs: dict[str, Path] = field(default_factory=dict)
    summary: list[list[Any]] = field(default_factory=list)

    def add(self, stage: str, what: str, value: Any, where: Path | str = "") -> None:
        """One summary row; paths inside the workspace are shown relative to it, so the table stays narrow."""
        where = str(where)
        root = str(self.workspace.root)
        for prefix in (f"sqlite:///{root}/", f"{root}/"):
            where = where.replace(prefix, "", 1) if where.startswith(prefix) else where
        self.summary.append([stage, what, value, where])


def sample_inputs(data_dir: Path) -> list[Path]:
    """The example files of sample_data (not its policy documents), plus the malformed file to show quarantine."""
    files = sorted(p for p in data_dir.iterdir() if p.suffix in (".jsonl", ".json", ".csv") and p.name != "planted.json")
    broken = data_dir / "malformed" / "broken_chat.jsonl"
    return files + ([broken] if broken.exists() else [])


def stage_curate(ctx: DemoContext) -> None:
    from curate.pipeline import PipelineConfig, run_pipeline

    cfg = PipelineConfig(inputs=[str(p) for p in sample_inputs(ctx.data_dir)], steps=DEMO_STEPS)
    run = run_pipeline(cfg, out_dir=ctx.workspace.runs_dir / "demo-curate", reporter=ctx.reporter, workspace=ctx.workspace,
                       overwrite=True)
    ctx.outputs["curated"] = run.dir / "kept.parquet"
    counts = run.counts.to_dict()
    ctx.add("curate", "rows in", counts["input"], run.dir)
    for reason, n in counts["dropped"].items():
        ctx.add("curate", f"dropped: {reason}", n)
    ctx.add("curate", "quarantined (malformed)", counts["quarantined"], run.dir / "quarantine.jsonl")
    ctx.add("curate", "kept", counts["kept"], ctx.outputs["curated"])
    audit = run.extra.get("audit") or {}
    if "offensive_rows" in audit:
        off = audit["offensive_rows"]
        ctx.add("audit", "kept rows with an offensive turn (in the answer)", f"{off['kept']} ({off['kept_in_response']})",
                run.dir / "report.html")
    if "bias_flags" in audit:
        flags = audit["bias_flags"]
        ctx.add("audit", f"bias flags ({audit['gender']['female_mentions']} female / "
                f"{audit['gender']['male_mentions']} male mentions)", len(flags), run.dir / "report.html")
        if flags:
            ctx.add("audit", "largest skew", flags[0])


#: The demo's reviewer login (printed at the end of the review stage).
DEMO_REVIEWER = ("demo", "demo-review")
DEMO_RULE = "quality >= 0.9 and pii_count == 0"


def stage_review(ctx: DemoContext) -> None:
    """Queue the curated (and synthetic, when present) examples in the workspace review DB, let the
    high-confidence rule decide the obvious ones, and add a reviewer for the app."""
    from review_app.recorded import auto_recorded, load_recorded
    from review_app.store import ReviewStore

    store = ReviewStore(ctx.workspace.review_db_url)
    datasets = [ctx.outputs["curated"], *([ctx.outputs["synthetic"]] if ctx.outputs.get("synthetic") else [])]
    for path in datasets:
        _, counts = load_recorded(store, path, ctx.workspace, overlap=1, order="quality")
        ctx.add("review", f"queued from {Path(path).name}", counts["added"], path)
    _, result = auto_recorded(store, DEMO_RULE, "high-confidence", ctx.workspace)
    for name, n in result["missing"].items():
        ctx.reporter.warn(f"{n} items have no `{name}` yet, so the rule `{DEMO_RULE}` does not match them; "
                          "they stay in the queue for people.")
    ctx.add("review", "accepted by rule:high-confidence", result["decided"])
    if DEMO_REVIEWER[0] not in {r["name"] for r in store.reviewers()}:
        store.add_reviewer(*DEMO_REVIEWER, role="lead")
    ctx.add("review", "left for people", store.progress()["remaining_items"])
    store.close()
    ctx.reporter.info(f"open the review app: cd {ctx.workspace.root} && studio review  "
                      f"(http://127.0.0.1:8501, log in as {DEMO_REVIEWER[0]} / {DEMO_REVIEWER[1]})")


#: Fewer approved items than this after the rule, and the demo lead accepts the rest (see stage_export).
DEMO_MIN_APPROVED = 20
DEMO_FALLBACK_RULE = ("origin in ('real', 'synthetic', 'edited')", "demo-lead-accepts-rest")
def stage_synth(ctx: DemoContext) -> None:
    """Grounded QA from the sample documents (Markdown, PDF, DOCX) on the bundled model (embedded llama.cpp server)."""
    from studio.readers import read_inputs
    from synth.backends import BackendConfig, make_backend
    from synth.commands import curated_postprocess
    from synth.runner import SynthJob, build_generator, run_synth

    docs = ctx.data_dir / "docs"
    if not docs.is_dir():
        ctx.add("synth", "skipped: no documents in", str(docs))
        return
    # The 135M demo model judges no better than chance (bench/README.md): the gate is the score step's quality,
    # as in `studio synth` on the local backend. Sampling uses a fixed seed per candidate, so the demo repeats.
    job = SynthJob(generator="grounded-qa", n=8, inputs=[str(docs)], backend=BackendConfig(kind="local", concurrency=4),
                   temperature=0.7, max_tokens=64, judge=False, min_quality=0.5)
    result = read_inputs([docs])
    run = run_synth(job, build_generator(job, result.rows, result.kind), make_backend(job.backend),
                    out_dir=ctx.workspace.runs_dir / "demo-synth", workspace=ctx.workspace, reporter=ctx.reporter,
                    postprocess=curated_postprocess([], min_quality=job.min_quality), inputs=sorted(docs.iterdir()))
    ctx.outputs["synthetic"] = run.dir / "kept.parquet"
    counts = run.counts.to_dict()
    ctx.add("synth", "grounded QA requested / produced", f"{job.n} / {counts['kept']}", ctx.outputs["synthetic"])
    ctx.add("synth", "candidates dropped / quarantined", f"{sum(counts['dropped'].values())} / {counts['quarantined']}",
            run.dir / "quarantine.jsonl")


def stage_export(ctx: DemoContext) -> None:
    """Export what review approved as OpenAI chat JSONL with leak-free train/val/test splits and a dataset card.

    No person reviews during the demo, so when the rule approved too little (e.g. no quality/PII scores
    yet), a clearly labelled demo-only bulk decision (`rule:demo-lead-accepts-rest`) accepts the
    remaining items; a real project never does this."""
    from review_app.export import ExportConfig, run_export
    from review_app.store import ReviewStore

    with ReviewStore(ctx.workspace.review_db_url) as store:
        approved = len(store.approved_items())
        if approved < DEMO_MIN_APPROVED:
            rule, name = DEMO_FALLBACK_RULE
            result = store.auto_decide(rule, name, verdict="accept")
            ctx.reporter.warn(f"only {approved} items approved by review; DEMO ONLY: the demo lead accepts the "
                              f"{result['decided']} remaining items as `rule:{name}` so the export has data.")
            ctx.add("export", f"DEMO ONLY: accepted by rule:{name}", result["decided"])
        out = ctx.workspace.data_dir / "export"
        run = run_export(store, ExportConfig(format="openai", out=out, seed=0, overwrite=True),
                         workspace=ctx.workspace, reporter=ctx.reporter, db_label=ctx.workspace.review_db_url)
    splits = run.extra["export"]["splits"]
    ctx.outputs["export"] = out / "train.jsonl"
    if splits.get("val"):
        ctx.outputs["export_val"] = out / "val.jsonl"
    if splits.get("test"):
        ctx.outputs["export_test"] = out / "test.jsonl"
    for split, n in splits.items():
        ctx.add("export", f"{split} (openai chat)", n, out / f"{split}.jsonl" if n else "")
    ctx.add("export", "dataset card", "", out / "README.md")


def stage_train(ctx: DemoContext) -> None:
    """A short LoRA run on CPU on the exported set, then base vs fine-tuned on the held-out test split.

    Validation (which picks the best adapter) and evaluation use different conversations, so the eval figures
    are on data the run never saw nor selected on; each comes with its paired 95 % interval and a plain verdict."""
    import json

    from studio.writers import write_jsonl
    from training.config import MIN_STEPS, TrainConfig
    from training.data import split_train_val
    from training.evaluate import EvalSettings, run_eval
    from training.forgetting import ForgettingCheck
    from training.redteam import RedTeamCheck
    from training.trainer import train

    export = ctx.outputs["export"]
    val = ctx.outputs.get("export_val")
    if val is None:  # one file: hold out a validation set by example id (deterministic)
        export, val = split_train_val(export, ctx.workspace.data_dir / "demo_split")
    # keep the demo short: validate on at most 8 conversations, evaluate on at most 16 of the test split
    rows = [json.loads(line) for line in Path(val).read_text(encoding="utf-8").splitlines() if line.strip()][:8]
    small_val = ctx.workspace.data_dir / "demo_val_small.jsonl"
    write_jsonl(rows, small_val)
    test = ctx.outputs.get("export_test") or small_val
    cfg = TrainConfig(base_model="default", method="lora", max_steps=MIN_STEPS, max_length=320, overlong="truncate")
    result = train(cfg, export, small_val, ctx.workspace.runs_dir / "demo-train", reporter=ctx.reporter,
                   workspace=ctx.workspace)
    m = result.metrics
    ctx.outputs["adapter"] = result.adapter_dir
    data = m["data"]["train"]
    ctx.add("train", "conversations trained on (dropped / truncated)",
            f"{data['kept']} ({sum(data['dropped'].values())} / {data['truncated']})", result.run_dir)
    ctx.add("train", "LoRA steps, tokens/s (CPU)", f"{m['steps']}, {m['tokens_per_second']:.0f}")
    after_loss = m["val_loss_best"] if m["val_loss_best"] is not None else m["val_loss_last"]
    ctx.add("train", "validation loss before → after", f"{m['val_loss_before']:.3f} → {after_loss:.3f}",
            result.run_dir / "loss_curve.png")
    # guard checks, kept small for CPU: general-set perplexity on 8 conversations (no generation) and the 16
    # shipped red-team prompts answered in one batch of 24 tokens, each before and after
    checks = [ForgettingCheck(max_examples=8, generate_examples=0), RedTeamCheck(max_new_tokens=24)]
    report = run_eval(str(result.adapter_dir), test, ctx.workspace.runs_dir / "demo-eval",
                      EvalSettings(max_examples=16, max_new_tokens=24, batch_size=4, max_length=320),
                      reporter=ctx.reporter, workspace=ctx.workspace, checks=checks)
    before, after = report["scores"]["before (base)"], report["scores"]["after (adapter)"]
    change = report.get("change", {})
    ctx.add("eval", "held-out conversations scored (" + ("test split" if test != small_val else "validation") + ")",
            report["examples"], test)
    for metric, label, fmt in (("perplexity", "held-out perplexity", ".2f"), ("rouge_l", "ROUGE-L", ".3f"),
                               ("exact_match", "exact match", ".3f")):
        ctx.add("eval", f"{label} base → fine-tuned", f"{before[metric]:{fmt}} → {after[metric]:{fmt}} "
                f"({verdict(metric, change.get(metric))})", report["report"] if metric == "rouge_l" else "")
    forgot, red = report["forgetting"], report["redteam"]
    ratio = forgot["perplexity_ratio"]
    ctx.add("eval", f"forgetting: general-set perplexity after / before ({forgot['examples']} conv.)",
            f"{ratio['value']:.3f} [{ratio['ci95'][0]:.3f}, {ratio['ci95'][1]:.3f}]: {forgot['verdict']}", report["report"])
    before_rate, after_rate = red["hold_rate"].values()
    ctx.add("eval", f"red-team: refused or corrected ({red['prompts']} prompts) base → fine-tuned",
            f"{before_rate:.2f} → {after_rate:.2f}: {red['verdict']}")
    timings = json.loads((Path(report["report"]).parent / "manifest.json").read_text(encoding="utf-8"))["timings"]
    ctx.add("eval", "seconds: eval / forgetting check / red-team check",
            f"{timings['score']:.0f} / {timings['forgetting']:.0f} / {timings['redteam']:.0f}")


#: The pairwise stage: this many exported training conversations become pairwise items.
DEMO_PAIRWISE = 16
#: ... taken from those the review rule approved on quality (so a junk answer the demo lead let through is not
#: the "better" one), with an answer of three or more sentences, short enough for DPO's max_length.
DEMO_PAIRWISE_MIN_QUALITY = 0.9
DEMO_PAIRWISE_MAX_CHARS = 1000
#: The demo-only rating rule that stands in for the reviewer choosing between the two answers.
DEMO_PAIRWISE_RULE = "DEMO ONLY: the demo lead's rule prefers the complete answer over the same answer cut short"
REVIEWED, CUT = "reviewed answer (export)", "DEMO cut: first two sentences"
#: The demo's DPO run: a few steps on CPU, 2 pairs a step (β 0.1, the DPO paper's default).
DEMO_DPO = {"base_model": "default", "method": "lora", "max_steps": 8, "batch_size": 2, "grad_accum": 1,
            "max_length": 320, "learning_rate": 1e-3, "warmup_ratio": 0.0}


def first_two_sentences(text: str) -> str | None:
    """The answer cut after its second sentence, or None when it has fewer than three."""
    import re

    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    return " ".join(sentences[:2]) if len(sentences) >= 3 else None


def pairwise_rows_from_export(export: Path, store) -> list[dict[str, Any]]:
    """Up to DEMO_PAIRWISE pairwise rows (review_app/pairwise.py's shape) from the export's training split: the
    prompt, its reviewed answer and the same answer cut after two sentences; the source names the export line."""
    import json

    lines = export.read_text(encoding="utf-8").splitlines()
    rows = []
    for line in export.with_name("ids.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry["file"] != export.name or len(rows) >= DEMO_PAIRWISE:
            continue
        messages = json.loads(lines[entry["line"] - 1])["messages"]
        quality = store.get_item(entry["item_id"]).quality
        if (quality is None or quality < DEMO_PAIRWISE_MIN_QUALITY or len(messages) < 2
                or [m["role"] for m in messages[-2:]] != ["user", "assistant"]
                or sum(len(m["content"]) for m in messages) > DEMO_PAIRWISE_MAX_CHARS):
            continue
        cut = first_two_sentences(messages[-1]["content"])
        if cut is not None:
            rows.append({"messages": messages[:-1], "source": f"{export}:{entry['line']}", "meta": {"demo": "pairwise"},
                         "candidates": [{"content": messages[-1]["content"], "model": REVIEWED, "origin": entry["origin"]},
                                        {"content": cut, "model": CUT, "origin": "edited"}]})
    return rows


def stage_pairwise(ctx: DemoContext) -> None:
    """Pairwise review in short (`studio review load` of a pairs file, then one choice per item): each item holds a
    prompt of the exported training set with two answers — the reviewed one and the same answer cut after two
    sentences — and a clearly labelled demo-only rule (`DEMO_PAIRWISE_RULE`) stands in for the reviewer and picks
    the complete one. The base model gives the cut answer the higher likelihood (it is shorter), so these are pairs
    it does not already prefer; the DPO stage trains on them (`studio export --format dpo`)."""
    from review_app.pairwise import pairwise_rows, record_preference
    from review_app.recorded import load_recorded
    from review_app.store import ReviewStore
    from studio.writers import write_jsonl

    t0 = time.perf_counter()
    pairs_file = ctx.workspace.data_dir / "demo_pairs.jsonl"
    with ReviewStore(ctx.workspace.review_db_url) as store:
        rows = pairwise_rows_from_export(Path(ctx.outputs["export"]), store)
        if not rows:
            ctx.add("pairwise", "skipped: no exported answer of three or more sentences", 0)
            return
        write_jsonl(rows, pairs_file)
        _, counts = load_recorded(store, pairs_file, ctx.workspace)
        for row in pairwise_rows(pairs_file):  # the items as stored: the ids of each item and its candidates
            complete = next(c["id"] for c in row["candidates"] if c["model"] == REVIEWED)
            if not store.decisions(item_id=row["id"]):
                record_preference(store, row["id"], DEMO_REVIEWER[0], complete, reason=DEMO_PAIRWISE_RULE)
    ctx.add("pairwise", "pairwise items (reviewed vs cut after 2 sentences)", len(rows), pairs_file)
    ctx.add("pairwise", "DEMO ONLY: decided by rule (complete answer wins)", len(rows))
    ctx.reporter.info(f"pairwise: {len(rows)} items ({counts['added']} newly queued), reviewed answer vs the same "
                      f"cut after two sentences, all decided by rule: complete answer wins; "
                      f"{time.perf_counter() - t0:.1f} s")


def stage_dpo(ctx: DemoContext) -> None:
    """One short DPO run (`studio train --objective dpo`) on the preference pairs review produced (`studio export
    --format dpo`: the pairwise stage's items, and any edit a person made), with the before/after preference
    accuracy on the training pairs and on held-out prompts, and the base model's own preference as the baseline."""
    from review_app.export import ExportConfig, run_export
    from review_app.store import ReviewStore
    from training.config import TrainConfig
    from training.dpo import train_dpo

    out = ctx.workspace.data_dir / "export-dpo"
    cfg = ExportConfig(format="dpo", out=out, splits={"train": 1.0}, seed=0, overwrite=True)
    pairs = 0
    with ReviewStore(ctx.workspace.review_db_url) as store:
        try:
            run = run_export(store, cfg, workspace=ctx.workspace, reporter=ctx.reporter,
                             db_label=ctx.workspace.review_db_url)
            pairs = run.extra["export"]["splits"].get("train", 0)
        except StudioError as err:  # no pairs: the export refuses to write an empty set
            if "no preference pairs" not in str(err) and "nothing to export" not in str(err):
                raise
    ctx.add("dpo", "preference pairs (export --format dpo)", pairs, out / "train.jsonl")
    if pairs < 2:
        ctx.add("dpo", "skipped: too few preference pairs", pairs)
        return
    result = train_dpo(TrainConfig(**DEMO_DPO), out / "train.jsonl", None, ctx.workspace.runs_dir / "demo-dpo",
                       reporter=ctx.reporter, workspace=ctx.workspace)
    m = result.metrics
    ctx.outputs["dpo_adapter"] = result.adapter_dir
    ctx.add("dpo", "DPO steps on CPU, pairs train / held out", f"{m['steps']}, {m['pairs']['train']} / "
            f"{m['pairs']['held_out']}", result.run_dir)
    for split, label in (("train", "training pairs"), ("held_out", "held-out pairs")):
        before, after = m["before"][split], m["after"][split]
        if after["pairs"]:
            ctx.add("dpo", f"preference accuracy before → after ({label})",
                    f"{before['preference_accuracy']:.2f} → {after['preference_accuracy']:.2f} (mean margin "
                    f"{before['mean_reward_margin']:+.3f} → {after['mean_reward_margin']:+.3f})")
    base = m["base_prefers_chosen"]["train"]
    ctx.add("dpo", "base model already prefers chosen (training pairs)", f"{base:.2f}")


def verdict(metric: str, change: dict | None) -> str:
    """Plain words for a before/after change and its paired bootstrap interval: better, worse or not real."""
    if change is None:
        return "no comparison"
    lower_is_better = metric == "perplexity"
    if not change["real"]:
        return "no real change: the 95 % interval includes 0"
    improved = (change["delta"] < 0) == lower_is_better
    return ("better" if improved else "worse") + f", 95 % interval {change['ci95'][0]:+.3f} to {change['ci95'][1]:+.3f}"


#: The mark `studio demo` leaves in a workspace it created; it only ever reuses or clears a folder holding it.
DEMO_MARK = ".studio-demo"
#: What a demo workspace holds; `--fresh` removes these and nothing else.
DEMO_ENTRIES = (WORKSPACE_FILE, "data", "runs", "guidelines.md", "review.db", "review.db-wal", "review.db-shm", ".pii_salt",
                DEMO_MARK)


def demo_workspace(directory: Path, fresh: bool) -> Workspace:
    """The demo's workspace: a new one in a missing or empty folder, or the one an earlier demo made there
    (cleared first when `fresh`). A folder with anything else in it is refused: the demo never changes or
    deletes what it did not create."""
    if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
        raise StudioError(f"--dir {directory} is not a plain folder; choose a new folder for the demo.")
    if directory.exists() and any(directory.iterdir()):
        if not (directory / DEMO_MARK).is_file():
            raise StudioError(f"--dir {directory} is not empty and was not made by `studio demo`; the demo never "
                              "changes or deletes a folder it did not create, so choose a new or empty folder.")
        if not fresh:
            return Workspace(directory)
        for name in DEMO_ENTRIES:
            path = directory / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    ws = Workspace.init(directory, name="demo")
    (directory / DEMO_MARK).write_text("made by `studio demo`; `studio demo --fresh` may clear this folder\n",
                                       encoding="utf-8")
    return ws


#: Demo stages in order.
STAGES = [stage_curate, stage_synth, stage_review, stage_export, stage_train, stage_pairwise, stage_dpo]


@contextlib.contextmanager
def inside(ws: Workspace):
    """Run the stages as commands run inside the workspace ($STUDIO_WORKSPACE): what looks the workspace up
    itself (the PII salt, which lives in it and never in a config) finds the demo's, wherever the demo was started."""
    before = os.environ.get("STUDIO_WORKSPACE")
    os.environ["STUDIO_WORKSPACE"] = str(ws.root)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("STUDIO_WORKSPACE", None)
        else:
            os.environ["STUDIO_WORKSPACE"] = before


def run_demo(directory: Path, data_dir: Path | None = None, fresh: bool = True, reporter: Reporter | None = None) -> DemoContext:
    reporter = reporter or Reporter()
    data_dir = Path(data_dir or REPO_ROOT / "sample_data")
    if not data_dir.is_dir():
        raise StudioError(f"sample data folder {data_dir} does not exist; pass --data DIR.")
    ws = demo_workspace(Path(directory), fresh)
    ctx = DemoContext(workspace=ws, data_dir=data_dir, reporter=reporter)
    t0 = time.perf_counter()
    with inside(ws):
        for stage in STAGES:
            t = time.perf_counter()
            reporter.info(f"\n[bold cyan]── {stage.__name__.removeprefix('stage_')} ──[/]")
            stage(ctx)
            reporter.info(f"   done in {time.perf_counter() - t:.1f}s")
    reporter.table(f"demo summary ({time.perf_counter() - t0:.0f}s, workspace {ws.root})",
                   ["stage", "what", "value", "where"], ctx.summary)
    return ctx
