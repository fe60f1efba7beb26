"""Dataset versions from a real SQLite review store and real curate steps: batch 1 approved and exported as v1;
batch 2, curated on its own, holds near duplicates and paraphrases of v1's examples (sample_data's planted pairs
plus lightly edited copies of v1 test items) and is exported as v2. Held-out examples never move, their
duplicates join them, `studio diff` names exactly what changed, a training run on v1 still traces to v1's files,
a person's move is audited, and the same inputs and seed give the same bytes.

The training run here is a `studio.runs.Run("train")` manifest naming v1's file as its input, as the trainer
writes it, not a real training (which would cost minutes of CPU and add nothing to what lineage reads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from review_app.export import ExportConfig, run_export
from review_app.store import ReviewStore
from review_app.versions import get_version, list_versions
from studio.atomic import sha256_file
from studio.errors import StudioError
from studio.runs import Run
from studio.schema import examples_frame
from studio.splits import parse_split_spec, plan_splits
from studio.workspace import Workspace
from studio_app.leak_check import DEFAULT_STEPS, LeakCheck

REPO = Path(__file__).resolve().parents[1]
SPLITS = "train=0.6,val=0.2,test=0.2"
SEED = 3
STEPS = ["normalize", "exact_dedupe", "near_dedupe"]
EDITED_ANSWER = "This answer was rewritten by a reviewer for version two."


def studio(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studio_app.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}, timeout=300)


def export_version(ws: Workspace, **options) -> Run:
    cfg = ExportConfig(splits=parse_split_spec(options.pop("splits", SPLITS)), seed=SEED, **options)
    with ReviewStore(ws.review_db_url) as store:
        return run_export(store, cfg, workspace=ws, db_label=ws.review_db_url, find_links=LeakCheck.parse(DEFAULT_STEPS))


def curate_and_approve(ws: Workspace, rows: list[dict], name: str) -> list[str]:
    """Curate `rows` as their own batch (the real local pipeline), queue what it kept, accept it by rule;
    returns the ids of the items this batch added to the review store."""
    from curate.pipeline import PipelineConfig, run_pipeline

    src = ws.data_dir / f"{name}.parquet"
    examples_frame(rows).write_parquet(src)
    run = run_pipeline(PipelineConfig(inputs=[str(src)], steps=STEPS, report=False), out_dir=ws.runs_dir / f"curate-{name}",
                       workspace=ws)
    with ReviewStore(ws.review_db_url, bcrypt_rounds=4) as store:
        before = {d["item_id"] for d in store.decisions()}
        store.load_dataset(run.dir / "kept.parquet")
        store.auto_decide('origin == "real"', name)
        return sorted({d["item_id"] for d in store.decisions()} - before)


def entries(run_or_dir) -> list[dict]:
    folder = run_or_dir.dir if hasattr(run_or_dir, "dir") else run_or_dir
    return [json.loads(x) for x in (folder / "ids.jsonl").read_text().splitlines()]


def _place(source: str) -> tuple[str, int]:
    file, _, line = source.rpartition(":")
    return file.split("sample_data/", 1)[-1], int(line)


@pytest.fixture(scope="module")
def history(tmp_path_factory, sample_data, planted):
    from studio.readers import read_inputs
    from studio_app.demo import sample_inputs

    ws = Workspace.init(tmp_path_factory.mktemp("versions") / "ws", name="support-versions")
    rows = read_inputs(sample_inputs(sample_data)).rows
    pairs = [(p["a"], p["b"], "near") for p in planted["near_duplicates"]]
    pairs += [(p["a"], p["b"], "paraphrase") for p in planted["paraphrases"]]
    later = {(p["b"]["file"], p["b"]["line"]) for p in [*planted["near_duplicates"], *planted["paraphrases"]]}
    later |= {(p["dup"]["file"], p["dup"]["line"]) for p in planted["exact_duplicates"]}
    batch1 = [r for r in rows if _place(r["source"]) not in later]
    curate_and_approve(ws, batch1, "batch1")
    with ReviewStore(ws.review_db_url) as store:
        approved1 = store.approved_items()
    v1 = export_version(ws)
    v1_entries = entries(v1)
    # a training run on v1, recorded as the trainer records it (its input file and sha256)
    with Run("train", out_dir=ws.runs_dir / "train-on-v1", workspace=ws, config={"base_model": "default", "method": "lora"}) as train:
        train.add_input(v1.dir / "train.jsonl", role="train")
        train.extra["metrics"] = {"val_loss_best": 1.25}
        train.counts.input = train.counts.kept = 1

    # batch 2: the planted second halves of near-duplicate and paraphrase pairs, near copies of v1 test items,
    # and new unrelated questions
    by_place = {_place(r["source"]): r for r in rows}
    batch2 = [by_place[(b["file"], b["line"])] for _, b, _ in pairs]
    v1_messages = get_version(ws, "v1").messages
    tests = sorted((e for e in v1_entries if e["split"] == "test"),
                   key=lambda e: -len(" ".join(m["content"] for m in v1_messages[e["id"]]).split()))[:3]
    copies = {}
    for e in tests:
        msgs = [dict(m) for m in v1_messages[e["id"]]]
        msgs[-1]["content"] += " Thanks again."
        copies[e["item_id"]] = _example(msgs, f"copy-of:{e['item_id']}")
    fresh = [_example([{"role": "user", "content": f"Does the Trailblazer {k} lantern take AA batteries?"},
                       {"role": "assistant", "content": f"The Trailblazer {k} runs on three AA batteries for 40 hours."}],
                      f"fresh:{k}") for k in range(5)]
    batch2_items = curate_and_approve(ws, batch2 + list(copies.values()) + fresh, "batch2")

    # reviewers edit one v1 train item and one v1 test item
    edited = {split: next(e["item_id"] for e in v1_entries if e["split"] == split and e["origin"] == "real")
              for split in ("train", "test")}
    with ReviewStore(ws.review_db_url, bcrypt_rounds=4) as store:
        store.add_reviewer("kim", "password1")
        for item_id in edited.values():
            msgs = store.get_item(item_id).messages
            store.record_decision(item_id, "kim", "accept", edited_messages=[*msgs[:-1], {"role": "assistant",
                                                                                         "content": EDITED_ANSWER}])
    v2 = export_version(ws)
    return {"ws": ws, "v1": v1, "v2": v2, "train": train, "pairs": pairs, "copies": copies, "batch2_items": batch2_items,
            "edited": edited, "batch1": batch1, "approved1": approved1}


def _example(messages: list[dict], source: str) -> dict:
    from studio.schema import make_example

    return make_example(messages, source=source)


def test_every_v1_val_and_test_item_keeps_its_split_in_v2(history):
    before = {e["item_id"]: e["split"] for e in entries(history["v1"])}
    after = {e["item_id"]: e["split"] for e in entries(history["v2"])}
    assert before.keys() <= after.keys()
    assert {i: after[i] for i in before} == before  # train items too: nothing an earlier version held moved
    assert history["v2"].extra["versioning"]["moved_from_earlier_split"] == 0
    assert sum(s != "train" for s in before.values()) >= 40


def test_duplicates_and_paraphrases_of_held_out_v1_examples_join_them_not_train(history):
    """Batch 2 was curated on its own, so its curate columns link none of it to v1: only the export's leak check
    (curate's near_dedupe and semantic_dedupe over everything) can put these rows beside their twins."""
    v1 = {_place(e["source"]): e["split"] for e in entries(history["v1"]) if ":" in e["source"] and "sample_data" in e["source"]}
    v2 = {e["source"]: e["split"] for e in entries(history["v2"])}
    v2_place = {_place(s): split for s, split in v2.items() if "sample_data" in s}
    checked = {"near": 0, "paraphrase": 0}
    for a, b, kind in history["pairs"]:
        a_split = v1.get((a["file"], a["line"]))
        if a_split in ("val", "test") and (b["file"], b["line"]) in v2_place:
            assert v2_place[(b["file"], b["line"])] == a_split, (kind, a, b)
            checked[kind] += 1
    assert checked["near"] >= 3 and checked["paraphrase"] >= 2, checked
    for item_id in history["copies"]:
        assert v2[f"copy-of:{item_id}"] == "test"
    placement = history["v2"].extra["versioning"]["placement"]
    joined = sum(n for k, n in placement.items() if "joined a group of earlier versions" in k and k.startswith(("new val", "new test")))
    assert joined >= checked["near"] + checked["paraphrase"] + len(history["copies"])


def test_placement_counts_add_up_and_the_card_states_the_fractions(history):
    v2 = history["v2"]
    info = v2.extra["versioning"]
    assert sum(info["placement"].values()) == v2.counts.kept == sum(v2.extra["export"]["splits"].values())
    assert info["based_on"] == ["v1"] and info["version"] == "v2"
    assert info["leak_check"]["steps"] == ["near_dedupe", "semantic_dedupe"]
    assert info["leak_check"]["links"]["near_duplicate"] > 0 and info["leak_check"]["links"]["paraphrase"] > 0
    card = (v2.dir / "README.md").read_text()
    assert "## Version v2" in card
    for split, f in info["fractions"].items():
        assert f"| {split} | {f['target']} | {f['actual']} | {f['off']:+.4f} |" in card
        assert f["actual"] == round(v2.extra["export"]["splits"][split] / v2.counts.kept, 4)


def test_a_from_scratch_split_would_have_moved_batch_1_examples(history):
    """What sticky splits prevent: split from scratch (the export before versions), batch 1 alone and batch 1 + 2
    put some batch-1 examples in different splits."""
    with ReviewStore(history["ws"].review_db_url) as store:
        rows = store.approved_items()

    def from_scratch(rows: list[dict]) -> dict[str, str]:
        return dict(zip([r["item_id"] for r in rows], plan_splits(rows, parse_split_spec(SPLITS), SEED).splits, strict=True))

    before, after = from_scratch(history["approved1"]), from_scratch(rows)
    assert sum(after[i] != s for i, s in before.items()) > 0


def test_diff_v1_v2_reports_exactly_the_added_and_edited_examples(history):
    res = studio("diff", "v1", "v2", "--json", cwd=history["ws"].root)
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert sorted(x["item_id"] for x in d["added"]) == history["batch2_items"]
    assert sorted(x["item_id"] for x in d["edited"]) == sorted(history["edited"].values())
    assert d["removed"] == [] and d["resplit"] == []
    assert all(f"+assistant: {EDITED_ANSWER}" in x["diff"] for x in d["edited"])
    v1n, v2n = d["counts"]["v1"], d["counts"]["v2"]
    assert sum(v2n["split"].values()) - sum(v1n["split"].values()) == len(history["batch2_items"])
    assert v2n["origin"]["edited"] == 2 and "edited" not in v1n["origin"]
    assert v2n["source"]["fresh"] == 5 and "fresh" not in v1n["source"]  # counted by file, not by line
    text = studio("diff", "v1", "v2", cwd=history["ws"].root).stdout
    assert text.startswith(f"v1 → v2: {len(history['batch2_items'])} added, 0 removed, 2 edited, 0 re-split")


def test_a_training_run_on_v1_still_traces_to_v1_after_v2_exists(history):
    ws, v1, train = history["ws"], history["v1"], history["train"]
    manifest = json.loads(train.manifest_path.read_text())
    recorded = manifest["inputs"][0]["sha256"]
    assert recorded == sha256_file(v1.dir / "train.jsonl")  # v1's file is unchanged after v2
    assert (v1.dir / "train.jsonl").stat().st_mode & 0o222 == 0  # sealed read-only
    first = entries(v1)[0]
    res = studio("lineage", f"exports/v1/{first['file']}:{first['line']}", "--json", cwd=ws.root)
    assert res.returncode == 0, res.stderr
    chain = json.loads(res.stdout)
    assert chain["item_id"] == first["item_id"]
    assert {(x["version"], x["file"], x["line"]) for x in chain["exports"]} >= {("v1", first["file"], first["line"])}
    assert any(x["version"] == "v2" for x in chain["exports"])
    assert [(t["run_id"], t["versions"]) for t in chain["training"]] == [(train.run_id, ["v1"])]
    assert chain["training"][0]["trained_on_example"] is True
    text = studio("lineage", f"exports/v1/{first['file']}:{first['line']}", cwd=ws.root).stdout
    assert f"run {train.run_id} (ok) on {v1.run_id} (version v1)" in text and "its inputs held this example" in text
    # a test line of v1 reaches the same run, which used that version but not that example
    held_out = next(e for e in entries(v1) if e["split"] == "test")
    chain = json.loads(studio("lineage", str(v1.dir / f"test.jsonl:{held_out['line']}"), "--json", cwd=ws.root).stdout)
    assert chain["item_id"] == held_out["item_id"]
    assert [(t["run_id"], t["trained_on_example"]) for t in chain["training"]] == [(train.run_id, False)]
    runs = studio("runs", "--kind", "train", cwd=ws.root).stdout
    assert f"train.jsonl {recorded[:12]} (v1)" in runs
    res = studio("lineage", "exports/v1/test.jsonl:100000", cwd=ws.root)
    assert res.returncode == 2 and "has no line 100000" in res.stderr


def test_same_inputs_and_seed_give_byte_identical_versions(history):
    ws = history["ws"]
    a, b = export_version(ws), export_version(ws)
    names = sorted(p.name for p in a.dir.iterdir() if p.suffix == ".jsonl")
    assert names == ["ids.jsonl", "test.jsonl", "train.jsonl", "val.jsonl"]
    for name in names:
        assert (a.dir / name).read_bytes() == (b.dir / name).read_bytes(), name
    assert all(k.startswith("kept ") for k in b.extra["versioning"]["placement"])

    def card(run: Run) -> list[str]:  # all but the lines naming this version and the ones before it
        lines = (run.dir / "README.md").read_text().splitlines()
        return [x for x in lines if not x.startswith(("## Version", "Earlier versions this export"))]

    assert card(a) == card(b)


def test_the_same_batch_and_seed_in_a_new_workspace_give_a_byte_identical_v1(history, tmp_path):
    import re

    ws = Workspace.init(tmp_path / "ws", name="support-versions")
    curate_and_approve(ws, history["batch1"], "batch1")
    again, first = export_version(ws), history["v1"]
    assert again.extra["versioning"]["version"] == "v1"
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "ids.jsonl"):
        assert (again.dir / name).read_bytes() == (first.dir / name).read_bytes(), name
    run_id = re.compile(r"[a-z_]+-\d{8}T\d{6}Z-[0-9a-f]{6}")  # the card names the upstream curate run
    assert run_id.sub("RUN", (again.dir / "README.md").read_text()) == run_id.sub("RUN", (first.dir / "README.md").read_text())


