"""Blind A/B round trip on CPU with the bundled SmolLM2 and a tiny LoRA adapter, in one workspace: reviewed
examples are exported and trained on; `studio eval --to-review` queues base vs fine-tuned generations as blind
pairwise items in the same review store; two reviewers rate them; `studio eval --ab-report` writes the win rate
with its Wilson interval and the agreement into a new eval run whose upstream names the training run; and
`studio lineage` on a trained example reaches that training run and, through it, the blind A/B judgements."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from test_training_run import TINY  # noqa: E402
from train_data_helpers import claims_conversation, write_chat_jsonl  # noqa: E402

from review_app.pairwise import TIE, record_preference, wilson  # noqa: E402
from review_app.store import ReviewStore  # noqa: E402
from training.config import TrainConfig  # noqa: E402


def test_blind_ab_from_eval_to_review_to_the_win_rate_in_the_report_and_lineage(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from review_app.export import ExportConfig, run_export
    from studio.splits import parse_split_spec
    from studio.workspace import Workspace
    from studio_app.cli import app
    from training.trainer import train

    torch.set_num_threads(1)
    ws = Workspace.init(tmp_path / "ws")
    monkeypatch.chdir(ws.root)
    # reviewed data: 24 claims conversations accepted by a lead reviewer, exported as the training set
    write_chat_jsonl(tmp_path / "claims.jsonl", [claims_conversation(i) for i in range(24)])
    write_chat_jsonl(tmp_path / "val.jsonl", [claims_conversation(i) for i in range(100, 106)])
    with ReviewStore(ws.review_db_url, bcrypt_rounds=4) as store:
        store.load_dataset(tmp_path / "claims.jsonl")
        store.add_reviewer("lee", "password-lee", role="lead")
        while (item := store.next_item("lee")) is not None:
            store.record_decision(item.id, "lee", "accept")
        export = run_export(store, ExportConfig(out=tmp_path / "export", splits=parse_split_spec("train=1.0")),
                            workspace=ws, db_label=ws.review_db_url)
    example = json.loads((tmp_path / "export" / "ids.jsonl").read_text().splitlines()[0])["id"]
    trained = train(TrainConfig(**TINY), tmp_path / "export" / "train.jsonl", tmp_path / "val.jsonl",
                    ws.runs_dir / "lora")
    train_run = json.loads((ws.runs_dir / "lora" / "manifest.json").read_text())["run_id"]
    assert json.loads((ws.runs_dir / "lora" / "manifest.json").read_text())["upstream_manifests"] == [export.run_id]
    db = ws.review_db_url
    runner = CliRunner()
    res = runner.invoke(app, ["eval", "--model", str(trained.adapter_dir), "--data", str(tmp_path / "val.jsonl"),
                              "--max-examples", "6", "--max-new-tokens", "16", "--batch-size", "6", "--max-length", "128",
                              "--no-forgetting", "--no-redteam",  # the guard checks: tests/test_eval_checks.py
                              "--to-review", "--db", db, "--out", str(ws.runs_dir / "ev")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (ws.runs_dir / "ev" / "ab_pairs.jsonl").read_text().splitlines()]
    assert rows and all(r["blind"] for r in rows)
    store = ReviewStore(db, bcrypt_rounds=4)
    for name in ("ann", "bob"):
        store.add_reviewer(name, "password-" + name)
    n = 0
    for name in ("ann", "bob"):
        while (item := store.next_item(name)) is not None:
            assert item.meta["blind"] is True
            tuned = next(c["id"] for c in item.extra["candidates"] if c["model"] == "fine-tuned")
            base = next(c["id"] for c in item.extra["candidates"] if c["model"] == "base")
            k = n % len(rows)
            # every item: the fine-tuned answer wins, except item 0 (both: tie) and item 1 (bob: base)
            choice = TIE if k == 0 else (base if (k == 1 and name == "bob") else tuned)
            record_preference(store, item.id, name, choice)
            n += 1
    assert n == 2 * len(rows)
    store.close()

    res = runner.invoke(app, ["eval", "--ab-report", str(ws.runs_dir / "ev"), "--db", db], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    ab_dir = next(p.parent for p in (ws.runs_dir).glob("*/ab.json"))
    ab = json.loads((ab_dir / "ab.json").read_text())
    m = len(rows)
    wins, ties, losses = 2 * (m - 1) - 1, 2, 1
    assert (ab["wins"], ab["ties"], ab["losses"]) == (wins, ties, losses)
    assert ab["win_rate"] == round((wins + ties / 2) / (2 * m), 4)
    assert ab["ci95"] == list(wilson(wins + ties / 2, 2 * m))
    assert ab["agreement"]["items_with_overlap"] == m
    assert ab["agreement"]["percent_agreement"] == round((m - 1) / m, 4)
    manifest = json.loads((ab_dir / "manifest.json").read_text())
    assert manifest["kind"] == "eval" and train_run in manifest["upstream_manifests"]
    assert manifest["metrics"]["blind A/B"]["win_rate"] == ab["win_rate"]
    assert str(ab["win_rate"]) in (ab_dir / "report.html").read_text()

    # lineage: from a trained example to its training run, and from there to the blind A/B judgements
    res = runner.invoke(app, ["lineage", example, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    chain = json.loads(res.stdout)
    assert [t["run_id"] for t in chain["training"]] == [train_run] and chain["training"][0]["trained_on_example"]
    ab_eval = next(e for e in chain["evaluations"] if e["run_id"] == manifest["run_id"])
    assert ab_eval["metrics"]["blind A/B"]["win_rate"] == ab["win_rate"]
    assert ab_eval["metrics"]["blind A/B"]["ci95"] == ab["ci95"]
    res = runner.invoke(app, ["lineage", example], catch_exceptions=False, env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    line = next(x for x in res.stdout.splitlines() if x.strip().startswith(f"eval {manifest['run_id']}"))
    assert '"blind A/B"' in line and f'"win_rate": {ab["win_rate"]}' in line
