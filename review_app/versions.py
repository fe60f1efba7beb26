"""Dataset versions: each `studio export` without `--out` is a new, immutable `<workspace>/exports/vN/`.

A version is an export folder (`review_app.export`) with a number: its split files, `ids.jsonl` (id, review
item, split, file, line, origin, source of every record), dataset card and manifest; its files are made
read-only once published and never replaced. Later exports read the history from here:

- sticky splits: every item (and every example id) an earlier version held is pinned to the split it had
  there (`History.pins`), and a person's move (`record_move`, an audit-log entry `move_split` in the review
  store) pins an item to the split named; `studio.splits.plan_splits` places the groups;
- the frozen held-out examples of every earlier version (`History.frozen`: every split but the first, e.g.
  val and test) go into the export's leak check, so a near duplicate of an old test item is found even
  when the old item is gone from review;
- `diff_versions`: examples added, removed, edited (with the text diff), re-split, and counts by origin,
  source and split.

The leak check itself runs curate's dedupe steps; the app layer hands a `LinkFinder` to the export, so this
package never imports `curate`.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from review_app.lineage import IDS_FILE, edit_diff, parse_source
from studio.errors import StudioError
from studio.workspace import Workspace

VERSIONS_DIR = "exports"
MOVE_ACTION = "move_split"
_NAME = re.compile(r"^v([1-9]\d*)$")


class LinkFinder(Protocol):
    """Finds near-duplicate and paraphrase links among examples (`studio_app.leak_check.LeakCheck`)."""

    names: list[str]
    """What it runs (curate step names), for the manifest and the card."""

    def __call__(self, examples: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        """(id a, id b, kind) for every linked pair among `examples` (dicts with `id` and `messages`)."""
        ...


@dataclass
class Version:
    """One published version folder and its manifest."""

    name: str
    dir: Path
    manifest: dict[str, Any]

    @property
    def number(self) -> int:
        return int(self.name[1:])

    @property
    def format(self) -> str:
        return (self.manifest.get("config") or {}).get("format", "openai")

    @property
    def split_names(self) -> list[str]:
        return list((self.manifest.get("config") or {}).get("splits") or {})

    @cached_property
    def entries(self) -> list[dict[str, Any]]:
        """The `ids.jsonl` lines, after checking the file against the sha256 its manifest recorded."""
        from studio.atomic import sha256_file

        path = self.dir / IDS_FILE
        recorded = [o.get("sha256") for o in self.manifest.get("outputs", []) if Path(o["path"]).name == IDS_FILE]
        if not path.is_file() or not recorded or sha256_file(path) != recorded[0]:
            raise StudioError(f"version {self.name}: {path} is missing or differs from its manifest; versions are "
                              "never changed after export, so restore the folder from a backup.")
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    @cached_property
    def messages(self) -> dict[str, list[dict[str, str]]]:
        """The conversation of every record by example id, read back from the split files."""
        lines: dict[str, list[str]] = {}
        out = {}
        for e in self.entries:
            if e["file"] not in lines:
                lines[e["file"]] = (self.dir / e["file"]).read_text(encoding="utf-8").splitlines()
            out[e["id"]] = record_messages(self.format, json.loads(lines[e["file"]][e["line"] - 1]))
        return out


def record_messages(fmt: str, record: dict[str, Any]) -> list[dict[str, str]]:
    """The conversation a trainer-facing record holds (a DPO record: the prompt and the chosen answer)."""
    from studio import readers

    if fmt == "dpo":
        return [*record["prompt"], *record["chosen"]]
    parse = {"openai": readers.messages_from_openai, "alpaca": readers.messages_from_alpaca,
             "sharegpt": readers.messages_from_sharegpt,
             "prompt-completion": readers.messages_from_prompt_completion}[fmt]
    return parse(record)[0]


# ------------------------------------------------------------------------------------------ finding
def versions_root(workspace: Workspace) -> Path:
    return workspace.root / VERSIONS_DIR


def list_versions(workspace: Workspace | None) -> list[Version]:
    """Published versions of the workspace, oldest first (a folder without a finished manifest is skipped)."""
    if workspace is None or not versions_root(workspace).is_dir():
        return []
    found = []
    for folder in versions_root(workspace).iterdir():
        manifest_path = folder / "manifest.json"
        if not _NAME.match(folder.name) or not manifest_path.is_file():
            continue
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if manifest.get("status") == "ok":
            found.append(Version(folder.name, folder, manifest))
    return sorted(found, key=lambda v: v.number)


def get_version(workspace: Workspace | None, name: str) -> Version:
    """The version called `name` (e.g. v2), or a StudioError naming the ones there are."""
    versions = list_versions(workspace)
    for v in versions:
        if v.name == name:
            return v
    there = ", ".join(v.name for v in versions) or "none yet; `studio export` without --out makes v1"
    raise StudioError(f"no version {name!r} in this workspace's {VERSIONS_DIR}/ (versions: {there}).")


@contextlib.contextmanager
def reserve_version(workspace: Workspace) -> Iterator[tuple[str, Path]]:
    """Name and (empty) folder of the next version, one above the highest number any folder there uses. The
    folder is made at once, so two exports at the same time never get one number; if the export fails, the
    folder is removed again while still empty."""
    root = versions_root(workspace)
    root.mkdir(parents=True, exist_ok=True)
    n = max((int(m.group(1)) for p in root.iterdir() if (m := _NAME.match(p.name))), default=0) + 1
    while True:
        try:
            (root / f"v{n}").mkdir()
            break
        except FileExistsError:
            n += 1
    folder = root / f"v{n}"
    try:
        yield f"v{n}", folder
    except BaseException:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise


def seal(folder: Path) -> None:
    """Make a published version's files read-only: a version is never edited, only superseded."""
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o444)


