"""The review store on a real PostgreSQL server, started for this test session in a temporary folder
(initdb + pg_ctl, as the `postgres` user when the tests run as root). Skipped, saying why, where the
server binaries are missing (scripts/install_system_deps.sh installs them)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_review_concurrency import run_reviewers  # tests/ is on sys.path (pytest rootdir-relative import)

from review_app.store import ReviewStore


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


@pytest.fixture(scope="module")
def pg_url():
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are missing; run scripts/install_system_deps.sh as root")
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="studio-pg-"))
    if as_user:
        shutil.chown(folder, "postgres")
    data = folder / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                    "--no-sync"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "log"),
                    "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def rows(n: int) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
             "origin": "real", "source": f"s:{i}", "meta": "{}", "quality": i / n, "pii_count": 0} for i in range(n)]


def test_store_works_on_postgresql(pg_url):
    store = ReviewStore(pg_url, bcrypt_rounds=4)
    assert store.dialect == "postgresql" and store.schema_revision() == "0002"
    store.add_reviewer("ann", "password-ann")
    store.add_reviewer("bob", "password-bob")
    assert store.load_dataset(rows(6), overlap=2)["added"] == 6
    assert store.load_dataset(rows(6))["added"] == 0
    a = store.next_item("ann")
    assert store.next_item("ann").id == a.id
    store.record_decision(a.id, "ann", "accept", rating=5)
    assert not store.record_decision(a.id, "ann", "accept", rating=5)["created"]
    b = store.next_item("bob")
    assert b.id == a.id  # overlap 2: bob gets it too
    store.record_decision(b.id, "bob", "reject", reasons=["wrong facts"], rating=2)
    assert [d["item_id"] for d in store.disagreements()] == [a.id]
    assert store.undo_last("bob")["item_id"] == a.id
    assert store.auto_decide("quality >= 0.8", "hc")["decided"] == 1
    assert store.authenticate("ann", "password-ann")["role"] == "reviewer"
    with store.engine.connect() as conn, pytest.raises(sa.exc.DatabaseError, match="append-only"):
        with conn.begin():
            conn.exec_driver_sql("DELETE FROM audit_log")
    store.close()


def test_two_processes_share_a_postgresql_queue_without_duplicates(pg_url, tmp_path):
    store = ReviewStore(pg_url)
    with store.engine.begin() as conn:  # a clean slate after the previous test (bypassing the audit trigger)
        conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        for table in ("audit_log", "decisions", "assignments", "items"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
        conn.exec_driver_sql("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    for name in ("ann", "bob"):
        store.ensure_reviewer(name, role="reviewer")
    store.ensure_reviewer("labelstudio:sync")
    store.load_dataset(rows(60))
    shared = store.next_item("ann")
    results = run_reviewers(pg_url, shared.id, tmp_path)
    served = [set(r["served"]) for r in results]
    assert not served[0] & served[1] and len(served[0] | served[1]) == 60
    assert sum(r["shared"] for r in results) == 1
    assert len([d for d in store.decisions() if d["source"] == "app"]) == 60
    store.close()
