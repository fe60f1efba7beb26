"""Run folders and manifests: every command run leaves `manifest.json` recording what it read, did and wrote.

A manifest holds inputs (path + sha256), the resolved config, package version and git commit, timings,
outputs (path + sha256) and `counts` = {input, kept, dropped: {reason: n}, quarantined} where
input = kept + sum(dropped) + quarantined, always (checked before writing). Secrets never enter it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio import __version__
from studio.atomic import atomic_open, sha256_file
from studio.workspace import Workspace

log = logging.getLogger("studio")

_SECRET_FLAG = re.compile(r"(key|token|password|secret)", re.I)
_SECRET_VALUE = re.compile(r"^(sk-|hf_|Bearer )")


@dataclass
class Counts:
    """Row accounting for one run. `check()` enforces input = kept + dropped + quarantined."""

    input: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0

    def drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def check(self) -> None:
        total = self.kept + self.dropped_total + self.quarantined
        if total != self.input:
            raise AssertionError(
                f"row accounting does not add up: input {self.input} != kept {self.kept} + dropped "
                f"{self.dropped_total} + quarantined {self.quarantined}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "kept": self.kept, "dropped": dict(sorted(self.dropped.items())),
                "quarantined": self.quarantined}


def new_run_id(kind: str, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return f"{kind}-{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def git_commit() -> str | None:
    """The commit of the studio's own source tree, when it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def scrub_argv(argv: list[str]) -> list[str]:
    """Command line with values of secret-looking flags replaced by '***'."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        if arg.startswith("--") and _SECRET_FLAG.search(arg):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=***")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append("***" if _SECRET_VALUE.match(arg) else arg)
    return out


class Run:
    """One command run: its folder, log file and manifest.

    Use as a context manager; the manifest is written on exit (status "ok" or "failed") atomically.
    With a workspace, the manifest is also copied to `<workspace>/runs/<run_id>/` so `studio runs` finds it.
    """

    def __init__(self, kind: str, out_dir: str | Path | None = None, workspace: Workspace | None = None,
                 config: dict[str, Any] | None = None) -> None:
        self.kind = kind
        self.run_id = new_run_id(kind)
        self.workspace = workspace
        if out_dir is None:
            base = workspace.runs_dir if workspace else Path("runs")
            out_dir = base / self.run_id
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = config or {}
        self.counts = Counts()
        self.inputs: list[dict[str, Any]] = []
        self.outputs: list[dict[str, Any]] = []
        self.upstream: list[str] = []
        self.steps: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self._t0 = time.perf_counter()
        self._started = dt.datetime.now(dt.UTC)
        self._handler: logging.Handler | None = None
        self.status = "running"

    # -- recording
    def add_input(self, path: str | Path, **info: Any) -> None:
        path = Path(path)
        entry = {"path": str(path), "sha256": sha256_file(path) if path.is_file() else None, **info}
        self.inputs.append(entry)
        upstream = _manifest_id_near(path)
        if upstream and upstream not in self.upstream:
            self.upstream.append(upstream)

    def add_output(self, path: str | Path, **info: Any) -> None:
        path = Path(path)
        self.outputs.append({"path": str(path), "sha256": sha256_file(path), "bytes": path.stat().st_size, **info})

    def time(self, name: str, seconds: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + seconds, 4)

    @property
    def manifest_path(self) -> Path:
        return self.dir / "manifest.json"

    def manifest(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "status": self.status,
            "started_at": self._started.isoformat(timespec="seconds"),
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "studio_version": __version__,
            "git_commit": git_commit(),
            "python": sys.version.split()[0],
            "command": scrub_argv(sys.argv[1:]) if sys.argv and Path(sys.argv[0]).name == "studio" else None,
            "config": self.config,
            "inputs": self.inputs,
            "upstream_manifests": self.upstream,
            "counts": self.counts.to_dict(),
            "steps": self.steps,
            "timings": {**self.timings, "total_seconds": round(time.perf_counter() - self._t0, 3)},
            "outputs": self.outputs,
            **self.extra,
        }

    def write_manifest(self) -> Path:
        self.counts.check()
        data = self.manifest()
        with atomic_open(self.manifest_path) as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
            fh.write("\n")
        if self.workspace is not None:
            copy_dir = self.workspace.runs_dir / self.run_id
            if copy_dir.resolve() != self.dir.resolve():
                copy_dir.mkdir(parents=True, exist_ok=True)
                with atomic_open(copy_dir / "manifest.json") as fh:
                    json.dump({**data, "run_dir": str(self.dir.resolve())}, fh, indent=2, ensure_ascii=False, default=str)
                    fh.write("\n")
        return self.manifest_path

    # -- lifecycle
    def __enter__(self) -> Run:
        self._handler = logging.FileHandler(self.dir / "run.log", encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(self._handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
        log.info("run %s started in %s", self.run_id, self.dir)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.status = "ok" if exc_type is None else "failed"
        try:
            if exc_type is None:
                self.write_manifest()
            else:
                log.error("run %s failed: %s", self.run_id, exc)
                self.extra["error"] = f"{exc_type.__name__}: {exc}"
                with atomic_open(self.dir / "manifest.failed.json") as fh:
                    json.dump(self.manifest(), fh, indent=2, ensure_ascii=False, default=str)
        finally:
            if self._handler is not None:
                logging.getLogger().removeHandler(self._handler)
                self._handler.close()


def _manifest_id_near(path: Path) -> str | None:
    """The run id of the manifest beside an input file (an upstream run's output), if any."""
    candidate = path.parent / "manifest.json"
    if path.name != "manifest.json" and candidate.is_file():
        try:
            return json.loads(candidate.read_text(encoding="utf-8")).get("run_id")
        except (OSError, json.JSONDecodeError):
            return None
    return None


def list_runs(workspace: Workspace | None, root: str | Path | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """Manifests under `<workspace>/runs/*/manifest.json` (or `root`), newest first, one per run.

    A run whose folder is not `runs/<run_id>` (e.g. `studio curate --out runs/clean`) is found twice, in its
    folder and as the workspace copy (which has `run_dir`); the manifest in the run's own folder wins.
    """
    base = Path(root) if root else (workspace.runs_dir if workspace else Path("runs"))
    by_run: dict[str, dict[str, Any]] = {}
    if not base.is_dir():
        return []
    for path in sorted(base.glob("*/manifest.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if kind and data.get("kind") != kind:
            continue
        data["_path"] = str(path)
        run_id = data.get("run_id") or str(path)
        if run_id not in by_run or "run_dir" in by_run[run_id]:
            by_run[run_id] = data
    return sorted(by_run.values(), key=lambda m: m.get("started_at", ""), reverse=True)