# ------------------------------------------------------------------------------------------ history
@dataclass
class History:
    """What earlier versions and people's moves fix for the next export."""

    versions: list[str] = field(default_factory=list)
    pins: dict[str, str] = field(default_factory=dict)
    """Link key (`id:<example or item id>`) -> its split in the latest version that held it."""
    moves: dict[str, str] = field(default_factory=dict)
    """`id:<item id>` -> the split a person moved it to, oldest move first."""
    split_of_item: dict[str, str] = field(default_factory=dict)
    """Review item id -> its split in the latest version that held it."""
    frozen: list[dict[str, Any]] = field(default_factory=list)
    """Held-out examples of earlier versions (id, messages, split, version), the latest copy of each id."""


def load_history(workspace: Workspace | None, store: Any) -> History:
    """Pins, moves and frozen held-out examples from the workspace's versions and the store's audit log."""
    hist = History()
    frozen: dict[str, dict[str, Any]] = {}
    for version in list_versions(workspace):
        hist.versions.append(version.name)
        held_out = set(version.split_names[1:])
        for e in version.entries:
            items = e.get("item_ids") or [e["item_id"]]
            for key in [e["id"], *items]:
                hist.pins[f"id:{key}"] = e["split"]
            for item in items:
                hist.split_of_item[item] = e["split"]
            if e["split"] in held_out:
                frozen[e["id"]] = {"id": e["id"], "messages": version.messages[e["id"]], "split": e["split"],
                                   "version": version.name}
    hist.frozen = [frozen[k] for k in sorted(frozen)]
    for entry in store.audit_log(action=MOVE_ACTION):
        key = f"id:{entry['item_id']}"
        hist.moves.pop(key, None)  # a later move of the same item counts from its own time
        hist.moves[key] = entry["details"]["to"]
    return hist


def resolve_item(query: str, store: Any, workspace: Workspace | None) -> str:
    """The review item id behind an item id or an exported example id (an edited version, a DPO pair)."""
    try:
        return store.get_item(query).id
    except StudioError:
        pass
    for version in reversed(list_versions(workspace)):
        for e in version.entries:
            if query in (e["id"], e.get("chosen_id")):
                return e["item_id"]
    raise StudioError(f"no review item or exported example with id {query!r}; the ids.jsonl of a version lists "
                      "them (`studio versions` shows where the versions are).")


def record_move(store: Any, workspace: Workspace | None, query: str, to: str, reason: str, by: str) -> dict[str, Any]:
    """Record a person's decision to move an item (and its group) to split `to` from the next version on."""
    if not reason.strip():
        raise StudioError("say why with --reason TEXT; the move is kept in the review audit log.")
    versions = list_versions(workspace)
    names = versions[-1].split_names if versions else []
    if names and to not in names:
        raise StudioError(f"--to {to!r} is not a split of {versions[-1].name} ({', '.join(names)}).")
    item_id = resolve_item(query, store, workspace)
    before = None
    for version in reversed(versions):
        before = next((e["split"] for e in version.entries if item_id in (e.get("item_ids") or [e["item_id"]])), None)
        if before:
            break
    store.record_split_move(item_id, by, to, reason.strip(), was=before)
    return {"item_id": item_id, "from": before, "to": to, "reason": reason.strip(), "by": by}


