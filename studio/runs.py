"""Run folders and manifests: every command run leaves `manifest.json` recording what it read, did and wrote.

A manifest holds inputs (path + sha256), the resolved config, package version and git commit, timings,
outputs (path + sha256) and `counts` = {input, kept, dropped: {reason: n}, quarantined} where
input = kept + sum(dropped) + quarantined, always (checked before writing). Secrets never enter it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio import __version__
from studio.atomic import atomic_open, sha256_file
from studio.credentials import mask_url
from studio.workspace import Workspace

log = logging.getLogger("studio")

_SECRET_FLAG = re.compile(r"(key|token|password|secret)", re.I)
_SECRET_VALUE = re.compile(r"^(sk-|hf_|Bearer )")


class _MaskingFormatter(logging.Formatter):
    """Run logs never hold a URL's password, whichever library logged it."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_url(super().format(record))


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
    """Command line with values of secret-looking flags, and passwords in URLs, replaced by '***'."""
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
        out.append("***" if _SECRET_VALUE.match(arg) else mask_url(arg))
    return out


class Run:
    """One command run: its folder, log file and manifest.

    Use as a context manager; the manifest is written on exit (status "ok" or "failed") atomically.
    With a workspace, the manifest is also copied to `<workspace>/runs/<run_id>/` so `studio runs` finds it.
    """

    def __init__(self, kind: str, out_dir: str | Path | None = None, workspace: Workspace | None = None,
                 config: dict[str, Any] | None = None, publish_as: str | Path | None = None) -> None:
        """`publish_as`: the folder the run's folder will be moved to once complete (`studio.atomic.publish_dir`);
        the manifest then names its outputs there."""
        self.kind = kind
        self.publish_as = Path(publish_as) if publish_as is not None else None
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
        shown = path
        if self.publish_as is not None and path.resolve().is_relative_to(self.dir.resolve()):
            shown = self.publish_as / path.resolve().relative_to(self.dir.resolve())
        self.outputs.append({"path": str(shown), "sha256": sha256_file(path), "bytes": path.stat().st_size, **info})

    def time(self, name: str, seconds: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + seconds, 4)

    @property
    def final_dir(self) -> Path:
        """Where the run's folder ends up: its `publish_as`, else the folder it is written in."""
        return self.publish_as or self.dir

    def published(self) -> Run:
        """Point the run at its final folder once `studio.atomic.publish_dir` has moved it there."""
        self.dir, self.publish_as = self.final_dir, None
        return self

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
        if self.publish_as is not None:  # every path recorded inside the staging folder names the final folder
            text = json.dumps(data, ensure_ascii=False, default=str)
            for staged in {str(self.dir.resolve()), str(self.dir)}:
                text = text.replace(json.dumps(staged)[1:-1], json.dumps(str(self.publish_as))[1:-1])
            data = json.loads(text)
        with atomic_open(self.manifest_path) as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
            fh.write("\n")
        if self.workspace is not None:
            copy_dir = self.workspace.runs_dir / self.run_id
            final_dir = (self.publish_as or self.dir).resolve()
            if copy_dir.resolve() != final_dir:
                copy_dir.mkdir(parents=True, exist_ok=True)
                with atomic_open(copy_dir / "manifest.json") as fh:
                    json.dump({**data, "run_dir": str(final_dir)}, fh, indent=2, ensure_ascii=False, default=str)
                    fh.write("\n")
        return self.manifest_path

    # -- lifecycle
    def __enter__(self) -> Run:
        self._handler = logging.FileHandler(self.dir / "run.log", encoding="utf-8")
        self._handler.setFormatter(_MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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
                # into run.log only: the CLI prints the error itself, as one sentence on stderr
                if self._handler is not None:
                    self._handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, "run %s failed: %s",
                                                        (self.run_id, exc), None))
                self.extra["error"] = f"{exc_type.__name__}: {exc}"
                with atomic_open(self.dir / "manifest.failed.json") as fh:
                    json.dump(self.manifest(), fh, indent=2, ensure_ascii=False, default=str)
        finally:
            if self._handler is not None:
                logging.getLogger().removeHandler(self._handler)
                self._handler.close()


#: files every run folder may hold besides its listed outputs, and scratch folders a run leaves (Ray's temp folder)
RUN_FILES = ("manifest.json", "manifest.failed.json", "run.log")
RUN_SCRATCH = (".ray",)
_TEMP_FILE = re.compile(r"\..+\.tmp-\w+")


def _files_in(folder: Path) -> list[Path]:
    """Every file and symbolic link under `folder`, without following links."""
    found = []
    for root, dirs, files in os.walk(folder):
        found += [Path(root) / n for n in files]
        found += [Path(root) / d for d in dirs if (Path(root) / d).is_symlink()]
    return found


