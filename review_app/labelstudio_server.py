"""Start and stop a local Label Studio server for users without one (and for the tests).

Label Studio pins many packages, so it lives in its own virtual environment, created on first use under
the studio cache (`pip install label-studio`, ~75 s and ~1 GB). The server is started exactly as
ENVIRONMENT.md describes: a non-interactive admin user with a legacy API token, sign-up disabled, no
version check, analytics or Sentry, bound to 127.0.0.1. Its URL, user, token and pid are written to
`<data-dir>/studio-labelstudio.json` (mode 0600), which `push`/`pull` read when no `--url` is given.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from studio.errors import StudioError
from studio.models import cache_dir

STATE_FILE = "studio-labelstudio.json"
DEFAULT_USER = "admin@studio.local"
LABEL_STUDIO_SPEC = os.environ.get("STUDIO_LABEL_STUDIO_SPEC", "label-studio")


def default_data_dir() -> Path:
    return cache_dir() / "labelstudio-data"


def venv_dir() -> Path:
    return Path(os.environ.get("STUDIO_LABEL_STUDIO_VENV") or cache_dir() / "labelstudio-venv")


def label_studio_exe() -> Path:
    return venv_dir() / "bin" / "label-studio"


def ensure_venv(echo=print) -> Path:
    """The Label Studio executable, creating its venv on first use."""
    exe = label_studio_exe()
    if exe.exists():
        return exe
    venv = venv_dir()
    echo(f"creating Label Studio's own environment in {venv} (first use only, ~1-2 minutes) …")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", LABEL_STUDIO_SPEC], check=True)
    except subprocess.CalledProcessError as err:
        shutil.rmtree(venv, ignore_errors=True)
        raise StudioError(f"installing Label Studio into {venv} failed ({err}); check that PyPI is reachable.") from None
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_state(data_dir: Path | None = None) -> dict | None:
    path = Path(data_dir or default_data_dir()) / STATE_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def health(url: str, timeout: float = 2.0) -> bool:
    import httpx

    try:
        r = httpx.get(f"{url}/health", timeout=timeout)
        return r.status_code == 200 and r.json().get("status") == "UP"
    except (httpx.HTTPError, ValueError):
        return False


def start(data_dir: Path | None = None, port: int | None = None, timeout: float = 300, echo=print) -> dict:
    """Start a server in the background (its own process session) and wait until /health is UP."""
    data_dir = Path(data_dir or default_data_dir()).resolve()
    state = read_state(data_dir)
    if state and _alive(state["pid"]) and health(state["url"]):
        echo(f"Label Studio is already running at {state['url']}")
        return state
    exe = ensure_venv(echo)
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # its database holds every task and annotation, and the admin's credentials
    # The legacy token only takes effect when the data dir is first created: keep the first one.
    previous = state or {}
    user = previous.get("username", DEFAULT_USER)
    password = previous.get("password") or secrets.token_urlsafe(12)
    token = previous.get("token") or secrets.token_hex(20)
    port = port or free_port()
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": user, "LABEL_STUDIO_PASSWORD": password,
        "LABEL_STUDIO_USER_TOKEN": token, "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true", "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false", "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",
    }
    log = open(data_dir / "server.log", "ab")
    proc = subprocess.Popen(
        [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)],
        env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    state = {"url": url, "pid": proc.pid, "port": port, "username": user, "password": password, "token": token,
             "data_dir": str(data_dir)}
    path = data_dir / STATE_FILE
    path.write_text(json.dumps(state, indent=2), encoding="utf-8")
    path.chmod(0o600)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StudioError(f"Label Studio exited during start-up (code {proc.returncode}); see {data_dir / 'server.log'}.")
        if health(url):
            return state
        time.sleep(1)
    stop(data_dir)
    raise StudioError(f"Label Studio did not answer on {url} within {timeout:.0f} s; see {data_dir / 'server.log'}.")


def stop(data_dir: Path | None = None) -> bool:
    """Stop the server started for `data_dir`; False when none was running."""
    data_dir = Path(data_dir or default_data_dir())
    state = read_state(data_dir)
    if not state or not _alive(state["pid"]):
        return False
    try:
        os.killpg(state["pid"], signal.SIGTERM)
    except OSError:
        return False
    for _ in range(100):
        if not _alive(state["pid"]):
            break
        try:
            os.waitpid(state["pid"], os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    else:
        os.killpg(state["pid"], signal.SIGKILL)
    return True
