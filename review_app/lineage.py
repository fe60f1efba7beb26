"""`studio lineage ID`: the chain of one example from raw file line to the models trained on it.

raw file and line (the example's `source`) → curate run and its steps (the manifest of the data set the
item was loaded from) → synth run with generator, template and model (synthetic examples: `source` is the
synth run id, `meta` holds generator/template/model/seed_ids) → review decisions (who, when, verdict, each
edit as a unified diff) → exports whose `ids.jsonl` lists it → training runs whose manifest names such an
export (its run id in `upstream_manifests`, or an export file's sha256 among its inputs), with their
metrics, and eval runs of those. The query may be the reviewed item's id, the id of an edited version, or
`EXPORT_FILE:LINE`, a line of an export's split file (e.g. `exports/v1/train.jsonl:3`; a copy of that file
elsewhere works too, found by its sha256). Exports and training runs name the dataset version they belong to
(`versioning.version` in the export manifest), so a line of `v1` reaches every run trained on `v1`.

Reads only the review store and run manifests (`studio.runs.list_runs`); it imports no training code.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from studio.errors import StudioError
from studio.runs import list_runs, manifest_beside
from studio.schema import example_id
from studio.workspace import Workspace

IDS_FILE = "ids.jsonl"


def _meta(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value) if isinstance(value, str) and value else {}
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _render(messages: list[dict[str, str]]) -> list[str]:
    lines: list[str] = []
    for m in messages:
        body = m["content"].splitlines() or [""]
        lines += [f"{m['role']}: {body[0]}", *[f"    {b}" for b in body[1:]]]
    return lines


def edit_diff(original: list[dict[str, str]], edited: list[dict[str, str]]) -> str:
    """The edit as a unified diff of the conversation rendered one turn per line."""
    return "\n".join(difflib.unified_diff(_render(original), _render(edited), "original", "edited", lineterm=""))


def _export_dir(manifest: dict[str, Any]) -> Path:
    return Path(manifest.get("run_dir") or Path(manifest["_path"]).parent)


def _export_lines(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The export's ids.jsonl lines; none when the file is gone or a later export replaced it."""
    from studio.atomic import sha256_file

    path = _export_dir(manifest) / IDS_FILE
    recorded = [o.get("sha256") for o in manifest.get("outputs", []) if Path(o["path"]).name == IDS_FILE]
    if not path.is_file() or (recorded and sha256_file(path) != recorded[0]):
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def parse_source(source: str) -> dict[str, Any] | None:
    """`path/to/file.jsonl:17` → {file, line}; None when the source is not a file line (a run id)."""
    path, sep, line = (source or "").rpartition(":")
    if sep and line.isdigit() and path:
        return {"file": path, "line": int(line)}
    return None


def _version(manifest: dict[str, Any]) -> str | None:
    return (manifest.get("versioning") or {}).get("version")


def _resolve_line(query: str, exports: list[dict[str, Any]], workspace: Workspace | None) -> str | None:
    """The item id on line LINE of EXPORT_FILE (`path:LINE`); None when the query is not of that shape."""
    from studio.atomic import sha256_file

    path, sep, line = query.rpartition(":")
    if not (sep and line.isdigit() and path.endswith(".jsonl")):
        return None
    candidates = [Path(path)] + ([workspace.root / path] if workspace else [])
    file = next((c for c in candidates if c.is_file()), None)
    if file is None:
        raise StudioError(f"{path} is not a file; give EXPORT_FILE:LINE with the path of an export's split file, "
                          "e.g. exports/v1/train.jsonl:3.")
    sha = sha256_file(file)
    for manifest in exports:
        if any(o.get("sha256") == sha and Path(o["path"]).name == file.name for o in manifest.get("outputs", [])):
            for entry in _export_lines(manifest):
                if entry["file"] == file.name and entry["line"] == int(line):
                    return entry["item_id"]
            raise StudioError(f"{file} has no line {line} in its export's {IDS_FILE} "
                              f"(export {manifest['run_id']}); count lines from 1.")
    raise StudioError(f"{file} is not a file of any export recorded in this workspace (no manifest lists its sha256); "
                      "name a file an export wrote, unchanged.")


def _resolve_item(query: str, store: Any, exports: list[dict[str, Any]], workspace: Workspace | None = None) -> str:
    by_line = _resolve_line(query, exports, workspace)
    if by_line is not None:
        return by_line
    try:
        return store.get_item(query).id
    except StudioError:
        pass
    for manifest in exports:
        for entry in _export_lines(manifest):
            if entry.get("id") == query or entry.get("chosen_id") == query:
                return entry["item_id"]
    for d in store.decisions(include_undone=True):
        if d["edited_messages"] and example_id(d["edited_messages"]) == query:
            return d["item_id"]
    raise StudioError(f"no example with id {query!r} in the review DB {store!r} or in any export's {IDS_FILE}; "
                      "check the id (ids.jsonl of an export lists them) and the --db / --workspace.")


