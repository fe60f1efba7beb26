"""Canary scan: plant a database password, an API key and personal data, run the studio's commands against real
parts (PostgreSQL, the llama.cpp server behind a recording proxy, Label Studio), then grep everything they
left or sent for the canaries: every file in the workspace and the cache, every command's output, the tasks in
Label Studio and every request the LLM endpoints received.

The raw input file (the user's own data) and the scratch review DB that `labelstudio push` loads it into are the
only places the personal data may stay. The API key may reach only the endpoint it belongs to, and only in its
Authorization header.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from appserver import free_port
from synth_fault_proxy import FaultProxy
from test_labelstudio import ls  # noqa: F401 - the module's running Label Studio
from test_review_postgres import pg_url  # noqa: F401 - the module's PostgreSQL server
from test_synth import llama_url  # noqa: F401 - the session's llama.cpp server

REPO = Path(__file__).resolve().parent.parent
#: the console script as users run it (manifests record its command line), else the module
_SCRIPT = Path(sys.executable).parent / "studio"
STUDIO = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "studio_app.cli"]
DB_PASSWORD = "pgCanaryPw7f3e"
API_KEY = "sk-canaryKey5d1c9e0b"
PII = ["Maria Lopez", "536-90-4399", "maria.canary7@examplemail.com", "415-555-0132"]
CHATS = [
    ("Hi, I am Maria Lopez and my tent pole snapped. My SSN is 536-90-4399 if you need it.",
     "Sorry to hear that, Maria Lopez. We will ship a replacement pole today."),
    ("Please email me at maria.canary7@examplemail.com or call 415-555-0132 about my refund.",
     "We will email maria.canary7@examplemail.com within two days."),
    ("How long does the warranty on the trail stove last?", "The trail stove has a two-year warranty."),
    ("Can I return boots after wearing them outside?", "Boots worn outside can be returned within 30 days."),
]


def planted(text: str) -> list[str]:
    return [c for c in (DB_PASSWORD, API_KEY, *PII) if c in text]


@pytest.mark.slow
def test_no_canary_leaks_into_files_outputs_label_studio_or_llm_requests(tmp_path, pg_url, llama_url, ls):  # noqa: F811
    state, ls_client = ls
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
                           + "\n" for q, a in CHATS))
    db = pg_url.replace("postgres@", f"postgres:{DB_PASSWORD}@")  # the test server trusts any password
    ws, cache = tmp_path / "ws", tmp_path / "cache"
    outputs: list[tuple[str, str]] = []  # (command, what it printed)
    with FaultProxy(llama_url) as llm, FaultProxy(llama_url) as other_judge:
        env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", "STUDIO_CACHE": str(cache),
               "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": llm.url + "/v1", "STUDIO_REVIEW_PASSWORD": "amy-password-1"}
        env.pop("STUDIO_PII_SALT", None)  # the workspace makes its own

        def studio(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
            res = subprocess.run([*STUDIO, *args], cwd=ws if ws.exists() else tmp_path,
                                 capture_output=True, text=True, env=env, timeout=600)
            outputs.append((" ".join(args[:2]), f"{res.stdout}\n{res.stderr}"))
            assert (res.returncode == 0) == ok, f"studio {' '.join(args)}: {res.stderr[-2000:]}"
            return res

        studio("init", str(ws))
        (ws / "pipeline.yaml").write_text(json.dumps({"steps": ["normalize", {"redact_pii": {"mode": "pseudonym"}},
                                                                "exact_dedupe"]}))
        studio("curate", str(raw), "--config", "pipeline.yaml", "--out", "runs/c1")
        studio("review", "add-user", "lead.amy", "--role", "lead", "--db", db)
        studio("review", "load", "runs/c1/kept.parquet", "--db", db)
        studio("review", "auto", "--accept", "origin == 'real'", "--name", "all", "--db", db)
        studio("review", "status", "--db", db)
        studio("export", "--out", "exp", "--split", "train=0.5,val=0.5", "--db", db)
        item = json.loads((ws / "exp" / "ids.jsonl").read_text().splitlines()[0])["item_id"]
        studio("lineage", item, "--db", db)
        studio("runs")
        studio("synth", "self-instruct", str(raw), "--n", "1", "--backend", "openai", "--base-url", llm.url + "/v1",
               "--model", "smollm2", "--no-judge", "--max-tokens", "48", "--out", "runs/s1")
        studio("labelstudio", "push", str(raw), "--project", "canary", "--data-dir", state["data_dir"],
               "--db", f"sqlite:///{tmp_path / 'raw-review.db'}")
        studio("eval", "--model", "default", "--data", str(raw), "--max-examples", "2", "--max-new-tokens", "8",
               "--judge-url", other_judge.url + "/v1", "--judge-model", "smollm2", "--out", "runs/e1",
               "--no-forgetting", "--no-redteam")  # local guard checks on shipped prompts: no canary, no request
        studio("review", "status", "--db", db.replace("127.0.0.1", "127.0.0.2").rsplit(":", 1)[0] + ":1/x", ok=False)
        port = str(free_port())
        app = subprocess.Popen([*STUDIO, "review", "--db", db, "--port", port], cwd=ws,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
        time.sleep(8)
        os.killpg(app.pid, signal.SIGTERM)  # the command and the Streamlit server it started
        outputs.append(("review (the app)", app.communicate(timeout=30)[0]))
        llm_sent = [(s.auth, s.body) for s in llm.seen]
        judge_sent = [(s.auth, s.body) for s in other_judge.seen]

    leaks: dict[str, list[str]] = {}
    scanned = 0
    # eval's report shows the conversations it was given (here the raw file, to exercise the judge's redaction)
    echoes_its_input = {ws / "runs" / "e1" / "report.html", ws / "runs" / "e1" / "eval.json"}
    for root in (ws, cache):
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            scanned += 1
            found = planted(path.read_bytes().decode("utf-8", "replace"))
            if path in echoes_its_input:
                found = [c for c in found if c not in PII]
            if found:
                leaks[str(path.relative_to(tmp_path))] = found
    for i, (command, text) in enumerate(outputs):
        if planted(text):
            leaks[f"output of command {i} (studio {command})"] = planted(text)
    tasks = [t.data for t in ls_client.tasks.list(project=next(p.id for p in ls_client.projects.list()
                                                               if p.title == "canary"), fields="all")]
    if planted(json.dumps(tasks, ensure_ascii=False)):
        leaks["Label Studio tasks"] = planted(json.dumps(tasks, ensure_ascii=False))
    for name, sent in (("synth endpoint", llm_sent), ("judge endpoint", judge_sent)):
        for _auth, body in sent:
            if planted(body):
                leaks[f"{name} request body"] = planted(body)
    print(f"\ncanaries: 1 DB password, 1 API key, {len(PII)} personal data values; scanned {scanned} files, "
          f"{len(outputs)} command outputs, {len(tasks)} Label Studio tasks, {len(llm_sent) + len(judge_sent)} LLM "
          f"requests; leaks: {leaks or 0}")
    assert leaks == {}
    assert llm_sent and judge_sent and len(tasks) == len(CHATS)
    assert {auth for auth, _ in llm_sent} == {f"Bearer {API_KEY}"}  # the configured endpoint gets the key
    assert all(API_KEY not in (auth or "") for auth, _ in judge_sent)  # another origin never does
