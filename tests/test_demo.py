"""The main job, as a newcomer runs it: `studio demo` from a folder that is not the workspace, with no PII salt
in the environment. It must finish, show the fine-tuned model better than the base on held-out perplexity, and
print no library noise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_demo_runs_end_to_end_from_elsewhere_and_shows_a_real_gain_without_noise(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("STUDIO_PII_SALT", "STUDIO_WORKSPACE")}
    env |= {"PYTHONPATH": str(REPO), "COLUMNS": "160", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-m", "studio_app.cli", "demo", "--dir", str(tmp_path / "ws")],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert (tmp_path / "ws" / ".pii_salt").stat().st_mode & 0o077 == 0  # the workspace's own salt, owner-only
    perplexity = next(line for line in out.splitlines() if "held-out perplexity" in line)
    assert "(better" in perplexity, perplexity
    before, after = (float(x) for x in perplexity.split("│")[3].split("(")[0].split("→"))
    assert after < before
    # the pairwise stage feeds DPO pairs the base model does not already prefer, and DPO moves the preference
    rows = {line.split("│")[2].strip(): line.split("│")[3].strip() for line in out.splitlines() if line.count("│") >= 4}
    assert rows["pairwise items (reviewed vs cut after 2 sentences)"] == "16"
    assert float(rows["base model already prefers chosen (training pairs)"]) < 0.5
    before, after = (float(x) for x in rows["preference accuracy before → after (training pairs)"].split("(")[0].split("→"))
    assert after > before
    for noise in ("Loading weights", "FutureWarning", "INFO httpx", "Traceback", "WARNING kernels"):
        assert noise not in out, noise
