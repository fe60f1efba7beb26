"""Safe file operations: the demo never clears a folder it did not make, `export --overwrite` and
`curate --out --overwrite` remove only files their own manifest records, and a run output without its finished
manifest is refused downstream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.errors import StudioError
from studio.runs import check_run_output, claim_output_dir
from studio_app.demo import DEMO_MARK, demo_workspace, run_demo

REPO = Path(__file__).resolve().parent.parent


def studio(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studio_app.cli", "-q", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}, timeout=300)


def test_demo_refuses_a_workspace_it_did_not_make_and_leaves_it_untouched(tmp_path):
    mine = tmp_path / "claims"
    (mine / "runs").mkdir(parents=True)
    (mine / "studio.yaml").write_text("name: claims\n")
    (mine / "review.db").write_bytes(b"precious decisions")
    for fresh in (True, False):
        with pytest.raises(StudioError, match="was not made by `studio demo`"):
            run_demo(mine, fresh=fresh)
    assert (mine / "review.db").read_bytes() == b"precious decisions" and (mine / "runs").is_dir()


def test_demo_fresh_clears_only_its_own_workspace_entries(tmp_path):
    ws = demo_workspace(tmp_path / "demo", fresh=True)
    assert (ws.root / DEMO_MARK).is_file()
    (ws.root / "review.db").write_bytes(b"old demo db")
    (ws.root / "my-notes.txt").write_text("added by me")
    demo_workspace(tmp_path / "demo", fresh=True)
    assert not (ws.root / "review.db").exists() and (ws.root / "my-notes.txt").read_text() == "added by me"
    assert (ws.root / "studio.yaml").is_file() and (ws.root / DEMO_MARK).is_file()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A workspace with 12 accepted items and one export in exp/ (shared: each test uses its own folders)."""
    root = tmp_path_factory.mktemp("trust")
    assert studio("init", "ws", cwd=root).returncode == 0
    ws = root / "ws"
    with open(ws / "in.jsonl", "w") as fh:
        for i in range(12):
            fh.write(json.dumps({"prompt": f"Question {i}?", "completion": f"Answer {i}."}) + "\n")
    for args in (["review", "load", "in.jsonl"], ["review", "auto", "--accept", "origin == 'real'", "--name", "all"],
                 ["export", "--out", "exp"]):
        res = studio(*args, cwd=ws)
        assert res.returncode == 0, res.stderr
    return ws


def test_export_overwrite_never_deletes_what_a_crafted_manifest_names_outside_or_inside_the_folder(exported):
    outside = exported.parent / "victim.txt"
    outside.write_text("not the studio's")
    manifest = json.loads((exported / "exp" / "manifest.json").read_text())
    manifest["outputs"].append({"path": str(outside), "sha256": "0" * 64})
    manifest["outputs"].append({"path": "../../victim.txt", "sha256": "0" * 64})
    (exported / "exp" / "manifest.json").write_text(json.dumps(manifest))
    (exported / "exp" / "notes.md").write_text("a user's file in the export folder")
    res = studio("export", "--out", "exp", "--overwrite", "--seed", "3", cwd=exported)
    assert res.returncode == 2 and "does not account for (notes.md)" in res.stderr
    assert (exported / "exp" / "notes.md").exists() and outside.read_text() == "not the studio's"
    (exported / "exp" / "notes.md").unlink()
    res = studio("export", "--out", "exp", "--overwrite", "--seed", "3", cwd=exported)
    assert res.returncode == 0, res.stderr
    assert outside.read_text() == "not the studio's"
    assert json.loads((exported / "exp" / "manifest.json").read_text())["config"]["seed"] == 3
    claim_output_dir(exported / "exp", overwrite=True)  # the new folder holds only what its manifest lists


def test_curate_out_refuses_a_used_folder_unless_overwrite(exported):
    (exported / "mine").mkdir()
    (exported / "mine" / "keep.txt").write_text("x")
    res = studio("curate", "in.jsonl", "--steps", "normalize", "--out", "mine", cwd=exported)
    assert res.returncode == 2 and "is not empty" in res.stderr
    res = studio("curate", "in.jsonl", "--steps", "normalize", "--out", "mine", "--overwrite", cwd=exported)
    assert res.returncode == 2 and "keep.txt" in res.stderr and (exported / "mine" / "keep.txt").exists()


def test_a_kept_parquet_without_its_finished_manifest_is_refused_downstream(exported):
    res = studio("curate", "in.jsonl", "--steps", "normalize", "--out", "run", "--no-report", cwd=exported)
    assert res.returncode == 0, res.stderr
    kept = exported / "run" / "kept.parquet"
    check_run_output(kept)
    (exported / "run" / "manifest.json").rename(exported / "run" / "manifest.bak")  # as a kill -9 before it leaves it
    for args in (["review", "load", "run/kept.parquet"], ["export", "run/kept.parquet", "--out", "x.jsonl"],
                 ["curate", "run/kept.parquet", "--steps", "normalize"]):
        res = studio(*args, cwd=exported)
        assert res.returncode == 2 and "not a finished run output" in res.stderr, (args, res.stderr)
    (exported / "run" / "manifest.bak").rename(exported / "run" / "manifest.json")
    kept.write_bytes(kept.read_bytes() + b"\0")  # a file the manifest does not describe
    res = studio("review", "load", "run/kept.parquet", cwd=exported)
    assert res.returncode == 2 and "differs from what its run's manifest recorded" in res.stderr
