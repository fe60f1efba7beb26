"""Leak-free train/val/test splits: linked examples form one group, and a whole group goes to one split.

Used by `studio export` after review. Two examples are linked when they share a near-duplicate cluster
(`dup_cluster` from near_dedupe), a semantic cluster (`semantic_cluster` from semantic_dedupe), one is
the `dup_of` of the other, one is the synthetic child of the other (`seed_ids`, `evolution.parent_id` in
the synth generators' meta), or their prompts are identical after normalization (variants of one prompt:
a paraphrased answer, an edited answer, a rejected and an accepted answer). Links are closed
transitively with union-find, so a chain a~b~c lands in one split even when a and c share nothing.

Assignment is deterministic for a seed: groups are visited in the order of sha256(seed, group key) and
each goes to the split furthest below its target row count relative to that target, which gives the
requested fractions as closely as whole groups allow (every split with a fraction > 0 gets a group as
soon as there are enough groups), with no dependence on input order. With
`stratify`, this runs separately per value of a meta field, so each split has that field's mix.

Sticky splits (`plan_splits` with `pins`): a dataset version pins the link keys of the examples earlier
versions held to the split they had there, and a person's move (`studio versions move`) pins an item to the
split named. A group holding a pinned key goes where its pin says; when its pins disagree, a person's latest
move wins, else the split listed last in the fractions (test before val before train), so an example once
held out never moves into training. Only groups with no pin are placed by the seeded rule, which counts the
pinned rows as already filled, so the fractions come as close as the pins allow. Extra `links` (pairs of
link keys, e.g. near-duplicates found across all versions at export) join groups before any of this.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from studio.errors import StudioError
from studio.schema import dedupe_links, normalize_text

DEFAULT_SPLITS = "train=0.9,val=0.05,test=0.05"
_SPLIT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
_SPACES = re.compile(r"\s+")


def parse_split_spec(text: str) -> dict[str, float]:
    """`train=0.9,val=0.05,test=0.05` → {"train": 0.9, ...}; fractions must be ≥ 0 and sum to 1."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not _SPLIT_NAME.match(name):
            raise StudioError(f"--split part {part!r} must look like name=fraction, e.g. {DEFAULT_SPLITS}.")
        try:
            fraction = float(value)
        except ValueError:
            raise StudioError(f"--split {name}: {value!r} is not a number; write e.g. {name}=0.1.") from None
        if not 0 <= fraction <= 1 or name in out:
            raise StudioError(f"--split {name}: each split appears once with a fraction from 0 to 1 (got {value}).")
        out[name] = fraction
    if not out:
        raise StudioError(f"--split is empty; write e.g. {DEFAULT_SPLITS}.")
    if abs(sum(out.values()) - 1) > 1e-6:
        raise StudioError(f"--split fractions add up to {sum(out.values()):g}, not 1; e.g. {DEFAULT_SPLITS}.")
    return out


