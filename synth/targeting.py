"""Aim a synth run at a skew the curate audit found: more rows about the group a source under-represents.

The curate report's bias audit records each representation skew in the run manifest (`audit.skews`: where,
which axis, the side over- and the side under-represented, the figures). `studio synth --target-skew RUN`
reads them, takes the largest (or the one where `--target-group` is under-represented) and:

1. seeds the generator with the kept rows of the skewed group (by default those that mention the
   over-represented side: they carry the skew), rewritten by counterfactual data augmentation (every term of
   one side swapped for its counterpart, e.g. "my wife ... she" → "my husband ... he"; Lu et al. 2018), so a
   paraphrase or a new task built on them is about the under-represented group; each seed keeps its own id,
   so `seed_ids` still names the real row;
2. adds one line of guidance to every prompt naming the group (`Feedback.focus`);
3. drops, as `off_target`, a generated example that does not name the group at least once and more often
   than the other side: such a row would not move the skew (and, as `echoed_guidance`, one that copies the
   guidance line, whose example words would otherwise count);
4. records the finding (audit run, axis, group, figures) in the synth manifest (`target_skew`) and in each
   example's meta (`skew_target`), so `studio lineage` and the next audit can tell what it was for.

This module knows no term list of its own and never imports curate: the command layer passes the audit's
(`curate.bias_audit.TERMS` and `COUNTERPARTS`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import StudioError
from studio.runs import list_runs
from studio.workspace import Workspace
from synth.generators.base import Candidate, ChatFn, Generator, Redactor

#: the same words the audit counts: lowercase letters with an optional apostrophe part ("she's")
WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
#: how many of the group's words the prompt guidance names as examples
GUIDANCE_WORDS = 6
#: an edge-cases topic from a seed request that names no one: its first this many words
TOPIC_WORDS = 30


@dataclass
class SkewTarget:
    """One audit finding to aim at, with the words of both sides of its axis."""

    finding: dict[str, Any]
    """audit_run, audit_manifest, group_by, group, axis, over, under, mentions, share, rest_share, p_value, flag."""
    words: tuple[str, ...]
    """Terms of the under-represented side (the target group)."""
    other_words: tuple[str, ...]
    """Terms of the over-represented side."""
    counterparts: dict[str, str] = field(default_factory=dict)
    """Term → its counterpart on the other side (empty for an axis without pairs, e.g. age)."""

    @property
    def group(self) -> str:
        return self.finding["under"]

    @property
    def axis(self) -> str:
        return self.finding["axis"]

    def counts(self, text: str) -> tuple[int, int]:
        """(mentions of the target group, mentions of the other side) in `text`."""
        words = WORD.findall(text.lower())
        target, other = set(self.words), set(self.other_words)
        return sum(w in target for w in words), sum(w in other for w in words)

    def on_target(self, text: str) -> bool:
        target, other = self.counts(text)
        return target > 0 and target > other

    def swap(self, text: str) -> str:
        """`text` with every term of the axis replaced by its counterpart, keeping a leading capital."""
        if not self.counterparts:
            return text

        def one(m: re.Match[str]) -> str:
            word = m.group(0)
            new = self.counterparts[word.lower()]
            return new.capitalize() if word[0].isupper() else new

        pattern = r"\b(" + "|".join(sorted(map(re.escape, self.counterparts), key=len, reverse=True)) + r")\b"
        return re.sub(pattern, one, text, flags=re.IGNORECASE)

    def counterfactual(self, row: dict[str, Any]) -> dict[str, Any]:
        """`row` with every turn swapped; it keeps its id, so lineage (`seed_ids`) names the real row."""
        return {**row, "messages": [{**m, "content": self.swap(m["content"])} for m in row["messages"]]}

    def guidance(self) -> str:
        """The line every prompt gets: which group the example must be about, with example words."""
        return (f"The person in it must be {self.group} ({self.axis}): write about them with words such as "
                f"{', '.join(self.words[:GUIDANCE_WORDS])}.")

    def echoes_guidance(self, text: str) -> bool:
        """Whether `text` repeats the guidance line (a small model copies it): its word list would count as
        naming the group without the example being about anyone."""
        lowered = " ".join(text.lower().split())
        return ", ".join(self.words[:GUIDANCE_WORDS]) in lowered or f"must be {self.group} ({self.axis})" in lowered

    def lineage(self) -> dict[str, Any]:
        """What each generated example's meta keeps: the finding in short."""
        f = self.finding
        return {"audit_run": f["audit_run"], "axis": f["axis"], "group": f["under"], "in": f"{f['group_by']} {f['group']}"}