def test_a_person_moves_a_test_item_to_train_on_purpose_and_the_audit_log_says_why(history):
    ws = history["ws"]
    latest = list_versions(ws)[-1]
    target = next(e for e in entries(latest.dir) if e["split"] == "test" and e["item_id"] in history["copies"])
    res = studio("versions", "move", target["id"], "--to", "train", "--reason", "template text", "--by", "lea", cwd=ws.root)
    assert res.returncode == 0, res.stderr
    with ReviewStore(ws.review_db_url) as store:
        log = store.audit_log(action="move_split")
    assert [(x["actor"], x["item_id"], x["details"]["to"], x["details"]["was"], x["details"]["reason"]) for x in log] == \
        [("lea", target["item_id"], "train", "test", "template text")]
    moved = export_version(ws)
    after = {e["item_id"]: e["split"] for e in entries(moved)}
    copy_source = f"copy-of:{target['item_id']}"
    assert after[target["item_id"]] == "train"
    assert {e["source"]: e["split"] for e in entries(moved)}[copy_source] == "train"  # its near copy goes with it
    placement = moved.extra["versioning"]["placement"]
    assert placement["moved test -> train (person)"] >= 2  # the item and its near copy, at least
    assert moved.extra["versioning"]["moved_from_earlier_split"] == placement["moved test -> train (person)"]
    # the earlier versions do not change
    assert {e["item_id"]: e["split"] for e in entries(latest.dir)}[target["item_id"]] == "test"


