"""The review app for browser tests: a real `streamlit run` server on a free port, headless Chromium's flags, and
the login every browser test goes through (one copy, used by the review, pairwise, dashboard and hostile-UI tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing; run scripts/install_system_deps.sh (as root) to install chromium")


@contextmanager
def review_app(db_url: str, cwd: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """The review app served from `db_url` (its base URL while the block runs), with the flags `studio review app`
    passes; fails the test with the server's output if it does not listen within 60 s."""
    from review_app.commands import STREAMLIT_FLAGS

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), **(extra_env or {}), "STUDIO_REVIEW_DB": db_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "review_app" / "app.py"), "--server.address",
         "127.0.0.1", "--server.port", str(port), *STREAMLIT_FLAGS],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd)
    deadline = time.time() + 60
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("streamlit did not start: " + proc.stdout.read().decode()[-2000:])
        time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def log_in(page, base: str, name: str, password: str, timeout_ms: int = 30_000) -> None:
    """Open the app and log in as `name` (waits for the login form: the first page of a fresh server is slow)."""
    page.goto(base)
    page.get_by_role("textbox", name="Name").wait_for(timeout=timeout_ms)
    page.get_by_role("textbox", name="Name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Log in").click()
