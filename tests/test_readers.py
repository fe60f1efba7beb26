"""Readers: every input shape becomes the one schema; bad records are quarantined with file, line and reason."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from studio.errors import InputError
from studio.readers import CsvMapping, read_file, read_inputs
from studio.schema import example_id


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def test_alpaca_json_array_from_shared_data_maps_instruction_input_output(shared_data):
    path = shared_data / "dedup" / "gpteacher_roleplay_deduped.json"
    result = read_file(path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert result.formats[str(path)] == "alpaca"
    assert len(result.rows) + len(result.quarantine) == len(raw)
    first = raw[0]
    expected_user = first["instruction"] + ("\n\n" + first["input"] if first["input"].strip() else "")
    assert result.rows[0]["messages"] == [{"role": "user", "content": expected_user},
                                          {"role": "assistant", "content": first["output"]}]
    # The source points at the line where the record's object starts.
    lineno = int(result.rows[0]["source"].rsplit(":", 1)[1])
    assert path.read_text(encoding="utf-8").splitlines()[lineno - 1].strip().startswith("{")


def test_prompt_completion_jsonl_from_shared_data(shared_data):
    path = shared_data / "t0" / "ag_news_classify.jsonl"
    result = read_file(path)
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    assert result.formats[str(path)] == "prompt-completion"
    assert len(result.rows) == len(lines) and not result.quarantine
    assert result.rows[5]["messages"][0]["content"] == lines[5]["prompt"]
    assert result.rows[5]["messages"][1]["content"] == lines[5]["completion"]
    assert result.rows[5]["source"] == f"{path}:6"


@pytest.mark.parametrize("name,fmt", [("support_chat.jsonl", "openai"), ("faq_alpaca.json", "alpaca"),
                                      ("tickets_sharegpt.json", "sharegpt"), ("product_qa.jsonl", "prompt-completion"),
                                      ("claims.csv", "csv")])
def test_sample_data_files_read_with_detected_format_and_planted_row_counts(sample_data, planted, name, fmt):
    result = read_file(sample_data / name, csv_mapping=CsvMapping(prompt="customer_message", response="agent_reply"))
    assert result.formats[str(sample_data / name)] == fmt
    assert len(result.rows) == planted["files"][name]["rows"]
    assert not result.quarantine
    for row in result.rows:
        assert row["messages"] and all(m["role"] in ("system", "user", "assistant") for m in row["messages"])


def test_sharegpt_speakers_map_to_roles(tmp_path):
    path = _write(tmp_path / "s.json", json.dumps([{"conversations": [
        {"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}]))
    [row] = read_file(path).rows
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]


def test_csv_with_explicit_mapping_and_multiline_cells_keeps_physical_line_numbers(tmp_path):
    path = _write(tmp_path / "t.csv", 'q,a,topic\n"two\nlines",first answer,x\nsecond?,"with, comma",y\n')
    result = read_file(path, csv_mapping=CsvMapping.parse("prompt=q,response=a"))
    assert [r["source"] for r in result.rows] == [f"{path}:2", f"{path}:4"]
    assert result.rows[0]["messages"][0]["content"] == "two\nlines"
    assert json.loads(result.rows[1]["meta"]) == {"topic": "y"}


def test_csv_without_recognisable_columns_asks_for_a_mapping(tmp_path):
    path = _write(tmp_path / "t.csv", "foo,bar\n1,2\n")
    with pytest.raises(InputError, match="--csv-map prompt=COLUMN,response=COLUMN"):
        read_file(path)


def test_parquet_in_other_shapes_is_read_like_json(tmp_path):
    path = tmp_path / "pc.parquet"
    pl.DataFrame({"prompt": ["a?", "b?"], "completion": ["A", "B"]}).write_parquet(path)
    result = read_file(path)
    assert [r["messages"][1]["content"] for r in result.rows] == ["A", "B"]


def test_plain_text_documents_are_read_as_documents(tmp_path):
    doc = _write(tmp_path / "policy.md", "# Returns\r\nWithin 60 days.\r\n")
    result = read_inputs([tmp_path])
    assert result.kind == "documents"
    assert result.rows[0]["text"] == "# Returns\nWithin 60 days.\n"
    assert result.rows[0]["source"] == f"{doc}:1"


MALFORMED = (
    b'\xef\xbb\xbf{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}\r\n'  # 1 ok (BOM, CRLF)
    b"\r\n"                                                                                               # 2 blank
    b"{bad json\n"                                                                                        # 3
    b"[1,2]\n"                                                                                            # 4
    b'{"messages":[{"role":"robot","content":"x"}]}\n'                                                    # 5
    b'{"messages":[]}\n'                                                                                  # 6
    b'{"messages":[{"role":"user","content":"\xff\xfe"}]}\n'                                              # 7
    b'{"messages":[{"role":"user","content":5}]}\n'                                                       # 8
    b'{"note":"no messages"}\n'                                                                           # 9
    b"\n"                                                                                                 # 10 blank
    b'{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}'                    # 11 ok, no final newline
)


def test_malformed_jsonl_quarantines_exact_lines_with_reasons(tmp_path):
    path = _write(tmp_path / "bad.jsonl", MALFORMED)
    result = read_file(path, fmt="openai")
    assert len(result.rows) == 2
    assert [r["source"] for r in result.rows] == [f"{path}:1", f"{path}:11"]
    got = [(q.line, q.reason) for q in result.quarantine]
    assert got == [
        (3, "invalid JSON: Expecting property name enclosed in double quotes at column 2"),
        (4, "record is not a JSON object (got list)"),
        (5, "messages[0].role 'robot' is not one of system, user, assistant"),
        (6, "empty conversation: no turns"),
        (7, "bytes are not valid UTF-8 (byte 0xff at column 40)"),
        (8, "messages[0].content must be a string, got int"),
        (9, "missing field 'messages'"),
    ]
    assert all(q.file == str(path) for q in result.quarantine)
    assert result.n_input == 9  # blank lines are not records


def test_planted_malformed_file_of_sample_data_is_quarantined_line_by_line(sample_data, planted):
    path = sample_data / "malformed" / "broken_chat.jsonl"
    result = read_file(path)
    expected = sorted(m["line"] for m in planted["malformed"])
    assert sorted(q.line for q in result.quarantine) == expected


def test_records_of_several_megabytes_are_read(tmp_path):
    big = "word " * 1_500_000  # 7.5 MB of text in one turn
    path = _write(tmp_path / "big.jsonl", json.dumps({"prompt": big, "completion": "ok"}) + "\n")
    [row] = read_file(path).rows
    assert len(row["messages"][0]["content"]) == len(big)


def test_ids_are_content_hashes_of_normalized_messages():
    a = [{"role": "user", "content": "Cafe\u0301 hours? "}, {"role": "assistant", "content": "9-5"}]
    b = [{"role": "user", "content": "Café hours?"}, {"role": "assistant", "content": "9-5\r\n"}]
    c = [{"role": "user", "content": "Café hours?"}, {"role": "assistant", "content": "9-6"}]
    assert example_id(a) == example_id(b) != example_id(c)
    assert len(example_id(a)) >= 16


def test_unknown_format_fails_clearly_and_says_what_it_saw(tmp_path):
    path = _write(tmp_path / "x.jsonl", '{"question": "q", "reply": "r"}\n')
    with pytest.raises(InputError, match=r"cannot tell the format of .*keys \['question', 'reply'\].*--format"):
        read_file(path)


def test_detection_is_logged(tmp_path, caplog):
    path = _write(tmp_path / "x.jsonl", '{"prompt": "q", "completion": "r"}\n')
    with caplog.at_level("INFO", logger="studio.readers"):
        read_file(path)
    assert "detected format prompt-completion" in caplog.text


def test_missing_path_empty_file_and_empty_folder_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_inputs([tmp_path / "nope.jsonl"])
    (tmp_path / "empty.jsonl").write_bytes(b"")
    with pytest.raises(InputError, match="is empty"):
        read_inputs([tmp_path / "empty.jsonl"])
    (tmp_path / "blank.jsonl").write_bytes(b"\n \r\n")
    with pytest.raises(InputError, match="is empty"):
        read_inputs([tmp_path / "blank.jsonl"])
    (tmp_path / "sub").mkdir()
    with pytest.raises(InputError, match="holds no input files"):
        read_inputs([tmp_path / "sub"])
