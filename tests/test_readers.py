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


# --------------------------------------------------------------------------- bulk reading, folders, robustness

def _pc(i: int) -> str:
    return json.dumps({"prompt": f"question {i}", "completion": f"answer {i}"})


def test_bulk_jsonl_quarantines_bad_lines_at_start_middle_and_end_line_for_line(tmp_path):
    lines = [_pc(i).encode() for i in range(1, 401)]  # long enough for the bulk parser to split around bad lines
    lines[0] = b"{bad json"
    lines[99] = b'{"prompt": 5, "completion": "x"}'              # Polars would read 5 as "5"
    lines[149] = b'{"prompt": "\xff", "completion": "c"}'
    lines[199] = b'{"prompt": "p", "prompt": "dup", "completion": "c"}'  # json.loads keeps the last
    lines[249] = b'{"prompt": "1999", "completion": "42"}'       # text that looks like numbers is text
    lines[299] = b'{"completion": "no prompt"}'
    lines[349] = b"   "
    lines[399] = b'{"prompt": "x", "completion": '
    path = _write(tmp_path / "bulk.jsonl", b"\n".join(lines))
    result = read_file(path)
    assert [(q.line, q.reason) for q in result.quarantine] == [
        (1, "invalid JSON: Expecting property name enclosed in double quotes at column 2"),
        (100, "field 'prompt' must be a string, got int"),
        (150, "bytes are not valid UTF-8 (byte 0xff at column 13)"),
        (300, "missing field 'prompt'"),
        (400, "invalid JSON: Expecting value at column 31"),
    ]
    rows = {int(r["source"].rsplit(":", 1)[1]): r for r in result.rows}
    assert sorted(rows) == [n for n in range(2, 400) if n not in (100, 150, 300, 350)]
    assert rows[200]["messages"][0]["content"] == "dup"
    assert [m["content"] for m in rows[250]["messages"]] == ["1999", "42"]
    assert all(r["id"] == example_id(r["messages"]) for r in rows.values())


def test_bulk_ids_and_normalize_match_the_python_rules_on_awkward_text():
    from curate.steps.normalize import Normalize
    from studio.schema import example_ids, normalize_text

    texts = ["Cafe\u0301 \r\n x\r", " \u00a0a\u2003 ", "\x1c\x1dq\x1f", 'tab\there "q" \\ back', "\ufeffzero\u200bwidth",
             "\x85\x9fC1", "", "   ", "\u3000wide\u3000", "\U0001F600\u2028x", "\x7fdel", "\u0130stanbul", "plain"]
    rows = [[{"role": " User ", "content": t}, {"role": "assistant", "content": u}] for t in texts for u in ("ok", t)]
    rows += [[{"role": "tool", "content": "x"}], [{"role": "system", "content": " "}, {"role": "user", "content": "q"},
                                                   {"role": "assistant", "content": "a"}]]
    messages = pl.Series("messages", rows)
    assert example_ids(messages).to_list() == [example_id(r) for r in rows]
    frame = pl.DataFrame({"messages": messages, "drop_reason": pl.Series([None] * len(rows), dtype=pl.String)})
    normalized = Normalize().process(frame)
    expected = [[{"role": m["role"].strip().lower(), "content": normalize_text(m["content"])} for m in r
                 if m["role"] != "system" or normalize_text(m["content"])] for r in rows]
    assert normalized["messages"].to_list() == expected
    assert (normalized["drop_reason"] == "empty").fill_null(False).to_list() == [
        not turns or not all(m["content"] for m in turns) for turns in expected]


def test_folder_skips_empty_and_foreign_files_and_says_which(tmp_path, caplog):
    folder = tmp_path / "data"
    folder.mkdir()
    _write(folder / "a.jsonl", _pc(1) + "\n" + _pc(2) + "\n")
    _write(folder / "empty.jsonl", b"")
    _write(folder / "blank.json", "\n  \r\n")
    _write(folder / "notes.xlsx", b"PK\x03\x04")
    _write(folder / ".hidden.jsonl", b"not read")
    with caplog.at_level("WARNING", logger="studio.readers"):
        result = read_inputs([folder])
    assert result.n_rows == 2 and not result.quarantine
    assert [(Path(s.path).name, s.reason) for s in result.skipped] == [
        ("blank.json", "empty"), ("empty.jsonl", "empty"), ("notes.xlsx", "unsupported type '.xlsx'")]
    assert caplog.text.count("skipped ") == 3
    with pytest.raises(InputError, match="empty.jsonl is empty"):
        read_inputs([folder / "empty.jsonl"])
    only_empty = tmp_path / "nothing"
    only_empty.mkdir()
    _write(only_empty / "e.jsonl", b"")
    with pytest.raises(InputError, match="holds no input files .*1 empty or unsupported files were skipped"):
        read_inputs([only_empty])


