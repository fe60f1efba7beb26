"""Export what review approved, for trainers: one JSONL per split, an ids file, a dataset card, a manifest.

Sits after review and before training (`studio export` without a DATASET argument). It reads the review
store only through `ReviewStore`: `approved_items(policy)` gives the accepted examples with edits applied;
the decisions give item agreement, rejected answers and the originals of edited answers (for DPO pairs).

Output folder: the workspace's next dataset version `exports/vN/` (`review_app.versions`; `out` left out), or
`--out DIR` (a copy elsewhere, not a version). Either way, splits are sticky: an item an earlier version held
keeps its split, new groups follow the seeded rule, and with a `LinkFinder` (the app layer's leak check,
curate's own dedupe steps) near duplicates and paraphrases across all exported examples and the frozen
val/test of earlier versions join one group first, so no group straddles splits. Files:
- `<split>.jsonl` for each non-empty split (`train.jsonl`, `val.jsonl`, `test.jsonl` by default), every line
  checked against the format first (`studio.format_checks`); a bad line stops the export naming the id.
- `ids.jsonl`: one line per written record: id, the reviewed item id(s), split and line number, origin, source.
  `studio lineage` reads it to say which exports hold an example.
- `README.md`: a Hugging Face dataset card (`review_app.dataset_card`).
- `manifest.json` + `run.log`: `Run(kind="export")` with the sha256 of every file and the ids of the
  upstream curate / synth / review-load runs the items came from.
- `hf_dataset/` with `--hf-dataset`: a `datasets.DatasetDict.save_to_disk` folder.
- `<split>.parquet` with `--parquet`: the same records as Parquet.

Data files, `ids.jsonl` and the card are byte-identical for the same store, options and seed.

Per-item agreement (`--min-agreement X`): the share of people's current accept/reject verdicts on the item
that are accepts. Items no person decided (rule only, or a lead's resolution alone) have nothing to
disagree on and pass; a lead's resolution does not hide a split vote among the reviewers before it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from review_app.lineage import IDS_FILE
from review_app.versions import LinkFinder, load_history, reserve_version, seal, split_report
from studio.console import Reporter
from studio.errors import StudioError
from studio.format_checks import TokenCounter, record_problem
from studio.runs import Run, list_runs, manifest_beside, staged_output
from studio.schema import ID_HEX_CHARS, example_id, normalize_text
from studio.splits import DEFAULT_SPLITS, parse_split_spec, plan_splits, prompt_key
from studio.workspace import Workspace
from studio.writers import to_record, write_jsonl

FORMATS = ("openai", "alpaca", "sharegpt", "prompt-completion", "dpo")
POLICIES = ("unanimous", "majority", "any")
CARD_FILE = "README.md"
HF_DIR = "hf_dataset"
#: what studio.runs.new_run_id makes: <kind>-<UTC time>-<6 hex>
RUN_ID = re.compile(r"^[a-z_]+-\d{8}T\d{6}Z-[0-9a-f]{6}$")


class ExportConfig(BaseModel):
    """Options of one export (the CLI flags of `studio export` without a DATASET)."""

    model_config = ConfigDict(extra="forbid")
    format: str = "openai"
    out: Path | None = None
    """Output folder; None makes the workspace's next version (`exports/vN/`)."""
    splits: dict[str, float] = Field(default_factory=lambda: parse_split_spec(DEFAULT_SPLITS))
    seed: int = 0
    policy: str = "unanimous"
    """How people's verdicts combine (store.approved_items): unanimous, majority or any."""
    min_agreement: float | None = None
    include_synthetic: bool = True
    hf_dataset: bool = False
    parquet: bool = False
    """Also write each split as `<split>.parquet` (the same records)."""
    stratify: str | None = None
    """A meta field (e.g. category) whose mix each split keeps."""
    tokenizer: Path | None = None
    max_tokens: int | None = None
    """Longest conversation allowed, in tokens of `tokenizer` (default: its model_max_length)."""
    overwrite: bool = False
    """Replace an earlier export in `out` (its files are removed first, so no stale split stays behind)."""

    def check(self) -> None:
        if self.format not in FORMATS:
            raise StudioError(f"--format {self.format!r} is unknown here; use one of {', '.join(FORMATS)}.")
        if self.policy not in POLICIES:
            raise StudioError(f"--policy {self.policy!r} is unknown; use one of {', '.join(POLICIES)}.")
        if self.min_agreement is not None and not 0 <= self.min_agreement <= 1:
            raise StudioError(f"--min-agreement must be from 0 to 1 (got {self.min_agreement}).")
        if self.max_tokens is not None and self.tokenizer is None:
            raise StudioError("--max-tokens needs --tokenizer PATH to count tokens with.")


