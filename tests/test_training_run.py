"""`studio train` / `studio eval` end to end on CPU with the bundled SmolLM2: a few LoRA steps lower the
validation loss, the adapter reloads and changes generations, the merged model equals the adapter, resume
continues the same loss curve, and the run registry records model, method, data hashes and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from train_data_helpers import claims_conversation, write_chat_jsonl  # noqa: E402

from studio.atomic import sha256_file  # noqa: E402
from training.config import TrainConfig  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TINY = dict(max_steps=4, batch_size=2, grad_accum=1, max_length=128, learning_rate=2e-3, lora_r=8, lora_alpha=16,
            eval_steps=2, save_steps=2, warmup_ratio=0.0, early_stopping_patience=None)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """An export folder: train/val chat JSONL with a real upstream export manifest beside them."""
    from studio.runs import Run

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("export")
    too_long = [{"role": "user", "content": "Read the whole policy: " + "clause " * 200},
                {"role": "assistant", "content": "Read."}]
    write_chat_jsonl(folder / "train.jsonl", [claims_conversation(i) for i in range(24)] + [too_long])
    write_chat_jsonl(folder / "val.jsonl", [claims_conversation(i) for i in range(100, 106)])
    with Run("export", out_dir=folder) as run:
        run.add_output(folder / "train.jsonl")
        run.add_output(folder / "val.jsonl")
    return folder


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    from training.trainer import train

    out = tmp_path_factory.mktemp("runs") / "lora-run"
    cfg = TrainConfig(**TINY, merge=True)
    return train(cfg, data_dir / "train.jsonl", data_dir / "val.jsonl", out)


def test_a_few_lora_steps_lower_the_validation_loss(trained):
    m = trained.metrics
    assert m["method"] == "lora" and m["steps"] == 4 and m["finished"]
    losses = [e["val_loss"] for e in m["evals"]]
    assert [e["step"] for e in m["evals"]] == [0, 2, 4]
    assert losses[-1] < losses[1] < losses[0]
    assert losses[-1] < 0.7 * losses[0]
    assert m["val_loss_best"] == min(losses) and m["best_step"] == 4
    assert m["tokens_per_second"] > 0 and m["tokens"] > 0


def test_over_long_training_conversation_is_counted_not_silently_cut(trained):
    train_stats = trained.metrics["data"]["train"]
    assert train_stats["records"] == 25 and train_stats["kept"] == 24
    assert train_stats["dropped"] == {"longer than max_length": 1}
    manifest = json.loads((trained.run_dir / "manifest.json").read_text())
    assert manifest["counts"] == {"input": 25, "kept": 24, "dropped": {"longer than max_length": 1}, "quarantined": 0}


def test_run_folder_records_model_method_data_hashes_upstream_export_and_metrics(trained, data_dir):
    run_dir = trained.run_dir
    manifest = json.loads((run_dir / "manifest.json").read_text())
    export_id = json.loads((data_dir / "manifest.json").read_text())["run_id"]
    assert manifest["kind"] == "train" and manifest["status"] == "ok"
    assert manifest["base_model"] == "default" and manifest["method"] == "lora"
    assert {i["role"]: i["sha256"] for i in manifest["inputs"]} == {
        "train": sha256_file(data_dir / "train.jsonl"), "validation": sha256_file(data_dir / "val.jsonl")}
    assert manifest["upstream_manifests"] == [export_id]
    assert manifest["metrics"]["val_loss_best"] == trained.metrics["val_loss_best"]
    assert manifest["config"]["lora_r"] == 8
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert [h["loss"] for h in on_disk["history"]] == [h["loss"] for h in trained.metrics["history"]]
    assert (run_dir / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_studio_runs_kind_train_shows_base_model_method_data_hash_and_metrics(trained, data_dir):
    from typer.testing import CliRunner

    from studio_app.cli import app

    result = CliRunner().invoke(app, ["runs", "--kind", "train", "--root", str(trained.run_dir.parent)],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    export_id = json.loads((data_dir / "manifest.json").read_text())["run_id"]
    assert "default" in result.output and "lora" in result.output
    assert sha256_file(data_dir / "train.jsonl")[:12] in result.output
    assert export_id in result.output
    assert str(trained.metrics["val_loss_best"]) in result.output


def _load_base():
    from transformers import AutoModelForCausalLM

    from studio.models import smollm2_hf_dir

    return AutoModelForCausalLM.from_pretrained(smollm2_hf_dir(), dtype=torch.float32).eval()


def test_adapter_loads_back_and_changes_generations(trained):
    from peft import PeftModel
    from transformers import AutoTokenizer

    from training.evaluate import generate

    tok = AutoTokenizer.from_pretrained(trained.adapter_dir)
    prompts = [claims_conversation(i)[:1] for i in (200, 203)]
    before = generate(_load_base(), tok, prompts, max_new_tokens=16, batch_size=2, device="cpu")
    tuned = PeftModel.from_pretrained(_load_base(), trained.adapter_dir).eval()
    after = generate(tuned, tok, prompts, max_new_tokens=16, batch_size=2, device="cpu")
    assert before != after
    assert all("status code" in text.lower() for text in after), after


def test_merged_model_outputs_equal_the_adapters(trained):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    assert trained.merged_dir is not None and (trained.merged_dir / "config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(trained.merged_dir, dtype=torch.float32).eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    tuned = PeftModel.from_pretrained(_load_base(), trained.adapter_dir).eval()
    ids = torch.tensor([[1, 4093, 198, 26843, 665, 2, 198, 1, 520, 9531, 198]])
    with torch.no_grad():
        a = tuned(input_ids=ids).logits
        b = merged(input_ids=ids).logits
        base = _load_base()(input_ids=ids).logits
    assert (a - base).abs().max() > 1e-2  # the adapter does change the outputs ...
    assert torch.allclose(a, b, atol=1e-4)  # ... and merging keeps exactly that change


def test_resume_from_a_checkpoint_continues_the_same_loss_curve(trained, data_dir, tmp_path):
    from training.trainer import train

    cfg = TrainConfig(**TINY)
    out = tmp_path / "interrupted"
    first = train(cfg, data_dir / "train.jsonl", data_dir / "val.jsonl", out, stop_after_steps=2)
    assert first.metrics["steps"] == 2 and not first.metrics["finished"]
    assert (out / "checkpoints" / "step-000002" / "optimizer.pt").exists()
    resumed = train(cfg, data_dir / "train.jsonl", data_dir / "val.jsonl", out, resume=True)
    straight = trained.metrics
    assert resumed.metrics["steps"] == 4 and resumed.metrics["finished"]
    assert [h["loss"] for h in resumed.metrics["history"]] == pytest.approx(
        [h["loss"] for h in straight["history"]], abs=2e-4)
    assert [h["lr"] for h in resumed.metrics["history"]] == [h["lr"] for h in straight["history"]]
    assert [e["val_loss"] for e in resumed.metrics["evals"]] == pytest.approx(
        [e["val_loss"] for e in straight["evals"]], abs=2e-4)
    assert json.loads((out / "manifest.json").read_text())["resumed_from"].endswith("step-000002")


def test_resume_refuses_a_checkpoint_made_with_other_data(trained, data_dir, tmp_path):
    import shutil

    from studio.errors import StudioError
    from training.trainer import train

    out = tmp_path / "copy"
    shutil.copytree(trained.run_dir / "checkpoints", out / "checkpoints")
    other = write_chat_jsonl(tmp_path / "other.jsonl", [claims_conversation(i) for i in range(50, 70)])
    with pytest.raises(StudioError, match="other training data"):
        train(TrainConfig(**TINY), other, data_dir / "val.jsonl", out, resume=True)


def test_eval_compares_base_and_adapter_in_a_self_contained_html_report(trained, data_dir, tmp_path):
    from training.evaluate import EvalSettings, run_eval

    result = run_eval(str(trained.adapter_dir), data_dir / "val.jsonl", tmp_path / "eval",
                      EvalSettings(max_examples=4, max_new_tokens=16, batch_size=4, max_length=128))
    before, after = result["scores"]["before (base)"], result["scores"]["after (adapter)"]
    assert after["perplexity"] < before["perplexity"]
    assert after["rouge_l"] > before["rouge_l"]
    assert before["assistant_tokens"] == after["assistant_tokens"] > 0
    html = (tmp_path / "eval" / "report.html").read_text()
    assert "before (base)" in html and "after (adapter)" in html and "status code" in html
    assert "<script src" not in html and "<link" not in html
    manifest = json.loads((tmp_path / "eval" / "manifest.json").read_text())
    assert manifest["kind"] == "eval" and manifest["metrics"]["after (adapter)"]["perplexity"] == after["perplexity"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA QLoRA path needs a CUDA GPU (CPU QLoRA is tested in test_training_qlora.py)")
def test_qlora_on_cuda_trains_and_merges_into_the_dequantized_base(data_dir, tmp_path):
    pytest.importorskip("bitsandbytes")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from studio.models import smollm2_hf_dir
    from training.trainer import bnb_config, train

    cfg = TrainConfig(**{**TINY, "method": "qlora", "merge": True})
    result = train(cfg, data_dir / "train.jsonl", data_dir / "val.jsonl", tmp_path / "q")
    assert result.metrics["method"] == "qlora"
    assert result.metrics["val_loss_best"] < result.metrics["val_loss_before"]
    ids = torch.tensor([[1, 4093, 198, 26843, 665, 2, 198]], device="cuda")

    base4 = AutoModelForCausalLM.from_pretrained(smollm2_hf_dir(), quantization_config=bnb_config(cfg),
                                                 dtype=torch.bfloat16, device_map={"": 0})
    tuned = PeftModel.from_pretrained(base4, result.adapter_dir).eval()
    merged = AutoModelForCausalLM.from_pretrained(result.merged_dir, dtype=torch.bfloat16).to("cuda").eval()
    with torch.no_grad():
        diff = (tuned(input_ids=ids).logits.float() - merged(input_ids=ids).logits.float()).abs().max()
    assert diff < 0.1  # bf16 rounding only; merging into 4-bit weights would drift far more