def test_curate_of_a_folder_counts_skipped_files_in_the_manifest(tmp_path):
    from curate.pipeline import PipelineConfig, run_pipeline

    folder = tmp_path / "data"
    folder.mkdir()
    _write(folder / "a.jsonl", _pc(1) + "\n")
    _write(folder / "z.jsonl", b"")
    run = run_pipeline(PipelineConfig(inputs=[str(folder)], steps=["normalize"], report=False), out_dir=tmp_path / "run")
    manifest = json.loads(run.manifest_path.read_text())
    assert manifest["skipped_files"] == [{"path": str(folder / "z.jsonl"), "reason": "empty"}]
    assert manifest["counts"]["input"] == manifest["counts"]["kept"] == 1


def test_a_deeply_nested_record_is_quarantined_not_a_crash(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    path = _write(tmp_path / "deep.jsonl", f'{_pc(1)}\n{{"prompt": {deep}, "completion": "c"}}\n{_pc(3)}\n')
    result = read_file(path)
    assert [(q.line, q.reason) for q in result.quarantine] == [
        (2, "invalid JSON: nested too deeply to read (more levels of arrays and objects than Python allows)")]
    assert [r["source"] for r in result.rows] == [f"{path}:1", f"{path}:3"]
    array = _write(tmp_path / "deep.json", f'[\n  {_pc(1)},\n  {{"prompt": {deep}}},\n  {_pc(3)}\n]\n')
    result = read_file(array)
    assert [q.line for q in result.quarantine] == [3]
    assert "nested too deeply" in result.quarantine[0].reason
    assert [r["source"] for r in result.rows] == [f"{array}:2", f"{array}:4"]


def test_json_array_syntax_error_keeps_the_records_after_it_and_names_the_lost_lines(tmp_path):
    records = [{"instruction": f"i{k}", "input": "", "output": f"o{k}"} for k in range(5)]
    path = _write(tmp_path / "a.json", json.dumps(records, indent=2).replace('"o1"', '"o1" oops', 1))
    result = read_file(path)
    assert [(q.line, q.reason) for q in result.quarantine] == [
        (7, "invalid JSON: Expecting ',' delimiter (line 10 column 20); lines 7-11 could not be read, reading resumed "
            "at the record on line 12")]
    assert [r["messages"][1]["content"] for r in result.rows] == ["o0", "o2", "o3", "o4"]
    one_line = _write(tmp_path / "b.json", json.dumps(records).replace('"o1"', '"o1" oops', 1))
    result = read_file(one_line)
    assert [q.reason for q in result.quarantine] == [
        "invalid JSON: Expecting ',' delimiter (line 1 column 104); line 1, the rest of the array, could not be read"]
    assert [r["messages"][1]["content"] for r in result.rows] == ["o0"]


def test_a_folder_reads_as_its_files_read_one_by_one_bad_lines_included(tmp_path):
    """Consecutive JSONL files of one format are parsed as one buffer: every row keeps its own file and line, every
    bad line its file, line and reason, the same as reading each file alone."""
    folder = tmp_path / "data"
    folder.mkdir()
    good = [_pc(i) for i in range(1, 301)]
    first = list(good)
    first[0] = "{bad json"                                       # bad line at the start of the first file
    _write(folder / "a.jsonl", "\n".join(first) + "\n")
    middle = list(good)
    middle[149] = '{"prompt": 5, "completion": "x"}'             # bad line in the middle of a file in the middle
    middle[200] = json.dumps({"prompt": "p", "completion": "c", "topic": "late key"})  # a key only after line 100
    _write(folder / "b.jsonl", b"\xef\xbb\xbf" + "\r\n".join(middle).encode())  # BOM, CRLF, no final newline
    _write(folder / "c.json", json.dumps([{"instruction": "i", "input": "", "output": "o"}]))  # another format
    _write(folder / "d.jsonl", "\n\n" + "\n".join(good) + "\n\n")  # blank lines around
    last = list(good)
    last[-1] = '{"prompt": "x", "completion": '                  # bad line at the end of the last file
    _write(folder / "e.jsonl", "\n".join(last))
    _write(folder / "f.jsonl", "\n".join(good[:3]) + "\n")
    result = read_inputs([folder])
    alone = [read_file(path) for path in sorted(folder.iterdir())]
    assert [q.to_dict() for q in result.quarantine] == [q.to_dict() for r in alone for q in r.quarantine]
    assert [(Path(q.file).name, q.line) for q in result.quarantine] == [("a.jsonl", 1), ("b.jsonl", 150),
                                                                           ("e.jsonl", 300)]
    expected = pl.concat([r.frame() for r in alone], how="diagonal_relaxed")
    assert result.frame().equals(expected)
    rows = {r["source"]: r for r in result.rows}
    assert json.loads(rows[f"{folder / 'b.jsonl'}:201"]["meta"]) == {"topic": "late key"}
    assert rows[f"{folder / 'd.jsonl'}:3"]["messages"][0]["content"] == "question 1"
    assert rows[f"{folder / 'f.jsonl'}:3"]["messages"][1]["content"] == "answer 3"
    assert result.formats[str(folder / "c.json")] == "alpaca" and result.formats[str(folder / "f.jsonl")] == (
        "prompt-completion")


def test_format_detection_stops_early_only_when_the_rest_could_not_outvote(tmp_path):
    """Detection parses fewer than DETECT_RECORDS records only once a majority of them agree; a file whose first
    records disagree is still decided by the vote over all DETECT_RECORDS of them."""
    from studio.readers import DETECT_RECORDS, _head_records

    pc = json.dumps({"prompt": "p", "completion": "c"})
    alpaca = json.dumps({"instruction": "i", "output": "o"})
    agreeing = tmp_path / "agreeing.jsonl"
    agreeing.write_text("\n".join([pc] * 40) + "\n")
    assert len(_head_records(agreeing, agreeing.read_bytes(), None)) == DETECT_RECORDS // 2 + 1
    # one alpaca record first, then prompt-completion: all DETECT_RECORDS are read and the majority wins
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join([alpaca] + [pc] * 39) + "\n")
    assert len(_head_records(mixed, mixed.read_bytes(), None)) == DETECT_RECORDS
    result = read_file(mixed)
    assert result.formats[str(mixed)] == "prompt-completion"
    assert result.n_rows == 39 and [q.line for q in result.quarantine] == [1]


