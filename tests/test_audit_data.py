"""The data audit: offensive language per turn (score's q_offensive) and the bias audit (representation and
GenBiT association), against what sample_data/generate.py planted (planted.json: `offensive`, `gender_skew`),
on the local engine and on a real local Ray cluster, and into the curate report and manifest."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from curate import bias_audit
from curate.pipeline import PipelineConfig, run_pipeline
from curate.steps.score import Score
from curate.views import view_text
from studio.readers import read_inputs


def _sample_inputs(sample_data: Path) -> list[Path]:
    return sorted(p for p in sample_data.iterdir() if p.suffix in (".jsonl", ".json", ".csv") and p.name != "planted.json")


def _located(df: pl.DataFrame) -> pl.DataFrame:
    """file and line of each row, from its `source` (path:line)."""
    return df.with_columns(pl.col("source").str.extract(r"([^/]+):\d+$").alias("file"),
                           pl.col("source").str.extract(r":(\d+)$").cast(pl.Int64).alias("line"))


@pytest.fixture(scope="module")
def sample_rows(sample_data) -> pl.DataFrame:
    return _located(read_inputs(_sample_inputs(sample_data)).frame())


@pytest.fixture(scope="module")
def scored(sample_rows) -> pl.DataFrame:
    return Score(model=False).process(sample_rows)


def _planted_keys(planted: dict) -> set[tuple[str, int]]:
    skew = planted["gender_skew"]
    return {(o["file"], o["line"]) for o in planted["offensive"]} | {(skew["file"], line) for line in skew["lines"]}


def _audit(df: pl.DataFrame) -> bias_audit.BiasAudit:
    return bias_audit.audit(df.select(view_text("prompt_response")).to_series(),
                            {"origin": df["origin"], "source file": df["file"]})


def test_q_offensive_flags_exactly_the_planted_offensive_lines_in_the_turn_they_are_in(scored, planted):
    flagged = scored.filter(pl.col("q_offensive") >= 0.5)
    assert {(f, n) for f, n in flagged.select("file", "line").iter_rows()} == {
        (o["file"], o["line"]) for o in planted["offensive"]}
    in_answer = scored.filter(pl.col("q_offensive_response") >= 0.5)
    assert {(f, n) for f, n in in_answer.select("file", "line").iter_rows()} == {
        (o["file"], o["line"]) for o in planted["offensive"] if o["role"] == "assistant"}


def test_an_offensive_answer_sinks_quality_and_a_rude_customer_does_not(scored, planted):
    by_role = {o["role"]: (o["file"], o["line"]) for o in planted["offensive"]}
    row = {role: scored.filter((pl.col("file") == f) & (pl.col("line") == n)).row(0, named=True)
           for role, (f, n) in by_role.items()}
    assert row["assistant"]["quality"] <= 0.2
    assert row["user"]["quality"] > 0.5


def test_a_filter_rule_on_q_offensive_response_drops_the_rude_answers(scored, planted):
    from curate.steps.filter import Filter

    out = Filter(rules=[{"name": "offensive_answer", "rule": "q_offensive_response < 0.5"}]).process(
        scored.with_columns(pl.lit(None, dtype=pl.String).alias("drop_reason")))
    dropped = out.filter(pl.col("drop_reason") == "filter:offensive_answer")
    assert sorted(dropped["line"].to_list()) == sorted(o["line"] for o in planted["offensive"] if o["role"] == "assistant")


def test_bias_audit_names_the_planted_gender_skew_first_and_its_context_words(sample_rows, planted):
    skew = planted["gender_skew"]
    result = _audit(sample_rows)
    assert result.flags[0].startswith(f"source file {skew['file']}: ")
    assert f"are {skew['gender']}" in result.flags[0]
    female_words = next(f for f in result.flags if "next to female words" in f)
    named = {w.split(" (")[0] for w in female_words.split(": ", 1)[1].split(", ")}
    assert len(named & set(skew["context_words"])) >= 2
    assert result.scores["female_mentions"] >= len(skew["lines"])


def test_a_clean_slice_has_no_offensive_row_and_no_bias_flag(scored, planted):
    planted_rows = _planted_keys(planted)
    clean = scored.filter(~pl.struct("file", "line").map_elements(lambda r: (r["file"], r["line"]) in planted_rows,
                                                                 return_dtype=pl.Boolean))
    assert clean.height == scored.height - len(planted_rows)
    assert clean.filter(pl.col("q_offensive") >= 0.5).height == 0
    result = _audit(clean)
    assert result.flags == []
    assert result.scores["female_mentions"] == 0  # the skew was only what was planted


def test_representation_skew_needs_enough_mentions_and_a_real_difference():
    rep = pl.DataFrame({"group_by": ["origin"] * 2, "group": ["real", "synthetic"], "rows": [50, 50],
                        "gender:female": [5, 1], "gender:male": [4, 1], "age:young": [0, 0], "age:older": [0, 0]})
    assert bias_audit.skew_flags(rep) == []  # 9 and 2 mentions: too few to call a skew
    rep = rep.with_columns(pl.Series("gender:female", [30, 2]), pl.Series("gender:male", [2, 30]))
    flags = bias_audit.skew_flags(rep)
    assert flags[0] == "origin real: 94% of its 32 gender mentions are female, against 6% in the rest of the set"


def test_curate_report_and_manifest_carry_the_audit(tmp_path, sample_data, planted):
    cfg = PipelineConfig(inputs=[str(p) for p in _sample_inputs(sample_data)],
                         steps=["normalize", {"score": {"model": False}}])
    run = run_pipeline(cfg, out_dir=tmp_path / "run")
    manifest = json.loads((run.dir / "manifest.json").read_text())
    audit = manifest["audit"]
    assert audit["offensive_rows"]["kept"] == len(planted["offensive"])
    assert audit["offensive_rows"]["kept_in_response"] == sum(o["role"] == "assistant" for o in planted["offensive"])
    assert planted["gender_skew"]["file"] in audit["bias_flags"][0]
    page = (run.dir / "report.html").read_text()
    assert 'id="audit"' in page and "Demographic mentions per 100 kept rows" in page
    assert planted["gender_skew"]["file"] in page.split('id="audit"')[1]


def test_q_offensive_and_its_filter_give_the_same_rows_on_the_ray_engine(tmp_path, ray_cluster, sample_data, planted):
    steps = ["normalize", {"score": {"model": False}},
             {"filter": {"rules": [{"name": "offensive_answer", "rule": "q_offensive_response < 0.5"}]}}]
    cfg = PipelineConfig(inputs=[str(p) for p in _sample_inputs(sample_data)], steps=steps, report=False)
    local = run_pipeline(cfg, out_dir=tmp_path / "local")
    on_ray = run_pipeline(cfg, out_dir=tmp_path / "ray", engine="ray")
    assert on_ray.counts.to_dict()["dropped"]["filter:offensive_answer"] == 2
    assert on_ray.counts.to_dict() == local.counts.to_dict()
    cols = ["id", "q_offensive", "q_offensive_response"]
    a = pl.read_parquet(local.dir / "kept.parquet").select(cols).sort("id")
    b = pl.read_parquet(on_ray.dir / "kept.parquet").select(cols).sort("id")
    assert a.equals(b)