class UnionFind:
    """Disjoint sets over hashable keys; the representative of a set is its smallest key (deterministic)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = (ra, rb) if ra < rb else (rb, ra)
            self.parent[hi] = lo


def _meta_dict(meta: Any) -> dict[str, Any]:
    if isinstance(meta, dict):
        return meta
    if isinstance(meta, str) and meta.strip():
        try:
            value = json.loads(meta)
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}


def prompt_key(messages: Sequence[dict[str, str]]) -> str:
    """Every turn before the final answer, normalized (NFC, case, whitespace): equal keys = one prompt."""
    turns = list(messages)
    if turns and turns[-1]["role"] == "assistant":
        turns = turns[:-1]
    text = "\n".join(f"{m['role']}: {_SPACES.sub(' ', normalize_text(m['content']).lower())}" for m in turns)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def link_keys(row: dict[str, Any]) -> list[str]:
    """The keys that tie this row to others: its ids, dedupe clusters, parents, and its prompt."""
    meta = _meta_dict(row.get("meta"))
    keys = [f"id:{row['id']}"]
    keys += [f"id:{i}" for i in row.get("item_ids") or ([row["item_id"]] if row.get("item_id") else [])]
    links = dedupe_links(row, meta)  # a review item keeps them in its meta, a curate frame has columns
    if "dup_cluster" in links:
        keys.append(f"near:{links['dup_cluster']}")
    if "semantic_cluster" in links:
        keys.append(f"semantic:{links['semantic_cluster']}")
    if "dup_of" in links:
        keys.append(f"id:{links['dup_of']}")
    seeds = meta.get("seed_ids")
    keys += [f"id:{s}" for s in seeds if isinstance(s, str)] if isinstance(seeds, list) else []
    evolution = meta.get("evolution")
    if isinstance(evolution, dict) and isinstance(evolution.get("parent_id"), str):
        keys.append(f"id:{evolution['parent_id']}")
    for messages in [row["messages"], *(row.get("extra_messages") or [])]:
        keys.append(f"prompt:{prompt_key(messages)}")
    return keys


def group_rows(rows: Sequence[dict[str, Any]], links: Iterable[tuple[str, str]] = ()) -> list[str]:
    """The group key of each row: rows linked directly or through others (or through `links`, pairs of link
    keys that need not belong to any row) share one key."""
    return _union(rows, links)[0]


def _union(rows: Sequence[dict[str, Any]], links: Iterable[tuple[str, str]]) -> tuple[list[str], UnionFind]:
    uf = UnionFind()
    per_row = [link_keys(r) for r in rows]
    for keys in per_row:
        for k in keys[1:]:
            uf.union(keys[0], k)
    for a, b in links:
        uf.union(a, b)
    return [uf.find(keys[0]) for keys in per_row], uf


def _order(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\x1f{key}".encode()).hexdigest()


@dataclass
class SplitPlan:
    """Where each row goes, and why: `pinned_by[i]` is "person" (a move), "earlier" (an earlier version's split
    of a key in its group) or None (placed by the seeded rule). `merged_groups`: groups whose pins named more
    than one split, merged into the sticky side."""

    splits: list[str]
    pinned_by: list[str | None]
    groups: list[str]
    merged_groups: int = 0


def assign_splits(rows: Sequence[dict[str, Any]], fractions: dict[str, float], seed: int,
                  stratify: str | None = None) -> list[str]:
    """The split name of each row; all rows of a group share it (see the module docstring)."""
    return plan_splits(rows, fractions, seed, stratify).splits


def plan_splits(rows: Sequence[dict[str, Any]], fractions: dict[str, float], seed: int, stratify: str | None = None,
                pins: Mapping[str, str] | None = None, moves: Mapping[str, str] | None = None,
                links: Iterable[tuple[str, str]] = ()) -> SplitPlan:
    """Split of each row with sticky `pins` (link key -> split of an earlier version), a person's `moves`
    (link key -> split, oldest first) and extra `links` (see the module docstring)."""
    pins, moves = pins or {}, moves or {}
    for name in {*pins.values(), *moves.values()} - set(fractions):
        raise StudioError(f"split {name!r} holds examples of an earlier version but --split has no {name!r}; "
                          f"keep every split name of earlier versions (e.g. {name}=0.05) or move those examples "
                          "with `studio versions move`.")
    groups, uf = _union(rows, links)
    rank = {s: i for i, s in enumerate(fractions)}
    pinned: dict[str, tuple[tuple[int, int], str, str]] = {}  # group -> ((priority), split, by)
    candidates = [(key, (1, order), split, "person") for order, (key, split) in enumerate(moves.items())]
    candidates += [(key, (0, rank[split]), split, "earlier") for key, split in pins.items()]
    splits_named: dict[str, set[str]] = defaultdict(set)
    for key, priority, split, by in candidates:
        if key not in uf.parent:  # a key no exported row is linked to
            continue
        g = uf.find(key)
        splits_named[g].add(split)
        if g not in pinned or priority > pinned[g][0]:
            pinned[g] = (priority, split, by)
    members: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    strata: dict[str, list[str]] = defaultdict(list)
    for g, idx in members.items():
        strata[_stratum(rows, idx, stratify)].append(g)
    names = [s for s in fractions if fractions[s] > 0]
    split_of_group: dict[str, str] = {}
    for stratum in sorted(strata):
        keys = sorted(strata[stratum], key=lambda g: _order(seed, g))
        total = sum(len(members[g]) for g in keys)
        filled = dict.fromkeys(fractions, 0)
        for g in keys:
            if g in pinned:
                split_of_group[g] = pinned[g][1]
                filled[pinned[g][1]] += len(members[g])
        for g in keys:
            if g in pinned or not names:
                continue
            # the split furthest below its target, relative to the target (so small splits get their
            # share early rather than only the leftovers); ties go to the split listed first
            best = max(names, key=lambda s: ((fractions[s] * total - filled[s]) / (fractions[s] * total), -names.index(s)))
            split_of_group[g] = best
            filled[best] += len(members[g])
    return SplitPlan(splits=[split_of_group[g] for g in groups],
                     pinned_by=[pinned[g][2] if g in pinned else None for g in groups], groups=groups,
                     merged_groups=sum(len(s) > 1 for g, s in splits_named.items() if g in members))


def _stratum(rows: Sequence[dict[str, Any]], idx: Iterable[int], field: str | None) -> str:
    if not field:
        return ""
    values = Counter(str(_meta_dict(rows[i].get("meta")).get(field, "")) for i in idx)
    return min(values, key=lambda v: (-values[v], v))  # most common value; ties by name
