"""Crash consistency: kill -9 at chosen points of curate, export --overwrite and review load, then check what is
left (tests/crash_harness.py does the killing and the checking, all scenarios in one harness process).

After every kill the folder holds the old or the new complete run with a matching manifest, downstream reading
refuses a run output without one, and the review DB holds the items of before or after the load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: crash points per scenario: few, spread over the run's file-system changes (first and last included)
POINTS = 6
SCENARIOS = ("curate", "curate-default", "export", "load")


@pytest.mark.slow
def test_a_kill_at_any_point_leaves_the_old_or_the_new_complete_result(tmp_path):
    res = subprocess.run([sys.executable, str(REPO / "tests" / "crash_harness.py"), ",".join(SCENARIOS),
                          str(tmp_path), str(POINTS), "7"], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr[-3000:]
    results = {r["scenario"]: r for r in map(json.loads, res.stdout.strip().splitlines())}
    print("\n" + "\n".join(f"crash {name}: {r}" for name, r in results.items()))
    assert sorted(results) == sorted(SCENARIOS)
    for r in results.values():
        assert r["failures"] == [] and r["points"] == POINTS
    for name in ("curate", "export"):
        assert {"old", "new"} <= set(results[name]["found"])  # kills landed before and after the swap
    assert results["curate-default"]["refused_partial"] >= 1 and results["curate-default"]["accepted_finished"] >= 1
    assert results["load"]["killed_mid_run"] >= 1