def test_default_schema_inference_is_used_only_when_every_key_was_seen(tmp_path, monkeypatch):
    """Polars infers a schema from the first 100 lines; the reader keeps that parse only when the count of keys in
    the bytes proves no line has another key, despite quotes, colons and backslashes inside the text, and reads
    exactly what full inference reads either way."""
    import numpy as np

    from studio import readers

    awkward = ['say \\"Sicko\\": yes', ':starts with a colon', 'ends in a backslash \\\\', '\\\\\\": odd', 'tab\\there {\\"k\\": 1}']
    lines = [f'{{"prompt": "{awkward[i % len(awkward)]} {i}", "completion" :\t"c{i}"}}' for i in range(300)]
    complete = "\n".join(lines) + "\n"
    late_key = "\n".join(lines[:200] + ['{"prompt": "p", "completion": "c", "topic": "late"}'] + lines[200:]) + "\n"
    late_null = "\n".join(lines[:200] + ['{"prompt": "p", "completion": null}'] + lines[200:]) + "\n"

    def proven(text: str) -> bool:
        data = text.encode()
        ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
        return readers._every_key_inferred(pl.read_ndjson(data), data, ends)

    assert proven(complete)
    assert not proven(late_key) and not proven(late_null)
    for name, text in (("complete", complete), ("late_key", late_key), ("late_null", late_null)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text(text)
        fast = read_file(path)
        with monkeypatch.context() as m:
            m.setattr(readers, "_every_key_inferred", lambda *a: False)
            full = read_file(path)
        assert fast.frame().equals(full.frame()) and fast.quarantine == full.quarantine
    late = read_file(tmp_path / "late_key.jsonl").frame()
    assert late.filter(pl.col("source").str.ends_with(":201"))["meta"].to_list() == ['{"topic": "late"}']
    assert [q.line for q in read_file(tmp_path / "late_null.jsonl").quarantine] == [201]
