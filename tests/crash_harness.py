"""kill -9 at chosen points of a studio command, then check what it left (driven by tests/test_trust_crash.py).

`python tests/crash_harness.py SCENARIO[,SCENARIO...] WORKDIR POINTS SEED` prints one JSON line per scenario: how
many crash points were tried, what was found after each, and every broken invariant. The harness imports the studio once and forks one
child per crash point (this parent never runs Polars, SQLite or a thread, so forking it is safe). A child counts
the file-system changes it makes (open for writing, os.open with a create flag, fsync, rename/replace, unlink,
mkdir, rmtree, the atomic folder exchange) and SIGKILLs itself just before the k-th one; `review load` writes
through SQLite's C code, so its children are killed after a random delay instead.

Scenarios and what must hold after every kill:
- `curate`: `curate --out O --overwrite` over an earlier run: O is the old or the new run, complete (manifest
  status ok, every listed output present with its sha256, nothing else in O), and readable downstream.
- `curate-default`: `curate` into a new run folder under runs/: a folder the kill left without its manifest is
  refused by the downstream check (`studio.runs.check_run_output`), a finished one passes it.
- `export`: `export --out E --overwrite`: E is the old or the new export, complete as above.
- `load`: `review load`: the database holds the items of before or of after the load (SQLite integrity ok), and
  loading again afterwards adds exactly what was missing.
"""

from __future__ import annotations

import builtins
import json
import os
import random
import shutil
import signal
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# imported before forking so the children do not pay for them; never used in this process
import alembic.command  # noqa: E402,F401
import alembic.config  # noqa: E402,F401
import alembic.runtime.migration  # noqa: E402,F401
import krippendorff  # noqa: E402,F401
import polars  # noqa: E402,F401

import curate.pipeline  # noqa: E402,F401
import review_app.export  # noqa: E402,F401
import review_app.recorded  # noqa: E402,F401
import studio.atomic  # noqa: E402
from studio.errors import InputError, StudioError  # noqa: E402
from studio.runs import check_run_output, claim_output_dir  # noqa: E402
from studio_app.cli import app  # noqa: E402

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _arm(kill_at: int, count_file: Path) -> None:
    """In a child: wrap every file-system change; SIGKILL just before the `kill_at`-th (0: never)."""
    seen = 0

    def gate(orig, is_change=lambda *a, **kw: True):
        def wrapped(*args, **kwargs):
            nonlocal seen
            if is_change(*args, **kwargs):
                seen += 1
                if seen == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return orig(*args, **kwargs)
        return wrapped

    def writes(file, mode="r", *a, **kw):
        return any(c in mode for c in "wax+")

    builtins.open = gate(builtins.open, writes)
    os.open = gate(os.open, lambda path, flags, *a, **kw: bool(flags & WRITE_FLAGS))
    for name in ("fsync", "replace", "rename", "unlink", "mkdir", "rmdir"):
        setattr(os, name, gate(getattr(os, name)))
    shutil.rmtree = gate(shutil.rmtree)
    studio.atomic._exchange = gate(studio.atomic._exchange)
    import atexit

    atexit.register(lambda: count_file.write_text(str(seen)))


def run_child(args: list[str], cwd: Path, kill_at: int = 0, kill_after: float | None = None,
              timeout: float = 120) -> tuple[int, int]:
    """Run `studio ARGS` in a forked child; returns (exit status or -9 when killed, file-system changes made)."""
    count_file = cwd / ".crash-count"
    count_file.unlink(missing_ok=True)
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.chdir(cwd)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)  # result tables are not the harness's output
            _arm(kill_at, count_file)
            app(["-q", *args], standalone_mode=False)
        except StudioError as err:
            print(f"child error: {err}", file=sys.stderr)
            code = 2
        except BaseException as err:  # noqa: BLE001 - any other failure is reported as exit 1
            print(f"child crashed: {type(err).__name__}: {err}", file=sys.stderr)
            code = 1
        sys.stdout.flush()
        sys.exit(code)
    deadline = time.monotonic() + timeout
    if kill_after is not None:
        time.sleep(kill_after)
        os.kill(pid, signal.SIGKILL)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise RuntimeError(f"studio {' '.join(args)} hung")
        time.sleep(0.01)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    changes = int(count_file.read_text()) if count_file.exists() else -1
    return code, changes


def complete_run(folder: Path) -> str:
    """The run id of the complete run in `folder`; raises AssertionError describing what is broken."""
    from studio.atomic import sha256_file

    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "ok", f"status {manifest['status']}"
    for out in manifest["outputs"]:
        path = Path(out["path"])
        path = path if path.is_absolute() else folder.parent / path  # the children run in the folder's parent
        assert path.is_file(), f"listed output {out['path']} is missing"
        assert sha256_file(path) == out["sha256"], f"{out['path']} differs from its manifest"
    claim_output_dir(folder, overwrite=True)  # nothing in the folder that its manifest does not account for
    return manifest["run_id"]


def make_inputs(work: Path, n: int, tag: str) -> Path:
    path = work / f"in_{tag}.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"prompt": f"Question {tag} {i}: how do I fix item {i}?",
                                 "completion": f"Answer {tag} {i}: do step {i} then step {i + 1}."}) + "\n")
    return path


