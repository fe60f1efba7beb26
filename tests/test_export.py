"""`studio export` from a real SQLite review store: every format loads with `datasets` and passes TRL's own
dataset preparation, DPO pairs come from edits and rejections, splits keep clusters together, the same seed
gives the same bytes, the card's numbers are the store's, and bad or empty input stops with one sentence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from review_app.export import ExportConfig, run_export
from review_app.store import ReviewStore
from studio.atomic import sha256_file
from studio.errors import StudioError
from studio.runs import Run
from studio.schema import example_id, examples_frame, make_example
from studio.splits import parse_split_spec
from studio.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
EDITED_ANSWER = "Open Settings, choose Security, then Reset password; the link arrives by email within 5 minutes."


def _chat(prompt: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    """A workspace whose review DB holds a curated real set and a synth run's output, reviewed by two people
    and a lead: accepts, rejects, one edit, one disagreement, a near-duplicate cluster, two answers to one prompt."""
    from curate.pipeline import PipelineConfig, run_pipeline

    root = tmp_path_factory.mktemp("reviewed")
    ws = Workspace.init(root / "ws", name="support-demo")
    raw = root / "tickets.jsonl"
    lines = [{"messages": _chat(f"Ticket {i}: my order {100 + i} has not arrived, what now?",
                                f"Sorry about order {100 + i}; it ships within {i % 5 + 1} days."),
              "category": ["shipping", "billing"][i % 2]} for i in range(24)]
    lines.append({"messages": _chat("How do I reset my password?", "Click 'forgot password'."), "category": "account"})
    lines.append({"messages": _chat("how do I  reset my password?", "We cannot help with that."), "category": "account"})
    raw.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    curate = run_pipeline(PipelineConfig(inputs=[str(raw)], steps=["normalize", "exact_dedupe"], report=False),
                          out_dir=ws.runs_dir / "curate-test", workspace=ws)
    import polars as pl

    kept = pl.read_parquet(curate.dir / "kept.parquet")
    # near_dedupe marks clusters on rows it keeps; plant one cluster of two different tickets
    kept = kept.with_columns(pl.when(pl.col("source").str.ends_with(":1") | pl.col("source").str.ends_with(":2"))
                             .then(pl.lit("near-0")).otherwise(None).alias("dup_cluster"))
    kept.write_parquet(curate.dir / "kept.parquet")
    manifest = json.loads(curate.manifest_path.read_text())  # the planted file stands as the run's output
    for out in manifest["outputs"]:
        if out["path"].endswith("kept.parquet"):
            out["sha256"] = sha256_file(curate.dir / "kept.parquet")
    curate.manifest_path.write_text(json.dumps(manifest))

    with Run("synth", out_dir=ws.runs_dir / "synth-test", workspace=ws,
             config={"generator": "paraphrase", "model": "SmolLM2-135M-Instruct", "template": "paraphrase"}) as synth:
        rows = [make_example(_chat(f"Could you tell me where parcel {i} is?", f"Parcel {i} is in transit."),
                             source=synth.run_id, origin="synthetic",
                             meta={"generator": "paraphrase", "model": "SmolLM2-135M-Instruct", "template": "paraphrase",
                                   "template_version": 1, "seed_ids": []}) for i in range(4)]
        examples_frame(rows).write_parquet(synth.dir / "kept.parquet")
        synth.add_output(synth.dir / "kept.parquet", rows=4)
        synth.counts.input = synth.counts.kept = 4

    store = ReviewStore(ws.review_db_url, bcrypt_rounds=4)
    store.load_dataset(curate.dir / "kept.parquet", overlap=1)
    store.load_dataset(synth.dir / "kept.parquet", overlap=1)
    for name, role in (("ann", "reviewer"), ("bob", "reviewer"), ("lea", "lead")):
        store.add_reviewer(name, "password1", role=role)
    by_line = {int(r["source"].rsplit(":", 1)[-1]): r["id"] for r in kept.to_dicts()}
    items = {f"s{i}": r["id"] for i, r in enumerate(rows)}
    for line, item_id in by_line.items():
        if line == 26:
            store.record_decision(item_id, "ann", "reject", reasons=["wrong"])
        elif line == 3:
            original = store.get_item(item_id).messages
            store.record_decision(item_id, "ann", "accept", rating=5,
                                  edited_messages=[original[0], {"role": "assistant", "content": EDITED_ANSWER}])
        elif line == 4:
            store.record_decision(item_id, "ann", "reject", reasons=["rude"])
        else:
            store.record_decision(item_id, "ann", "accept", rating=4)
    for line in range(5, 15):  # bob overlaps on ten items, disagreeing on two
        store.record_decision(by_line[line], "bob", "reject" if line in (6, 7) else "accept", rating=3)
    store.resolve(by_line[6], "lea", "accept", comment="fine after all")
    for key in ("s0", "s1", "s2"):
        store.record_decision(items[key], "bob", "accept")
    store.close()
    return {"ws": ws, "url": ws.review_db_url, "by_line": by_line, "synth_ids": [items[f"s{i}"] for i in range(4)],
            "synth_run": synth.run_id, "curate_run": curate.run_id}


def export(reviewed, out: Path, **options) -> Run:
    splits = options.pop("splits", "train=0.8,val=0.1,test=0.1")
    cfg = ExportConfig(out=out, splits=parse_split_spec(splits), **options)
    with ReviewStore(reviewed["url"]) as store:
        return run_export(store, cfg, workspace=reviewed["ws"], db_label=reviewed["url"])


def ids_lines(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "ids.jsonl").read_text().splitlines()]


def load_json_splits(out: Path, cache: Path):
    from datasets import load_dataset

    files = {p.stem: str(p) for p in sorted(out.glob("*.jsonl")) if p.name != "ids.jsonl"}
    return load_dataset("json", data_files=files, cache_dir=str(cache))


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory):
    """A real tokenizer with a chat template (SmolLM2's, from the bundled GGUF or its cached checkpoint) and a
    1-layer Llama with random weights saved beside it: enough for TRL to prepare and step on the data."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from studio.models import cache_dir, smollm2_gguf_path

    torch.set_num_threads(1)
    cached = cache_dir() / "smollm2-135m-instruct-hf"
    if (cached / "tokenizer.json").exists():
        tok = AutoTokenizer.from_pretrained(str(cached), local_files_only=True)
    else:
        gguf = smollm2_gguf_path()
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    path = tmp_path_factory.mktemp("tiny-chat-model")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.parametrize("fmt", ["openai", "sharegpt", "prompt-completion"])
def test_sft_formats_load_with_datasets_and_pass_trl_sft_preparation(reviewed, tmp_path, tiny_chat_model, fmt):
    from trl import SFTConfig, SFTTrainer

    out = tmp_path / fmt
    run = export(reviewed, out, format=fmt)
    data = load_json_splits(out, tmp_path / "cache")
    assert {s: len(d) for s, d in data.items()} == {s: n for s, n in run.extra["export"]["splits"].items() if n}
    expected = {"openai": ["messages"], "sharegpt": ["conversations"], "prompt-completion": ["prompt", "completion"]}
    assert data["train"].column_names == expected[fmt]
    args = SFTConfig(output_dir=str(tmp_path / "trl"), max_steps=1, report_to=[], use_cpu=True, save_strategy="no",
                     per_device_train_batch_size=2, max_length=256)
    trainer = SFTTrainer(model=str(tiny_chat_model), args=args, train_dataset=data["train"])
    prepared = trainer.train_dataset
    assert len(prepared) == len(data["train"]) and "input_ids" in prepared.column_names
    assert trainer.train().training_loss > 0


def test_alpaca_loads_with_instruction_input_output_text_columns(reviewed, tmp_path):
    out = tmp_path / "alpaca"
    export(reviewed, out, format="alpaca")
    train = load_json_splits(out, tmp_path / "cache")["train"]
    assert train.column_names == ["instruction", "input", "output"]
    assert all(r["instruction"].strip() and r["output"].strip() and r["input"] == "" for r in train)


def test_dpo_pairs_come_from_the_edit_and_from_a_rejected_answer_and_train_with_trl(reviewed, tmp_path, tiny_chat_model):
    from trl import DPOConfig, DPOTrainer

    out = tmp_path / "dpo"
    run = export(reviewed, out, format="dpo", splits="train=1.0")
    records = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    meta = {e["kind"]: e for e in ids_lines(out)}
    by_line = reviewed["by_line"]
    edit = records[[e["kind"] for e in ids_lines(out)].index("edit")]
    assert edit["prompt"] == [{"role": "user", "content": "Ticket 2: my order 102 has not arrived, what now?"}]
    assert edit["chosen"] == [{"role": "assistant", "content": EDITED_ANSWER}]
    assert edit["rejected"] == [{"role": "assistant", "content": "Sorry about order 102; it ships within 3 days."}]
    assert meta["edit"]["item_id"] == by_line[3] and meta["edit"]["chosen_id"] == example_id(edit["prompt"] + edit["chosen"])
    pair = records[[e["kind"] for e in ids_lines(out)].index("accepted_vs_rejected")]
    assert pair["chosen"][0]["content"] == "Click 'forgot password'."
    assert pair["rejected"][0]["content"] == "We cannot help with that."
    assert meta["accepted_vs_rejected"]["item_ids"] == sorted([by_line[25], by_line[26]])
    assert len(records) == 2 and run.counts.kept == 2
    # the ticket ann rejected (line 4) has no accepted answer to its prompt: no pair
    assert all("order 103" not in r["prompt"][0]["content"] for r in records)

    data = load_json_splits(out, tmp_path / "cache")["train"]
    assert data.column_names == ["prompt", "chosen", "rejected"]
    args = DPOConfig(output_dir=str(tmp_path / "trl"), max_steps=1, report_to=[], use_cpu=True, save_strategy="no",
                     per_device_train_batch_size=2)
    trainer = DPOTrainer(model=str(tiny_chat_model), args=args, train_dataset=data)
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(trainer.train_dataset.column_names)
    assert trainer.train().training_loss > 0


def test_same_seed_gives_byte_identical_files_and_another_seed_another_split(reviewed, tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    export(reviewed, a, seed=7)
    export(reviewed, b, seed=7)
    export(reviewed, c, seed=8)
    names = sorted(p.name for p in a.iterdir() if p.name not in ("manifest.json", "run.log"))
    assert names == ["README.md", "ids.jsonl", "test.jsonl", "train.jsonl", "val.jsonl"]
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    split_of = {e["id"]: e["split"] for e in ids_lines(a)}
    assert split_of != {e["id"]: e["split"] for e in ids_lines(c)}


def test_clusters_and_answers_to_one_prompt_share_a_split(reviewed, tmp_path):
    by_line = reviewed["by_line"]
    for seed in range(6):
        out = tmp_path / f"s{seed}"
        export(reviewed, out, seed=seed, policy="any")
        split = {e["item_id"]: e["split"] for e in ids_lines(out)}
        assert split[by_line[1]] == split[by_line[2]]  # planted near-duplicate cluster (dup_cluster near-0)
        assert set(split.values()) == {"train", "val", "test"}


def test_card_numbers_equal_the_store_and_manifest_hashes_every_file(reviewed, tmp_path):
    out = tmp_path / "card"
    run = export(reviewed, out, format="openai")
    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["license"] == "other" and front["size_categories"] == ["n<1K"]
    assert front["configs"][0]["data_files"] == [{"split": s, "path": f"{s}.jsonl"} for s in ("train", "val", "test")]
    with ReviewStore(reviewed["url"]) as store:
        approved = store.approved_items("unanimous")
        agreement = store.agreement()
        total = store.progress()["items"]
    originals = Counter("synthetic" if a["item_id"] in reviewed["synth_ids"] else "real" for a in approved)
    edits = sum(a["edited"] for a in approved)
    assert f"| real | {originals['real']} | {edits} | 2 |" in card  # lines 4 and 26 rejected
    assert f"| synthetic | {originals['synthetic']} | 0 | 0 |" in card
    assert f"{len(approved)} examples approved in human review" in card
    assert f"Items in the review DB: {total}; without a final accept or reject: {total - len(approved) - 2}." in card
    assert f"- items reviewed by two or more people: {agreement['items_with_overlap']}" in card
    assert f"- Fleiss' kappa (verdicts): {agreement['fleiss']['fleiss_kappa']}" in card
    pair = agreement["pairs"][0]
    assert pair["cohen_kappa"] is not None
    assert f"| {pair['a']} | {pair['b']} | {pair['items']} | {pair['agreement']} | {pair['cohen_kappa']} |" in card
    assert "| exact_dedupe | 26 | 26 | 0 |" in card and reviewed["synth_run"] in card
    # every row in the card's split table is the number of lines in that file
    for split, n in run.extra["export"]["splits"].items():
        assert f"| {split} | {n} | {split}.jsonl |" in card
        assert len((out / f"{split}.jsonl").read_text().splitlines()) == n
    manifest = json.loads((out / "manifest.json").read_text())
    hashed = {Path(o["path"]).name: o["sha256"] for o in manifest["outputs"]}
    assert set(hashed) == {"train.jsonl", "val.jsonl", "test.jsonl", "ids.jsonl", "README.md"}
    assert all(sha256_file(out / name) == sha for name, sha in hashed.items())
    assert {reviewed["curate_run"], reviewed["synth_run"]} <= set(manifest["upstream_manifests"])
    assert manifest["counts"]["input"] == len(approved) == manifest["counts"]["kept"]


def test_filters_drop_synthetic_and_disputed_items_and_count_them(reviewed, tmp_path):
    base = export(reviewed, tmp_path / "all", policy="any")
    filtered = export(reviewed, tmp_path / "f", policy="any", include_synthetic=False, min_agreement=0.75)
    ids = {e["item_id"] for e in ids_lines(tmp_path / "f")}
    assert not ids & set(reviewed["synth_ids"])
    assert reviewed["by_line"][7] not in ids  # ann accepted, bob rejected: agreement 0.5
    assert filtered.counts.dropped == {"below_min_agreement": 2, "synthetic_excluded": 3}
    assert filtered.counts.kept == base.counts.kept - 5


def test_hf_dataset_folder_holds_the_same_records(reviewed, tmp_path):
    from datasets import load_from_disk

    out = tmp_path / "hf"
    export(reviewed, out, hf_dataset=True)
    saved = load_from_disk(str(out / "hf_dataset"))
    for split in saved:
        lines = [json.loads(x) for x in (out / f"{split}.jsonl").read_text().splitlines()]
        assert saved[split].to_list() == lines
    assert any(Path(o["path"]).parent.name == "hf_dataset" for o in json.loads((out / "manifest.json").read_text())["outputs"])


def test_an_invalid_line_stops_the_export_naming_the_example(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    good = make_example(_chat("What is the refund window?", "30 days."), source="x.jsonl:1")
    blank = make_example(_chat("What is the returns address?", "   "), source="x.jsonl:2")
    with ReviewStore(ws.review_db_url, bcrypt_rounds=4) as store:
        store.load_dataset([good, blank])
        store.auto_decide('origin == "real"', "all")
        with pytest.raises(StudioError, match=rf"example {blank['id']} .*turn 1 \(assistant\) is empty"):
            run_export(store, ExportConfig(out=tmp_path / "out"), workspace=ws)
    assert not (tmp_path / "out").exists()


def test_token_length_check_names_the_overlong_example(reviewed, tmp_path, tiny_chat_model):
    with pytest.raises(StudioError, match=r"example \w+ \(review item \w+\) is \d+ tokens long .* over --max-tokens 40"):
        export(reviewed, tmp_path / "long", tokenizer=tiny_chat_model, max_tokens=40)
    run = export(reviewed, tmp_path / "ok", tokenizer=tiny_chat_model, max_tokens=200)
    stats = run.extra["export"]["tokens"]
    assert 40 < stats["longest"] <= 200 and "Token lengths checked" in (tmp_path / "ok" / "README.md").read_text()


def studio(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studio_app.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}, timeout=300)


def test_export_of_an_empty_approval_set_is_a_clear_error_with_no_files(tmp_path):
    assert studio("init", "ws", cwd=tmp_path).returncode == 0
    ws = tmp_path / "ws"
    (ws / "in.jsonl").write_text(json.dumps({"prompt": "Q1", "completion": "A1"}) + "\n")
    assert studio("-q", "review", "load", "in.jsonl", cwd=ws).returncode == 0
    res = studio("export", "--format", "openai", "--out", "exp", cwd=ws)
    assert res.returncode == 2
    assert res.stderr.startswith("error: nothing to export: the review DB") and "no approved items" in res.stderr
    assert "Traceback" not in res.stderr and not (ws / "exp").exists()


def test_export_refuses_a_used_folder_unless_overwrite_and_then_leaves_no_stale_split(reviewed, tmp_path):
    out = tmp_path / "again"
    export(reviewed, out)
    with pytest.raises(StudioError, match="--overwrite"):
        export(reviewed, out)
    export(reviewed, out, splits="train=0.9,val=0.1", overwrite=True)
    assert not (out / "test.jsonl").exists() and (out / "val.jsonl").exists()
