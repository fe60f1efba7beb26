"""Atomic writes: a crash mid-write leaves the previous output intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio.atomic import atomic_open


def test_an_exception_mid_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "kept.jsonl"
    target.write_text("previous\n")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("half of the new")
        raise RuntimeError("crash")
    assert target.read_text() == "previous\n"
    assert list(tmp_path.iterdir()) == [target]


def test_kill_9_mid_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("previous\n")
    marker = tmp_path / "writing"
    code = (
        "import sys, time\n"
        "from studio.atomic import atomic_open\n"
        f"with atomic_open({str(target)!r}) as fh:\n"
        "    fh.write('x' * 100000); fh.flush()\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    deadline = time.time() + 30
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "writer never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert target.read_text() == "previous\n"


def test_successful_write_replaces_the_file(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with atomic_open(target) as fh:
        fh.write("new")
    assert target.read_text() == "new"
