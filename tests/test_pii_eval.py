"""`studio pii-eval` and the scoring behind it, on a tiny hand-labelled file."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from curate.pii.evaluate import Sample, load_labelled, score

TEXT = "Maria Lopez lives in Lisbon, call 415-555-0132"
#       0         1         2         3         4
#       0123456789012345678901234567890123456789012345
GOLD = [{"entity_type": "PERSON", "entity_value": "Maria Lopez", "start_position": 0, "end_position": 11},
        {"entity_type": "GPE", "entity_value": "Lisbon", "start_position": 21, "end_position": 27},
        {"entity_type": "PHONE_NUMBER", "entity_value": "415-555-0132", "start_position": 34, "end_position": 46},
        {"entity_type": "TITLE", "entity_value": "call", "start_position": 29, "end_position": 33}]


def write_file(tmp_path, samples):
    path = tmp_path / "labelled.json"
    path.write_text(json.dumps(samples))
    return path


def test_scores_by_hand_token_and_span_level(tmp_path):
    samples = load_labelled(write_file(tmp_path, [{"full_text": TEXT, "spans": GOLD}]))
    assert samples == [Sample(TEXT, [("PERSON", 0, 11), ("LOCATION", 21, 27), ("PHONE_NUMBER", 34, 46)])]
    # predicted: "Maria" only as PERSON, Lisbon as PERSON (wrong type), the phone right, "lives" as a false hit
    result = score(samples, [[("PERSON", 0, 5), ("PERSON", 21, 27), ("PHONE_NUMBER", 34, 46), ("ORDER_NUMBER", 12, 17)]])
    # tokens: Maria Lopez lives in Lisbon call 415 555 0132 -> 9 tokens, 6 of them PII
    assert (result.token_pii.tp, result.token_pii.fp, result.token_pii.fn) == (5, 1, 1)
    assert round(result.token_pii.f2, 4) == round(5 * (5 / 6) * (5 / 6) / (4 * 5 / 6 + 5 / 6), 4)
    person = result.token["PERSON"]
    assert (person.tp, person.fp, person.fn) == (1, 1, 1)
    assert (result.token["LOCATION"].tp, result.token["LOCATION"].fn) == (0, 1)
    assert result.confusion[("LOCATION", "PERSON")] == 1 and result.confusion[("O", "ORDER_NUMBER")] == 1
    # spans: PERSON "Maria" vs "Maria Lopez" has IoU 5/11 < 0.5 -> miss; phone matches
    assert (result.span["PERSON"].tp, result.span["PERSON"].fn, result.span["PERSON"].fp) == (0, 1, 2)
    assert (result.span["PHONE_NUMBER"].tp, result.span_micro.tp) == (1, 1)


def test_malformed_sample_is_one_sentence_naming_it(tmp_path):
    import pytest

    from studio.errors import StudioError

    path = write_file(tmp_path, [{"full_text": "ok", "spans": []}, {"full_text": "x", "spans": [{"entity_type": "PERSON"}]}])
    with pytest.raises(StudioError, match=r"sample 1 span 0: needs entity_type, start_position and end_position"):
        load_labelled(path)


def test_pii_eval_command_prints_metrics_and_writes_no_text(tmp_path, workspace):
    from studio_app.cli import app

    samples = [
        {"full_text": TEXT, "spans": GOLD},
        {"full_text": "Write to dana.kim@examplemail.com about the refund.",
         "spans": [{"entity_type": "EMAIL_ADDRESS", "entity_value": "dana.kim@examplemail.com",
                    "start_position": 9, "end_position": 33}]},
        {"full_text": "Nothing personal in this one.", "spans": []},
    ]
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["--workspace", str(workspace.root), "pii-eval",
                                      str(write_file(tmp_path, samples)), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "token level" in result.output and "span level" in result.output and "gold \\ predicted" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    per_type = metrics["token_level"]["per_type"]
    assert per_type["EMAIL_ADDRESS"]["recall"] == 1.0 and per_type["PHONE_NUMBER"]["recall"] == 1.0
    assert metrics["token_level"]["overall_pii"]["support"] == 10  # 6 tokens in the first text, 4 in the email
    folder_text = "".join(p.read_text() for p in out.iterdir())
    assert "Maria" not in folder_text and "dana.kim" not in folder_text
