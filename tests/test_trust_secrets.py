"""Secrets and personal data: URL passwords never printed or recorded, the API key only for its own endpoint,
no public PII salt, and the synth request log survives a torn last line."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest

from curate.pii import PiiRedactor
from studio.credentials import api_key_for, mask_url
from studio.errors import StudioError
from studio.runs import scrub_argv
from synth.runner import RequestLog


def test_url_passwords_are_masked_in_text_and_command_lines():
    assert mask_url("postgresql://ann:s3cr3t@db.example/review") == "postgresql://ann:***@db.example/review"
    assert scrub_argv(["review", "load", "x.parquet", "--db", "postgresql+psycopg://u:p%40ss@h:5432/d"]) == [
        "review", "load", "x.parquet", "--db", "postgresql+psycopg://u:***@h:5432/d"]
    assert mask_url("sqlite:///ws/review.db and http://user@host/") == "sqlite:///ws/review.db and http://user@host/"


@pytest.mark.parametrize(("home", "url", "sent"), [
    (None, "https://api.openai.com/v1", True),
    (None, "https://api.openai.com:443/v1/", True),
    (None, "https://evil.example/v1", False),
    (None, "https://api.openai.com.evil.example/v1", False),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1", True),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8001/v1", False),
    ("http://llm.internal/v1", "http://llm.internal/v1", False),  # plain http off this machine
])
def test_the_api_key_goes_only_to_the_endpoint_it_belongs_to(monkeypatch, home, url, sent):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-123")
    if home:
        monkeypatch.setenv("OPENAI_BASE_URL", home)
    else:
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert api_key_for(url) == ("sk-canary-123" if sent else None)


def test_hash_and_pseudonym_need_a_secret_salt_and_a_workspace_makes_its_own(monkeypatch, tmp_path):
    monkeypatch.delenv("STUDIO_PII_SALT", raising=False)
    monkeypatch.delenv("STUDIO_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StudioError, match="needs a secret salt"):
        PiiRedactor({"mode": "hash"}).redact_texts(["Maria Lopez called."])
    assert PiiRedactor({"mode": "tag"}).redact_texts(["Maria Lopez called."]) == ["<PERSON> called."]
    (tmp_path / "studio.yaml").write_text("name: w\n")
    first = PiiRedactor({"mode": "hash"}).redact_texts(["Maria Lopez called."])[0]
    salt_file = tmp_path / ".pii_salt"
    assert stat.S_IMODE(salt_file.stat().st_mode) == 0o600 and len(salt_file.read_text().strip()) == 64
    assert re.fullmatch(r"<PERSON_[0-9a-f]{16}> called\.", first)
    monkeypatch.delenv("STUDIO_PII_SALT")  # the salt was exported for child processes; read it from the file again
    assert PiiRedactor({"mode": "hash"}).redact_texts(["Maria Lopez called."])[0] == first


def test_the_request_log_skips_a_torn_last_line_even_inside_a_multibyte_character(tmp_path):
    log = RequestLog(tmp_path)
    log.append({"key": "a", "text": "réponse complète"})
    log.close()
    whole = json.dumps({"key": "b", "text": "ünïcödé"}, ensure_ascii=False).encode()
    with open(tmp_path / "shard-0000.jsonl", "ab") as fh:
        fh.write(whole[: whole.index("ü".encode()) + 1])  # cut inside the two bytes of ü
    again = RequestLog(tmp_path)
    assert set(again.answered) == {"a"} and again.path.name == "shard-0001.jsonl"


def test_review_db_and_salt_files_are_private(tmp_path):
    from review_app.store import ReviewStore

    store = ReviewStore(tmp_path / "review.db", bcrypt_rounds=4)
    store.add_reviewer("ann", "ann-password")
    store.close()
    for name in ("review.db", "review.db-wal"):
        if (tmp_path / name).exists():
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name