def trace(query: str, store: Any, workspace: Workspace | None = None, runs_root: str | Path | None = None) -> dict[str, Any]:
    """The whole chain for one example id as a dict (see the module docstring)."""
    by_id = {m["run_id"]: m for m in list_runs(workspace, root=runs_root) if m.get("run_id")}
    manifests = list(by_id.values())
    exports = [m for m in manifests if m.get("kind") == "export"]
    item_id = _resolve_item(query, store, exports, workspace)
    item = store.get_item(item_id)
    dataset_run = item.extra.get("dataset_run")
    beside = manifest_beside(item.dataset) if item.dataset and dataset_run and dataset_run not in by_id else None
    if beside:
        by_id[dataset_run] = beside

    decisions = []
    edited_ids = []
    for d in store.item_decisions(item_id):
        entry = {k: d.get(k) for k in ("created_at", "reviewer", "role", "source", "verdict", "rating", "reasons",
                                       "comment", "undone_at")}
        if d["edited_messages"]:
            entry["edited_id"] = example_id(d["edited_messages"])
            entry["diff"] = edit_diff(item.messages, d["edited_messages"])
            edited_ids.append(entry["edited_id"])
        decisions.append(entry)

    chain: dict[str, Any] = {
        "query": query, "item_id": item_id, "edited_ids": sorted(set(edited_ids)),
        "example": {"origin": item.origin, "source": item.source, "dataset": item.dataset,
                    "dataset_run": dataset_run, "meta": item.meta},
        "raw": parse_source(item.source), "curate": [], "synth": None, "decisions": decisions,
        "exports": [], "training": [], "evaluations": [],
    }
    # upstream: the data set's run, then what it names upstream (a curate of synth output, ...)
    seen: set[str] = set()
    queue = [r for r in (dataset_run, item.source if item.origin == "synthetic" else None) if r]
    while queue:
        run_id = queue.pop(0)
        if run_id in seen:
            continue
        seen.add(run_id)
        m = by_id.get(run_id, {})
        if m.get("kind") == "curate" or (not m and run_id.startswith("curate-")):
            chain["curate"].append({"run_id": run_id, "manifest": m.get("_path"),
                                    "inputs": [i.get("path") for i in m.get("inputs", [])],
                                    "steps": [{k: s.get(k) for k in ("step", "rows_in", "kept", "dropped")}
                                              for s in m.get("steps", [])]})
        queue += m.get("upstream_manifests", [])
    if item.origin == "synthetic" or item.meta.get("generator"):
        m = by_id.get(item.source, {})
        cfg = m.get("config", {})
        chain["synth"] = {"run_id": item.source, "manifest": m.get("_path"),
                          **{k: item.meta.get(k) or cfg.get(k) for k in ("generator", "template", "template_version", "model")},
                          "seed_ids": item.meta.get("seed_ids") or [], "kept": (m.get("counts") or {}).get("kept")}

    ids = {query, item_id, *edited_ids}
    export_runs: dict[str, dict[str, Any]] = {}
    for manifest in sorted(exports, key=lambda m: m.get("started_at", "")):
        hits = [e for e in _export_lines(manifest)
                if e.get("id") in ids or e.get("item_id") == item_id or item_id in (e.get("item_ids") or [])]
        if not hits:
            continue
        outputs = {Path(o["path"]).name: o for o in manifest.get("outputs", [])}
        export_runs[manifest["run_id"]] = manifest
        for e in hits:
            out = outputs.get(e["file"], {})
            chain["exports"].append({"run_id": manifest["run_id"], "version": _version(manifest), "dir": str(_export_dir(manifest)),
                                     "format": (manifest.get("config") or {}).get("format"), "split": e["split"],
                                     "file": e["file"], "line": e["line"], "id": e["id"], "sha256": out.get("sha256")})
    holding = {x["sha256"] for x in chain["exports"] if x["sha256"]}
    # every data file of an export holding the example, so a run on a copy of v1's train.jsonl reaches an
    # example in v1's test.jsonl too (it trained on that version)
    runs_of_sha: dict[str, set[str]] = {}
    for run_id, m in export_runs.items():
        for o in m.get("outputs", []):
            if o.get("sha256") and Path(o["path"]).name != IDS_FILE:
                runs_of_sha.setdefault(o["sha256"], set()).add(run_id)
    train_ids = set()
    for m in sorted(manifests, key=lambda m: m.get("started_at", "")):
        if m.get("kind") != "train":
            continue
        used = [i for i in m.get("inputs", []) if i.get("sha256") in runs_of_sha]
        # the export beside the input file names the version exactly; a copied file only by its bytes (which two
        # versions with nothing changed share)
        via = sorted(set(m.get("upstream_manifests", [])) & set(export_runs)
                     or {r for i in used for r in runs_of_sha[i["sha256"]]})
        if via:
            train_ids.add(m["run_id"])
            versions = sorted({v for r in via if (v := _version(export_runs[r]))})
            chain["training"].append({"run_id": m["run_id"], "status": m.get("status"), "exports": via, "versions": versions,
                                      "trained_on_example": any(i.get("sha256") in holding for i in used),
                                      "inputs": [{"path": i.get("path"), "role": i.get("role")} for i in used],
                                      "config": {k: (m.get("config") or {}).get(k) for k in ("base_model", "method")
                                                 if (m.get("config") or {}).get(k) is not None},
                                      "metrics": m.get("metrics"), "manifest": m.get("_path")})
    for m in manifests:
        if m.get("kind") == "eval" and set(m.get("upstream_manifests", [])) & train_ids:
            chain["evaluations"].append({"run_id": m["run_id"], "metrics": m.get("metrics"), "manifest": m.get("_path")})
    return chain