# ----------------------------------------------------------------------------------- reading the audit


def find_audit_manifest(target: Path | None, workspace: Workspace | None) -> tuple[dict[str, Any], Path]:
    """The curate manifest named by `--target-skew` (a run folder, its manifest.json, or a run id of the
    workspace), or, without one, the workspace's newest curate run that recorded skews."""
    if target is None:
        if workspace is None:
            raise StudioError("--target-group needs an audit to aim at: name the curate run with --target-skew RUN "
                              "(its folder or manifest.json), or run inside the workspace that holds it.")
        for m in list_runs(workspace, kind="curate"):
            if m.get("status") == "ok" and (m.get("audit") or {}).get("skews"):
                return m, Path(m["_path"])
        raise StudioError(f"no curate run in {workspace.runs_dir} recorded a skew in its audit; run `studio curate` "
                          "with the report on, or name a run with --target-skew.")
    path = Path(target)
    if not path.exists() and workspace is not None and (workspace.runs_dir / str(target)).is_dir():
        path = workspace.runs_dir / str(target)
    if path.is_dir():
        path = path / "manifest.json"
    if not path.is_file():
        raise StudioError(f"--target-skew {target}: no manifest.json there; name a curate run folder, its "
                          "manifest.json, or a curate run id of this workspace.")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StudioError(f"--target-skew {path}: the manifest cannot be read ({type(err).__name__}); name a "
                          "finished curate run.") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "curate":
        kind = manifest.get("kind") if isinstance(manifest, dict) else None
        raise StudioError(f"--target-skew {path}: this is {'a ' + str(kind) if kind else 'not a'} run's manifest, not "
                          "a curate run's; name the curate run whose report flagged the skew.")
    if manifest.get("status") != "ok":
        raise StudioError(f"--target-skew {path}: that curate run did not finish (status {manifest.get('status')!r}); "
                          "rerun it.")
    return manifest, path


def pick_finding(manifest: dict[str, Any], path: Path, terms: dict[str, dict[str, tuple[str, ...]]],
                 group: str | None = None, axis: str | None = None) -> dict[str, Any]:
    """The largest skew of the manifest's audit, or the largest where `group` (of `axis`) is under-represented."""
    if axis is not None and axis not in terms:
        raise StudioError(f"--target-axis {axis}: unknown axis; choose one of {', '.join(terms)}.")
    if group is not None:
        axes = [a for a, sides in terms.items() if group in sides and (axis is None or a == axis)]
        if not axes:
            known = "; ".join(f"{', '.join(sides)} ({a})" for a, sides in terms.items() if axis is None or a == axis)
            raise StudioError(f"--target-group {group}: unknown group{f' for axis {axis}' if axis else ''}; "
                              f"choose one of {known}.")
        axis = axes[0]
    audit = manifest.get("audit")
    run = manifest.get("run_id", path.parent.name)
    if not audit or "skews" not in audit:
        raise StudioError(f"--target-skew {path}: curate run {run} recorded no bias audit with skew figures (it ran "
                          "with --no-report or on an older studio); rerun `studio curate` with the report on.")
    found = audit["skews"]
    if not found:
        raise StudioError(f"--target-skew {path}: the audit of curate run {run} flagged no skew (nothing crosses "
                          "the thresholds in curate/bias_audit.py), so there is nothing to aim at.")
    fitting = [f for f in found if (axis is None or f["axis"] == axis) and (group is None or f["under"] == group)]
    if not fitting:
        flagged = "; ".join(f"{f['under']} under-represented in {f['group_by']} {f['group']}" for f in found)
        wanted = f"{group} is under-represented" if group else f"on axis {axis}"
        raise StudioError(f"--target-group/--target-axis: the audit of curate run {run} flagged no skew where "
                          f"{wanted} (it flagged: {flagged}); choose one of those, or drop the option to take the largest.")
    return {"audit_run": run, "audit_manifest": str(path), **fitting[0]}


def make_target(finding: dict[str, Any], terms: dict[str, dict[str, tuple[str, ...]]],
                counterparts: dict[str, dict[str, str]]) -> SkewTarget:
    sides = terms[finding["axis"]]
    return SkewTarget(finding, tuple(sides[finding["under"]]), tuple(sides[finding["over"]]),
                      dict(counterparts.get(finding["axis"], {})))


