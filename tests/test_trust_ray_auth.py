"""A local Ray cluster started by the studio accepts only clients holding its random token: another process on
the machine that tries to join it with no token or a wrong one cannot run code there."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DRIVER = """
import os, subprocess, sys, pathlib
import ray
from curate.ray_engine import connect
connect(None, pathlib.Path(sys.argv[1]))
address = ray.get_runtime_context().gcs_address
intruder = "import ray, sys; ray.init(address=sys.argv[1]); print('RAN', ray.get(ray.remote(lambda: 7).remote()))"
for mode, token in (("disabled", None), ("token", "0" * 64)):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    env["RAY_AUTH_MODE"] = mode
    if token:
        env["RAY_AUTH_TOKEN"] = token
    try:
        res = subprocess.run([sys.executable, "-c", intruder, address], env=env, capture_output=True, text=True,
                             timeout=90)
        print(mode, "RAN" in res.stdout)
    except subprocess.TimeoutExpired:
        print(mode, False)
print("token mode", os.environ.get("RAY_AUTH_MODE"))
ray.shutdown()
"""


@pytest.mark.slow
def test_a_local_cluster_refuses_clients_without_its_token():
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    with tempfile.TemporaryDirectory(prefix="ray", dir="/tmp") as short:  # Ray's socket paths must stay short
        res = subprocess.run([sys.executable, "-c", DRIVER, short], capture_output=True, text=True, timeout=400,
                             env={**env, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.strip().splitlines()
    assert "disabled False" in lines and "token False" in lines, res.stdout
    assert "token mode token" in lines
