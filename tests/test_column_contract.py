"""The column contract (`studio.schema.STEP_COLUMNS`): steps write the declared types, readers hold curate outputs
to them, and the review store and export read PII and dedupe links through it."""

from __future__ import annotations

import polars as pl
import pytest

from curate.pipeline import PipelineConfig, run_pipeline
from studio.errors import StudioError
from studio.readers import read_inputs
from studio.schema import DEDUPE_META_KEY, dedupe_links, pii_types, step_schema


def test_every_step_column_of_a_curate_run_has_its_declared_type(tmp_path, sample_data):
    steps = ["normalize", {"score": {"model": False}}, "exact_dedupe", {"near_dedupe": {"threshold": 0.5}}]
    run = run_pipeline(PipelineConfig(inputs=[str(sample_data / "support_chat.jsonl")], steps=steps, report=False),
                       out_dir=tmp_path / "run")
    declared = step_schema()
    for name in ("kept", "dropped"):
        schema = pl.read_parquet(run.dir / f"{name}.parquet").schema
        wrong = {c: (t, declared[c]) for c, t in schema.items() if c in declared and t != declared[c]}
        assert wrong == {}
        assert {"quality", "q_tokens", "dup_cluster"} <= set(schema)


def test_readers_cast_step_columns_to_their_declared_type_and_refuse_another_kind(tmp_path, sample_data):
    rows = read_inputs([sample_data / "product_qa.jsonl"]).frame().head(3)
    rows.with_columns(pl.lit(0.5, pl.Float32).alias("quality"), pl.lit(7, pl.Int16).alias("q_tokens")) \
        .write_parquet(tmp_path / "narrow.parquet")
    frame = read_inputs([tmp_path / "narrow.parquet"]).frame()
    assert (frame.schema["quality"], frame.schema["q_tokens"]) == (pl.Float64, pl.Int64)
    rows.with_columns(pl.lit("high").alias("quality")).write_parquet(tmp_path / "text.parquet")
    with pytest.raises(StudioError, match="column 'quality' is String, but quality is Float64"):
        read_inputs([tmp_path / "text.parquet"])


def test_pii_types_and_dedupe_links_read_both_layouts():
    assert pii_types([{"type": "PERSON"}, {"entity_type": "EMAIL_ADDRESS"}, {"type": "PERSON"}]) == ["PERSON", "EMAIL_ADDRESS"]
    assert dedupe_links({"dup_cluster": "a" * 20, "dup_of": None}) == {"dup_cluster": "a" * 20}
    assert dedupe_links({}, {DEDUPE_META_KEY: {"semantic_cluster": "b" * 20}}) == {"semantic_cluster": "b" * 20}
