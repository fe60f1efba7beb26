"""Pairwise review items on a real store (SQLite, and PostgreSQL where its binaries are installed): loading
the JSONL shape, side order per reviewer, decisions with the audit trail, two reviewers' agreement with the
side randomisation undone, and `export --format dpo` with the preferences and their provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_review_postgres import pg_url  # noqa: F401  (the module-scoped PostgreSQL server fixture)

from review_app.export import ExportConfig, run_export
from review_app.pairwise import (
    TIE,
    ab_report,
    pairwise_agreement,
    pairwise_rows,
    record_preference,
    side_order,
    wilson,
)
from review_app.recorded import load_recorded
from review_app.store import ReviewStore
from studio.errors import StudioError


def pairs_file(tmp_path: Path, n: int = 6, blind: bool = False) -> Path:
    path = tmp_path / "pairs.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"How do I reset password number {i}?"}],
             "candidates": [{"content": f"Open settings and choose reset ({i}).", "model": "base", "run": "synth-1",
                             "origin": "synthetic"},
                            {"content": f"Go to Settings > Security > Reset password, then confirm ({i}).",
                             "model": "tuned", "run": "train-7", "origin": "synthetic"}],
             "source": "demo", "blind": blind} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = ReviewStore(tmp_path / "r.db", bcrypt_rounds=4)
    else:
        url = request.getfixturevalue("pg_url")
        import sqlalchemy as sa

        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.begin() as conn:  # a fresh schema per test on the shared server
            conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        engine.dispose()
        s = ReviewStore(url, bcrypt_rounds=4)
    for name in ("ann", "bob"):
        s.add_reviewer(name, "password-" + name)
    yield s
    s.close()


def model_of(item, cid):
    return next(c["model"] for c in item.extra["candidates"] if c["id"] == cid)


def test_load_decide_agree_and_export_dpo(store, tmp_path):
    run, counts = load_recorded(store, pairs_file(tmp_path), None, overlap=2)
    assert counts["added"] == 6 and run.extra["kind"] == "pairwise"
    assert load_recorded(store, pairs_file(tmp_path), None, overlap=2)[1]["already_present"] == 6

    flipped = 0
    decided: dict[str, dict[str, str]] = {}
    for reviewer in ("ann", "bob"):
        while (item := store.next_item(reviewer, {"kind": "pairwise"})) is not None:
            assert item.extra["kind"] == "pairwise" and item.messages[-1]["role"] == "user"
            ids = [c["id"] for c in item.extra["candidates"]]
            order = side_order(item.id, reviewer, ids)
            assert order == side_order(item.id, reviewer, ids) and sorted(order) == sorted(ids)
            flipped += order[0] != ids[0]
            # both prefer the tuned answer on items 0-3; item 4: ann tuned, bob tie; item 5: both tie
            k = len(decided.setdefault(reviewer, {}))
            tuned = next(c for c in ids if model_of(item, c) == "tuned")
            choice = TIE if k == 5 or (k == 4 and reviewer == "bob") else tuned
            record_preference(store, item.id, reviewer, choice, reason="clearer steps", seconds=3.0,
                              edited_answer="Settings > Security > Reset password." if (k == 0 and reviewer == "ann") else None)
            decided[reviewer][item.id] = choice
    assert flipped > 0  # the side order is not the stored order for every item
    assert set(decided["ann"]) == set(decided["bob"]) and len(decided["ann"]) == 6

    # the k-th item is not the same item for both (queue order is shared, so it is): check the votes
    agreement = pairwise_agreement(store)
    assert agreement["items_with_overlap"] == 6
    same = sum(decided["ann"][i] == decided["bob"][i] for i in decided["ann"])
    assert agreement["percent_agreement"] == round(same / 6, 4) == round(5 / 6, 4)
    assert agreement["pairs"][0]["a"] == "ann" and agreement["pairs"][0]["items"] == 6
    assert agreement["pairs"][0]["cohen_kappa"] is not None
    # pairwise decisions stay out of accept/reject agreement and SFT approval
    assert store.agreement()["items_with_overlap"] == 0 and store.approved_items() == []

    audit = [e for e in store.audit_log(action="decide")]
    assert len(audit) == 12 and all("choice" in e["details"] for e in audit)

    out = tmp_path / "export"
    run = run_export(store, ExportConfig(format="dpo", out=out, splits={"train": 1.0}))
    records = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert len(records) == 4  # items 0-3 (item 4 split ann/bob, item 5 a tie)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["kept"] == 4
    assert manifest["counts"]["input"] == 4 + 2
    dropped = manifest["counts"]["dropped"]
    assert dropped == {"pairwise: reviewers split": 1, "pairwise: tie": 1}
    ids = [json.loads(line) for line in (out / "ids.jsonl").read_text().splitlines()]
    prov = [e["provenance"] for e in ids]
    assert all(p["chosen"]["model"] == "tuned" and p["rejected"]["model"] == "base" for p in prov)
    assert all(p["decided_by"] == ["ann", "bob"] and p["chosen"]["run"] == "train-7" for p in prov)
    assert sum(p["edited"] for p in prov) == 1
    chosen = {r["chosen"][0]["content"] for r in records}
    assert "Settings > Security > Reset password." in chosen
    assert all("Open settings" in r["rejected"][0]["content"] for r in records)
    assert run.extra["export"]["dpo_kinds"] == {"pairwise": 4}

    # blind A/B figure over the same items: tuned wins 4 + half of 1 tie (item 4) per ann; bob 4 wins + 2 ties
    report = ab_report(store, list(decided["ann"]), model_a="base", model_b="tuned")
    assert (report["wins"], report["ties"], report["losses"]) == (9, 3, 0)
    assert report["win_rate"] == round(10.5 / 12, 4) and report["ci95"][0] < report["win_rate"] < report["ci95"][1]


def test_bad_pairwise_rows_name_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}], "candidates": [{"content": "a"}]})
                    + "\n", encoding="utf-8")
    with pytest.raises(StudioError, match=r"bad.jsonl line 1: field candidates must list at least two"):
        pairwise_rows(path)
    path.write_text("\n" + json.dumps({"messages": [{"role": "user", "content": "q"}],
                                        "candidates": [{"content": "a"}, {"content": ""}]}) + "\n", encoding="utf-8")
    with pytest.raises(StudioError, match=r"line 2: candidates\[1\] needs a non-empty text field content"):
        pairwise_rows(path)


def test_a_choice_must_be_a_candidate_and_a_tie_has_nothing_to_edit(store, tmp_path):
    load_recorded(store, pairs_file(tmp_path, n=1), None)
    item = store.next_item("ann")
    with pytest.raises(StudioError, match="not a candidate"):
        record_preference(store, item.id, "ann", "A")
    with pytest.raises(StudioError, match="a tie has no winner"):
        record_preference(store, item.id, "ann", TIE, edited_answer="x")


def test_wilson_interval_matches_the_textbook_value():
    lo, hi = wilson(8, 10)  # Wilson 95 % for 8/10: 0.4902 .. 0.9433
    assert (lo, hi) == (0.4902, 0.9433)


def test_studio_review_load_takes_pairwise_jsonl_and_refuses_a_bad_row_in_one_sentence(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from studio_app.cli import app

    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    res = CliRunner().invoke(app, ["review", "load", str(pairs_file(tmp_path, n=3)), "--db", db])
    assert res.exit_code == 0, res.output
    with ReviewStore(db) as s:
        assert s.progress()["items"] == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "assistant", "content": "a"}], "candidates": []}) + "\n")
    res = CliRunner().invoke(app, ["review", "load", str(bad), "--db", db])
    assert res.exit_code != 0 and isinstance(res.exception, StudioError)  # studio's main() prints it as one line
    assert "bad.jsonl line 1: field messages must end with the user's turn" in str(res.exception)
