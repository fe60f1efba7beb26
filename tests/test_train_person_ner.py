"""scripts/train_person_ner.py, the retraining path of the shipped NER weights: a short run writes weights that the
redactor loads and that differ from spaCy's own. Needs ../shared/data (the training messages come from it)."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from curate.pii import PiiRedactor

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("STUDIO_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.mark.skipif(not (SHARED / "pii" / "FakeNameGenerator.com_3000.csv").exists(),
                    reason="../shared/data is absent: the training messages are built from it")
def test_a_short_training_run_writes_weights_the_redactor_loads(tmp_path):
    out = tmp_path / "ner"
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "train_person_ner.py"), "--epochs", "1",
                          "--limit", "60", "--rehearsal", "60", "--out", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "training examples: {'name': 60, 'lookalike': 60, 'rehearsal': 60}" in run.stdout
    assert "W030" not in run.stderr          # spaCy's per-example alignment warnings stay quiet
    assert sorted(p.name for p in out.iterdir()) == ["cfg", "model", "moves"]   # no training vocabulary
    assert not filecmp.cmp(out / "model", REPO / "curate" / "pii" / "ner_model" / "model", shallow=False)
    text = "Please ask Maria Lopez to call back about claim 2024-55812."
    assert "<PERSON>" in PiiRedactor({"mode": "tag", "ner_weights": str(out)}).redact_texts([text])[0]


def test_without_the_shared_data_the_script_says_what_to_do(tmp_path):
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "train_person_ner.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO), "STUDIO_SHARED_DATA": str(tmp_path / "none")})
    assert run.returncode != 0
    assert "not found; the training data come from ../shared/data" in run.stderr
    assert "Traceback" not in run.stderr
