"""CLI commands of the curate package (registered into `studio` by studio_app/cli.py): `studio pii-eval`.

Only typer is imported at module level so `studio --help` stays fast; presidio loads inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("pii-eval")(pii_eval)


def pii_eval(
    file: Annotated[Path, typer.Argument(help="Labelled texts in presidio-research's format (JSON list or JSONL of "
                                               "full_text + spans[entity_type, start_position, end_position]).")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML with redact_pii settings (entities, "
                                                 "thresholds, allow/deny lists, id_patterns).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default: a new one under the "
                                              "workspace's runs/); metrics.json is written there.")] = None,
) -> None:
    """Measure PII detection on labelled text: precision, recall and F2 per entity type and overall, at token
    level (as presidio-research) and span level (same type, overlap ≥ 50%), and a token confusion table.

    Labels are mapped onto common classes first (STREET_ADDRESS/GPE/ZIP_CODE → LOCATION, DOMAIN_NAME → URL, ...;
    see curate/pii/evaluate.py). Only metrics are written, never the texts.

    Example: `studio pii-eval ../shared/data/pii/presidio_synth_dataset_v2.json`
    """
    import json

    import yaml

    from curate.pii import PiiConfig, PiiRedactor
    from curate.pii.evaluate import evaluate, load_labelled
    from studio.atomic import atomic_open
    from studio.context import current_workspace, reporter
    from studio.errors import StudioError
    from studio.runs import Run

    rep = reporter()
    settings = {}
    if config:
        if not config.is_file():
            raise StudioError(f"config {config} does not exist; check the path.")
        settings = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        settings = settings.get("redact_pii", settings)
    cfg = PiiConfig(**{**settings, "audit_only": True, "mapping_file": None})
    samples = load_labelled(file)
    redactor = PiiRedactor(cfg)
    with Run("pii-eval", out_dir=out, workspace=current_workspace(), config=cfg.model_dump(mode="json")) as run:
        run.add_input(file)
        rep.info(f"analysing {len(samples):,} labelled texts …")
        result = evaluate(samples, lambda texts: [[(e.type, e.start, e.end) for e in ents]
                                                  for ents in redactor.analyze_texts(texts)])
        run.counts.input = run.counts.kept = len(samples)
        metrics = run.dir / "metrics.json"
        with atomic_open(metrics) as fh:
            json.dump(result.to_dict(), fh, indent=2)
        run.add_output(metrics)
        run.extra["pii_eval"] = {"token_overall_pii": result.token_pii.to_dict(),
                                 "span_overall_typed": result.span_micro.to_dict()}

    def rows(per_type, overall_rows):
        body = [[k, s.tp + s.fn, f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f2:.3f}"]
                for k, s in sorted(per_type.items())]
        return body + [[name, s.tp + s.fn, f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f2:.3f}"]
                       for name, s in overall_rows]

    cols = ["entity type", "support", "precision", "recall", "F2"]
    rep.table(f"token level ({len(samples):,} texts; support = tokens)", cols,
              rows(result.token, [("overall (any PII)", result.token_pii), ("overall (typed micro)", result.token_micro)]))
    rep.table("span level (same type, IoU ≥ 0.5; support = spans)", cols,
              rows(result.span, [("overall (typed micro)", result.span_micro)]))
    header, body = result.confusion_table()
    rep.table("token confusion (rows: gold, columns: predicted)", header, body)
    rep.out.print(f"metrics in [bold]{metrics}[/]")