def render_lineage(chain: dict[str, Any]) -> str:
    """The chain as text, one section per link, in flow order."""
    ex = chain["example"]
    out = [f"example {chain['query']}" + (f" (review item {chain['item_id']})" if chain["item_id"] != chain["query"] else ""),
           f"  origin {ex['origin']}; loaded from {ex['dataset']}" + (f" (run {ex['dataset_run']})" if ex["dataset_run"] else "")]
    out.append("\n1. raw input")
    if chain["raw"]:
        out.append(f"  {chain['raw']['file']} line {chain['raw']['line']}")
    else:
        out.append(f"  none: source {ex['source']!r} is not a file line" + (" (generated)" if chain["synth"] else ""))
    out.append("\n2. curation")
    if not chain["curate"]:
        out.append("  no curate run recorded upstream")
    for c in chain["curate"]:
        out.append(f"  run {c['run_id']}" + ("" if c["manifest"] else " (manifest not found)"))
        for s in c["steps"]:
            dropped = ", ".join(f"{r} {n}" for r, n in (s.get("dropped") or {}).items()) or "none"
            out.append(f"    step {s['step']}: {s['rows_in']} in, {s['kept']} kept, dropped {dropped}; this example kept")
    out.append("\n3. synthesis")
    s = chain["synth"]
    if s:
        out.append(f"  run {s['run_id']}" + ("" if s["manifest"] else " (manifest not found)"))
        out.append(f"    generator {s['generator']}, template {s['template']}"
                   + (f" v{s['template_version']}" if s.get("template_version") else "") + f", model {s['model']}")
        if s["seed_ids"]:
            out.append(f"    seed examples: {', '.join(s['seed_ids'])}")
    else:
        out.append("  not synthetic")
    out.append("\n4. review")
    if not chain["decisions"]:
        out.append("  no decisions yet")
    for d in chain["decisions"]:
        line = f"  {d['created_at']} {d['reviewer']} ({d['role']}, {d['source']}): {d['verdict']}"
        line += f", rating {d['rating']}" if d["rating"] is not None else ""
        line += f", reasons {', '.join(d['reasons'])}" if d.get("reasons") else ""
        line += f" — {d['comment']}" if d["comment"] else ""
        line += f" [undone {d['undone_at']}]" if d["undone_at"] else ""
        out.append(line)
        if d.get("diff"):
            out.append(f"    edit → id {d['edited_id']}:")
            out += [f"    {x}" for x in d["diff"].splitlines()]
    out.append("\n5. exports")
    if not chain["exports"]:
        out.append("  in no export yet")
    for e in chain["exports"]:
        version = f", version {e['version']}" if e.get("version") else ""
        out.append(f"  run {e['run_id']} ({e['format']}{version}): {e['dir']}/{e['file']} line {e['line']}, split {e['split']}, id {e['id']}")
    out.append("\n6. training")
    if not chain["training"]:
        out.append("  no training run used these exports")
    for t in chain["training"]:
        via = ", ".join(t["exports"]) or ", ".join(i["path"] for i in t["inputs"])
        via += f" (version {', '.join(t['versions'])})" if t.get("versions") else ""
        out.append(f"  run {t['run_id']} ({t['status']}) on {via}" + (f" {t['config']}" if t["config"] else ""))
        out.append("    its inputs held this example" if t["trained_on_example"] else
                   "    its inputs did not hold this example (another split of that export)")
        if t["metrics"]:
            out.append(f"    metrics: {json.dumps(t['metrics'], sort_keys=True)}")
    for e in chain["evaluations"]:
        out.append(f"  eval {e['run_id']}: {json.dumps(e['metrics'], sort_keys=True) if e['metrics'] else 'no metrics'}")
    return "\n".join(out)
