"""The dataset card (`README.md`) an export writes beside its files, in Hugging Face dataset-card style.

YAML front matter (license, task_categories, size_categories, tags, configs with one data file per split,
as the Hub's dataset viewer and `datasets.load_dataset(DIR)` read it), then sections a trainer or an
auditor reads: what it is, sources, counts by origin and decision, curation steps with drop counts (from
the upstream curate manifests), synthetic generation, PII policy, review agreement (`store.agreement()`),
licence (the workspace's `studio.yaml` `license`) and known limitations. Every number comes from the
store or the manifests passed in; the card holds no timestamps or run-specific values of the export
itself, so the same export renders the same bytes (the manifest holds those).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import yaml

from studio.workspace import Workspace

#: Hugging Face `size_categories` buckets (upper bounds, label)
SIZE_BUCKETS = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"))
FORMAT_TEXT = {
    "openai": "OpenAI chat format: one JSON object per line with `messages` (system?/user/assistant turns). "
              "Reads as-is into the OpenAI fine-tuning API, TRL `SFTTrainer` (conversational language "
              "modeling) and Axolotl (`type: chat_template`).",
    "sharegpt": "ShareGPT format: `conversations` with `from` (system/human/gpt) and `value`. TRL converts it "
                "to ChatML; Axolotl reads it with `type: chat_template` and field mapping.",
    "alpaca": "Alpaca format: `instruction`, `input` (empty here), `output`, and `system` when present. "
              "Axolotl `type: alpaca`.",
    "prompt-completion": "Prompt-completion format: `prompt` and `completion` strings (TRL standard "
                         "prompt-completion; the loss is on the completion only).",
    "dpo": "Preference pairs for TRL `DPOTrainer` (conversational, explicit prompt): `prompt` is a message list "
           "ending with the user turn, `chosen` and `rejected` are one assistant message each.",
}


def size_category(n: int) -> str:
    for bound, label in SIZE_BUCKETS:
        if n < bound:
            return label
    return "n>100M"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("–" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(x: Any) -> str:
    return "undefined (too little overlap or one label only)" if x is None else str(x)


def render_card(*, cfg: Any, sel: Any, rows: list[dict[str, Any]], split_counts: dict[str, int], skipped: Counter,
                upstream: list[dict[str, Any]], agreement: dict[str, Any], workspace: Workspace | None,
                token_stats: dict[str, Any], versioning: dict[str, Any] | None = None) -> str:
    """The card's Markdown text (see the module docstring)."""
    ws_config = workspace.config if workspace else {}
    name = ws_config.get("name") or cfg.out.name
    license_id = ws_config.get("license") or "other"
    total = len(rows)
    front: dict[str, Any] = {
        "license": license_id,
        "pretty_name": name,
        "task_categories": ["text-generation"],
        "size_categories": [size_category(total)],
        "tags": ["dpo", "preference"] if cfg.format == "dpo" else ["sft", "conversational"],
        "configs": [{"config_name": "default", "data_files": [
            {"split": s, "path": f"{s}.jsonl"} for s, n in split_counts.items() if n]}],
    }
    if ws_config.get("language"):
        front["language"] = ws_config["language"] if isinstance(ws_config["language"], list) else [ws_config["language"]]
    parts = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", ""]

    unit = "preference pairs" if cfg.format == "dpo" else "examples"
    parts += [f"# {name}", "", "## What it is", ""]
    if ws_config.get("description"):
        parts += [str(ws_config["description"]), ""]
    parts += [
        f"{total} {unit} approved in human review and exported by Fine-Tuning Data Studio "
        f"(`studio export --format {cfg.format}`, review policy `{cfg.policy}`, seed {cfg.seed}).", "",
        FORMAT_TEXT[cfg.format], "",
        _table(["split", unit, "file"], [[s, n, f"{s}.jsonl" if n else "(empty, not written)"]
                                         for s, n in split_counts.items()]), "",
        "Splits are leak-free: examples in one near-duplicate or semantic cluster, a synthetic example and its "
        "seed, and all answers to one prompt always share a split (union-find over those links, groups placed "
        f"by a hash of the group and the seed{f', stratified by meta field `{cfg.stratify}`' if cfg.stratify else ''}). "
        "`ids.jsonl` gives the example id and reviewed item id of every line; `studio lineage ID` traces one "
        "back to its raw file line.", "",
    ]

    if versioning:
        parts += _version_section(versioning)

    parts += ["## Sources", ""]
    if upstream:
        parts += [_table(["run", "kind", "rows in", "kept", "manifest found"],
                         [[f"`{u['run_id']}`", u["kind"], (u.get("counts") or {}).get("input"),
                           (u.get("counts") or {}).get("kept"), "yes" if u["found"] else "no"] for u in upstream]), ""]
        files = sorted({Inp for u in upstream if u["kind"] == "curate" for Inp in _input_files(u)})
        if files:
            parts += ["Raw input files of the curate runs: " + ", ".join(f"`{f}`" for f in files) + ".", ""]
    else:
        parts += ["No upstream run manifests are recorded for these items (they were loaded into review "
                  "from files without a manifest).", ""]

    parts += ["## Counts by origin and decision", "",
              "Review decisions on the items loaded into the review DB, by the origin the item was loaded with "
              "(`accepted` under the export's policy; `edited` = accepted after a reviewer changed it):", ""]
    decided = 0
    table_rows = []
    for origin, c in sel.decisions_by_origin.items():
        table_rows.append([origin, c.get("accepted", 0), c.get("accepted_with_edit", 0), c.get("rejected", 0)])
        decided += c.get("accepted", 0) + c.get("rejected", 0)
    parts += [_table(["origin", "accepted", "of which edited", "rejected"], table_rows), "",
              f"Items in the review DB: {sel.total_items}; without a final accept or reject: {sel.total_items - decided}.", ""]
    exported = Counter(r["origin"] for r in rows)
    parts += ["Exported " + unit + " by origin: " + ", ".join(f"{o} {n}" for o, n in sorted(exported.items())) + ".", ""]
    by_how = Counter(r.get("decided_by", "?") for r in sel.approved)
    if by_how:
        parts += ["Accepted by: " + ", ".join(f"{k} {n}" for k, n in sorted(by_how.items())) +
                  " (people = reviewers under the policy; rule = an auto-decision rule; resolution = a lead).", ""]
    filtered = {**sel.dropped, **skipped}
    if filtered:
        parts += ["Left out at export: " + ", ".join(f"{r} {n}" for r, n in sorted(filtered.items())) + ".", ""]

    parts += ["## Curation steps", ""]
    curate_runs = [u for u in upstream if u["kind"] == "curate" and u["found"]]
    if not curate_runs:
        parts += ["No curate run manifest was found upstream of these items.", ""]
    for u in curate_runs:
        c = u.get("counts") or {}
        parts += [f"Curate run `{u['run_id']}`: {c.get('input')} rows in, {c.get('kept')} kept, "
                  f"{c.get('quarantined', 0)} malformed lines quarantined.", ""]
        parts += [_table(["step", "rows in", "kept", "dropped"],
                         [[s.get("step"), s.get("rows_in"), s.get("kept"),
                           ", ".join(f"{r}: {n}" for r, n in sorted((s.get("dropped") or {}).items())) or "0"]
                          for s in u.get("steps", [])]), ""]

    synth_runs = [u for u in upstream if u["kind"] == "synth"]
    if synth_runs or exported.get("synthetic"):
        parts += ["## Synthetic data", ""]
        for u in synth_runs:
            cfg_u = u.get("config") or {}
            what = {k: cfg_u.get(k) for k in ("generator", "model", "template", "backend") if cfg_u.get(k)}
            parts += [f"- `{u['run_id']}`: " + (", ".join(f"{k} {json.dumps(v)}" for k, v in what.items()) or
                                               "manifest not found") + f"; kept {(u.get('counts') or {}).get('kept')}"]
        parts += ["", "Every synthetic example went through the same human review as real ones.", ""]

    parts += ["## PII policy", ""]
    pii_steps = [(u["run_id"], s) for u in curate_runs for s in u.get("steps", []) if "pii" in str(s.get("step"))]
    if pii_steps:
        for run_id, s in pii_steps:
            parts += [f"- step `{s.get('step')}` in `{run_id}` with settings `{json.dumps(s.get('config', {}), sort_keys=True)}`; "
                      f"dropped: {s.get('dropped') or 0}"]
        parts += ["", "Personal data the step detected was redacted or the row dropped as configured; reviewers "
                  "were asked to reject anything personal it missed.", ""]
    else:
        parts += ["No PII redaction step is recorded in the upstream curate runs. The only safeguard was human "
                  "review (the guidelines ask reviewers to reject personal data); check before sharing.", ""]

    parts += ["## Review agreement", ""]
    fleiss = agreement.get("fleiss") or {}
    parts += [f"- items reviewed by two or more people: {agreement.get('items_with_overlap', 0)}",
              f"- Fleiss' kappa (verdicts): {_fmt(fleiss.get('fleiss_kappa'))}",
              f"- Krippendorff's alpha (verdicts, nominal): {_fmt(agreement.get('verdict_alpha'))}",
              f"- Krippendorff's alpha (1–5 ratings, ordinal): {_fmt(agreement.get('rating_alpha'))}"]
    if cfg.min_agreement is not None:
        parts += [f"- items kept only with at least {cfg.min_agreement} of people's verdicts accepting"]
    parts += [""]
    pairs = agreement.get("pairs") or []
    if pairs:
        parts += [_table(["reviewer a", "reviewer b", "shared items", "raw agreement", "Cohen's kappa"],
                         [[p["a"], p["b"], p["items"], p["agreement"], p["cohen_kappa"]] for p in pairs]), ""]

    parts += ["## Licence", "", f"`{license_id}` (the `license` field of the workspace's studio.yaml)."
              + (" `other` means no licence was chosen: set one before sharing." if license_id == "other" else ""), ""]

    parts += ["## Known limitations", ""]
    limits = []
    if total < 1000:
        limits.append(f"Small: {total} {unit}; evaluation splits of this size give noisy metrics.")
    if exported.get("synthetic"):
        limits.append(f"{exported['synthetic']} exported {unit} are synthetic (model-written, then human-reviewed); "
                      "they carry the generator's style and blind spots.")
    if not agreement.get("items_with_overlap"):
        limits.append("No item was reviewed by two people, so reviewer agreement could not be measured.")
    if not token_stats:
        limits.append("Token lengths were not checked (no --tokenizer given); overlong examples may be truncated "
                      "or dropped by a trainer.")
    else:
        limits.append(f"Token lengths checked with {token_stats['tokenizer']}: longest {token_stats['longest']}, "
                      f"median {token_stats['median']}.")
    steps = ((versioning or {}).get("leak_check") or {}).get("steps")
    if steps:
        limits.append(f"Leak-free splitting knows the links recorded by curation and synthesis and those {', '.join(steps)} "
                      "found at export; paraphrases further apart than their thresholds can still sit in different splits.")
    else:
        limits.append("Leak-free splitting only knows the links recorded by curation and synthesis; paraphrases that "
                      "no dedupe step clustered can still sit in different splits.")
    parts += [f"- {t}" for t in limits] + [""]
    parts += ["## Files", "", "- `<split>.jsonl`: the data; `ids.jsonl`: example and review item ids per line"]
    if getattr(cfg, "parquet", False):
        parts += ["- `<split>.parquet`: the same records as Parquet"]
    parts += ["- `manifest.json`: the export run (options, sha256 of every file, upstream run ids, how each row was placed)", ""]
    return "\n".join(parts)


