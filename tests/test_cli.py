"""The `studio` command: clear errors with exit code 2, light start-up, runs listing, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def studio(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studio_app.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", **(env or {})}, timeout=300)


def test_missing_path_is_one_sentence_and_exit_2(tmp_path):
    res = studio("curate", "nope.jsonl", "--steps", "normalize", "--out", "o", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == "error: nope.jsonl does not exist; check the path."
    assert "Traceback" not in res.stderr and not (tmp_path / "o").exists()


def test_empty_file_is_one_sentence_and_exit_2(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    res = studio("curate", "empty.jsonl", "--steps", "normalize", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == "error: empty.jsonl is empty; give a file with at least one record."


def test_help_does_not_import_heavy_libraries():
    code = ("import sys; from typer.testing import CliRunner; from studio_app.cli import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "heavy = [m for m in ('polars', 'torch', 'presidio_analyzer', 'ray', 'streamlit', 'transformers', 'spacy', 'sqlalchemy') if m in sys.modules]; "
            "print(','.join(heavy))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ""


def test_every_command_has_help_with_an_example():
    from typer.main import get_command

    from studio_app.cli import app

    group = get_command(app)
    for name, cmd in group.commands.items():
        assert cmd.help and len(cmd.help) > 40, f"`studio {name} --help` says too little"


def test_curate_then_export_then_runs_in_a_workspace(tmp_path):
    assert studio("init", "ws", cwd=tmp_path).returncode == 0
    ws = tmp_path / "ws"
    (ws / "in.jsonl").write_text(json.dumps({"prompt": "Q1", "completion": "A1"}) + "\n"
                                 + json.dumps({"prompt": "Q1", "completion": "A1"}) + "\n")
    res = studio("-q", "curate", "in.jsonl", "--steps", "normalize,exact_dedupe", "--out", "out", cwd=ws)
    assert res.returncode == 0, res.stderr
    assert "dropped: exact_duplicate" in res.stdout
    res = studio("-q", "export", "out/kept.parquet", "--format", "sharegpt", "--out", "train.jsonl", cwd=ws)
    assert res.returncode == 0, res.stderr
    assert json.loads((ws / "train.jsonl").read_text()) == {"conversations": [{"from": "human", "value": "Q1"}, {"from": "gpt", "value": "A1"}]}
    res = studio("runs", cwd=ws)
    assert res.returncode == 0
    assert "curate-" in res.stdout and "export-" in res.stdout
    export_manifest = next((ws / "runs").glob("export-*/manifest.json"))
    data = json.loads(export_manifest.read_text())
    curate_id = json.loads((ws / "out" / "manifest.json").read_text())["run_id"]
    assert data["upstream_manifests"] == [curate_id]
    assert data["counts"] == {"input": 1, "kept": 1, "dropped": {}, "quarantined": 0}


def test_secret_flags_are_scrubbed_from_recorded_command_lines():
    from studio.runs import scrub_argv

    assert scrub_argv(["synth", "--api-key", "sk-abc", "--model=x", "--token=t", "sk-zzz"]) == \
        ["synth", "--api-key", "***", "--model=x", "--token=***", "***"]
