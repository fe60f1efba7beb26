"""`studio lineage ID` on a synthetic, edited example shows every link: synth run (generator, template, model)
→ curate run and steps → review decision with the edit as a diff → export file and line → training run
and its metrics; by the original id and by the edited id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from review_app.export import ExportConfig, run_export
from review_app.store import ReviewStore
from studio.runs import Run
from studio.schema import example_id, examples_frame, make_example
from studio.splits import parse_split_spec
from studio.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


def studio(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studio_app.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}, timeout=300)


def test_lineage_of_a_synthetic_edited_example_shows_every_link(tmp_path):
    from curate.pipeline import PipelineConfig, run_pipeline

    ws = Workspace.init(tmp_path / "ws")
    # synth run: rows as the synth runner writes them (origin synthetic, source = run id, lineage in meta)
    with Run("synth", out_dir=ws.runs_dir / "synth", workspace=ws,
             config={"generator": "self_instruct", "model": "SmolLM2-135M-Instruct"}) as synth:
        meta = {"generator": "self_instruct", "model": "SmolLM2-135M-Instruct", "template": "self_instruct",
                "template_version": 2, "seed_ids": ["aaaa1111bbbb2222cccc"]}
        rows = [make_example([{"role": "user", "content": f"How long does a refund for order {i} take?"},
                              {"role": "assistant", "content": "Refunds take 3 days."}],
                             source=synth.run_id, origin="synthetic", meta=meta) for i in range(3)]
        examples_frame(rows).write_parquet(synth.dir / "kept.parquet")
        synth.add_output(synth.dir / "kept.parquet", rows=3)
        synth.counts.input = synth.counts.kept = 3
    curate = run_pipeline(PipelineConfig(inputs=[str(synth.dir / "kept.parquet")], steps=["normalize", "exact_dedupe"],
                                         report=False), out_dir=ws.runs_dir / "curate", workspace=ws)
    assert curate.upstream == [synth.run_id]

    target = rows[1]
    edited = [target["messages"][0], {"role": "assistant", "content": "Refunds reach your card within 5 working days."}]
    with ReviewStore(ws.review_db_url, bcrypt_rounds=4) as store:
        store.load_dataset(curate.dir / "kept.parquet")
        store.add_reviewer("nurse.kim", "password1")
        store.record_decision(target["id"], "nurse.kim", "accept", edited_messages=edited, rating=5, comment="fixed the timeline")
        for r in (rows[0], rows[2]):
            store.record_decision(r["id"], "nurse.kim", "accept")
        export = run_export(store, ExportConfig(out=tmp_path / "export", splits=parse_split_spec("train=1.0")),
                            workspace=ws, db_label=ws.review_db_url)
    train_file = tmp_path / "export" / "train.jsonl"
    # a training run as the trainer records it: the export file as input, metrics in the manifest
    with Run("train", out_dir=ws.runs_dir / "train", workspace=ws, config={"base_model": "default", "method": "lora"}) as train:
        train.add_input(train_file, role="train")
        train.extra["metrics"] = {"train_loss": 1.234, "eval_loss": 1.5}
        train.counts.input = train.counts.kept = 3
    assert train.upstream == [export.run_id]

    edited_id = example_id(edited)
    for query in (edited_id, target["id"]):
        res = studio("lineage", query, cwd=ws.root)
        assert res.returncode == 0, res.stderr
        text = res.stdout
        assert f"example {query}" in text
        assert f"run {synth.run_id}" in text
        assert "generator self_instruct, template self_instruct v2, model SmolLM2-135M-Instruct" in text
        assert "seed examples: aaaa1111bbbb2222cccc" in text
        assert f"run {curate.run_id}" in text and "step exact_dedupe: 3 in, 3 kept" in text
        assert "nurse.kim (reviewer, app): accept, rating 5 — fixed the timeline" in text
        assert f"edit → id {edited_id}" in text
        assert "-assistant: Refunds take 3 days." in text and "+assistant: Refunds reach your card within 5 working days." in text
        line = [json.loads(x)["id"] for x in train_file.with_name("ids.jsonl").read_text().splitlines()].index(edited_id) + 1
        assert f"run {export.run_id} (openai): {tmp_path / 'export'}/train.jsonl line {line}, split train, id {edited_id}" in text
        assert f"run {train.run_id} (ok) on {export.run_id}" in text
        assert '"eval_loss": 1.5' in text and '"train_loss": 1.234' in text

    chain = json.loads(studio("lineage", edited_id, "--json", cwd=ws.root).stdout)
    assert chain["item_id"] == target["id"] and chain["raw"] is None
    assert chain["synth"]["run_id"] == synth.run_id and chain["curate"][0]["run_id"] == curate.run_id
    assert [t["run_id"] for t in chain["training"]] == [train.run_id]


def test_lineage_of_a_real_example_names_its_raw_file_and_line(tmp_path):
    from curate.pipeline import PipelineConfig, run_pipeline

    ws = Workspace.init(tmp_path / "ws")
    raw = tmp_path / "tickets.jsonl"
    raw.write_text("".join(json.dumps({"prompt": f"Q{i}", "completion": f"A{i}"}) + "\n" for i in range(3)))
    curate = run_pipeline(PipelineConfig(inputs=[str(raw)], steps=["normalize"], report=False),
                          out_dir=ws.runs_dir / "curate", workspace=ws)
    with ReviewStore(ws.review_db_url, bcrypt_rounds=4) as store:
        store.load_dataset(curate.dir / "kept.parquet")
    second = example_id([{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}])
    res = studio("lineage", second, cwd=ws.root)
    assert res.returncode == 0, res.stderr
    assert f"{raw} line 2" in res.stdout and "no decisions yet" in res.stdout and "in no export yet" in res.stdout
    res = studio("lineage", "0123456789abcdef0123", cwd=ws.root)
    assert res.returncode == 2 and "no example with id '0123456789abcdef0123'" in res.stderr