def test_versions_are_listed_and_bad_names_or_moves_are_one_sentence(history):
    ws = history["ws"]
    res = studio("versions", cwd=ws.root)
    assert res.returncode == 0 and "v1" in res.stdout and "v2" in res.stdout
    res = studio("diff", "v1", "v9", cwd=ws.root)
    assert res.returncode == 2 and res.stderr.startswith("error: no version 'v9' in this workspace's exports/")
    assert "Traceback" not in res.stderr
    res = studio("versions", "move", entries(history["v1"])[0]["id"], "--to", "holdout", "--reason", "x", cwd=ws.root)
    assert res.returncode == 2 and "is not a split of" in res.stderr
    res = studio("versions", "move", "0123456789abcdef0123", "--to", "train", "--reason", "x", cwd=ws.root)
    assert res.returncode == 2 and "no review item or exported example with id '0123456789abcdef0123'" in res.stderr
    res = studio("versions", "move", entries(history["v1"])[0]["id"], "--to", "train", "--reason", " ", cwd=ws.root)
    assert res.returncode == 2 and "say why with --reason" in res.stderr
    with pytest.raises(StudioError, match="no version 'v0'"):
        get_version(ws, "v0")


def test_parquet_copy_holds_the_same_records_and_out_is_a_copy_not_a_version(history, tmp_path):
    import polars as pl

    ws = history["ws"]
    n = len(list_versions(ws))
    run = export_version(ws, out=tmp_path / "copy", parquet=True)
    assert len(list_versions(ws)) == n and run.extra["versioning"]["version"] is None
    for split in ("train", "val", "test"):
        lines = [json.loads(x) for x in (tmp_path / "copy" / f"{split}.jsonl").read_text().splitlines()]
        assert pl.read_parquet(tmp_path / "copy" / f"{split}.parquet").to_dicts() == lines


