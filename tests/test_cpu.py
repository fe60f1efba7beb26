"""`studio.cpu`: the thread count CPU-heavy steps take by default is the idle cores, never more than a scheduler
allows, and a machine whose cores are all busy gets one thread."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from studio.cpu import auto_threads, idle_cores


def test_an_asked_for_count_wins_and_a_schedulers_cap_bounds_the_automatic_one(monkeypatch):
    assert auto_threads(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert auto_threads(0) == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert 1 <= auto_threads(0) <= len(os.sched_getaffinity(0))


def test_every_core_busy_leaves_one_thread():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 4:
        pytest.skip(f"{len(cpus)} cores: keeping each busy for the check would cost this run too much")
    spin = "import os, sys, time\nos.sched_setaffinity(0, {int(sys.argv[1])})\nt = time.time()\nwhile time.time() - t < 5: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin, str(c)]) for c in cpus]
    try:
        import time

        time.sleep(0.5)  # the spinners are running
        assert idle_cores(0.5) == 1
    finally:
        for p in spinners:
            p.kill()
            p.wait()