def _version_section(v: dict[str, Any]) -> list[str]:
    """Which version this is, how its rows were placed (sticky splits) and how far the fractions are off."""
    title = f"## Version {v['version']}" if v.get("version") else "## Splits and earlier versions"
    based = ", ".join(v["based_on"]) or "none (the first version)"
    parts = [title, "", f"Earlier versions this export keeps the splits of: {based}. An example once in a split stays "
             "there (its near duplicates and paraphrases join it) unless a person moves it with `studio versions move`.", ""]
    parts += [_table(["placement", "rows"], [[k, n] for k, n in v["placement"].items()]), ""]
    parts += [_table(["split", "target fraction", "actual", "off by"],
                     [[s, f["target"], f["actual"], f"{f['off']:+.4f}"] for s, f in v["fractions"].items()]), ""]
    check = v["leak_check"]
    if check["steps"]:
        links = ", ".join(f"{k} {n}" for k, n in check["links"].items()) or "none"
        parts += [f"Leak check at export: {', '.join(check['steps'])} over {check['examples']} examples "
                  f"({check['frozen_from_earlier_versions']} of them frozen val/test examples of earlier versions); "
                  f"links found: {links}; groups whose earlier splits disagreed, merged into the stickier split: "
                  f"{v['groups_merged']}.", ""]
    else:
        parts += ["No leak check ran at export (only the links recorded by curation and synthesis were used).", ""]
    return parts


def _input_files(run: dict[str, Any]) -> list[str]:
    from pathlib import Path

    return [Path(p).name for p in (run.get("config") or {}).get("inputs", [])]