def split_report(rows: list[dict[str, Any]], plan: Any, hist: History, links: list[tuple[str, str, str]],
                 fractions: dict[str, float], checked: dict[str, Any]) -> dict[str, Any]:
    """Where each exported row went and why, for the manifest and the card; `placement` adds up to the rows.

    `kept <split>`: in that split before too; `new <split>: seeded rule`: a new group; `new <split>: joined a
    group of earlier versions (<why>)`; `moved <a> -> <b> (<why>)`: an earlier example whose group now holds a
    stickier pin. <why> is `person` for a move, else the kinds of leak-check links in the group (e.g.
    `near_duplicate`), else `recorded links` (curate dedupe columns, synthetic parents, one prompt)."""
    group_of = {r["id"]: g for r, g in zip(rows, plan.groups, strict=True)}
    kinds: dict[str, set[str]] = {}
    for a, b, kind in links:
        g = group_of.get(a) or group_of.get(b)
        if g is not None:
            kinds.setdefault(g, set()).add(kind)
    placement: Counter = Counter()
    for row, split, by, g in zip(rows, plan.splits, plan.pinned_by, plan.groups, strict=True):
        why = "person" if by == "person" else "+".join(sorted(kinds.get(g, ()))) or "recorded links"
        before = next((hist.split_of_item[i] for i in row.get("item_ids") or [row["item_id"]]
                       if i in hist.split_of_item), None)
        if before == split:
            placement[f"kept {split}"] += 1
        elif before is not None:
            placement[f"moved {before} -> {split} ({why})"] += 1
        elif by is None:
            placement[f"new {split}: seeded rule"] += 1
        else:
            placement[f"new {split}: joined a group of earlier versions ({why})"] += 1
    n = len(rows)
    actual = Counter(plan.splits)
    return {"based_on": hist.versions, "placement": dict(sorted(placement.items())),
            "moved_from_earlier_split": sum(v for k, v in placement.items() if k.startswith("moved")),
            "groups_merged": plan.merged_groups,
            "fractions": {s: {"target": f, "actual": round(actual[s] / n, 4) if n else 0.0,
                              "off": round(actual[s] / n - f, 4) if n else 0.0} for s, f in fractions.items()},
            "leak_check": {**checked, "links": dict(sorted(Counter(k for _, _, k in links).items()))}}


# --------------------------------------------------------------------------------------------- diff
def diff_versions(a: Version, b: Version) -> dict[str, Any]:
    """What changed from version `a` to `b`, by review item: added, removed, edited (text diff), re-split."""
    def by_item(v: Version) -> dict[str, dict[str, Any]]:
        return {e["item_id"] if v.format != "dpo" else e["id"]: e for e in v.entries}

    old, new = by_item(a), by_item(b)
    edited = []
    for key in sorted(old.keys() & new.keys()):
        if old[key]["id"] != new[key]["id"]:
            edited.append({"item_id": key, "from_id": old[key]["id"], "to_id": new[key]["id"],
                           "diff": edit_diff(a.messages[old[key]["id"]], b.messages[new[key]["id"]])})
    resplit = [{"item_id": k, "from": old[k]["split"], "to": new[k]["split"]}
               for k in sorted(old.keys() & new.keys()) if old[k]["split"] != new[k]["split"]]

    def counts(v: Version, entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
        return {what: dict(sorted(Counter(str(get(e)) for e in entries.values()).items()))
                for what, get in (("split", lambda e: e["split"]), ("origin", lambda e: e.get("origin")),
                                  ("source", lambda e: source_file(e.get("source"))))}

    return {"from": a.name, "to": b.name,
            "added": [{"item_id": k, "id": new[k]["id"], "split": new[k]["split"]} for k in sorted(new.keys() - old.keys())],
            "removed": [{"item_id": k, "id": old[k]["id"], "split": old[k]["split"]} for k in sorted(old.keys() - new.keys())],
            "edited": edited, "resplit": resplit,
            "counts": {a.name: counts(a, old), b.name: counts(b, new)}}


def source_file(source: str | None) -> str | None:
    """`data/tickets.jsonl:17` -> `data/tickets.jsonl`; a run id (synthetic examples) stays as it is."""
    return (parse_source(source or "") or {}).get("file", source)


def render_diff(d: dict[str, Any]) -> str:
    """The diff as text: a summary line, then each added, removed, edited and re-split item."""
    a, b = d["from"], d["to"]
    out = [f"{a} → {b}: {len(d['added'])} added, {len(d['removed'])} removed, {len(d['edited'])} edited, "
           f"{len(d['resplit'])} re-split"]
    for what in ("added", "removed"):
        for x in d[what]:
            out.append(f"  {what} {x['item_id']} ({x['split']})")
    for x in d["resplit"]:
        out.append(f"  re-split {x['item_id']}: {x['from']} → {x['to']}")
    for x in d["edited"]:
        out.append(f"  edited {x['item_id']}: {x['from_id']} → {x['to_id']}")
        out += [f"    {line}" for line in x["diff"].splitlines()]
    for what in ("split", "origin", "source"):
        keys = sorted(set(d["counts"][a][what]) | set(d["counts"][b][what]))
        out.append(f"\nby {what}:")
        out += [f"  {k}: {d['counts'][a][what].get(k, 0)} → {d['counts'][b][what].get(k, 0)}" for k in keys]
    return "\n".join(out)
