"""The `redact_pii` step in a pipeline: columns, offsets, manifest counts, audit-only, and no raw PII left behind."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from curate.steps.redact_pii import RedactPii
from studio.schema import examples_frame, make_example

ROWS = [
    [{"role": "system", "content": "You are a helpful claims assistant."},
     {"role": "user", "content": "Hi, I'm Maria Lopez. My claim number is CLM-2024-00917."},
     {"role": "assistant", "content": "Thanks Maria Lopez, I found claim CLM-2024-00917."}],
    [{"role": "user", "content": "???"},
     {"role": "assistant", "content": "Could you describe the problem?"}],
    [{"role": "user", "content": "Email me at maria.lopez@examplemail.com or call 415-555-0132."},
     {"role": "assistant", "content": "Will do."}],
]
RAW_VALUES = ["Maria Lopez", "CLM-2024-00917", "maria.lopez@examplemail.com", "415-555-0132"]


def frame() -> pl.DataFrame:
    return examples_frame([make_example(m, source=f"test.jsonl:{i + 1}") for i, m in enumerate(ROWS)])


def test_step_redacts_turns_and_locates_entities_in_the_original_turn_text():
    df = frame()
    step = RedactPii({"mode": "tag"})
    out = step.process(df.with_columns(pl.lit(None, dtype=pl.String).alias("drop_reason")))
    assert out.height == 3 and out["id"].to_list() == df["id"].to_list()
    assert out["messages"][0].to_list()[1]["content"] == "Hi, I'm <PERSON>. My claim number is <CLAIM_NUMBER>."
    assert out["messages"][2].to_list()[0]["content"] == "Email me at <EMAIL_ADDRESS> or call <PHONE_NUMBER>."
    assert out["pii_count"].to_list() == [4, 0, 2]
    for original, entities in zip(ROWS, out["pii_entities"].to_list(), strict=True):
        for e in entities:
            assert original[e["turn"]]["content"][e["start"]:e["end"]] in RAW_VALUES
    assert step.stats["pii_counts"] == {"CLAIM_NUMBER": 2, "EMAIL_ADDRESS": 1, "PERSON": 2, "PHONE_NUMBER": 1}
    assert step.stats["turns_skipped_no_text"] == 1


def test_audit_only_adds_columns_but_leaves_messages_unchanged():
    df = frame()
    out = RedactPii({"audit_only": True}).process(df)
    assert out["messages"].to_list() == df["messages"].to_list()
    assert out["pii_count"].to_list() == [4, 0, 2]


def run_curate(tmp_path: Path, inputs: list[Path], steps: list, out: Path):
    from studio_app.cli import app

    config = tmp_path / "pipeline.yaml"
    config.write_text(json.dumps({"inputs": [str(p) for p in inputs], "steps": steps}))
    result = CliRunner().invoke(app, ["--quiet", "--workspace", str(tmp_path / "ws"), "curate", "--config", str(config),
                                      "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads((out / "manifest.json").read_text())


def texts_in(folder: Path) -> dict[Path, str]:
    """Every file under `folder` as text; Parquet files decoded (they are compressed, so a byte grep would miss)."""
    found = {}
    for path in folder.rglob("*"):
        if path.is_file():
            found[path] = (pl.read_parquet(path).write_ndjson() if path.suffix == ".parquet"
                           else path.read_text(encoding="utf-8", errors="replace"))
    return found


def test_raw_values_are_only_in_the_mapping_file_the_user_asked_for(tmp_path, workspace):
    data = tmp_path / "chats.jsonl"
    data.write_text("".join(json.dumps({"messages": m}) + "\n" for m in ROWS))
    out = tmp_path / "run"
    mapping = out / "pii_mapping.jsonl"
    with pytest.warns(UserWarning, match="holds the original personal data"):
        manifest = run_curate(tmp_path, [data], ["normalize", {"redact_pii": {"mode": "pseudonym",
                                                                              "mapping_file": str(mapping)}}], out)
    entry = next(s for s in manifest["steps"] if s["step"] == "redact_pii")
    assert entry["pii_counts"] == {"CLAIM_NUMBER": 2, "EMAIL_ADDRESS": 1, "PERSON": 2, "PHONE_NUMBER": 1}
    holders = {path.name for path, text in texts_in(out).items() if any(v in text for v in RAW_VALUES)}
    assert holders == {"pii_mapping.jsonl"}
    pairs = [json.loads(line) for line in mapping.read_text().splitlines()]
    assert {p["original"] for p in pairs} == set(RAW_VALUES)
    assert not any(v in text for text in texts_in(tmp_path / "ws").values() for v in RAW_VALUES)


def planted_pii_values(planted: dict) -> list[str]:
    values = []
    for item in planted.get("pii", []):
        if isinstance(item, str):
            values.append(item)
        elif isinstance(item, dict):
            values += [v for k, v in item.items() if k in ("value", "text", "original", "raw") and isinstance(v, str)]
    return values


def test_planted_pii_of_sample_data_is_gone_after_normalize_and_redact_pii(tmp_path, workspace, sample_data, planted):
    from studio_app.demo import sample_inputs

    values = planted_pii_values(planted)
    assert values, "planted.json lists no PII values"
    out = tmp_path / "run"
    run_curate(tmp_path, sample_inputs(sample_data), ["normalize", "redact_pii"], out)
    kept = pl.read_parquet(out / "kept.parquet").write_ndjson()
    assert [v for v in values if v in kept] == []


def test_rows_dropped_before_redaction_and_quarantined_lines_are_redacted_too(tmp_path, workspace):
    data = tmp_path / "in.jsonl"
    data.write_text(
        json.dumps({"messages": [{"role": "user", "content": "Refund to jane.roe@example.com please"},
                                 {"role": "assistant", "content": "   "}]}) + "\n"       # dropped as empty by normalize
        + '{"messages": [{"role": "user", "content": "call me at 415-555-0134, bob@example.org"}\n'  # broken JSON
        + json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}) + "\n")
    out = tmp_path / "run"
    manifest = run_curate(tmp_path, [data], ["normalize", "redact_pii"], out)
    assert manifest["counts"] == {"input": 3, "kept": 1, "dropped": {"empty": 1}, "quarantined": 1}
    for path, text in texts_in(out).items():
        for raw in ("jane.roe@example.com", "bob@example.org", "415-555-0134"):
            assert raw not in text, (path.name, raw)
    dropped = pl.read_parquet(out / "dropped.parquet")
    assert "<EMAIL_ADDRESS>" in dropped["messages"][0][0]["content"]
