"""What synth reads: the self-instruct seed-task file, PDF/DOCX/HTML documents, and how documents are chunked.

Real files only: the self-instruct repository's 175 seed tasks (../shared/data), sample_data's generated PDF and
DOCX, an HTML page written here, and a corrupt PDF. No model is started in this file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from studio.readers import read_file, read_inputs
from synth.generators.grounded_qa import chunk_document

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "sample_data" / "docs"


def test_self_instruct_seed_file_reads_one_example_per_instance_with_task_meta(shared_data):
    result = read_inputs([shared_data / "instructions" / "self_instruct_seed_tasks.jsonl"])
    assert (result.kind, len(result.rows), result.quarantine) == ("examples", 175, [])
    assert set(result.formats.values()) == {"seed-tasks"}
    metas = [json.loads(r["meta"]) for r in result.rows]
    assert sum(m["is_classification"] for m in metas) == 26
    second = result.rows[1]
    assert metas[1] == {"task": "antonym_relation", "task_id": "seed_task_1", "is_classification": False, "instance": 0}
    assert second["messages"] == [
        {"role": "user", "content": "What is the relation between the given pairs?\n\nNight : Day :: Right : Left"},
        {"role": "assistant", "content": "The relation between the given pairs is that they are opposites."}]


def test_seed_task_with_several_instances_gives_several_examples_and_bad_instances_are_quarantined(tmp_path):
    path = tmp_path / "seeds.jsonl"
    tasks = [{"id": "t1", "name": "sentiment", "instruction": "Classify the sentiment.", "is_classification": True,
              "instances": [{"input": "I love it", "output": "positive"}, {"input": "Awful.", "output": "negative"}]},
             {"id": "t2", "name": "broken", "instruction": "Say hi.", "instances": [{"input": ""}]},
             {"id": "t3", "name": "empty", "instruction": "Say bye.", "instances": []}]
    path.write_text("\n".join(json.dumps(t) for t in tasks) + "\n", encoding="utf-8")
    result = read_file(path)
    assert [r["messages"][0]["content"] for r in result.rows] == ["Classify the sentiment.\n\nI love it",
                                                                   "Classify the sentiment.\n\nAwful."]
    assert [json.loads(r["meta"])["instance"] for r in result.rows] == [0, 1]
    assert [(q.line, q.reason) for q in result.quarantine] == [
        (2, "instances[0]: missing field 'output'"),
        (3, "field 'instances' must be a non-empty list of {input, output} objects")]


def test_pdf_reads_pages_headings_and_drops_the_running_footer():
    result = read_file(DOCS / "repair_service_guide.pdf")
    (doc,) = result.rows
    pages = doc["text"].split("\f")
    assert len(pages) == 2 and json.loads(doc["meta"])["title"] == "Ridgeline Outfitters Repair Service Guide"
    assert "# Repair Service Guide" in pages[0] and "## Turnaround" in pages[0]
    assert pages[1].startswith("## How to send gear in") and "guaranteed for 90 days" in pages[1]
    assert "page 1" not in doc["text"] and "Boot resoling $95 per pair" in pages[0]


def test_docx_reads_title_headings_table_rows_and_bullets():
    (doc,) = read_file(DOCS / "gear_rental_terms.docx").rows
    text = doc["text"]
    assert text.startswith("# Gear Rental Terms\n\nEffective May 15, 2024.")
    assert "## Deposit\n\nA refundable deposit of $100 per item" in text
    assert "Two-person tent | $18 | $75" in text
    assert "- a government-issued photo ID;\n- a credit card" in text


def test_html_keeps_headings_lists_and_tables_and_leaves_out_scripts_and_navigation(tmp_path):
    page = tmp_path / "faq.html"
    page.write_text("""<html><head><title>Stove FAQ</title><script>var x = "tracking";</script></head><body>
        <nav><a href="/">Home</a> | <a href="/shop">Shop</a></nav>
        <h1>Camp stove FAQ</h1><p>Our stoves burn <b>isobutane</b> canisters.</p>
        <h2>Cleaning</h2><ul><li>Let it cool.</li><li>Wipe the burner.</li></ul>
        <table><tr><th>Model</th><th>Boil time</th></tr><tr><td>Trail One</td><td>3 min</td></tr></table>
        <footer>Copyright Ridgeline</footer></body></html>""", encoding="utf-8")
    (doc,) = read_file(page).rows
    assert doc["text"] == ("# Camp stove FAQ\n\nOur stoves burn isobutane canisters.\n\n## Cleaning\n\n"
                           "- Let it cool.\n- Wipe the burner.\n\nModel | Boil time\nTrail One | 3 min")
    assert json.loads(doc["meta"]) == {"title": "Stove FAQ"}


def test_corrupt_pdf_is_quarantined_with_a_reason_not_raised(tmp_path):
    bad = tmp_path / "scan.pdf"
    bad.write_bytes(b"%PDF-1.4\nthis is not really a pdf\n")
    result = read_file(bad)
    assert result.rows == [] and len(result.quarantine) == 1
    assert result.quarantine[0].reason.startswith("not a readable PDF") or "no text" in result.quarantine[0].reason


def test_chunks_record_page_and_section_and_overlap_within_a_section():
    paras = " ".join(f"Rule {k} says item {k} costs {k} dollars." for k in range(30))
    text = f"# Prices\n\n{paras}\f## Returns\n\nReturns take 5 days."
    chunks = chunk_document(text, max_chars=300, overlap_chars=80)
    assert [c.section for c in chunks] == ["Prices"] * (len(chunks) - 1) + ["Returns"]
    assert chunks[0].page == 1 and chunks[-1].page == 2
    assert all(len(c.text) <= 300 + 80 + len("Prices\n\n") + 2 for c in chunks)
    for before, after in zip(chunks, chunks[1:-1], strict=False):
        last_sentence = before.text.rsplit(". ", 1)[-1]
        assert after.text.startswith("Prices\n\n") and last_sentence in after.text  # heading + overlap
    assert chunks[-1].text == "Returns\n\nReturns take 5 days."  # no overlap carried across sections


def test_demo_documents_all_read_and_chunk_with_lineage():
    result = read_inputs([DOCS])
    assert result.quarantine == [] and len(result.rows) == 6
    for doc in result.rows:
        chunks = chunk_document(doc["text"])
        assert chunks and all(len(c.text) <= 900 for c in chunks)
        if doc["source"].endswith(".pdf:1"):
            assert {c.page for c in chunks} == {1, 2}
        else:
            assert {c.page for c in chunks} == {None} and any(c.section for c in chunks)


def test_console_shows_no_per_request_info_lines_unless_verbose(capsys):
    from studio_app.cli import _console_logging

    root = logging.getLogger()
    level = root.level
    try:
        _console_logging(logging.WARNING)
        logging.basicConfig()  # what absl does on its first message: must not add a second handler
        logging.getLogger("httpx").info("HTTP Request: POST http://127.0.0.1/v1/chat/completions")
        assert "HTTP Request" not in capsys.readouterr().err
        _console_logging(logging.INFO)
        logging.getLogger("httpx").info("HTTP Request: POST http://127.0.0.1/v1/chat/completions")
        assert "HTTP Request" in capsys.readouterr().err
    finally:
        for h in [h for h in root.handlers if h.get_name() == "studio-console"]:
            root.removeHandler(h)
        root.setLevel(level)


@pytest.mark.parametrize("name", ["repair_service_guide.pdf", "gear_rental_terms.docx"])
def test_sample_documents_are_what_their_generator_writes(tmp_path, monkeypatch, name):
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate_documents", REPO / "sample_data" / "generate_documents.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "DOCS", tmp_path)
    module.main()
    assert (tmp_path / name).read_bytes() == (DOCS / name).read_bytes()


def test_broken_docx_is_quarantined_with_a_reason(tmp_path):
    bad = tmp_path / "notes.docx"
    bad.write_bytes(b"PK\x03\x04 not a whole zip")
    result = read_file(bad)
    assert result.rows == [] and [q.line for q in result.quarantine] == [1]
    assert result.quarantine[0].reason.startswith("not a readable DOCX file")
