"""Blind A/B of a fine-tuned model, glued in the app layer (training never imports review_app):

1. `studio eval --model ADAPTER --data test.jsonl --to-review` scores the model as always and writes
   `ab_pairs.jsonl` in the eval run folder (training.evaluate.write_ab_pairs: base and fine-tuned generations
   per held-out prompt, in the pairwise JSONL shape of review_app/pairwise.py, `blind: true`); `send_to_review`
   queues them in the review store (a `review` run, upstream the eval run). Reviewers see the two answers in a
   random side order per reviewer and item, with no model, run or origin on the page.
2. `studio eval --ab-report EVAL_RUN` (a run id or folder) reads the decisions on those items and writes an
   `eval` run (upstream: the eval run and the training run, so `studio lineage` reaches it from the training
   run) with `ab.json`, `report.html` and the manifest's `metrics["blind A/B"]`: the fine-tuned model's win rate
   over the base (ties count half) with a 95 % Wilson interval, and the reviewers' agreement on those items.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from studio.errors import StudioError
from studio.runs import Run, list_runs
from studio.workspace import Workspace


def _store(db: str | None, workspace: Workspace | None):
    from review_app.commands import _db_url
    from review_app.store import ReviewStore

    return ReviewStore(_db_url(db))


def _eval_dir(ref: str | Path, workspace: Workspace | None) -> Path:
    path = Path(ref)
    if (path / "manifest.json").is_file():
        return path
    for m in list_runs(workspace, kind="eval"):
        if m.get("run_id") == str(ref) and m.get("_path"):
            return Path(m["_path"]).parent
    raise StudioError(f"no eval run {ref!r}: pass the run id or folder of a `studio eval --to-review` run.")


def send_to_review(eval_dir: str | Path, db: str | None, workspace: Workspace | None, overlap: int = 2) -> dict[str, Any]:
    from review_app.recorded import load_recorded
    from training.evaluate import AB_PAIRS_FILE

    pairs = Path(eval_dir) / AB_PAIRS_FILE
    if not pairs.is_file() or not pairs.read_text(encoding="utf-8").strip():
        raise StudioError(f"{pairs} is missing or empty: the base and fine-tuned models wrote the same answers, or "
                          "--model is not an adapter; nothing to compare.")
    run, counts = load_recorded(_store(db, workspace), pairs, workspace, overlap=overlap)
    return {"review_run": run.run_id, **counts}


def ab_report(eval_ref: str | Path, db: str | None, workspace: Workspace | None) -> dict[str, Any]:
    from review_app.pairwise import ab_report as win_rate
    from review_app.pairwise import pairwise_agreement, pairwise_rows
    from training.evaluate import AB_PAIRS_FILE, BASE_LABEL, FINE_TUNED_LABEL

    eval_dir = _eval_dir(eval_ref, workspace)
    manifest = json.loads((eval_dir / "manifest.json").read_text(encoding="utf-8"))
    pairs = eval_dir / AB_PAIRS_FILE
    if not pairs.is_file():
        raise StudioError(f"{eval_dir} has no {AB_PAIRS_FILE}; run `studio eval --model ADAPTER --data ... --to-review` first.")
    item_ids = [r["id"] for r in pairwise_rows(pairs)]
    store = _store(db, workspace)
    result = win_rate(store, item_ids, model_a=BASE_LABEL, model_b=FINE_TUNED_LABEL)
    if result["judgements"] == 0:
        raise StudioError(f"no reviewer has rated the {len(item_ids)} blind items of {manifest['run_id']} yet; "
                          "review them in `studio review` first.")
    result["agreement"] = pairwise_agreement(store, item_ids)
    result["items"] = len(item_ids)
    result["items_rated"] = sum(1 for i in item_ids if store.decisions(item_id=i))
    train_run = (manifest.get("ab_pairs") or {}).get("train_run")
    result |= {"eval_run": manifest["run_id"], "train_run": train_run, "model": manifest.get("model")}
    with Run("eval", workspace=workspace, config={"ab_report_of": manifest["run_id"], "db": db}) as run:
        run.upstream += [u for u in (manifest["run_id"], train_run) if u]
        run.add_input(pairs, role="blind A/B items")
        (run.dir / "ab.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
        (run.dir / "report.html").write_text(render(result), encoding="utf-8")
        run.add_output(run.dir / "ab.json")
        run.add_output(run.dir / "report.html")
        run.counts.input = len(item_ids)
        run.counts.kept = result["items_rated"]
        run.counts.drop("not rated yet", len(item_ids) - result["items_rated"])
        run.extra["metrics"] = {"blind A/B": {k: result[k] for k in ("win_rate", "ci95", "judgements", "wins", "ties",
                                                                      "losses")}
                                | {"percent_agreement": result["agreement"]["percent_agreement"]}}
        run.extra["model"] = manifest.get("model")
        run.extra["ab"] = result
    result["report"] = str(run.dir / "report.html")
    result["ab_run"] = run.run_id
    return result


def render(r: dict[str, Any]) -> str:
    e = html.escape
    lo, hi = r["ci95"]
    kappas = ", ".join(f"{p['a']}–{p['b']}: κ {p['cohen_kappa']} ({p['items']} items)" for p in r["agreement"]["pairs"]) or "–"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Blind A/B</title></head><body>
<h1>Blind A/B: {e(str(r.get('model')))} (fine-tuned) vs its base</h1>
<p>Eval run {e(r['eval_run'])}; training run {e(str(r.get('train_run')))}.</p>
<table border="1" cellpadding="4"><tr><th>judgements</th><th>fine-tuned wins</th><th>ties</th><th>base wins</th>
<th>win rate (ties half)</th><th>95 % CI ({e(r['ci_method'])})</th></tr>
<tr><td>{r['judgements']}</td><td>{r['wins']}</td><td>{r['ties']}</td><td>{r['losses']}</td><td>{r['win_rate']}</td>
<td>[{lo}, {hi}]</td></tr></table>
<p>Reviewers' agreement on these items: {r['agreement']['percent_agreement']} of {r['agreement']['items_with_overlap']}
items with two or more reviewers agree; {e(kappas)}.</p>
<p>{r['items_rated']} of {r['items']} blind items rated. Sides were shown in a random order per reviewer; reviewers
never saw which model wrote which answer.</p></body></html>"""