def group_label(row: dict[str, Any], group_by: str) -> str:
    """The audit's group of one kept row: its origin, its source file's name, or its split (meta.split)."""
    if group_by == "origin":
        return str(row.get("origin") or "(none)")
    if group_by == "source file":
        return re.sub(r"^.*/", "", re.sub(r":\d+$", "", str(row.get("source") or "")))
    if group_by == "split":
        try:
            return str(json.loads(row.get("meta") or "{}").get("split") or "(none)")
        except (TypeError, json.JSONDecodeError):
            return "(none)"
    raise StudioError(f"the audit grouped rows by {group_by!r}, which `studio synth --target-skew` cannot select; "
                      "aim at a skew by origin, source file or split.")


def kept_output(manifest: dict[str, Any], path: Path) -> Path:
    """The curate run's kept.parquet, where the manifest says it wrote it (or beside the manifest)."""
    listed = [Path(o["path"]) for o in manifest.get("outputs", []) if Path(str(o.get("path"))).name == "kept.parquet"]
    for candidate in [path.parent / "kept.parquet", *listed, *[Path(manifest.get("run_dir", "")) / "kept.parquet"]]:
        if candidate.is_file():
            return candidate
    raise StudioError(f"--target-skew {path}: the run's kept.parquet is gone, so there are no rows of the skewed "
                      "group to seed from; name seed files after the generator instead.")


def seed_rows(rows: list[dict[str, Any]], target: SkewTarget) -> list[dict[str, Any]]:
    """The rows of the skewed group: those mentioning the over-represented side when any do (they carry the
    skew), else all of them."""
    f = target.finding
    mine = [r for r in rows if group_label(r, f["group_by"]) == str(f["group"])]
    if not mine:
        raise StudioError(f"--target-skew {f['audit_manifest']}: none of the given rows belongs to {f['group_by']} "
                          f"{f['group']}; seed from that curate run's kept.parquet (name no input files).")
    return [r for r in mine if target.counts(_text(r))[1] > 0] or mine


def topics(rows: list[dict[str, Any]], target: SkewTarget) -> list[str]:
    """edge-cases categories from (rewritten) seed rows: the sentences of each request that name the target
    group, or else its first TOPIC_WORDS words."""
    out = []
    for r in rows:
        user = " ".join(next((m["content"] for m in r["messages"] if m["role"] == "user"), "").split())
        naming = [x for x in re.split(r"(?<=[.!?])\s+", user) if target.counts(x)[0]]
        topic = " ".join(naming) if naming else " ".join(user.split()[:TOPIC_WORDS])
        if topic:
            out.append(topic)
    return list(dict.fromkeys(out))


def _text(row: dict[str, Any]) -> str:
    return "\n".join(m["content"] for m in row["messages"])


def skew_moved(seeds: list[dict[str, Any]], kept: list[dict[str, Any]], target: SkewTarget) -> dict[str, Any]:
    """Mentions of the target group and of the other side, in the seed rows as they were and in the kept rows."""

    def tally(rows: list[dict[str, Any]]) -> dict[str, Any]:
        t = o = 0
        for r in rows:
            a, b = target.counts(_text(r))
            t, o = t + a, o + b
        return {"rows": len(rows), target.group: t, target.finding["over"]: o,
                "share": round(t / (t + o), 3) if t + o else None}

    return {"seeds": tally(seeds), "generated": tally(kept)}


class AimedGenerator(Generator):
    """Any generator aimed at a `SkewTarget`: each candidate's meta names the finding, and a finished example that
    does not name the target group (at least once, and more than the other side) is dropped as `off_target`, one
    that repeats the guidance line as `echoed_guidance`."""

    def __init__(self, inner: Generator, target: SkewTarget) -> None:
        super().__init__(inner.prompts, inner.settings, inner.feedback)
        self.inner = inner
        self.target = target
        self.name = inner.name  # type: ignore[misc] # rows keep the real generator's name

    async def generate(self, chat: ChatFn, indices: list[int]) -> list[Candidate]:
        cands = await self.inner.generate(chat, indices)
        for cand in cands:
            cand.meta["skew_target"] = self.target.lineage()
            text = "\n".join(m["content"] for m in cand.messages or [])
            if cand.ok and self.target.echoes_guidance(text):
                cand.drop("echoed_guidance")
            elif cand.ok and not self.target.on_target(text):
                cand.drop("off_target")
        return cands

    def redact_inputs(self, redactor: Redactor) -> None:
        self.inner.redact_inputs(redactor)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "skew_target": self.target.lineage()}
