"""`studio synth GENERATOR ...`: the CLI layer that wires synth to the reader, the curate steps and PII redaction.

This module may import other packages (it is the composition layer); synth's library modules never import
curate. Top-level imports stay light (typer only) so `studio --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

#: Curate steps new examples go through before review, when they exist in this installation.
POST_STEPS = ("exact_dedupe", "near_dedupe", "redact_pii")


def register(app: typer.Typer) -> None:
    app.command("synth")(synth)
    app.command("judge")(judge)


def synth(
    generator: Annotated[str, typer.Argument(help="self-instruct, evol-instruct, grounded-qa, paraphrase or edge-cases.")],
    inputs: Annotated[list[Path] | None, typer.Argument(help="Seed examples (self-instruct, evol-instruct, paraphrase) or documents (grounded-qa: .md/.txt/JSONL with text).", show_default=False)] = None,
    n: Annotated[int, typer.Option("--n", "-n", help="How many examples to produce.")] = 20,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default: a new folder under the workspace's runs/).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Finish the killed run in --out: answered requests are not sent again.")] = False,
    backend: Annotated[str, typer.Option(help="local (embedded llama.cpp server) or openai (any OpenAI-compatible endpoint).")] = "local",
    model: Annotated[str | None, typer.Option(help="Model name for the endpoint (default $OPENAI_MODEL; local: the GGUF name).")] = None,
    base_url: Annotated[str | None, typer.Option(help="Endpoint URL, e.g. http://localhost:8000/v1 (default $OPENAI_BASE_URL).")] = None,
    gguf: Annotated[Path | None, typer.Option(help="local: a GGUF model file (default: the bundled SmolLM2-135M-Instruct).")] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 4,
    timeout: Annotated[float, typer.Option(help="Per-request timeout in seconds.")] = 60.0,
    max_retries: Annotated[int, typer.Option(help="Retries per request on 429/5xx/timeouts (exponential backoff with jitter).")] = 6,
    max_tokens: Annotated[int, typer.Option(help="Most tokens per model reply.")] = 256,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0 = repeatable).")] = 0.7,
    structured: Annotated[str, typer.Option(help="JSON output mode: schema, object or off (falls back by itself when unsupported).")] = "schema",
    judge: Annotated[bool | None, typer.Option("--judge/--no-judge", help="Score each example with the LLM judge rubric (q_judge) and drop those below --judge-threshold. Default: on for --backend openai, off for local (the bundled 135M model judges no better than chance; bench/README.md).", show_default=False)] = None,
    judge_threshold: Annotated[float, typer.Option(help="Keep examples whose mean judge score is at least this (1-5).")] = 3.0,
    min_quality: Annotated[float, typer.Option(help="Keep examples whose `score` step quality (0-1) is at least this; 0 turns the gate off.")] = 0.5,
    category: Annotated[list[str] | None, typer.Option("--category", "-c", help="edge-cases: a category or rejection reason (repeatable).", show_default=False)] = None,
    exemplars: Annotated[Path | None, typer.Option(help="Approved examples (any example file) used as few-shot exemplars.")] = None,
    avoid: Annotated[list[str] | None, typer.Option(help="A rejection reason to steer away from (repeatable).", show_default=False)] = None,
    from_review: Annotated[str | None, typer.Option("--from-review", help="Review DB (URL or path): approved examples become exemplars, frequent rejection reasons become guidance, and review acceptance per generator/template is recorded.", show_default=False)] = None,
    against: Annotated[list[Path] | None, typer.Option(help="Existing data new examples are de-duplicated against (default: the example inputs).", show_default=False)] = None,
    curate_steps: Annotated[bool, typer.Option("--curate/--no-curate", help="Pass new examples through the available curate steps (dedupe, PII).")] = True,
    redact: Annotated[bool, typer.Option("--redact/--no-redact", help="Remote backends: PII-redact inputs before sending (turning it off is recorded).")] = True,
    prompts: Annotated[Path | None, typer.Option(help="Folder of prompt templates (<name>.v<N>.txt) that override the bundled ones.")] = None,
    target_skew: Annotated[Path | None, typer.Option("--target-skew", help="Aim at the largest skew the bias audit of this curate run flagged (its folder, manifest.json or run id): seeds are its kept rows of the skewed group, rewritten about the under-represented group; examples that do not name that group are dropped as off_target; the finding is recorded in the manifest and each example's meta.", show_default=False, rich_help_panel="Aim at an audit finding")] = None,
    target_group: Annotated[str | None, typer.Option("--target-group", help="With --target-skew: aim at the largest skew where this group is under-represented (female, male, young, older). Alone: the same, in the workspace's newest curate run with an audit.", show_default=False, rich_help_panel="Aim at an audit finding")] = None,
    target_axis: Annotated[str | None, typer.Option("--target-axis", help="Only skews on this axis (gender or age).", show_default=False, rich_help_panel="Aim at an audit finding")] = None,
) -> None:
    """Generate synthetic examples with an LLM; resumable, fault-tolerant, with lineage on every example.

    New examples pass dedupe and PII redaction, then the score step's quality gate (--min-quality); the LLM
    judge also gates them when on (by default only with --backend openai). Writes kept.parquet (studio schema +
    quality + q_judge, ready for `studio curate` and review), dropped.parquet,
    quarantine.jsonl (unreadable outputs with the raw text), responses/ (every answered request) and
    manifest.json (counts, tokens, cost, acceptance per template) to the run folder.

    Examples:

        studio synth grounded-qa sample_data/docs/ --n 20

        studio synth self-instruct self_instruct_seed_tasks.jsonl --n 20

        studio synth self-instruct seeds.jsonl --n 100 --backend openai --model gpt-4o-mini

        studio synth edge-cases -c "refund after 90 days" -c "wrong policy cited" --n 12

        studio synth paraphrase kept.parquet --n 50 --out runs/para   # then, after a crash: ... --resume

    Fill a gap the curate report's audit found (its "Audit" section names each skew, largest first, e.g.
    "source file tickets.json: 74% of its 38 gender mentions are female, against 0% in the rest"): the
    rows of that source are paraphrased about the group it under-represents (here male), and the synth
    manifest, `studio runs` and `studio lineage` name the finding:

        studio synth paraphrase --target-skew runs/curate-x --n 20

        studio synth edge-cases --target-skew runs/curate-x --target-group female --n 12
    """
    from studio.context import current_workspace, reporter
    from studio.errors import StudioError
    from studio.readers import read_inputs
    from synth.backends import make_backend
    from synth.runner import GENERATORS, SynthJob, build_generator, run_synth

    if generator not in GENERATORS:
        raise StudioError(f"unknown generator {generator!r}; choose one of {', '.join(GENERATORS)}.")
    rep = reporter()
    ws = current_workspace()
    prompts_dir = prompts or (ws.root / "prompts" if ws and (ws.root / "prompts").is_dir() else None)
    backend_cfg = _backend_config(ws, backend, model, base_url, gguf, concurrency, timeout, max_retries, structured)
    job = SynthJob(generator=generator, n=n, inputs=[str(p) for p in inputs or []], categories=list(category or []),
                   backend=backend_cfg, max_tokens=max_tokens, temperature=temperature,
                   judge=backend != "local" if judge is None else judge, judge_threshold=judge_threshold,
                   min_quality=min_quality if curate_steps else 0.0, redact=redact, prompts_dir=str(prompts_dir) if prompts_dir else None)
    rows, kind = [], None
    aim = None
    if target_skew or target_group or target_axis:
        aim = _aim(generator, target_skew, target_group, target_axis, ws, inputs)
        inputs = aim["inputs"]
        rows, kind = [aim["target"].counterfactual(r) for r in aim["seeds"]], "examples"
        job.inputs = [str(p) for p in inputs]
        job.target_skew = aim["target"].finding
        if generator == "edge-cases" and not job.categories:
            from synth.targeting import topics

            job.categories = topics(rows, aim["target"])
        rep.info(f"aiming at {aim['target'].group} ({aim['target'].axis}), under-represented in "
                 f"{job.target_skew['group_by']} {job.target_skew['group']} (audit of {job.target_skew['audit_run']}); "
                 f"{len(rows)} seed rows rewritten about {aim['target'].group}")
    elif inputs:
        result = read_inputs(inputs)
        rows, kind = result.rows, result.kind
        if result.quarantine:
            rep.warn(f"{len(result.quarantine)} malformed input records were skipped.")
    elif generator != "edge-cases":
        raise StudioError(f"{generator} needs input files; name seed examples or documents after the generator.")
    feedback = _feedback(exemplars, avoid)
    if aim:
        feedback.focus = aim["target"].guidance()
    review_stats = None
    if from_review:
        review_stats = _review_feedback(from_review, feedback)
        rep.info(f"from review: {len(feedback.exemplars)} exemplars, avoiding {', '.join(feedback.avoid) or 'nothing'}")
    gen = build_generator(job, rows, kind, feedback=feedback)
    if aim:
        from synth.targeting import AimedGenerator

        gen = AimedGenerator(gen, aim["target"])
    existing = _existing(against, rows if kind == "examples" else [])
    post = curated_postprocess(existing, rep, min_quality=job.min_quality) if curate_steps else None
    be = make_backend(backend_cfg)
    redactor = _redactor() if be.is_remote and redact else None
    run = run_synth(job, gen, be, out_dir=out, workspace=ws, reporter=rep, resume=resume, redactor=redactor,
                    postprocess=post, inputs=list(inputs or []))
    if review_stats is not None:
        _add_to_manifest(run, "review_feedback", review_stats)
        rep.table("review acceptance of earlier synthetic examples", ["generator / template", "accepted", "decided", "rate"],
                  [[k, v["accepted"], v["decided"], f"{v['rate']:.0%}"] for k, v in review_stats["acceptance"].items()])
    if aim:
        _record_target(run, aim, rep)
    _summary(rep, run)


def judge(
    inputs: Annotated[list[Path], typer.Argument(help="The data set to judge: any example file or folder (chat/Alpaca/ShareGPT/CSV/Parquet, e.g. a curate or synth output).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default: a new folder under the workspace's runs/).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Finish the killed run in --out: answered requests are not sent again.")] = False,
    backend: Annotated[str, typer.Option(help="openai (any OpenAI-compatible endpoint: a capable judge) or local (the embedded llama.cpp server).")] = "openai",
    model: Annotated[str | None, typer.Option(help="Model name for the endpoint (default $OPENAI_MODEL; local: the GGUF name).")] = None,
    base_url: Annotated[str | None, typer.Option(help="Endpoint URL, e.g. http://localhost:8000/v1 (default $OPENAI_BASE_URL).")] = None,
    gguf: Annotated[Path | None, typer.Option(help="local: a GGUF model file (default: the bundled SmolLM2-135M-Instruct).")] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 4,
    timeout: Annotated[float, typer.Option(help="Per-request timeout in seconds.")] = 60.0,
    max_retries: Annotated[int, typer.Option(help="Retries per request on 429/5xx/timeouts (exponential backoff with jitter).")] = 6,
    structured: Annotated[str, typer.Option(help="JSON output mode: schema, object or off (falls back by itself when unsupported).")] = "schema",
    redact: Annotated[bool, typer.Option("--redact/--no-redact", help="Remote backends: PII-redact examples before sending (turning it off is recorded).")] = True,
    prompts: Annotated[Path | None, typer.Option(help="Folder of prompt templates (judge.v<N>.txt) that override the bundled rubric.")] = None,
) -> None:
    """Score any data set with the LLM judge rubric: q_judge (0-1) and judge_accuracy/relevance/clarity/usefulness (1-5).

    Resumable like `studio synth`; with a remote endpoint, examples are PII-redacted before sending. Writes
    judged.parquet (every row and column of the input plus the judge's columns), unjudged.jsonl and manifest.json.
    Then `studio curate judged.parquet` with `score: {judge: true}` folds q_judge into quality.
    The bundled 135M model agrees with human preference no better than chance (bench/README.md): point
    --base-url at a capable model for judgements worth keeping.

    Examples:

        studio judge runs/curate-x/kept.parquet --base-url http://localhost:8000/v1 --model qwen2.5-7b-instruct

        studio judge data.jsonl --model gpt-4o-mini --out runs/judged   # then, after a crash: ... --resume
    """
    from studio.context import current_workspace, reporter
    from studio.readers import read_inputs
    from synth.backends import make_backend
    from synth.judge_run import JudgeJob, judge_dataset

    rep = reporter()
    ws = current_workspace()
    prompts_dir = prompts or (ws.root / "prompts" if ws and (ws.root / "prompts").is_dir() else None)
    backend_cfg = _backend_config(ws, backend, model, base_url, gguf, concurrency, timeout, max_retries, structured)
    result = read_inputs(inputs, kind="examples")
    if result.quarantine:
        rep.warn(f"{len(result.quarantine)} malformed input records were skipped.")
    job = JudgeJob(inputs=[str(p) for p in inputs], backend=backend_cfg, redact=redact,
                   prompts_dir=str(prompts_dir) if prompts_dir else None)
    be = make_backend(backend_cfg)
    redactor = _redactor() if be.is_remote and redact else None
    run = judge_dataset(job, result.rows, be, out_dir=out, workspace=ws, reporter=rep, resume=resume,
                        redactor=redactor, inputs=list(inputs))
    m = run.manifest()
    judged = m["judge"]["judged"]
    rows = [["examples", m["counts"]["input"]], ["judged", judged], ["unjudged (see unjudged.jsonl)", m["judge"]["unjudged"]],
            ["requests sent", m["requests"]["sent"]], ["answered from the log (resume)", m["requests"]["answered_from_log"]],
            ["tokens in / out", f"{m['usage']['prompt_tokens']:,} / {m['usage']['completion_tokens']:,}"],
            ["cost (USD)", f"{m['usage']['cost_usd']:.4f}"]]
    rep.table(f"judge run {run.run_id}", ["", "value"], rows)
    rep.out.print(f"outputs in [bold]{run.dir}[/] (judged.parquet, unjudged.jsonl, manifest.json)")


def _backend_config(ws, backend: str, model: str | None, base_url: str | None, gguf: Path | None, concurrency: int,
                    timeout: float, max_retries: int, structured: str):
    """The backend settings from the command line, with the workspace's price table (synth.prices)."""
    from synth.backends import BackendConfig, Price

    cfg = BackendConfig(kind=backend, model=model, base_url=base_url, gguf=str(gguf) if gguf else None,
                        concurrency=concurrency, timeout_s=timeout, max_retries=max_retries, structured=structured)
    prices = (ws.config.get("synth", {}) or {}).get("prices") if ws else None
    if prices:
        cfg.prices.update({k: Price(**v) for k, v in prices.items()})
    return cfg


def _review_feedback(db: str, feedback, max_exemplars: int = 32, max_reasons: int = 5) -> dict:
    """Fill `feedback` from a review store and measure how reviewers received earlier synthetic examples."""
    from collections import Counter, defaultdict

    from review_app.store import ReviewStore
    from studio.credentials import db_label
    from studio.schema import prompt_text, response_text

    store = ReviewStore(db)
    try:
        approved = store.approved_items(policy="any")
        feedback.exemplars += [{"prompt": prompt_text(a["messages"]), "response": response_text(a["messages"])}
                               for a in approved[:max_exemplars]]
        decided = [d for d in store.decisions() if d["verdict"] in ("accept", "reject") and not d["reviewer"].startswith("rule:")]
        reasons = Counter(r for d in decided if d["verdict"] == "reject" for r in d["reasons"] or [])
        feedback.avoid += [r for r, _ in reasons.most_common(max_reasons) if r not in feedback.avoid]
        by_template: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for d in decided:
            item = store.get_item(d["item_id"])
            if item.origin != "synthetic":
                continue
            key = f"{item.meta.get('generator', '?')} / {item.meta.get('template', '?')}"
            by_template[key][0] += d["verdict"] == "accept"
            by_template[key][1] += 1
    finally:
        store.close()
    return {"db": db_label(store.url), "exemplars": len(feedback.exemplars), "avoid": list(feedback.avoid),
            "acceptance": {k: {"accepted": a, "decided": n, "rate": a / n} for k, (a, n) in sorted(by_template.items())}}


def _aim(generator: str, target_skew: Path | None, group: str | None, axis: str | None, ws,
         inputs: list[Path] | None) -> dict[str, Any]:
    """The audit finding to aim at (`synth.targeting`), with the audit's term lists, and its seed rows: the
    skewed group's rows of the given inputs, or of the curate run's kept.parquet when none are given."""
    from curate.bias_audit import COUNTERPARTS, TERMS
    from studio.errors import StudioError
    from studio.readers import read_inputs
    from synth.targeting import find_audit_manifest, kept_output, make_target, pick_finding, seed_rows

    if generator == "grounded-qa":
        raise StudioError("--target-skew aims paraphrase, edge-cases, self-instruct or evol-instruct at a skew; "
                          "grounded-qa writes about documents, not about the rows of a skewed source.")
    manifest, path = find_audit_manifest(target_skew, ws)
    target = make_target(pick_finding(manifest, path, TERMS, group, axis), TERMS, COUNTERPARTS)
    inputs = list(inputs or []) or [kept_output(manifest, path)]
    result = read_inputs(inputs, kind="examples")
    return {"target": target, "seeds": seed_rows(result.rows, target), "inputs": inputs}


def _record_target(run, aim: dict[str, Any], rep) -> None:
    """Put the finding aimed at, and how the mentions moved (seed rows as they were → kept rows), in the manifest."""
    import polars as pl

    from synth.targeting import skew_moved

    target = aim["target"]
    kept = pl.read_parquet(run.dir / "kept.parquet").to_dicts()
    moved = skew_moved(aim["seeds"], kept, target)
    _add_to_manifest(run, "target_skew", {**target.finding, "mentions": moved})
    rep.table(f"aimed at {target.group} ({target.axis}): {target.finding['flag']}",
              ["", "rows", f"{target.group} mentions", f"{target.finding['over']} mentions", f"{target.group} share"],
              [[name, m["rows"], m[target.group], m[target.finding["over"]], "–" if m["share"] is None else f"{m['share']:.0%}"]
               for name, m in (("seed rows (as curated)", moved["seeds"]), ("generated (kept)", moved["generated"]))])


def _add_to_manifest(run, key: str, value: Any) -> None:
    """Add `key` to a finished run's manifest (and the workspace copy): what review taught it, what it aimed at."""
    import json

    from studio.atomic import atomic_open

    paths = [run.manifest_path]
    if run.workspace is not None:
        paths.append(run.workspace.runs_dir / run.run_id / "manifest.json")
    for path in paths:
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            data[key] = value
            with atomic_open(path) as fh:
                json.dump(data, fh, indent=2, ensure_ascii=False)
                fh.write("\n")


def _feedback(exemplars: Path | None, avoid: list[str] | None):
    from studio.readers import read_inputs
    from studio.schema import prompt_text, response_text
    from synth.generators.base import Feedback

    shots = []
    if exemplars:
        result = read_inputs([exemplars])
        shots = [{"prompt": prompt_text(r["messages"]), "response": response_text(r["messages"])} for r in result.rows
                 if result.kind == "examples"]
    return Feedback(exemplars=shots, avoid=list(avoid or []))


def _existing(against: list[Path] | None, fallback: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not against:
        return fallback
    from studio.readers import read_inputs

    result = read_inputs(against)
    return result.rows if result.kind == "examples" else []


def _redactor():
    """`curate.pii.PiiRedactor().redact_texts` (imported lazily: presidio and spaCy are heavy)."""
    from studio.errors import StudioError

    try:
        from curate.pii import PiiRedactor
    except ImportError:
        raise StudioError("PII redaction is not available in this installation (curate.pii is missing); "
                          "use --backend local, or pass --no-redact to send raw text on purpose.") from None
    return PiiRedactor().redact_texts


def curated_postprocess(existing: list[dict[str, Any]], rep=None, min_quality: float = 0.0):
    """New rows through the curate steps that exist (dedupe against `existing` and within the batch, PII), then,
    with `min_quality` > 0, the `score` step on the rows still kept: below it they are dropped as `low_quality`.

    The score step's signals are the local default gate: on the 252 user-oriented instructions its `quality`
    prefers text-davinci-003's answer over davinci's far more often than the bundled model's judge does
    (bench/README.md, judge agreement)."""
    import polars as pl

    from curate.pipeline import run_steps
    from curate.registry import build_step, step_names
    from studio.schema import BASE_COLUMNS, example_id, examples_frame

    available = set(step_names())
    names = [s for s in POST_STEPS if s in available]
    if not names:
        return None
    steps = [build_step(s, {}) for s in names]
    scorer = build_step("score", {}) if min_quality > 0 and "score" in available else None
    base = [{k: r[k] for k in BASE_COLUMNS} for r in existing]

    def post(new_rows, accepted):
        prior = base + [{k: r[k] for k in BASE_COLUMNS} for r in accepted]
        df = examples_frame(prior + [{k: r[k] for k in BASE_COLUMNS} for r in new_rows]).with_columns(
            pl.Series("_pos", [None] * len(prior) + list(range(len(new_rows))), dtype=pl.Int64))
        kept, dropped = run_steps(df, steps)
        verdicts: list[tuple[dict[str, Any], str | None]] = [(r, "curate: dropped") for r in new_rows]
        for frame in dropped:
            for rec in frame.filter(pl.col("_pos").is_not_null()).iter_rows(named=True):
                verdicts[rec["_pos"]] = (new_rows[rec["_pos"]], rec["drop_reason"])
        for rec in kept.filter(pl.col("_pos").is_not_null()).iter_rows(named=True):
            row = dict(new_rows[rec["_pos"]])
            if rec["messages"] != row["messages"]:  # a step rewrote the text (PII redaction)
                row["messages"] = rec["messages"]
                row["id"] = example_id(rec["messages"])
            verdicts[rec["_pos"]] = (row, None)
        if scorer is not None:
            _gate_on_quality(scorer, verdicts, min_quality)
        return verdicts

    if rep:
        gate = f", then score (keep quality >= {min_quality})" if scorer is not None else ""
        rep.info(f"new examples go through curate steps: {', '.join(names)}{gate}")
    return post


def _gate_on_quality(scorer, verdicts: list, min_quality: float) -> None:
    """Score the rows the other steps kept; attach `quality`; drop those below `min_quality` as low_quality."""
    from studio.schema import BASE_COLUMNS, examples_frame

    alive = [i for i, (_, reason) in enumerate(verdicts) if reason is None]
    if not alive:
        return
    scored = scorer.process(examples_frame([{k: verdicts[i][0][k] for k in BASE_COLUMNS} for i in alive]))
    for i, quality in zip(alive, scored["quality"].to_list(), strict=True):
        row = {**verdicts[i][0], "quality": quality}
        verdicts[i] = (row, None if quality is not None and quality >= min_quality else "low_quality")


def _summary(rep, run) -> None:
    m = run.manifest()
    counts = m["counts"]
    rows = [["requested", m["requested"]], ["produced (kept)", counts["kept"]], ["candidates tried", counts["input"]]]
    rows += [[f"dropped: {reason}", k] for reason, k in counts["dropped"].items()]
    rows += [["quarantined (unreadable / failed)", counts["quarantined"]]]
    req, usage = m["requests"], m["usage"]
    rows += [["requests sent", req["sent"]], ["answered from the log (resume)", req["answered_from_log"]],
             ["retries", usage["retries"]], ["tokens in / out", f"{usage['prompt_tokens']:,} / {usage['completion_tokens']:,}"],
             ["cost (USD)", f"{usage['cost_usd']:.4f}"]]
    rep.table(f"synth run {run.run_id}", ["", "value"], rows)
    rep.out.print(f"outputs in [bold]{run.dir}[/] (kept.parquet, quarantine.jsonl, manifest.json)")
