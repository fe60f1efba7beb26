"""CLI commands of the training package: `studio train` and `studio eval` (registered by `register(app)`).

Only typer is imported at the top so `studio --help` stays fast; torch/transformers load inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: Blind A/B hooks, filled by the app layer (studio_app/ab.py) so training never imports review_app:
#: "to_review"(eval_dir, db, workspace, overlap) -> counts; "ab_report"(eval_run, db, workspace) -> result.
AB_HOOKS: dict = {}


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("eval")(eval_command)


def train_command(
    train: Annotated[Path, typer.Option("--train", help="Training data: chat JSONL from `studio export --format openai` (with --objective dpo: pairs from `--format dpo`).")],
    val: Annotated[Path | None, typer.Option("--val", help="Validation data (default: hold out ~10% of --train, whole duplicate groups and prompts, as the export splits; dpo: ~20% of the prompts).")] = None,
    objective: Annotated[str | None, typer.Option("--objective", help="sft (next-token loss on chat data) or dpo (Direct Preference Optimization on preference pairs).", show_default=False)] = None,
    base_model: Annotated[str | None, typer.Option("--base-model", help="Local model folder, or `default` (bundled SmolLM2-135M-Instruct).", show_default=False)] = None,
    method: Annotated[str | None, typer.Option("--method", help="qlora (4-bit NF4 base, CUDA or CPU), lora (16/32-bit base) or auto (qlora on CUDA, else lora).", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default: a new folder under the workspace's runs/).")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="train.yaml with any TrainConfig fields; flags override it.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in --out.")] = False,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Optimizer steps (overrides epochs).", show_default=False)] = None,
    epochs: Annotated[float | None, typer.Option("--epochs", help="Passes over the training data.", show_default=False)] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="Peak learning rate.", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Micro-batch size (examples, or × max-length tokens when packed).", show_default=False)] = None,
    grad_accum: Annotated[int | None, typer.Option("--grad-accum", help="Micro-batches per optimizer step.", show_default=False)] = None,
    max_length: Annotated[int | None, typer.Option("--max-length", help="Longest conversation in tokens.", show_default=False)] = None,
    lora_r: Annotated[int | None, typer.Option("--lora-r", help="LoRA rank.", show_default=False)] = None,
    packing: Annotated[bool | None, typer.Option("--packing/--no-packing", help="Pack short examples (no cross-example attention).", show_default=False)] = None,
    merge: Annotated[bool | None, typer.Option("--merge/--no-merge", help="Also save a merged 16/32-bit model in merged/.", show_default=False)] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads (default: the cores idle when the run starts).", show_default=False)] = None,
    cpu_bf16: Annotated[str | None, typer.Option("--cpu-bf16", help="auto|on|off: bfloat16 matmuls on CPU (auto: where the CPU has native bf16).", show_default=False)] = None,
) -> None:
    """Fine-tune a base model with LoRA or QLoRA on exported chat data; a run with adapter, metrics and plot.

    The loss is on assistant tokens only (end-of-turn token included), with the base model's chat template.
    Defaults follow the QLoRA paper (NF4, double quantization, bf16 compute, LoRA r=64/alpha=16 on all linear
    layers, here without dropout) sized for small reviewed sets: 3 epochs, 1,024-token packed micro-batches, 2 per
    step, lr 1e-3 with cosine decay, early stopping on validation loss; a run of fewer than 10 steps is announced
    first. On CPU it uses the idle cores and bf16 matmuls where the CPU has them. See `training/config.py` for every setting.

    Writes to the run folder: `adapter/`, `checkpoints/`, `metrics.json`, `loss_curve.png`, `manifest.json`
    (base model, method, config, data hashes and upstream export manifest: `studio runs --kind train`).

    Examples:

        studio train --train export/train.jsonl --val export/val.jsonl --base-model default --method lora --max-steps 20

        studio train --train train.jsonl --base-model /models/llama-3.1-8b-instruct --config train.yaml --out runs/llama-claims

        studio train --train train.jsonl --out runs/llama-claims --config train.yaml --resume

        studio train --objective dpo --train exports/v3/train.jsonl --base-model default --method lora --max-steps 20
    """
    from studio.context import current_workspace, reporter
    from training.config import TrainConfig
    from training.trainer import train as run_training

    cfg = TrainConfig.from_yaml(config) if config else TrainConfig()
    flags = {"objective": objective, "base_model": base_model, "method": method, "max_steps": max_steps, "epochs": epochs,
             "learning_rate": learning_rate, "batch_size": batch_size, "grad_accum": grad_accum,
             "max_length": max_length, "lora_r": lora_r, "packing": packing, "merge": merge,
             "num_threads": threads, "cpu_bf16": cpu_bf16}
    cfg = TrainConfig.validated({**cfg.model_dump(), **{k: v for k, v in flags.items() if v is not None}},
                                source="command-line flags")
    rep = reporter()
    if cfg.objective == "dpo":
        _train_dpo(cfg, train, val, out, resume, rep)
        return
    result = run_training(cfg, train, val, out, resume=resume, reporter=rep, workspace=current_workspace())
    m = result.metrics
    rows = [["base model", m["base_model"]], ["method", m["method"]], ["steps", f"{m['steps']} / {m['total_steps']}"],
            ["validation loss before", m["val_loss_before"]], ["validation loss best", m["val_loss_best"]],
            ["train loss last", m["train_loss_last"]], ["tokens/s", m["tokens_per_second"]],
            ["stopped early", m["stopped_early"]]]
    if "peak_gpu_memory_gib" in m:
        rows.append(["peak GPU memory (GiB)", m["peak_gpu_memory_gib"]])
    rep.table(f"train run in {result.run_dir}", ["", "value"], [[k, str(v)] for k, v in rows])
    rep.out.print(f"adapter in [bold]{result.adapter_dir}[/]" + (f", merged model in {result.merged_dir}" if result.merged_dir else ""))


def _train_dpo(cfg, train: Path, val: Path | None, out: Path | None, resume: bool, rep) -> None:
    from studio.context import current_workspace
    from studio.errors import StudioError
    from training.dpo import train_dpo

    if resume:
        raise StudioError("--resume is not available with --objective dpo (DPO runs are short); run it again.")
    result = train_dpo(cfg, train, val, out, reporter=rep, workspace=current_workspace())
    m = result.metrics

    def fig(when: str, split: str) -> str:
        f = m[when][split]
        return "–" if f["preference_accuracy"] is None else f"{f['preference_accuracy']:.2f} (margin {f['mean_reward_margin']:+.3f})"

    export = m["pairs_export"] or {}
    rows = [["base model", m["base_model"]], ["method", m["method"]], ["steps", str(m["steps"])],
            ["pairs train / held out", f"{m['pairs']['train']} / {m['pairs']['held_out']}"],
            ["pairs export (run, version)", f"{export.get('run_id') or '–'}, {export.get('version') or '–'}"],
            ["preference accuracy train: before → after", f"{fig('before', 'train')} → {fig('after', 'train')}"],
            ["preference accuracy held out: before → after", f"{fig('before', 'held_out')} → {fig('after', 'held_out')}"],
            ["base model prefers chosen (train / held out)",
             " / ".join("–" if v is None else f"{v:.2f}" for v in m["base_prefers_chosen"].values())]]
    rep.table(f"DPO run in {result.run_dir}", ["", "value"], rows)
    rep.out.print(f"adapter in [bold]{result.adapter_dir}[/]")


def eval_command(
    model: Annotated[str | None, typer.Option("--model", help="An adapter folder from `studio train` (scored with and without the adapter), a model folder, or `default`.", show_default=False)] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Chat JSONL to score; the last assistant turn of each conversation is the reference.", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default: a new folder under the workspace's runs/).")] = None,
    max_examples: Annotated[int, typer.Option("--max-examples", help="Score at most this many conversations (0 = all).")] = 64,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Longest greedy generation.")] = 64,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Generation batch size.")] = 8,
    max_length: Annotated[int, typer.Option("--max-length", help="Conversations longer than this (tokens) are skipped and counted.")] = 1024,
    base_model: Annotated[str | None, typer.Option("--base-model", help="Base for an adapter whose recorded base path moved.", show_default=False)] = None,
    judge_url: Annotated[str | None, typer.Option("--judge-url", help="OpenAI-compatible base URL for an LLM judge (off by default; key from OPENAI_API_KEY).", show_default=False)] = None,
    judge_model: Annotated[str, typer.Option("--judge-model", help="Model name for the judge.")] = "gpt-4o-mini",
    redact: Annotated[bool, typer.Option("--redact/--no-redact", help="With --judge-url: PII-redact what is sent to the judge (turning it off is recorded).")] = True,
    forgetting: Annotated[bool, typer.Option("--forgetting/--no-forgetting", help="Also score the shipped general-capability set (32 self-instruct tasks) before and after; flag forgetting.")] = True,
    redteam: Annotated[bool, typer.Option("--redteam/--no-redteam", help="Also answer the shipped red-team prompts (manipulative, false premise) before and after; flag a drop in refusals/corrections.")] = True,
    redteam_data: Annotated[list[Path] | None, typer.Option("--redteam-data", help="More red-team prompts: an `edge-cases` synth output (kept.parquet or JSONL); its manipulative and false-premise prompts are used. Repeatable.", show_default=False)] = None,
    to_review: Annotated[bool, typer.Option("--to-review", help="Blind A/B: queue base vs fine-tuned generations (an adapter's) in the review store as blind pairwise items (sides random, models hidden).")] = False,
    overlap: Annotated[int, typer.Option("--overlap", help="With --to-review: reviewers per blind item (2+ measures agreement).")] = 2,
    ab_report: Annotated[str | None, typer.Option("--ab-report", help="Blind A/B result of an earlier `--to-review` eval run (id or folder): win rate with a 95 % Wilson interval and agreement, as a new eval run.", show_default=False)] = None,
    db: Annotated[str | None, typer.Option("--db", help="With --to-review / --ab-report: review database URL (default: the workspace's review.db).", show_default=False)] = None,
) -> None:
    """Score a model on held-out chat data: assistant-token perplexity, ROUGE-L, exact match (and a judge), each
    with a 95 % bootstrap interval.

    For an adapter, the base model (adapter off) and the fine-tuned model (adapter on) are compared in one
    table, with the paired bootstrap interval of each change: a change whose interval holds 0 is marked
    "not real". `report.html` in the run folder shows the table and side-by-side sample generations.

    Two guard checks run on the same weights (turn off with --no-forgetting / --no-redteam): the forgetting
    check flags a rise of general-set perplexity above 10 % or a fall of its ROUGE-L beyond 0.02 (whole 95 %
    interval past the tolerance); the red-team check flags a fall of the share of manipulative prompts refused
    and false premises corrected (keyword rule in training/redteam.py) by more than 0.10 with an interval below 0.

    Examples:

        studio eval --model runs/train-.../adapter --data export/val.jsonl

        studio eval --model default --data val.jsonl --max-examples 20

    Blind A/B with people: `--to-review` also queues base vs fine-tuned answers for review as blind pairwise items;
    once rated, `studio eval --ab-report EVAL_RUN` reports the fine-tuned model's win rate (ties half, 95 % Wilson
    interval) and the reviewers' agreement as a new eval run (ab.json, report.html; upstream the eval and training
    runs, so `studio lineage` reaches it).

        studio eval --model runs/train-.../adapter --data exports/v1/test.jsonl --to-review

        studio eval --ab-report eval-20261206-...
    """
    from studio.context import current_workspace, reporter
    from studio.errors import StudioError
    from training.evaluate import EvalSettings, OpenAIJudge, run_eval

    if ab_report is not None:
        if "ab_report" not in AB_HOOKS:
            raise StudioError("--ab-report needs the review store; run it through the `studio` command.")
        res = AB_HOOKS["ab_report"](ab_report, db, current_workspace())
        reporter().table(f"blind A/B of {res['eval_run']} ({res['judgements']} judgements)",
                         ["fine-tuned wins", "ties", "base wins", "win rate (ties half)", "95 % CI", "agreement"],
                         [[res["wins"], res["ties"], res["losses"], res["win_rate"], str(res["ci95"]),
                           res["agreement"]["percent_agreement"]]])
        reporter().out.print(f"report: [bold]{res['report']}[/]")
        return
    if model is None or data is None:
        raise StudioError("studio eval needs --model and --data (or --ab-report EVAL_RUN for a blind A/B result).")
    if to_review and "to_review" not in AB_HOOKS:
        raise StudioError("--to-review needs the review store; run it through the `studio` command.")
    settings = EvalSettings(max_examples=max_examples or None, max_new_tokens=max_new_tokens, batch_size=batch_size,
                            max_length=max_length, ab_pairs=to_review)
    redactor = None
    if judge_url and redact:  # the judge sees prompts, references and answers: redact them like synth does
        from curate.pii import PiiRedactor

        redactor = PiiRedactor().redact_texts
    judge = OpenAIJudge(judge_url, judge_model, redact=redactor) if judge_url else None
    checks = []
    if forgetting:
        from training.forgetting import ForgettingCheck

        checks.append(ForgettingCheck())
    if redteam or redteam_data:
        from training.redteam import RedTeamCheck

        checks.append(RedTeamCheck(extra=list(redteam_data or [])))
        checks[-1].prompts()  # a missing or unreadable --redteam-data fails now, not after the model has run
    rep = reporter()
    result = run_eval(model, data, out, settings, judge=judge, base_override=base_model, reporter=rep,
                      workspace=current_workspace(), checks=checks)
    labels = list(result["scores"])
    metrics = [m for m in next(iter(result["scores"].values())) if not m.endswith("_ci95")]
    change = result.get("change", {})

    def cell(label: str, metric: str) -> str:
        scores = result["scores"][label]
        ci = scores.get(f"{metric}_ci95")
        return f"{scores.get(metric, '–')}" + (f" [{ci[0]}, {ci[1]}]" if ci else "")

    def verdict(metric: str) -> str:
        c = change.get(metric)
        if c is None:
            return ""
        return f"{c['delta']:+} [{c['ci95'][0]:+}, {c['ci95'][1]:+}]" + ("" if c["real"] else " (not real)")

    rows = [[metric, *[cell(label, metric) for label in labels], *([verdict(metric)] if change else [])]
            for metric in metrics]
    rep.table(f"eval on {result['examples']} conversations (95 % bootstrap intervals)",
              ["metric", *labels, *(["change"] if change else [])], rows)
    for check in checks:
        found = result[check.name]
        if "verdict" in found:
            rows = [[check.name, found["verdict"] + (" (flagged)" if found["flagged"] else "")]]
            rep.table(f"{check.name} check", ["check", "verdict"], rows)
    rep.out.print(f"report: [bold]{result['report']}[/]")
    if to_review:
        eval_dir = Path(result["report"]).parent
        sent = AB_HOOKS["to_review"](eval_dir, db, current_workspace(), overlap)
        rep.out.print(f"blind A/B: {sent['added']} pairwise items queued for review ({sent['already_present']} already "
                      f"there); when rated: studio eval --ab-report {eval_dir}")