@dataclass
class Selection:
    """What review decided, gathered once from the store."""

    approved: list[dict[str, Any]]  # approved_items rows that passed the export's filters
    originals: dict[str, Any]  # item_id -> ReviewItem, for every item the export touches
    rejected: list[Any]  # ReviewItems review rejected
    dropped: Counter = field(default_factory=Counter)
    agreement_of: dict[str, float | None] = field(default_factory=dict)
    decisions_by_origin: dict[str, Counter] = field(default_factory=dict)
    total_items: int = 0
    pairwise: list[dict[str, Any]] = field(default_factory=list)  # review_app.pairwise.preference_pairs
    pairwise_skipped: Counter = field(default_factory=Counter)


# ---------------------------------------------------------------------------------------- selecting
def _people(ds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from review_app.store.analytics import people_votes

    return [d for d in people_votes(ds) if d["verdict"] in ("accept", "reject")]


def item_agreement(ds: list[dict[str, Any]]) -> float | None:
    """Share of people's current verdicts that accept; None when no person voted."""
    votes = _people(ds)
    return round(sum(d["verdict"] == "accept" for d in votes) / len(votes), 4) if votes else None


def is_rejected(ds: list[dict[str, Any]]) -> bool:
    """Review's final word is reject: a lead's resolution, else more people reject than accept, else a rule."""
    ds = [d for d in ds if d["verdict"] != "skip"]
    resolutions = [d for d in ds if d["source"] == "resolution"]
    if resolutions:
        return resolutions[-1]["verdict"] == "reject"
    votes = _people(ds)
    if votes:
        rejects = sum(d["verdict"] == "reject" for d in votes)
        return rejects > len(votes) - rejects
    rules = [d for d in ds if d["source"] == "rule"]
    return bool(rules) and rules[-1]["verdict"] == "reject"


def select(store: Any, cfg: ExportConfig) -> Selection:
    """Approved rows after the export's filters, plus the rejected items and the counts the card needs."""
    by_item: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in store.decisions():
        by_item[d["item_id"]].append(d)
    approved_all = store.approved_items(cfg.policy)
    approved_ids = {r["item_id"] for r in approved_all}
    rejected_ids = sorted(i for i, ds in by_item.items() if i not in approved_ids and is_rejected(ds))
    needed = {r["item_id"] for r in approved_all if r["edited"]} | set(rejected_ids)
    originals = {i: store.get_item(i) for i in sorted(needed)}
    sel = Selection(approved=[], originals=originals, rejected=[originals[i] for i in rejected_ids],
                    total_items=store.progress()["items"])
    by_origin: dict[str, Counter] = defaultdict(Counter)
    for row in approved_all:
        item_origin = originals[row["item_id"]].origin if row["edited"] else row["origin"]
        by_origin[item_origin]["accepted"] += 1
        if row["edited"]:
            by_origin[item_origin]["accepted_with_edit"] += 1
        agreement = item_agreement(by_item[row["item_id"]])
        sel.agreement_of[row["item_id"]] = agreement
        if not cfg.include_synthetic and item_origin == "synthetic":
            sel.dropped["synthetic_excluded"] += 1
        elif cfg.min_agreement is not None and agreement is not None and agreement < cfg.min_agreement:
            sel.dropped["below_min_agreement"] += 1
        else:
            sel.approved.append({**row, "item_origin": item_origin, "agreement": agreement})
    for item in sel.rejected:
        by_origin[item.origin]["rejected"] += 1
    sel.decisions_by_origin = {k: by_origin[k] for k in sorted(by_origin)}
    if cfg.format == "dpo":
        from review_app.pairwise import preference_pairs

        sel.pairwise, sel.pairwise_skipped = preference_pairs(store)
    return sel


# ------------------------------------------------------------------------------------------ records
def _answer(messages: list[dict[str, str]]) -> dict[str, str] | None:
    return {"role": "assistant", "content": messages[-1]["content"]} if messages and messages[-1]["role"] == "assistant" else None


def dpo_pairs(sel: Selection, include_synthetic: bool = True) -> tuple[list[dict[str, Any]], Counter]:
    """Preference pairs: (1) an edited answer (chosen) over the reviewer's original (rejected); (2) an accepted
    answer (chosen) over a rejected answer to the same prompt; (3) pairwise review: the winner (as edited) over
    each other candidate, with provenance (ties and split votes skipped, counted). Returns (pairs, skipped counts
    by reason)."""
    skipped: Counter = Counter(sel.pairwise_skipped)
    pairs: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(kind: str, prompt: list[dict[str, str]], chosen_row: dict[str, Any], chosen_msgs, rejected_msgs,
            rejected_item_id: str, provenance: dict[str, Any] | None = None) -> None:
        chosen, rejected = _answer(chosen_msgs), _answer(rejected_msgs)
        if chosen is None or rejected is None or not prompt or prompt[-1]["role"] != "user":
            skipped[f"{kind}: not a prompt followed by one answer"] += 1
            return
        if normalize_text(chosen["content"]) == normalize_text(rejected["content"]):
            skipped[f"{kind}: same answer"] += 1
            return
        pair_id = hashlib.sha256(json.dumps([example_id(prompt + [chosen]), example_id(prompt + [rejected])])
                                 .encode()).hexdigest()[:ID_HEX_CHARS]
        if pair_id in seen:
            skipped[f"{kind}: duplicate pair"] += 1
            return
        seen.add(pair_id)
        pairs.append({"id": pair_id, "kind": kind, "item_id": chosen_row["item_id"], "source": chosen_row["source"],
                      "item_ids": sorted({chosen_row["item_id"], rejected_item_id}),
                      "chosen_id": chosen_row["id"], "rejected_item_id": rejected_item_id,
                      "messages": prompt + [chosen], "extra_messages": [prompt + [rejected]],
                      "meta": chosen_row["meta"], "origin": chosen_row["origin"],
                      "record": {"prompt": prompt, "chosen": [chosen], "rejected": [rejected]},
                      **({"provenance": provenance} if provenance else {})})

    for row in sel.approved:
        if row["edited"]:
            original = sel.originals[row["item_id"]].messages
            add("edit", row["messages"][:-1], row, row["messages"], original, row["item_id"])
    best_by_prompt: dict[str, dict[str, Any]] = {}
    for row in sel.approved:  # queue order; a higher rating wins
        key = prompt_key(row["messages"])
        held = best_by_prompt.get(key)
        if held is None or (row["rating"] or 0) > (held["rating"] or 0):
            best_by_prompt[key] = row
    for item in sel.rejected:
        if not include_synthetic and item.origin == "synthetic":
            continue
        row = best_by_prompt.get(prompt_key(item.messages))
        if row is not None:
            add("accepted_vs_rejected", row["messages"][:-1], row, row["messages"], item.messages, item.id)
    for p in sel.pairwise:
        if not include_synthetic and "synthetic" in (p["provenance"]["chosen"].get("origin"),
                                                     p["provenance"]["rejected"].get("origin")):
            skipped["pairwise: synthetic excluded"] += 1
            continue
        chosen_msgs = p["prompt"] + [{"role": "assistant", "content": p["chosen"]}]
        row = {"item_id": p["item_id"], "source": p["source"], "id": p["chosen_candidate"],
               "meta": json.dumps(p["meta"], ensure_ascii=False, sort_keys=True), "origin": "pairwise"}
        add("pairwise", p["prompt"], row, chosen_msgs, p["prompt"] + [{"role": "assistant", "content": p["rejected"]}],
            p["item_id"], provenance={**p["provenance"], "edited": p["edited"], "dataset_run": p["dataset_run"],
                                      "rejected_candidate": p["rejected_candidate"]})
    return pairs, skipped


def sft_rows(sel: Selection, fmt: str) -> list[dict[str, Any]]:
    return [{**row, "record": to_record(fmt, row)} for row in sel.approved]


def validate(rows: list[dict[str, Any]], fmt: str, counter: TokenCounter | None, max_tokens: int | None) -> dict[str, Any]:
    """Check every record; a problem is a StudioError naming the example id. Returns token statistics."""
    lengths: list[int] = []
    for row in rows:
        problem = record_problem(fmt, row["record"])
        if problem:
            raise StudioError(f"example {row['id']} (review item {row['item_id']}) {problem}; it is not valid "
                              f"{fmt}. Fix it in review (edit or reject) and export again.")
        if counter is not None:
            n = max(counter.count(m) for m in [row["messages"], *row.get("extra_messages", [])])
            lengths.append(n)
            if max_tokens is not None and n > max_tokens:
                raise StudioError(f"example {row['id']} (review item {row['item_id']}) is {n} tokens long with "
                                  f"{counter.path}, over --max-tokens {max_tokens}; shorten it in review or raise the limit.")
    if not lengths:
        return {}
    lengths.sort()
    return {"tokenizer": str(counter.path), "max_tokens": max_tokens, "longest": lengths[-1],
            "median": lengths[len(lengths) // 2], "total": sum(lengths)}


# ------------------------------------------------------------------------------------------ upstream
def upstream_runs(store: Any, rows: list[dict[str, Any]], workspace: Workspace | None) -> list[dict[str, Any]]:
    """The runs the exported items came from (curate, synth, review loads), followed upstream through manifests."""
    index: dict[str, dict[str, Any]] = {m["run_id"]: m for m in list_runs(workspace) if m.get("run_id")}
    wanted: list[str] = []
    for entry in store.audit_log(action="load"):
        details = entry.get("details") or {}
        dataset = details.get("dataset")
        beside = manifest_beside(dataset) if dataset else None
        if beside:
            index.setdefault(beside.get("run_id"), beside)
        wanted += [details.get("dataset_run"), details.get("load_run")]
    wanted += [r.get("dataset_run") for r in rows]
    wanted += [r["source"] for r in rows if r.get("item_origin") == "synthetic" or r.get("origin") == "synthetic"]
    found: dict[str, dict[str, Any]] = {}
    queue = [w for w in wanted if w and (w in index or RUN_ID.match(w))]
    while queue:
        run_id = queue.pop(0)
        if run_id not in found:
            found[run_id] = index.get(run_id) or {}
            queue += [u for u in found[run_id].get("upstream_manifests", []) if u not in found]
    out = []
    for run_id in sorted(found):
        m = found[run_id]
        out.append({"run_id": run_id, "kind": m.get("kind") or run_id.split("-")[0], "found": bool(m),
                    "manifest": m.get("_path"), "counts": m.get("counts"), "steps": m.get("steps", []),
                    "config": m.get("config", {})})
    return out


# ------------------------------------------------------------------------------------------- writing
def run_export(store: Any, cfg: ExportConfig, workspace: Workspace | None = None, reporter: Reporter | None = None,
               db_label: str | None = None, find_links: LinkFinder | None = None) -> Run:
    """Export approved items from `store` into `cfg.out`, or as the workspace's next version when `cfg.out` is
    None; `find_links` is the leak check (see the module docstring). Returns the finished Run (kind "export")."""
    from review_app.dataset_card import render_card
    from studio.atomic import atomic_open
    from studio.credentials import db_label as shown

    reporter = reporter or Reporter(quiet=True)
    shown_db = shown(db_label or getattr(store, "url", None) or "") or None  # path or URL, never its password
    cfg.check()
    if cfg.out is None and workspace is None:
        raise StudioError("a dataset version lives in a workspace: run inside one (studio init) or name an "
                          "output folder with --out DIR.")
    counter = TokenCounter(cfg.tokenizer) if cfg.tokenizer else None
    max_tokens = cfg.max_tokens or (counter.model_max_length if counter else None)
    t0 = time.perf_counter()
    sel = select(store, cfg)
    if cfg.format == "dpo":
        rows, skipped = dpo_pairs(sel, cfg.include_synthetic)
        n_candidates = len(rows) + sum(skipped.values())
    else:
        rows, skipped = sft_rows(sel, cfg.format), Counter()
        n_candidates = len(rows)
    if not rows:
        what = "preference pairs (no edited answers and no rejected answer to an accepted prompt)" \
            if cfg.format == "dpo" and sel.approved else "approved items"
        filters = "".join(f"; {n} dropped as {r}" for r, n in sel.dropped.items())
        raise StudioError(f"nothing to export: the review DB {shown_db or store!r} has no {what} under policy "
                          f"{cfg.policy}{filters}. Review items first (`studio review serve`, `studio review auto`), "
                          "or loosen --policy / --min-agreement; no files were written.")
    token_stats = validate(rows, cfg.format, counter, max_tokens)
    hist = load_history(workspace, store)
    t1 = time.perf_counter()
    exported = {r["id"] for r in rows}
    frozen = [f for f in hist.frozen if f["id"] not in exported]
    links = find_links([{"id": r["id"], "messages": r["messages"]} for r in rows] + frozen) if find_links else []
    leak_seconds = time.perf_counter() - t1
    plan = plan_splits(rows, cfg.splits, cfg.seed, cfg.stratify, pins=hist.pins, moves=hist.moves,
                       links=[(f"id:{a}", f"id:{b}") for a, b, _ in links])
    splits = plan.splits
    for row, split in zip(rows, splits, strict=True):
        row["split"] = split
    checked = {"steps": find_links.names if find_links else [], "examples": len(rows) + len(frozen),
               "frozen_from_earlier_versions": len(frozen)}
    versioning = {"version": None, **split_report(rows, plan, hist, links, cfg.splits, checked)}
    upstream = upstream_runs(store, sel.approved, workspace)
    select_seconds = time.perf_counter() - t0 - leak_seconds

    destination = reserve_version(workspace) if cfg.out is None else contextlib.nullcontext((None, Path(cfg.out)))
    # Written complete beside `out`, then swapped in: a crash leaves the old export or the new one, never a mix.
    with destination as (version, out), staged_output(out, cfg.overwrite) as staged:
        cfg = cfg.model_copy(update={"out": out})
        versioning["version"] = version
        config = {**cfg.model_dump(mode="json"), "db": shown_db}
        with Run("export", out_dir=staged, publish_as=out, workspace=workspace, config=config) as run:
            run.time("select", select_seconds)
            run.time("leak_check", leak_seconds)
            db_file = shown_db or ""
            if db_file and "://" not in db_file and Path(db_file).is_file():
                run.add_input(db_file, role="review db")
            run.upstream += [u["run_id"] for u in upstream if u["run_id"] not in run.upstream]
            files: list[tuple[Path, dict[str, Any]]] = []
            split_counts: dict[str, int] = {}
            ids_lines = []
            for split in cfg.splits:
                part = [r for r in rows if r["split"] == split]
                split_counts[split] = len(part)
                if not part:
                    if cfg.splits[split] > 0:
                        reporter.warn(f"split {split} is empty ({len(rows)} records in {len(set(splits))} splits); "
                                      "no file written for it.")
                    continue
                path = staged / f"{split}.jsonl"
                write_jsonl([r["record"] for r in part], path)
                files.append((path, {"rows": len(part), "split": split, "format": cfg.format}))
                for line, r in enumerate(part, 1):
                    entry = {"id": r["id"], "item_id": r["item_id"], "split": split, "file": path.name, "line": line,
                             "origin": r["origin"], "source": r.get("source")}
                    if cfg.format == "dpo":
                        entry.update(kind=r["kind"], item_ids=r["item_ids"], chosen_id=r["chosen_id"],
                                     rejected_item_id=r["rejected_item_id"])
                        if "provenance" in r:
                            entry["provenance"] = r["provenance"]
                    ids_lines.append(entry)
            write_jsonl(ids_lines, staged / IDS_FILE)
            files.append((staged / IDS_FILE, {"rows": len(ids_lines)}))
            if cfg.hf_dataset:
                files += _write_hf_dataset(staged, rows, cfg)
            if cfg.parquet:
                files += _write_parquet(staged, rows, cfg)
            card = render_card(cfg=cfg, sel=sel, rows=rows, split_counts=split_counts, skipped=skipped,
                               upstream=upstream, agreement=store.agreement(), workspace=workspace, token_stats=token_stats,
                               versioning=versioning)
            with atomic_open(staged / CARD_FILE) as fh:
                fh.write(card)
            files.append((staged / CARD_FILE, {}))
            for path, info in files:
                run.add_output(path, **info)
            # SFT: approved items in, records out; DPO: candidate pairs in, pairs out (filters are in "export")
            dropped = skipped if cfg.format == "dpo" else sel.dropped
            run.counts.input = n_candidates + (0 if cfg.format == "dpo" else sum(sel.dropped.values()))
            run.counts.kept = len(rows)
            for reason, n in sorted(dropped.items()):
                run.counts.drop(reason, n)
            run.extra["export"] = {"format": cfg.format, "splits": split_counts, "policy": cfg.policy,
                                   "seed": cfg.seed, "approved_items": len(sel.approved) + sum(sel.dropped.values()),
                                   "filtered": dict(sel.dropped), "tokens": token_stats,
                                   "upstream": [{k: u[k] for k in ("run_id", "kind", "found")} for u in upstream]}
            run.extra["versioning"] = versioning
            if cfg.format == "dpo":
                run.extra["export"]["dpo_kinds"] = dict(Counter(r["kind"] for r in rows))
                run.extra["export"]["pairwise_skipped"] = dict(sel.pairwise_skipped)
    if version:
        seal(out)
    return run.published()


def _write_parquet(out: Path, rows: list[dict[str, Any]], cfg: ExportConfig) -> list[tuple[Path, dict[str, Any]]]:
    import polars as pl

    from studio.atomic import write_parquet_atomic

    files = []
    for split in cfg.splits:
        records = [r["record"] for r in rows if r["split"] == split]
        if records:
            write_parquet_atomic(pl.DataFrame(records), out / f"{split}.parquet")
            files.append((out / f"{split}.parquet", {"rows": len(records), "split": split, "format": cfg.format}))
    return files


def _write_hf_dataset(out: Path, rows: list[dict[str, Any]], cfg: ExportConfig) -> list[tuple[Path, dict[str, Any]]]:
    from datasets import Dataset, DatasetDict

    parts = {s: Dataset.from_list([r["record"] for r in rows if r["split"] == s])
             for s in cfg.splits if any(r["split"] == s for r in rows)}
    target = out / HF_DIR
    DatasetDict(parts).save_to_disk(str(target))
    return [(p, {"hf_dataset": True}) for p in sorted(target.rglob("*")) if p.is_file()]
