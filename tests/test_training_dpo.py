"""`studio train --objective dpo` on CPU with the bundled SmolLM2: a few DPO steps on a handful of preference pairs
raise the preference accuracy on those pairs, the adapter loads back with the same preferences, the run records
the pairs' export (run id and version), and a missing or malformed pairs file is one clear sentence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from train_data_helpers import claims_conversation  # noqa: E402

from training.config import TrainConfig  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TINY = dict(base_model="default", method="lora", max_steps=6, batch_size=2, grad_accum=1, max_length=128,
            learning_rate=2e-3, lora_r=8, lora_alpha=16, warmup_ratio=0.0, num_threads=1, cpu_bf16="off")


def pair(i: int) -> dict:
    prompt, answer = claims_conversation(i)
    return {"prompt": [prompt], "chosen": [answer],
            "rejected": [{"role": "assistant", "content": "Sorry, I cannot help with claims questions."}]}


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory) -> Path:
    """A `--format dpo` export folder: pairs JSONL with the export's manifest (a dataset version) beside it."""
    folder = tmp_path_factory.mktemp("export-dpo")
    (folder / "train.jsonl").write_text("".join(json.dumps(pair(i)) + "\n" for i in range(10)), encoding="utf-8")
    (folder / "manifest.json").write_text(json.dumps({"run_id": "export-20261206-000000-abcd", "kind": "export",
                                                      "versioning": {"version": "v3"}}), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def dpo_run(pairs_dir, tmp_path_factory):
    from training.dpo import train_dpo

    torch.set_num_threads(1)
    return train_dpo(TrainConfig(**TINY), pairs_dir / "train.jsonl", None, tmp_path_factory.mktemp("runs") / "dpo")


def test_dpo_raises_preference_accuracy_on_the_training_pairs(dpo_run):
    m = dpo_run.metrics
    assert m["objective"] == "dpo" and m["steps"] == 6
    assert m["pairs"] == {"train": 8, "held_out": 2, "dropped_longer_than_max_length": 0}
    before, after = m["before"]["train"], m["after"]["train"]
    # a fresh adapter adds exactly 0: the policy is the reference, every margin is 0
    assert before == {"pairs": 8, "preference_accuracy": 0.0, "mean_reward_margin": 0.0}
    assert after["preference_accuracy"] >= 0.75 and after["mean_reward_margin"] > 0.05
    assert m["history"][-1]["loss"] < m["history"][0]["loss"]
    assert m["after"]["held_out"]["pairs"] == 2


def test_dpo_run_records_the_pairs_export_version_and_its_figures(dpo_run, pairs_dir):
    manifest = json.loads((dpo_run.run_dir / "manifest.json").read_text())
    assert manifest["kind"] == "train" and manifest["status"] == "ok" and manifest["objective"] == "dpo"
    assert manifest["upstream_manifests"] == ["export-20261206-000000-abcd"]
    assert manifest["pairs_export"]["version"] == "v3"
    assert manifest["metrics"]["preference_accuracy_after"] == dpo_run.metrics["after"]["train"]["preference_accuracy"]
    assert manifest["counts"]["input"] == 10 and manifest["counts"]["kept"] == 10


def test_dpo_adapter_loads_back_with_the_same_preferences(dpo_run, pairs_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.models import smollm2_hf_dir
    from training.dpo import dpo_loss, hold_out, pair_logps, read_pairs, tokenize_pairs

    tok = AutoTokenizer.from_pretrained(dpo_run.adapter_dir)
    train, _ = hold_out(read_pairs(pairs_dir / "train.jsonl"))
    tokenized, _ = tokenize_pairs(tok, train, 128)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm2_hf_dir(), dtype=torch.float32),
                                      dpo_run.adapter_dir).eval()
    with torch.no_grad():
        policy = pair_logps(model, tokenized, tok.eos_token_id, False, "cpu")
        with model.disable_adapter():
            reference = pair_logps(model, tokenized, tok.eos_token_id, False, "cpu")
    margins = dpo_loss(policy, reference, 0.1)[1]
    assert float((margins > 0).float().mean()) == dpo_run.metrics["after"]["train"]["preference_accuracy"]
    assert float(margins.mean()) == pytest.approx(dpo_run.metrics["after"]["train"]["mean_reward_margin"], abs=1e-3)


@pytest.mark.parametrize(("content", "expected"), [
    (None, "does not exist"),
    ('{"messages": [{"role": "user", "content": "hi"}]}\n', "line 1: field `prompt` is missing"),
    ('{"prompt": [{"role": "user", "content": "hi"}], "chosen": [], "rejected": []}\n', "line 1: field `chosen`"),
    ("not json\n", "line 1: not valid JSON"),
    ("[1, 2]\n", "line 1: not a JSON object"),
])
def test_missing_or_malformed_pairs_file_is_one_clear_sentence(tmp_path, content, expected):
    path = tmp_path / "pairs.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "studio_app.cli", "train", "--objective", "dpo", "--train", str(path),
                          "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "400"})
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]
    assert expected in lines[0] and lines[0].endswith("pass the pairs written by `studio export --format dpo`.")
    assert not (tmp_path / "run").exists()
