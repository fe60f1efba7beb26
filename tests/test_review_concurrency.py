"""Two real processes reviewing from one SQLite file at once: no decision lost, no item served twice,
and a decision both processes submit with the same key is stored once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from review_app.store import ReviewStore

REPO = Path(__file__).resolve().parent.parent
N_ITEMS = 120

WORKER = """
import json, sys
from review_app.store import ReviewStore
url, name, shared_id = sys.argv[1], sys.argv[2], sys.argv[3]
store = ReviewStore(url)
served, stored = [], 0
# both workers submit the same externally keyed decision (a retried webhook, say): stored once in total
stored_shared = store.record_decision(shared_id, "labelstudio:sync", "accept", source="labelstudio",
                                      idempotency_key="ls:shared")["created"]
while (item := store.next_item(name)) is not None:
    served.append(item.id)
    d = store.record_decision(item.id, name, "accept" if len(served) % 3 else "reject", reasons=["x"])
    again = store.record_decision(item.id, name, "accept" if len(served) % 3 else "reject", reasons=["x"])
    stored += d["created"] + again["created"]
print(json.dumps({"served": served, "stored": stored, "shared": stored_shared}))
"""


def test_two_processes_never_lose_or_duplicate_decisions_on_one_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'review.db'}"
    store = ReviewStore(url)
    for name in ("ann", "bob"):
        store.ensure_reviewer(name, role="reviewer")
    store.ensure_reviewer("labelstudio:sync")
    store.load_dataset([{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
                         "origin": "real", "source": f"s:{i}", "meta": "{}", "quality": (i * 7 % 100) / 100}
                        for i in range(N_ITEMS)])
    shared = store.next_item("ann")  # ann holds one item; it must not be served to bob
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, name, shared.id], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("ann", "bob")]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    ann, bob = results
    assert ann["served"] and bob["served"], "both processes got work"
    assert not set(ann["served"]) & set(bob["served"]), "an item needing one review went to both"
    assert len(ann["served"]) + len(bob["served"]) == N_ITEMS
    assert ann["stored"] == len(ann["served"]) and bob["stored"] == len(bob["served"])  # retries stored once
    assert ann["shared"] + bob["shared"] == 1
    decisions = store.decisions()
    queue = [d for d in decisions if d["source"] == "app"]
    assert len(queue) == N_ITEMS and len({d["item_id"] for d in queue}) == N_ITEMS
    assert len([d for d in decisions if d["idempotency_key"] == "ls:shared"]) == 1
    assert store.progress()["complete"] == N_ITEMS and store.next_item("ann") is None
    assert len(store.audit_log(action="decide")) == N_ITEMS + 1
