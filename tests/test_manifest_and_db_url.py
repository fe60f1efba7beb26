"""The one reader of "the manifest next to a file" (`studio.runs.manifest_beside`) and the one place a review DB
is chosen and shown (`studio.workspace.review_db`, `studio.credentials.db_label`)."""

from __future__ import annotations

import json

import pytest

from studio.credentials import db_label
from studio.errors import StudioError
from studio.runs import manifest_beside
from studio.workspace import Workspace, review_db


def test_the_manifest_beside_a_file_is_read_with_its_path_and_a_broken_one_is_none(tmp_path):
    (tmp_path / "kept.parquet").write_bytes(b"")
    assert manifest_beside(tmp_path / "kept.parquet") is None
    (tmp_path / "manifest.json").write_text(json.dumps({"run_id": "r1", "kind": "curate"}), encoding="utf-8")
    assert manifest_beside(tmp_path / "kept.parquet") == {"run_id": "r1", "kind": "curate",
                                                          "_path": str(tmp_path / "manifest.json")}
    assert manifest_beside(tmp_path / "manifest.json") is None  # a manifest is not its own upstream
    (tmp_path / "manifest.json").write_text("{not json", encoding="utf-8")
    assert manifest_beside(tmp_path / "kept.parquet") is None


def test_a_db_is_shown_as_a_file_path_or_a_url_without_its_password():
    assert db_label("sqlite:////srv/ws/review.db") == "/srv/ws/review.db"
    assert db_label("postgresql://ann:s3cret@db.local:5432/review") == "postgresql://ann:***@db.local:5432/review"
    assert db_label("postgresql+psycopg://ann@db/review") == "postgresql+psycopg://ann@db/review"


def test_review_db_is_the_db_option_else_the_workspaces_else_one_sentence(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    assert review_db("postgresql://me@h/r", ws) == "postgresql://me@h/r"
    assert review_db(None, ws) == f"sqlite:///{ws.root / 'review.db'}"
    with pytest.raises(StudioError, match="no review database.*--db URL"):
        review_db(None, None)
