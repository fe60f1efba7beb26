"""Synthetic data: generators on the real local model, filters, judge, resume after kill -9, faults, privacy.

Real parts: llama.cpp's OpenAI-compatible server (xllamacpp, one thread) on the bundled SmolLM2 GGUF, the
official `openai` client over HTTP. Faults come from tests/synth_fault_proxy.py, a documented fault injector.
Every model call uses temperature 0 and short max_tokens so the whole file stays well under two minutes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from synth_fault_proxy import GARBLED_TEXT, FaultProxy

from studio.errors import StudioError
from studio.readers import read_inputs
from synth.backends import BackendConfig, OpenAIBackend, backoff_delay, retry_after_seconds
from synth.generators.base import GenSettings
from synth.generators.grounded_qa import (
    GroundedQA,
    answer_text,
    content_words,
    evidence_spans,
    grounded_overlap,
)
from synth.generators.self_instruct import NoveltyFilter, instruction_filter_reason
from synth.parsing import ParseError, parse_json_object
from synth.prompts import PromptLibrary
from synth.runner import SynthJob, build_generator, run_synth

REPO = Path(__file__).resolve().parent.parent

DOCS = {
    "refunds.md": "# Refunds\n\nCustomers can request a refund within 30 days of delivery. The item must be unused "
                  "and in its original packaging.\n\nRefunds are paid to the original payment method within 5 "
                  "business days after the returned item arrives at our warehouse.\n\nGift cards cannot be refunded.",
    "shipping.md": "# Shipping\n\nStandard shipping takes 3 to 5 business days and costs 4.99 dollars. Orders over "
                   "50 dollars ship for free.\n\nExpress shipping delivers the next business day for 14.99 dollars "
                   "when ordered before 2 pm.",
    "warranty.md": "# Warranty\n\nAll appliances carry a two-year warranty against manufacturing defects. The "
                   "warranty does not cover water damage or misuse.\n\nTo claim, customers send the serial number "
                   "and a photo of the defect to the support team.",
}
SEEDS = [
    ("How do I reset my account password?", "Click 'Forgot password' on the sign-in page and follow the email link."),
    ("Can I change my delivery address after ordering?", "Yes, until the order ships: open the order and edit it."),
    ("What payment methods do you accept?", "We accept credit cards, PayPal and bank transfer."),
    ("How long does standard shipping take?", "Standard shipping takes 3 to 5 business days."),
    ("Is there a warranty on appliances?", "Yes, two years against manufacturing defects."),
    ("How do I cancel my subscription?", "Go to Account, then Subscriptions, and choose Cancel."),
]
FAST = {"temperature": 0.0, "max_tokens": 40}


@pytest.fixture(scope="session")
def llama_url():
    """One real llama.cpp server for the session: 4 parallel slots, one thread."""
    from studio.models import smollm2_gguf_path
    from synth.backends import start_llama_server

    server = start_llama_server(smollm2_gguf_path(), n_parallel=4, threads=1, ctx_per_slot=1024)
    yield server.listening_address
    del server


@pytest.fixture(scope="session")
def docs_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def seeds_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("seeds") / "seeds.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for q, a in SEEDS:
            fh.write(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n")
    return path


def _run(tmp_path: Path, url: str, generator: str, inputs: list[Path], n: int, *, backend_kw: dict | None = None,
         redactor=None, resume: bool = False, out: Path | None = None, **job_kw):
    cfg = BackendConfig(kind="openai", base_url=url + "/v1", model="smollm2", **(backend_kw or {}))
    job_kw = {"judge": False, "redact": False, **FAST, **job_kw}
    job = SynthJob(generator=generator, n=n, inputs=[str(p) for p in inputs], backend=cfg, **job_kw)
    rows, kind = [], None
    if inputs:
        result = read_inputs(inputs)
        rows, kind = result.rows, result.kind
    gen = build_generator(job, rows, kind)
    return run_synth(job, gen, OpenAIBackend(cfg), out_dir=out or tmp_path / "run", resume=resume, redactor=redactor)


def _outputs(run) -> tuple[pl.DataFrame, pl.DataFrame, list[dict], dict]:
    kept = pl.read_parquet(run.dir / "kept.parquet")
    dropped = pl.read_parquet(run.dir / "dropped.parquet")
    quarantine = [json.loads(line) for line in (run.dir / "quarantine.jsonl").read_text().splitlines()]
    manifest = json.loads((run.dir / "manifest.json").read_text())
    return kept, dropped, quarantine, manifest


def _check_accounting(kept, dropped, quarantine, manifest) -> None:
    c = manifest["counts"]
    assert c["input"] == c["kept"] + sum(c["dropped"].values()) + c["quarantined"]
    assert (c["kept"], sum(c["dropped"].values()), c["quarantined"]) == (kept.height, dropped.height, len(quarantine))
    assert all(q["reason"] for q in quarantine)
    assert kept["id"].n_unique() == kept.height


# ------------------------------------------------------------------------------------- no model needed


def test_novelty_filter_rejects_near_duplicates_and_admits_new_instructions():
    f = NoveltyFilter(["How do I reset my account password?", "What payment methods do you accept?"])
    assert f.admit("How can I reset my account password?") == (False, pytest.approx(0.857, abs=0.01))
    admitted, score = f.admit("Which countries do you ship furniture to?")
    assert admitted and score < 0.7
    assert f.admit("Which countries do you ship furniture to today?")[0] is False  # now in the pool
    assert len(f.pool) == 3


def test_self_instruct_keyword_and_length_filters():
    assert instruction_filter_reason("Draw a diagram of the refund process for customers") == "unsupported_keyword"
    assert instruction_filter_reason("Refund?") == "bad_length"
    assert instruction_filter_reason(" ".join(["word"] * 151)) == "bad_length"
    assert instruction_filter_reason("- list three ways to contact support") == "bad_start"
    assert instruction_filter_reason("List three ways to contact support quickly") is None


def test_evidence_is_whole_prose_sentences_with_numbers_first_never_headings_tables_or_offered_ones():
    chunk = ("Rentals\n\nItem | Per day\nTwo-person tent | $18\n\nRentals are priced per day and counted from pickup\n"
             "to return at the store.\n- **Dry on low heat** for 2-3 hours with two clean tennis balls.\n- Short item.\n\n"
             "Orders placed before 1 p.m. Eastern time leave the warehouse on the same day. Thanks!")
    quoted = [answer_text(chunk[a:b]) for a, b in evidence_spans(chunk, heading="Rentals")]
    assert quoted == ["Dry on low heat for 2-3 hours with two clean tennis balls.",
                      "Orders placed before 1 p.m. Eastern time leave the warehouse on the same day.",
                      "Rentals are priced per day and counted from pickup to return at the store."]
    assert [answer_text(chunk[a:b]) for a, b in evidence_spans(chunk, "Rentals", skip=set(quoted[:2]))] == quoted[2:]


def test_groundedness_check_accepts_a_quoted_sentence_and_rejects_an_answer_the_chunk_does_not_support():
    chunk = DOCS["refunds.md"]
    assert grounded_overlap("Refunds are paid to the original payment method within 5 business days.", chunk) == 1.0
    assert grounded_overlap("Refunds are paid in cash at any store, and shipping labels are free.", chunk) < 0.6
    assert grounded_overlap("", chunk) == 0.0


def test_tolerant_parser_reads_fenced_chatty_and_cut_off_json_and_rejects_prose():
    assert parse_json_object('Sure! ```json\n{"question": "Why?", "answer": "Because.",}\n```') == \
        {"question": "Why?", "answer": "Because."}
    assert parse_json_object('Here: {"prompt": "I want my money back') == {"prompt": "I want my money back"}
    assert parse_json_object('{"a": 1} then {"instruction": "Do x"}', required=("instruction",)) == {"instruction": "Do x"}
    with pytest.raises(ParseError):
        parse_json_object("I cannot answer that in JSON.", required=("question",))


def test_backoff_honours_retry_after_and_stays_within_the_jitter_ceiling():
    import random

    rng = random.Random(1)
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert 2.0 <= backoff_delay(0, 0.5, 30, 2.0, rng) <= 2.125
    delays = [backoff_delay(a, 0.5, 4.0, None, rng) for a in range(8) for _ in range(50)]
    assert max(delays) <= 4.0 and min(delays) >= 0.0


def test_remote_backend_without_redactor_refuses_to_send(tmp_path, docs_dir):
    cfg = BackendConfig(kind="openai", base_url="http://127.0.0.1:9/v1", model="m")
    job = SynthJob(generator="grounded-qa", n=1, backend=cfg, redact=True)
    result = read_inputs([docs_dir])
    with pytest.raises(StudioError, match="--no-redact"):
        run_synth(job, build_generator(job, result.rows, result.kind), OpenAIBackend(cfg), out_dir=tmp_path / "r")


# ------------------------------------------------------------------------------------- real model


def test_grounded_qa_cli_on_local_backend_writes_examples_with_lineage(tmp_path, docs_dir):
    from typer.testing import CliRunner

    from studio_app.cli import app

    out = tmp_path / "gqa"
    res = CliRunner().invoke(app, ["-q", "synth", "grounded-qa", str(docs_dir), "--n", "3", "--out", str(out),
                                   "--temperature", "0", "--max-tokens", "48"])
    assert res.exit_code == 0, res.output
    kept = pl.read_parquet(out / "kept.parquet")
    manifest = json.loads((out / "manifest.json").read_text())
    assert kept.height == 3 and manifest["produced"] == 3 and manifest["backend"]["remote"] is False
    chunk_text = {c["chunk_id"]: c["text"] for c in GroundedQA(read_inputs([docs_dir]).rows, PromptLibrary(), GenSettings()).chunks}
    chunks = {}
    for row in kept.iter_rows(named=True):
        meta = json.loads(row["meta"])
        assert (row["origin"], row["source"]) == ("synthetic", manifest["run_id"])
        assert meta["generator"] == "grounded-qa" and meta["template"] == "grounded_qa" and meta["template_version"] == 2
        # local default: no LLM judge (no better than chance at 135M); the score step's quality is the gate
        assert meta["model"] == "SmolLM2-135M-Instruct.Q4_1" and "q_judge" not in meta and row["quality"] >= 0.5
        # the answer is the evidence sentence quoted from its chunk, and the question is about it
        question, answer = (m["content"] for m in row["messages"])
        start, end = meta["evidence"]
        assert answer == answer_text(chunk_text[meta["chunk_id"]][start:end]) and meta["grounded_overlap"] == 1.0
        assert question.endswith("?") and len(set(content_words(question)) & set(content_words(answer))) >= 2
        chunks[meta["chunk_id"]] = meta["doc_id"]
    doc_ids = {r["id"] for r in read_inputs([docs_dir]).rows}
    assert set(chunks.values()) <= doc_ids
    assert manifest["acceptance"]["grounded_qa.v2"]["kept"] == 3


def test_grounded_qa_drops_a_question_that_is_not_about_its_evidence_sentence(tmp_path, llama_url, docs_dir):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "grounded_qa.v9.txt").write_text('Ask one question about the planet Mars.\n'
                                                'Reply in JSON: {"question": "..."}', encoding="utf-8")
    # sampled (seeded per candidate): at temperature 0 this prompt loops on "Mars" until max_tokens
    run = _run(tmp_path, llama_url, "grounded-qa", [docs_dir], n=2, max_candidate_factor=2, prompts_dir=str(prompts),
               temperature=0.7, max_tokens=64)
    kept, dropped, quarantine, manifest = _outputs(run)
    _check_accounting(kept, dropped, quarantine, manifest)
    assert kept.height == 0 and dropped.height >= 2 and set(dropped["drop_reason"]) == {"question_off_evidence"}
    assert all(json.loads(m)["question"].endswith("?") for m in dropped["meta"])


def test_grounded_qa_drops_a_model_answer_its_chunk_does_not_support(tmp_path, llama_url, docs_dir):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "grounded_qa_answer.v9.txt").write_text("Ignore the question. Describe the planet Mars in "
                                                       "two sentences.", encoding="utf-8")
    run = _run(tmp_path, llama_url, "grounded-qa", [docs_dir], n=2, max_candidate_factor=2, prompts_dir=str(prompts),
               options={"answer": "model"})
    kept, dropped, quarantine, manifest = _outputs(run)
    _check_accounting(kept, dropped, quarantine, manifest)
    answered = [json.loads(m) for m in dropped.filter(pl.col("drop_reason") == "not_grounded")["meta"]]
    assert kept.height == 0 and answered
    assert all(m["answer_template"] == "grounded_qa_answer.v9" and m["grounded_overlap"] < 0.6 for m in answered)


def test_local_server_formats_chat_with_a_named_built_in_template():
    import httpx

    from studio.models import smollm2_gguf_path
    from synth.backends import start_llama_server

    turns = {"messages": [{"role": "user", "content": "Hi"}]}
    server = start_llama_server(smollm2_gguf_path(), n_parallel=1, ctx_per_slot=512, chat_template="gemma")
    prompt = httpx.post(server.listening_address + "/apply-template", json=turns, timeout=30).json()["prompt"]
    assert prompt.endswith("<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n")
    del server
    server = start_llama_server(smollm2_gguf_path(), n_parallel=1, ctx_per_slot=512)  # the GGUF's own (chatml)
    prompt = httpx.post(server.listening_address + "/apply-template", json=turns, timeout=30).json()["prompt"]
    assert "<|im_start|>user\nHi<|im_end|>" in prompt and "<start_of_turn>" not in prompt


@pytest.mark.parametrize("generator", ["self-instruct", "evol-instruct", "paraphrase"])
def test_example_generators_on_local_model_record_seed_lineage(tmp_path, llama_url, seeds_file, generator):
    run = _run(tmp_path, llama_url, generator, [seeds_file], n=2)
    kept, dropped, quarantine, manifest = _outputs(run)
    _check_accounting(kept, dropped, quarantine, manifest)
    assert kept.height == 2
    seed_ids = {r["id"] for r in read_inputs([seeds_file]).rows}
    for row in kept.iter_rows(named=True):
        meta = json.loads(row["meta"])
        assert meta["generator"] == generator and set(meta["seed_ids"]) <= seed_ids
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        if generator == "evol-instruct":
            assert meta["evolution"]["kind"] == "in-depth" and meta["evolution"]["parent_id"] in seed_ids
        if generator == "self-instruct":
            assert meta["max_rouge_l"] <= 0.7


def test_edge_cases_with_judge_keep_only_scores_at_or_above_threshold(tmp_path, llama_url):
    run = _run(tmp_path, llama_url, "edge-cases", [], n=2, categories=["late refund", "damaged parcel"],
               judge=True, judge_threshold=1.5, max_candidate_factor=2)
    kept, dropped, quarantine, manifest = _outputs(run)
    _check_accounting(kept, dropped, quarantine, manifest)
    assert manifest["counts"]["input"] == kept.height + dropped.height + len(quarantine) <= 4
    assert all(q >= (1.5 - 1) / 4 for q in kept["q_judge"])  # q_judge is the rubric mean on 0-1
    judged_out = dropped.filter(pl.col("drop_reason") == "judge_below_threshold")
    assert all(q < (1.5 - 1) / 4 for q in judged_out["q_judge"])
    for row in [*kept.iter_rows(named=True), *judged_out.iter_rows(named=True)]:
        meta = json.loads(row["meta"])
        assert meta["category"] in ("late refund", "damaged parcel") and set(meta["judge"]) >= {"accuracy", "usefulness"}


def test_unparseable_outputs_are_quarantined_with_the_raw_text(tmp_path, llama_url):
    with FaultProxy(llama_url, rate=0.5, kinds=("garble",), seed=3) as proxy:
        run = _run(tmp_path, proxy.url, "edge-cases", [], n=3, categories=["late refund", "wrong item"])
    kept, dropped, quarantine, manifest = _outputs(run)
    _check_accounting(kept, dropped, quarantine, manifest)
    assert kept.height == 3
    garbled = [q for q in quarantine if q["raw"] == GARBLED_TEXT]
    assert garbled and all(q["reason"].startswith("unparseable output") for q in garbled)
    assert proxy.faults()["garble"] >= len(garbled)


def test_injected_faults_lose_and_duplicate_nothing(tmp_path, llama_url, seeds_file):
    # A generous client timeout: on a loaded 2-core machine a genuine reply can take seconds.
    with FaultProxy(llama_url, rate=0.25, seed=7, stall_s=21.0) as proxy:
        run = _run(tmp_path, proxy.url, "paraphrase", [seeds_file], n=4,
                   backend_kw={"timeout_s": 20.0, "backoff_base_s": 0.1, "max_retries": 8})
    kept, dropped, quarantine, manifest = _outputs(run)
    _check_accounting(kept, dropped, quarantine, manifest)
    assert kept.height == 4 and not quarantine
    injected = proxy.faults()
    assert sum(injected.values()) >= 1
    assert manifest["usage"]["retries"] >= sum(injected.values())
    logged = [json.loads(line)["key"] for line in (run.dir / "responses" / "shard-0000.jsonl").read_text().splitlines()]
    assert len(logged) == len(set(logged)) == manifest["requests"]["sent"]
    assert set(logged) == {s.key for s in proxy.seen if s.answered}


def test_requests_failing_after_all_retries_are_quarantined_with_reason(tmp_path, llama_url, seeds_file):
    with FaultProxy(llama_url, rate=0.5, kinds=("429", "500"), seed=11, retry_after="0") as proxy:
        run = _run(tmp_path, proxy.url, "paraphrase", [seeds_file], n=3, backend_kw={"max_retries": 0})
    kept, dropped, quarantine, manifest = _outputs(run)
    _check_accounting(kept, dropped, quarantine, manifest)
    assert kept.height == 3
    assert quarantine and {q["reason"] for q in quarantine} <= {
        "request failed after 1 attempts: HTTP 429", "request failed after 1 attempts: HTTP 500"}
    assert manifest["requests"]["failed_after_retries"] == len(quarantine) == sum(proxy.faults().values())


def test_resume_after_kill_9_finishes_exact_count_without_resending_answered_requests(tmp_path, llama_url, seeds_file):
    out = tmp_path / "killed"
    with FaultProxy(llama_url) as proxy:
        args = [sys.executable, "-m", "studio_app.cli", "-q", "synth", "paraphrase", str(seeds_file), "--n", "8",
                "--out", str(out), "--backend", "openai", "--base-url", proxy.url + "/v1", "--model", "smollm2",
                "--no-redact", "--no-judge", "--temperature", "0", "--max-tokens", "32", "--concurrency", "2"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
        deadline = time.time() + 60
        while time.time() < deadline and _answered_keys(out) < 3:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = _keys(out)
        assert 3 <= len(before) < 8 and not (out / "manifest.json").exists()
        n_seen_before = len(proxy.seen)
        res = subprocess.run(args + ["--resume"], env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        resent = [s.key for s in proxy.seen[n_seen_before:] if s.key in before]
    assert resent == []
    kept = pl.read_parquet(out / "kept.parquet")
    manifest = json.loads((out / "manifest.json").read_text())
    assert kept.height == 8 and kept["id"].n_unique() == 8
    assert manifest["requests"]["log_entries_at_start"] == len(before)
    assert manifest["privacy"]["redaction_turned_off_by_user"] is True
    assert set(kept["source"]) == {json.loads((out / "synth_job.json").read_text())["run_id"]}


def _keys(out: Path) -> set[str]:
    keys = set()
    for shard in (out / "responses").glob("shard-*.jsonl"):
        for line in shard.read_text().splitlines():
            try:
                keys.add(json.loads(line)["key"])
            except json.JSONDecodeError:
                pass
    return keys


def _answered_keys(out: Path) -> int:
    return len(_keys(out)) if (out / "responses").is_dir() else 0


PLANTED = {"email": "maria.gonzalez@example.com", "phone": "+1 415 555 0199", "name_email": "j.smith@corp.example"}


def test_remote_backend_redacts_planted_pii_before_it_reaches_the_wire(tmp_path, llama_url):
    doc = tmp_path / "contact.md"
    doc.write_text(f"# Contact\n\nWrite to {PLANTED['email']} or call {PLANTED['phone']} for refunds within 30 days."
                   f"\n\nEscalations go to {PLANTED['name_email']} within two business days.", encoding="utf-8")
    from curate.pii import PiiRedactor

    with FaultProxy(llama_url) as proxy:
        run = _run(tmp_path, proxy.url, "grounded-qa", [doc], n=1, redact=True, redactor=PiiRedactor().redact_texts,
                   max_candidate_factor=2)
    sent = [m["content"] for s in proxy.seen for m in json.loads(s.body)["messages"]]
    assert sent and any("EMAIL" in text for text in sent)
    for value in PLANTED.values():
        assert all(value not in text for text in sent)
    manifest = json.loads(run.manifest_path.read_text())
    assert manifest["privacy"] == {"backend_remote": True, "pii_redacted_before_sending": True,
                                   "redaction_turned_off_by_user": False}
    assert all(v not in run.manifest_path.read_text() for v in PLANTED.values())


@pytest.mark.slow
def test_self_instruct_from_the_raw_seed_task_file_keeps_scored_examples_with_seed_lineage(tmp_path, llama_url,
                                                                                         shared_data):
    from synth.commands import curated_postprocess

    seeds = shared_data / "instructions" / "self_instruct_seed_tasks.jsonl"
    tasks = {json.loads(line)["name"] for line in seeds.read_text().splitlines()}
    cfg = BackendConfig(kind="openai", base_url=llama_url + "/v1", model="smollm2")
    job = SynthJob(generator="self-instruct", n=2, inputs=[str(seeds)], backend=cfg, judge=False, redact=False,
                   min_quality=0.5, temperature=0.7, max_tokens=96)
    result = read_inputs([seeds])
    run = run_synth(job, build_generator(job, result.rows, result.kind), OpenAIBackend(cfg), out_dir=tmp_path / "si",
                    postprocess=curated_postprocess([], min_quality=0.5))
    kept, dropped, quarantine, manifest = _outputs(run)
    _check_accounting(kept, dropped, quarantine, manifest)
    assert kept.height == 2 and all(q >= 0.5 for q in kept["quality"])
    assert all(q < 0.5 for q in dropped.filter(pl.col("drop_reason") == "low_quality")["quality"])
    for row in kept.iter_rows(named=True):
        meta = json.loads(row["meta"])
        assert len(meta["seed_tasks"]) == 4 and set(meta["seed_tasks"]) <= tasks
        assert meta["template"] == "self_instruct" and meta["template_version"] == 2


@pytest.mark.slow
def test_grounded_qa_from_pdf_and_docx_records_page_and_section(tmp_path, llama_url):
    docs = [REPO / "sample_data" / "docs" / "repair_service_guide.pdf", REPO / "sample_data" / "docs" / "gear_rental_terms.docx"]
    run = _run(tmp_path, llama_url, "grounded-qa", docs, n=2, max_candidate_factor=2)
    kept, dropped, quarantine, manifest = _outputs(run)
    _check_accounting(kept, dropped, quarantine, manifest)
    metas = [json.loads(r["meta"]) for r in [*kept.iter_rows(named=True), *dropped.iter_rows(named=True)]]
    metas += [q["meta"] for q in quarantine]
    # chunks are taken round-robin over the documents: candidate 0 asks about the PDF, candidate 1 the DOCX
    from_pdf = [m for m in metas if m["doc_source"].endswith(".pdf:1")]
    from_docx = [m for m in metas if m["doc_source"].endswith(".docx:1")]
    assert from_pdf and all(m["doc_page"] == 1 for m in from_pdf)
    assert from_docx and all(m["doc_section"] and "doc_page" not in m for m in from_docx)
    assert min(from_docx, key=lambda m: m["chunk_id"])["doc_section"] == "Gear Rental Terms"


@pytest.mark.slow
def test_judge_command_redacts_before_sending_writes_rubric_columns_and_resumes(tmp_path, llama_url):
    from typer.testing import CliRunner

    from studio_app.cli import app

    data = tmp_path / "answers.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"My email is {PLANTED['email']}. How long do refunds take?"},
                          {"role": "assistant", "content": "Refunds reach your card within 5 business days."}]},
            {"instruction": "Name a primary colour.", "input": "", "output": "Blue is a primary colour."},
            {"instruction": "Say something.", "input": "", "output": "   "}]
    data.write_text("\n".join(json.dumps(r) for r in rows[:1]) + "\n", encoding="utf-8")
    alpaca = tmp_path / "more.json"
    alpaca.write_text(json.dumps(rows[1:]), encoding="utf-8")
    out = tmp_path / "judged"
    with FaultProxy(llama_url) as proxy:
        args = ["-q", "judge", str(data), "--base-url", proxy.url + "/v1", "--model", "smollm2", "--out", str(out)]
        first = CliRunner().invoke(app, args)
        assert first.exit_code == 0, first.output
        bodies = [s.body for s in proxy.seen]
        again = CliRunner().invoke(app, [*args[:2], str(alpaca), *args[3:], "--resume"])
    assert bodies and all(PLANTED["email"] not in b for b in bodies) and any("EMAIL" in b for b in bodies)
    assert isinstance(again.exception, StudioError) and "different settings (inputs)" in str(again.exception)
    with FaultProxy(llama_url) as proxy:
        resumed = CliRunner().invoke(app, [*args, "--resume"])
        assert resumed.exit_code == 0, resumed.output
        assert proxy.seen == []  # every answer came from the request log
    judged = pl.read_parquet(out / "judged.parquet")
    assert judged.columns[:5] == ["id", "messages", "origin", "source", "meta"]
    assert {"q_judge", "judge_accuracy", "judge_relevance", "judge_clarity", "judge_usefulness"} <= set(judged.columns)
    (row,) = judged.iter_rows(named=True)
    assert PLANTED["email"] in row["messages"][0]["content"]  # the output keeps the original text
    assert 0 <= row["q_judge"] <= 1 and 1 <= row["judge_accuracy"] <= 5
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["privacy"]["pii_redacted_before_sending"] and manifest["requests"]["answered_from_log"] == 1


@pytest.mark.slow
def test_judge_leaves_rows_without_an_answer_unjudged_with_a_reason(tmp_path, llama_url):
    from synth.judge_run import JudgeJob, judge_dataset

    rows = read_inputs([_alpaca(tmp_path, [("Name a primary colour.", "Blue."), ("Say something.", "  ")])]).rows
    cfg = BackendConfig(kind="openai", base_url=llama_url + "/v1", model="smollm2")
    run = judge_dataset(JudgeJob(backend=cfg, redact=False), rows, OpenAIBackend(cfg), out_dir=tmp_path / "j")
    judged = pl.read_parquet(run.dir / "judged.parquet")
    assert judged.height == 2 and judged["q_judge"][0] is not None and judged["q_judge"][1] is None
    unjudged = [json.loads(line) for line in (run.dir / "unjudged.jsonl").read_text().splitlines()]
    assert [u["reason"] for u in unjudged] == ["no assistant answer to judge"]
    assert run.manifest()["judge"] == {"template": "judge.v1", "judged": 1, "unjudged": 1}


def _alpaca(tmp_path: Path, pairs: list[tuple[str, str]]) -> Path:
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([{"instruction": q, "input": "", "output": a} for q, a in pairs]), encoding="utf-8")
    return path


def test_synth_aimed_at_the_audits_largest_skew_names_the_under_represented_group_and_lineage_records_it(
        tmp_path, llama_url, workspace):
    """A curate run whose audit flags one source for talking about women only; `studio synth paraphrase
    --target-skew RUN` paraphrases that source's rows about men, and the manifest, `studio runs` and
    `studio lineage` name the finding."""
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from curate import bias_audit
    from curate.pipeline import PipelineConfig, run_pipeline
    from review_app.store import ReviewStore
    from studio_app.cli import app

    data = tmp_path / "data"
    data.mkdir()
    women = ["My wife ordered the stove, but she is hopeless with the settings. Can you help her?",
             "My mother bought a tent and she is confused by the poles. What should she do?",
             "My daughter got the jacket as a gift and she wants another size. Can she exchange it?",
             "My sister paid twice for her order. Can she get one payment back?",
             "My girlfriend lost her receipt. Can she still return the boots?"]
    men = [f"My brother asked about order {i}: when will it arrive?" for i in range(6)]
    neutral = [f"Where is my parcel number {i}? It is late." for i in range(6)]
    for name, texts in (("tickets.jsonl", women), ("chat.jsonl", men), ("faq.jsonl", neutral)):
        with open(data / name, "w", encoding="utf-8") as fh:
            for t in texts:
                fh.write(json.dumps({"messages": [{"role": "user", "content": t},
                                                  {"role": "assistant", "content": "Happy to help with that."}]}) + "\n")
    curate = run_pipeline(PipelineConfig(inputs=[str(data / n) for n in ("tickets.jsonl", "chat.jsonl", "faq.jsonl")],
                                         steps=["normalize"]), out_dir=workspace.runs_dir / "curate", workspace=workspace)
    largest = json.loads(curate.manifest_path.read_text())["audit"]["skews"][0]
    assert (largest["group"], largest["over"], largest["under"]) == ("tickets.jsonl", "female", "male")

    out = tmp_path / "aimed"
    cli = CliRunner()
    res = cli.invoke(app, ["-q", "-w", str(workspace.root), "synth", "paraphrase", "--target-skew", str(curate.dir),
                           "--n", "2", "--out", str(out), "--backend", "openai", "--base-url", llama_url + "/v1",
                           "--model", "smollm2", "--no-judge", "--no-curate", "--no-redact", "--temperature", "0",
                           "--max-tokens", "60"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    kept, dropped, quarantine, manifest = _outputs(SimpleNamespace(dir=out))
    _check_accounting(kept, dropped, quarantine, manifest)
    assert kept.height == 2

    def mentions(texts: list[str], side: str) -> float:
        """Mentions of one side's words per row, counted as the audit counts them."""
        words = set(bias_audit.TERMS["gender"][side])
        return sum(w in words for t in texts for w in re.findall(r"[a-z]+(?:'[a-z]+)?", t.lower())) / len(texts)

    seeds = [r for r in read_inputs([curate.dir / "kept.parquet"]).rows if r["source"].startswith(str(data / "tickets"))]
    seed_text = ["\n".join(m["content"] for m in r["messages"]) for r in seeds]
    new_text = ["\n".join(m["content"] for m in msgs) for msgs in kept["messages"].to_list()]
    assert mentions(new_text, "male") > mentions(seed_text, "male")  # the skew moves the right way
    assert mentions(new_text, "male") > mentions(new_text, "female")
    assert all(t not in seed_text for t in new_text)

    finding = manifest["target_skew"]
    assert {k: finding[k] for k in ("audit_run", "group_by", "group", "axis", "over", "under")} == {
        "audit_run": curate.run_id, "group_by": "source file", "group": "tickets.jsonl", "axis": "gender",
        "over": "female", "under": "male"}
    assert finding["share"] == largest["share"] and finding["mentions"]["generated"]["rows"] == 2
    assert curate.run_id in manifest["upstream_manifests"]
    seed_ids = {r["id"] for r in seeds}
    for meta in map(json.loads, kept["meta"]):
        assert meta["skew_target"] == {"audit_run": curate.run_id, "axis": "gender", "group": "male",
                                       "in": "source file tickets.jsonl"}
        assert set(meta["seed_ids"]) <= seed_ids

    runs = cli.invoke(app, ["-w", str(workspace.root), "runs"], env={"COLUMNS": "250"})
    assert "synth aimed at male (gender)" in runs.output
    with ReviewStore(workspace.review_db_url, bcrypt_rounds=4) as store:
        store.load_dataset(out / "kept.parquet")
    lineage = cli.invoke(app, ["-w", str(workspace.root), "lineage", kept["id"][0]], env={"COLUMNS": "250"})
    assert lineage.exit_code == 0, lineage.output
    assert (f"aimed at male (gender), under-represented in source file tickets.jsonl; audit of run {curate.run_id}"
            in lineage.output)
    assert f"finding: {largest['flag']}" in lineage.output