def test_the_cli_makes_a_version_without_out_and_refuses_a_bad_leak_check(tmp_path):
    assert studio("init", "ws", cwd=tmp_path).returncode == 0
    ws = tmp_path / "ws"
    lines = [{"prompt": f"How long is the warranty on tent model {i}?", "completion": f"Model {i}: {i + 1} years."}
             for i in range(8)]
    (ws / "in.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert studio("-q", "review", "load", "in.jsonl", cwd=ws).returncode == 0
    assert studio("-q", "review", "auto", "--accept", "origin == 'real'", "--name", "all", cwd=ws).returncode == 0
    res = studio("export", "--leak-check", "minhash", cwd=ws)
    assert res.returncode == 2 and "--leak-check 'minhash' is not a dedupe step" in res.stderr
    assert not (ws / "exports").exists()
    args = ["export", "--split", "train=0.5,val=0.25,test=0.25", "--leak-check", "near_dedupe"]
    res = studio(*args, cwd=ws)
    assert res.returncode == 0, res.stderr
    assert "version v1" in res.stdout and (ws / "exports" / "v1" / "train.jsonl").is_file()
    res = studio(*args, "--parquet", cwd=ws)
    assert res.returncode == 0, res.stderr
    assert (ws / "exports" / "v2" / "test.parquet").is_file()
    listed = studio("versions", cwd=ws).stdout
    assert "v1" in listed and "v2" in listed
    assert studio("runs", "--kind", "export", cwd=ws).stdout.count("export v") == 2
    res = studio("export", "--db", str(ws / "review.db"), cwd=tmp_path)
    assert res.returncode == 2 and "without --out the export becomes the workspace's next version" in res.stderr