def _written_by_run(folder: Path, files: list[Path]) -> list[Path]:
    """The files under `folder` that its manifest does not account for: a listed output counts only with the
    sha256 the manifest recorded (a crafted or stale manifest cannot claim a file it does not describe)."""
    try:
        outputs = json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("outputs", [])
        listed = [(Path(str(o["path"])).parts, o.get("sha256")) for o in outputs]
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        listed = []
    foreign = []
    for f in files:
        rel = f.relative_to(folder).parts
        if rel[0] in RUN_SCRATCH:
            continue
        if f.is_symlink():
            foreign.append(f)
        elif (len(rel) == 1 and (rel[0] in RUN_FILES or _TEMP_FILE.fullmatch(rel[0]))) or any(
                parts[-len(rel):] == rel and sha == sha256_file(f) for parts, sha in listed if len(parts) >= len(rel)):
            continue
        else:
            foreign.append(f)
    return foreign


def claim_output_dir(out: str | Path, overwrite: bool) -> None:
    """Check that a command may put its run folder at `out`: a new or empty folder always; a used one only with
    `overwrite`, and only when every file in it is one the run recorded there wrote (its manifest lists it with
    the same sha256), so replacing it never deletes anything else. Raises StudioError saying why not."""
    from studio.errors import StudioError

    out = Path(out)
    if out.is_symlink():
        raise StudioError(f"output folder {out} is a symbolic link; name a real folder.")
    if not out.exists():
        return
    if not out.is_dir():
        raise StudioError(f"{out} is a file, not a folder; choose another output folder.")
    files = _files_in(out)
    if not files:
        return
    if not overwrite:
        hint = " or pass --overwrite to replace the run in it" if (out / "manifest.json").is_file() else ""
        raise StudioError(f"output folder {out} is not empty; choose a new folder{hint}.")
    foreign = _written_by_run(out, files)
    if foreign:
        names = ", ".join(str(f.relative_to(out)) for f in foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise StudioError(f"output folder {out} holds files its manifest does not account for ({names}); the studio "
                          "replaces only what it wrote: move them away or choose another folder.")


def check_run_output(path: str | Path, plain_folders: set[Path] | None = None) -> None:
    """Refuse to read a file from a run folder (one holding run.log or a manifest) unless that run finished and
    its manifest lists the file with the same sha256: a kill -9 can leave outputs without a manifest, or a
    manifest of another run beside them, and neither may pass downstream as a finished result.

    `plain_folders` (a set the caller keeps while reading many files) remembers the folders found to be no run
    folder, so a folder of many files is looked at once, not once per file."""
    from studio.errors import InputError

    path = Path(path)
    folder = path.parent
    if path.name in RUN_FILES or (plain_folders is not None and folder in plain_folders):
        return
    if not any((folder / name).exists() for name in RUN_FILES):
        if plain_folders is not None:
            plain_folders.add(folder)
        return
    problem = None
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        entry = next((o for o in manifest.get("outputs", []) if Path(str(o.get("path"))).name == path.name), None)
        if manifest.get("status") != "ok":
            problem = f"its run did not finish (status {manifest.get('status')!r})"
        elif entry is None:
            problem = "its run's manifest does not list it"
        elif entry.get("sha256") != sha256_file(path):
            problem = "it differs from what its run's manifest recorded (sha256)"
    except FileNotFoundError:
        problem = "its run folder has no manifest.json (the run that wrote it did not finish)"
    except (OSError, ValueError, AttributeError) as err:
        problem = f"its run's manifest is unreadable ({type(err).__name__})"
    if problem:
        raise InputError(f"{path} is not a finished run output: {problem}; rerun the command that makes it.")


@contextlib.contextmanager
def staged_output(out: str | Path, overwrite: bool) -> Iterator[Path]:
    """Build a run's folder beside `out` and put it in place only when complete: yields the folder to write
    in (give it to `Run(out_dir=..., publish_as=out)`). On success the new folder replaces `out` in one atomic
    step (`studio.atomic.publish_dir`); on an error or a crash `out` keeps what it held. `out` must pass
    `claim_output_dir` (new, empty, or with `overwrite` holding only what an earlier run wrote)."""
    import shutil

    from studio.atomic import publish_dir, staging_dir

    claim_output_dir(out, overwrite)
    staged = staging_dir(out)
    try:
        yield staged
        publish_dir(staged, out)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def manifest_beside(path: str | Path) -> dict[str, Any] | None:
    """The run manifest in the folder of `path` (the run that wrote that file), with its location as `_path`;
    None when there is none or it cannot be read. The one place that looks for "the manifest next to a file"."""
    candidate = Path(path).parent / "manifest.json"
    if Path(path).name == "manifest.json" or not candidate.is_file():
        return None
    try:
        data = json.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return {**data, "_path": str(candidate)} if isinstance(data, dict) else None


def _manifest_id_near(path: Path) -> str | None:
    """The run id of the manifest beside an input file (an upstream run's output), if any."""
    return (manifest_beside(path) or {}).get("run_id")


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

