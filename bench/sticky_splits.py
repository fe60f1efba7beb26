"""Sticky splits vs a from-scratch split: how many earlier examples change split when a second batch arrives.

Batch 1 is sample_data (the demo's data) without the second halves of its planted near-duplicate and
paraphrase pairs and without a `--later` share of its other rows (chosen by a hash of their source line); it is
curated, accepted by rule and exported as v1. Batch 2 holds those second halves and the later rows, curated on
its own, accepted and exported as v2 (sticky splits, leak check
near_dedupe + semantic_dedupe). Batch 1 alone and batch 1 + 2 are also split from scratch, as every export did
before versions: by the seeded rule alone, once with only the curate links (the export before versions) and
once with the leak check's links too. Counted per way, between its split of batch 1 and its split of batch
1 + 2: batch-1 examples whose split changed, of them val/test examples that went to train, and planted twins
of batch-1 val/test examples that sit in train. Figures go to bench/README.md (## sticky_splits).

    PYTHONPATH=. python bench/sticky_splits.py [--later 0.25] [--split train=0.9,val=0.05,test=0.05] [--seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import tempfile
import time
from pathlib import Path

from curate.pipeline import PipelineConfig, run_pipeline
from review_app.export import ExportConfig, run_export
from review_app.store import ReviewStore
from studio.readers import read_inputs
from studio.schema import examples_frame
from studio.splits import parse_split_spec, plan_splits
from studio.workspace import Workspace
from studio_app.demo import sample_inputs
from studio_app.leak_check import DEFAULT_STEPS, LeakCheck

REPO = Path(__file__).resolve().parents[1]
STEPS = ["normalize", "exact_dedupe", "near_dedupe"]


def place(source: str) -> tuple[str, int]:
    file, _, line = source.rpartition(":")
    return file.split("sample_data/", 1)[-1], int(line)


def curate_and_accept(ws: Workspace, rows: list[dict], name: str) -> None:
    src = ws.data_dir / f"{name}.parquet"
    examples_frame(rows).write_parquet(src)
    run = run_pipeline(PipelineConfig(inputs=[str(src)], steps=STEPS, report=False), out_dir=ws.runs_dir / name, workspace=ws)
    with ReviewStore(ws.review_db_url, bcrypt_rounds=4) as store:
        store.load_dataset(run.dir / "kept.parquet")
        store.auto_decide('origin == "real"', name)


def export(ws: Workspace, splits: dict[str, float], seed: int, leak_check: LeakCheck):
    with ReviewStore(ws.review_db_url) as store:
        return run_export(store, ExportConfig(splits=splits, seed=seed), workspace=ws, find_links=leak_check)


def split_by_item(run) -> dict[str, str]:
    return {e["item_id"]: e["split"] for e in map(json.loads, (run.dir / "ids.jsonl").read_text().splitlines())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--later", type=float, default=0.25, help="share of sample_data's other rows that arrive in batch 2")
    ap.add_argument("--split", default="train=0.9,val=0.05,test=0.05")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    splits = parse_split_spec(args.split)
    planted = json.loads((REPO / "sample_data" / "planted.json").read_text())
    pairs = [(p["a"], p["b"]) for p in planted["near_duplicates"] + planted["paraphrases"]]
    later = {(b["file"], b["line"]) for _, b in pairs} | {(p["dup"]["file"], p["dup"]["line"]) for p in planted["exact_duplicates"]}
    rows = read_inputs(sample_inputs(REPO / "sample_data")).rows
    by_place = {place(r["source"]): r for r in rows}
    leak_check = LeakCheck.parse(DEFAULT_STEPS)

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.init(Path(tmp) / "ws", name="sticky-bench")
        t0 = time.perf_counter()
        others = sorted((r for r in rows if place(r["source"]) not in later),
                        key=lambda r: hashlib.sha256(r["source"].split("sample_data/", 1)[-1].encode()).hexdigest())
        cut = round(len(others) * (1 - args.later))
        curate_and_accept(ws, others[:cut], "batch1")
        v1 = export(ws, splits, args.seed, leak_check)
        with ReviewStore(ws.review_db_url) as store:
            approved1 = store.approved_items()
        curate_and_accept(ws, [by_place[(b["file"], b["line"])] for _, b in pairs] + others[cut:], "batch2")
        v2 = export(ws, splits, args.seed, leak_check)
        seconds = time.perf_counter() - t0
        with ReviewStore(ws.review_db_url) as store:
            approved2 = store.approved_items()

        def from_scratch(rows: list[dict], with_links: bool) -> dict[str, str]:
            links = []
            if with_links:
                found = leak_check([{"id": r["id"], "messages": r["messages"]} for r in rows])
                links = [(f"id:{a}", f"id:{b}") for a, b, _ in found]
            plan = plan_splits(rows, splits, args.seed, links=links)
            return dict(zip([r["item_id"] for r in rows], plan.splits, strict=True))

        ways = {"sticky (v1, v2 as exported)": (split_by_item(v1), split_by_item(v2)),
                "from scratch, curate links only (export before versions)":
                    (from_scratch(approved1, False), from_scratch(approved2, False)),
                "from scratch + leak-check links": (from_scratch(approved1, True), from_scratch(approved2, True))}
        item_of_place = {place(e["source"]): e["item_id"] for e in map(json.loads, (v2.dir / "ids.jsonl").read_text().splitlines())
                         if "sample_data/" in str(e.get("source"))}
        table = []
        for name, (before, split_of) in ways.items():
            moved = [i for i in before if split_of[i] != before[i]]
            to_train = [i for i in moved if before[i] != "train" and split_of[i] == "train"]
            twins = 0
            for a, b in pairs:
                ia, ib = item_of_place.get((a["file"], a["line"])), item_of_place.get((b["file"], b["line"]))
                if ia in before and before[ia] != "train" and ib is not None and split_of[ib] == "train":
                    twins += 1
            table.append((name, len(moved), len(to_train), twins))
        n1, n2 = len(approved1), len(approved2)
        held_out = sum(s != "train" for s in ways["sticky (v1, v2 as exported)"][0].values())
        print(f"sticky_splits on {platform.node()} ({platform.processor() or platform.machine()}), split {args.split}, "
              f"seed {args.seed}: batch 1 {n1} examples (v1: {held_out} val/test), batch 1 + 2 {n2} "
              f"(+{n2 - n1}: {len(pairs)} planted twins, {len(others) - cut} later rows); curate + 2 exports {seconds:.1f} s")
        print("| way | batch-1 examples moved | of them val/test → train | planted twins of batch-1 val/test in train |")
        print("|---|---|---|---|")
        for name, moved, to_train, twins in table:
            print(f"| {name} | {moved} | {to_train} | {twins} |")
        print(f"v2 placement: {json.dumps(v2.extra['versioning']['placement'])}")
        print(f"v2 fractions: {json.dumps(v2.extra['versioning']['fractions'])}")


if __name__ == "__main__":
    main()