def points_for(changes: int, n: int, rng: random.Random) -> list[int]:
    """`n` crash points spread over 1..changes (the first and last included)."""
    if changes <= n:
        return list(range(1, changes + 1))
    return sorted({1, changes, *rng.sample(range(2, changes), n - 2)})


def scenario_curate(work: Path, n: int, rng: random.Random) -> dict:
    inputs = [make_inputs(work, 40 + 10 * i, f"v{i}").name for i in range(3)]
    steps = ["--steps", "normalize,exact_dedupe", "--no-report"]
    assert run_child(["curate", inputs[0], *steps, "--out", "o"], work)[0] == 0
    run_ids = {complete_run(work / "o")}
    _, changes = run_child(["curate", inputs[1], *steps, "--out", "o", "--overwrite"], work)
    run_ids.add(complete_run(work / "o"))
    failures, found = [], []
    points = points_for(changes, n, rng)
    for i, k in enumerate(points):
        code, _ = run_child(["curate", inputs[i % 3], *steps, "--out", "o", "--overwrite"], work, kill_at=k)
        try:
            run_id = complete_run(work / "o")
            check_run_output(work / "o" / "kept.parquet")
            found.append("old" if run_id in run_ids else "new")
            run_ids.add(run_id)
        except (AssertionError, OSError, ValueError, StudioError) as err:
            failures.append(f"kill before change {k}: {err}")
    return {"changes": changes, "points": len(points), "found": found, "failures": failures}


def scenario_curate_default(work: Path, n: int, rng: random.Random) -> dict:
    (work / "studio.yaml").write_text("name: crash\n")
    (work / "runs").mkdir()
    inp = make_inputs(work, 60, "d").name
    steps = ["--steps", "normalize,exact_dedupe", "--no-report"]
    _, changes = run_child(["curate", inp, *steps], work)
    points = points_for(changes, n, rng)
    for k in points:
        run_child(["curate", inp, *steps], work, kill_at=k)
    failures, refused, passed = [], 0, 0
    for kept in sorted((work / "runs").glob("*/kept.parquet")):
        finished = (kept.parent / "manifest.json").is_file()
        try:
            check_run_output(kept)
            passed += 1
            if not finished:
                failures.append(f"{kept} has no manifest but was accepted")
        except InputError:
            refused += 1
            if finished:
                failures.append(f"{kept} is a finished run output but was refused")
    return {"changes": changes, "points": len(points), "refused_partial": refused, "accepted_finished": passed,
            "failures": failures}


def scenario_export(work: Path, n: int, rng: random.Random) -> dict:
    (work / "studio.yaml").write_text("name: crash\n")
    inp = make_inputs(work, 60, "e").name
    for args in (["review", "load", inp], ["review", "auto", "--accept", "origin == 'real'", "--name", "all"],
                 ["export", "--out", "exp", "--seed", "0"]):
        assert run_child(args, work)[0] == 0, args
    run_ids = {complete_run(work / "exp")}
    _, changes = run_child(["export", "--out", "exp", "--overwrite", "--seed", "1"], work)
    run_ids.add(complete_run(work / "exp"))
    failures, found = [], []
    points = points_for(changes, n, rng)
    for i, k in enumerate(points):
        run_child(["export", "--out", "exp", "--overwrite", "--seed", str(2 + i)], work, kill_at=k)
        try:
            run_id = complete_run(work / "exp")
            check_run_output(work / "exp" / "train.jsonl")
            found.append("old" if run_id in run_ids else "new")
            run_ids.add(run_id)
        except (AssertionError, OSError, ValueError, StudioError) as err:
            failures.append(f"kill before change {k}: {err}")
    return {"changes": changes, "points": len(points), "found": found, "failures": failures}


def _items(db: Path) -> tuple[int, str]:
    with sqlite3.connect(db) as conn:
        count = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    return count, check


def scenario_load(work: Path, n: int, rng: random.Random) -> dict:
    (work / "studio.yaml").write_text("name: crash\n")
    files = [make_inputs(work, 30, f"l{i}").name for i in range(n)]
    t0 = time.monotonic()
    assert run_child(["review", "load", make_inputs(work, 30, "first").name], work)[0] == 0
    full = time.monotonic() - t0
    failures, killed = [], 0
    for f in files:
        before, _ = _items(work / "review.db")
        code, _ = run_child(["review", "load", f], work, kill_after=rng.uniform(0, full))
        killed += code == -signal.SIGKILL
        after, check = _items(work / "review.db")
        if check != "ok" or after not in (before, before + 30):
            failures.append(f"{f}: {before} -> {after} items, integrity {check}")
        assert run_child(["review", "load", f], work)[0] == 0
        again, _ = _items(work / "review.db")
        if again != before + 30:
            failures.append(f"{f}: loading again gave {again} items, not {before + 30}")
    return {"points": len(files), "killed_mid_run": killed, "full_run_seconds": round(full, 2), "failures": failures}


SCENARIOS = {"curate": scenario_curate, "curate-default": scenario_curate_default, "export": scenario_export,
             "load": scenario_load}

if __name__ == "__main__":
    names, work, points, seed = sys.argv[1].split(","), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    for name in names:
        (work / name).mkdir(parents=True, exist_ok=True)
        result = SCENARIOS[name](work / name, points, random.Random(seed))
        print(json.dumps({"scenario": name, **result}), flush=True)
