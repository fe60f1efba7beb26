"""The curate pipeline: normalize and exact_dedupe, outputs, manifests and row conservation."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from curate.pipeline import PipelineConfig, run_pipeline
from curate.registry import build_step
from studio.errors import StudioError
from studio.schema import example_id


def _chat(user: str, assistant: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def _jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def assert_conserved(manifest: dict) -> None:
    c = manifest["counts"]
    assert c["input"] == c["kept"] + sum(c["dropped"].values()) + c["quarantined"]


def test_normalize_and_exact_dedupe_drop_with_reasons_and_conserve_rows(tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", [
        _chat("Where is my order?", "It shipped today."),           # kept
        _chat("  Where is my order?\r\n", "It shipped today.\u200b"),  # exact duplicate after normalize
        _chat("Return window?", "   "),                              # empty answer
        _chat("Cafe\u0301 stove?", "In stock."),                     # kept, NFC-normalized
        _chat("Café stove?", "In stock."),                           # exact duplicate of the NFC form
    ])
    (tmp_path / "in.jsonl").open("a").write("not json\n")
    cfg = PipelineConfig(inputs=[str(src)], steps=["normalize", "exact_dedupe"], report=False)
    run = run_pipeline(cfg, out_dir=tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"] == {"input": 6, "kept": 2, "dropped": {"empty": 1, "exact_duplicate": 2}, "quarantined": 1}
    assert_conserved(manifest)
    kept = pl.read_parquet(tmp_path / "out" / "kept.parquet")
    assert kept["messages"].to_list()[1][0]["content"] == "Café stove?"
    dropped = pl.read_parquet(tmp_path / "out" / "dropped.parquet")
    dups = dropped.filter(pl.col("drop_reason") == "exact_duplicate")
    assert set(dups["step"]) == {"exact_dedupe"}
    assert dups["dup_of"].to_list() == [kept["id"][0], kept["id"][1]]
    assert dropped.filter(pl.col("drop_reason") == "empty")["step"].to_list() == ["normalize"]
    q = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert [(x["line"], x["reason"][:12]) for x in q] == [(6, "invalid JSON")]
    assert {o["path"].rsplit("/", 1)[1] for o in manifest["outputs"]} == {"kept.parquet", "dropped.parquet", "quarantine.jsonl"}
    assert all(len(o["sha256"]) == 64 for o in manifest["outputs"])
    assert manifest["inputs"][0]["sha256"] and manifest["steps"][0]["step"] == "normalize"
    assert run.run_id.startswith("curate-")


def test_normalized_messages_hash_to_the_id_the_reader_gave(sample_data, tmp_path):
    cfg = PipelineConfig(inputs=[str(sample_data / "support_chat.jsonl"), str(sample_data / "tickets_sharegpt.json")],
                         steps=["normalize"], report=False)
    run_pipeline(cfg, out_dir=tmp_path / "o")
    kept = pl.read_parquet(tmp_path / "o" / "kept.parquet")
    assert all(example_id(m) == i for i, m in zip(kept["id"], kept["messages"].to_list(), strict=True))


def test_sample_data_exact_duplicates_are_all_found(sample_data, planted, tmp_path):
    from studio_app.demo import sample_inputs

    cfg = PipelineConfig(inputs=[str(p) for p in sample_inputs(sample_data)], steps=["normalize", "exact_dedupe"],
                         csv_map="prompt=customer_message,response=agent_reply", report=False)
    run = run_pipeline(cfg, out_dir=tmp_path / "o")
    dropped = pl.read_parquet(tmp_path / "o" / "dropped.parquet")
    dup_sources = set(dropped.filter(pl.col("drop_reason") == "exact_duplicate")["source"])
    for pair in planted["exact_duplicates"]:
        a = str(sample_data / pair["dup"]["file"]) + f":{pair['dup']['line']}"
        b = str(sample_data / pair["of"]["file"]) + f":{pair['of']['line']}"
        assert a in dup_sources or b in dup_sources, pair
    assert_conserved(json.loads(run.manifest_path.read_text()))


def test_gpteacher_alpaca_file_runs_and_counts_add_up(shared_data, tmp_path):
    path = shared_data / "dedup" / "gpteacher_toolformer_dedupe_only.json"
    run = run_pipeline(PipelineConfig(inputs=[str(path)], steps=["normalize", "exact_dedupe"], report=False),
                       out_dir=tmp_path / "o")
    manifest = json.loads(run.manifest_path.read_text())
    assert manifest["counts"]["input"] == 7673
    assert_conserved(manifest)
    assert pl.read_parquet(tmp_path / "o" / "kept.parquet").height == manifest["counts"]["kept"]


def test_exact_dedupe_on_prompt_keeps_first_answer_per_question():
    step = build_step("exact_dedupe", {"on": "prompt"})
    from studio.schema import examples_frame, make_example

    rows = [make_example([{"role": "user", "content": "Q"}, {"role": "assistant", "content": f"A{i}"}], source=f"s:{i}")
            for i in range(3)]
    out = step.process(examples_frame(rows).with_columns(pl.lit(None, pl.String).alias("drop_reason"),
                                                         pl.lit(None, pl.String).alias("dup_of")))
    assert out["drop_reason"].to_list() == [None, "exact_duplicate", "exact_duplicate"]
    assert out["dup_of"].to_list() == [None, rows[0]["id"], rows[0]["id"]]


def test_pipeline_yaml_with_step_settings_and_typos_reported(tmp_path):
    good = tmp_path / "p.yaml"
    good.write_text("inputs: []\nsteps:\n  - normalize: {drop_empty: false}\n  - exact_dedupe\n")
    cfg = PipelineConfig.from_yaml(good)
    assert [(s.name, s.config) for s in cfg.steps] == [("normalize", {"drop_empty": False}), ("exact_dedupe", {})]
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - normalize: {drop_emty: true}\n")
    with pytest.raises(StudioError, match="step normalize: config field drop_emty: Extra inputs are not permitted"):
        run_pipeline(PipelineConfig.from_yaml(bad).model_copy(update={"inputs": [str(good)]}), out_dir=tmp_path / "x")
