"""report.html: written by a real pipeline run, opened in headless Chromium, with every section present and
its plots drawn offline (plotly.js inlined)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curate.pipeline import PipelineConfig, run_pipeline
from curate.report import write_report
from studio.runs import Run

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
SECTIONS = ["summary", "steps", "scores", "lengths", "duplicates", "pii", "representation"]


def write_input(path: Path) -> None:
    rows = [
        ("How long is the return window?", "Sixty days from delivery for unused gear.", "returns"),
        ("How long is the return window?", "Sixty days from delivery for unused gear.", "returns"),  # exact copy
        ("How many days is the return window?", "Sixty days from delivery for unused gear.", "returns"),
        ("What does express shipping cost?", "Express shipping is $19.95 and arrives in 1-2 business days.", "shipping"),
        ("Is the down jacket machine washable?", "Yes: gentle cycle, down detergent, tumble dry low with dryer balls.", "care"),
        ("Can I cancel my order?", "As an AI language model, I cannot help with that.", "orders"),
    ]
    with path.open("w", encoding="utf-8") as fh:
        for p, r, cat in rows:
            fh.write(json.dumps({"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                                 "category": cat}) + "\n")


@pytest.fixture(scope="module")
def report_run(tmp_path_factory) -> Run:
    import torch

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("report")
    write_input(tmp / "chat.jsonl")
    cfg = PipelineConfig(inputs=[str(tmp / "chat.jsonl")],
                         steps=["normalize", "exact_dedupe", {"score": {"model": False}}, {"semantic_dedupe": {"threshold": 0.9}}])
    return run_pipeline(cfg, out_dir=tmp / "run")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing; run scripts/install_system_deps.sh (as root) to install it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield b
        b.close()


def open_report(browser, path: Path):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Offline: any request leaving the file itself would fail the self-contained promise.
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_selector(".js-plotly-plot .main-svg")
    return page, errors, [u for u in requests if not u.startswith("file:") and not u.startswith("data:")]


def test_pipeline_writes_report_and_lists_it_as_output(report_run):
    path = report_run.dir / "report.html"
    assert path.exists()
    manifest = json.loads((report_run.dir / "manifest.json").read_text())
    assert any(o["path"].endswith("report.html") for o in manifest["outputs"])
    assert report_run.counts.dropped == {"exact_duplicate": 1, "semantic_duplicate": 1}


def test_report_opens_in_chromium_with_all_sections_and_plots(report_run, browser):
    page, errors, external = open_report(browser, report_run.dir / "report.html")
    assert errors == [] and external == []
    for sid in SECTIONS:
        assert page.locator(f"section#{sid} h2").count() == 1, sid
    assert page.locator("section#scores .js-plotly-plot").count() >= 1
    assert page.locator("section#representation .js-plotly-plot").count() == 3  # category, source file, language
    tiles = page.locator(".tile .n").all_inner_texts()
    assert tiles == ["6", "4", "2", "0"]
    steps_table = page.locator("section#steps table").inner_text()
    assert "exact_duplicate: 1" in steps_table and "semantic_duplicate: 1" in steps_table
    # The semantic duplicate group is shown side by side: the kept question and its dropped paraphrase.
    dup = page.locator("section#duplicates").inner_text()
    assert "How long is the return window?" in dup and "How many days is the return window?" in dup
    assert "kept representative" in dup and "similarity" in dup
    bars = page.locator("section#representation .xtick text").all_text_contents()
    assert {"returns", "shipping", "care", "orders", "chat.jsonl", "en"} <= set(bars)
    page.close()


def test_pii_section_shows_counts_by_entity_type(report_run, browser, tmp_path):
    import polars as pl

    kept = pl.read_parquet(report_run.dir / "kept.parquet").with_columns(
        pl.Series("pii_entities", [["EMAIL_ADDRESS"], [], [], []], dtype=pl.List(pl.String)))
    with Run("curate", out_dir=tmp_path / "pii-run") as run:
        run.counts.input = run.counts.kept = kept.height
        run.steps.append({"step": "redact_pii", "rows_in": 4, "kept": 4, "dropped": {}, "seconds": 0.1,
                          "pii_counts": {"EMAIL_ADDRESS": 3, "PHONE_NUMBER": 1}})
        path = write_report(run, kept, [])
    page, errors, _ = open_report(browser, path)
    pii = page.locator("section#pii").inner_text()
    assert errors == []
    assert "Rows with personal data found: 1" in pii
    assert "EMAIL_ADDRESS" in pii and "PHONE_NUMBER" in pii
    assert "No duplicates were dropped" in page.locator("section#duplicates").inner_text()
    page.close()
