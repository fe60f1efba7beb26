"""Page flow of the review app with Streamlit's AppTest, and the `studio review` commands, on real SQLite files."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from review_app import logic
from review_app.store import ReviewStore

APP = str(Path(__file__).resolve().parent.parent / "review_app" / "app.py")


def rows(n: int) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"How do I reset password {i}?"},
                          {"role": "assistant", "content": f"Open settings and press reset {i}."}],
             "origin": "real", "source": f"t.jsonl:{i}", "meta": "{}", "quality": 0.1 * i, "pii_count": 0}
            for i in range(n)]


@pytest.fixture()
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'review.db'}"
    s = ReviewStore(url, bcrypt_rounds=4)
    s.add_reviewer("ann", "password-ann")
    s.add_reviewer("lee", "password-lee", role="lead")
    s.load_dataset(rows(3))
    monkeypatch.setenv("STUDIO_REVIEW_DB", url)
    yield s
    s.close()


def logged_in(name: str, password: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    at.button[0].click().run()  # the form's submit button
    return at


def test_nothing_but_the_login_form_is_visible_before_logging_in(db):
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert [b.label for b in at.button] == ["Log in"]
    assert not at.text_area and not at.chat_message
    at = logged_in("ann", "wrong-password")
    assert "Wrong name or password." in [e.value for e in at.error]
    assert "accept" not in [b.key for b in at.button]


def test_reviewer_accepts_an_edited_response_and_rejects_only_with_a_reason(db):
    at = logged_in("ann", "password-ann")
    assert at.session_state["user"]["name"] == "ann"
    first = db.next_item("ann")
    area = at.text_area[0]
    assert area.value == "Open settings and press reset 0."
    area.input("Open Settings → Security and press Reset.").run()
    assert any("response-diff" in m.value for m in at.markdown)
    at.button(key="accept").click().run()
    saved = db.decisions(reviewer="ann")
    assert [(d["item_id"], d["verdict"]) for d in saved] == [(first.id, "accept")]
    assert saved[0]["edited_messages"][-1]["content"] == "Open Settings → Security and press Reset."
    assert saved[0]["seconds"] is not None
    second = db.next_item("ann")
    assert at.text_area[0].value == "Open settings and press reset 1."
    at.button(key="reject").click().run()
    assert logic.reject_problem([]) in [e.value for e in at.error]
    assert len(db.decisions(reviewer="ann")) == 1
    at.multiselect(key=f"reasons_{second.id}_0").select("wrong facts").run()
    at.button(key="reject").click().run()
    last = db.decisions(reviewer="ann")[-1]
    assert (last["item_id"], last["verdict"], last["reasons"]) == (second.id, "reject", ["wrong facts"])
    at.button(key="undo").click().run()
    assert len(db.decisions(reviewer="ann")) == 1 and at.text_area[0].value == "Open settings and press reset 1."


def test_lead_sees_disagreements_and_resolves_them(db):
    db.load_dataset([{**rows(4)[3], "source": "t.jsonl:shared"}], overlap=2)
    shared = [i for i in (db.next_item("ann"),) if i][0]
    db.add_reviewer("bob", "password-bob")
    item_id = db.get_item(shared.id).id
    db.record_decision(item_id, "ann", "accept")
    db.record_decision(item_id, "bob", "reject", reasons=["wrong facts"], source="labelstudio")
    at = logged_in("lee", "password-lee")
    at.radio(key="view").set_value("Lead view").run()
    assert any("Disagreements" in s.value for s in at.subheader)
    at.button(key=f"res_rej_{item_id}").click().run()
    assert db.disagreements()[0]["resolution"]["verdict"] == "reject"
    assert item_id not in {r["item_id"] for r in db.approved_items(policy="any")}


def test_pure_page_helpers():
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "old answer"}]
    assert logic.edit_of(msgs, "old answer  ") is None
    assert logic.edit_of(msgs, "new answer")[-1] == {"role": "assistant", "content": "new answer"}
    diff = logic.response_diff_html("the old answer", "the new answer")
    assert "<del" in diff and ">old<" in diff and ">new<" in diff
    f = logic.filters_from_widgets(["real"], (0.0, 1.0), (0.0, 1.0), "flagged", " t.jsonl ", [])
    assert f == {"origins": ("real",), "tags": (), "source": "t.jsonl", "pii": True}
    assert logic.filters_from_widgets([], (0.2, 1.0), (0.0, 1.0), "all", "", [])["min_quality"] == 0.2
    fig = logic.progress_figures({"items": 10, "complete": 4, "auto_decided": 1,
                                  "reviewer": {"decided": 3, "available": 1}})
    assert fig["mine"] == 0.75 and fig["overall"] == 0.4


def test_cli_load_auto_add_user_and_status_record_runs(workspace, tmp_path, monkeypatch):
    from studio_app.cli import app

    data = tmp_path / "kept.parquet"
    table = rows(4)
    table[3]["quality"] = 0.95
    from studio.schema import example_id

    for r in table:  # the studio schema (as curate writes it), so score columns are kept
        r["id"] = example_id(r["messages"])
    pl.DataFrame(table).write_parquet(data)
    monkeypatch.chdir(workspace.root)
    runner = CliRunner()
    out = runner.invoke(app, ["review", "load", str(data), "--overlap", "1"])
    assert out.exit_code == 0, out.output
    again = runner.invoke(app, ["review", "load", str(data)])
    assert again.exit_code == 0
    auto = runner.invoke(app, ["review", "auto", "--accept", "quality >= 0.9 and pii_count == 0", "--name", "hc"])
    assert auto.exit_code == 0, auto.output
    missing = runner.invoke(app, ["review", "auto", "--accept", "q_judge >= 4", "--name", "judge"])
    assert "have no `q_judge`" in missing.output
    bad = runner.invoke(app, ["review", "auto", "--accept", "open('x')", "--name", "bad"])
    assert bad.exit_code != 0
    user = runner.invoke(app, ["review", "add-user", "kim", "--role", "lead", "--password", "kim-password"])
    assert user.exit_code == 0, user.output
    status = runner.invoke(app, ["review", "status"])
    assert "kim" in status.output and "auto decided" in status.output
    manifests = sorted((workspace.runs_dir).glob("review-*/manifest.json"))
    counts = [json.loads(p.read_text())["counts"] for p in manifests]
    assert {"input": 4, "kept": 4, "dropped": {}, "quarantined": 0} in counts
    assert {"input": 4, "kept": 0, "dropped": {"already_present": 4}, "quarantined": 0} in counts
    assert {"input": 4, "kept": 1, "dropped": {"rule_does_not_match": 3}, "quarantined": 0} in counts
    store = ReviewStore(workspace.review_db_url)
    assert store.authenticate("kim", "kim-password") == {"name": "kim", "role": "lead"}
    assert store.progress()["auto_decided"] == 1


def test_demo_review_stage_queues_curated_data_and_falls_back_when_scores_are_missing(workspace, tmp_path):
    from studio.console import Reporter
    from studio.schema import example_id
    from studio_app.demo import DEMO_REVIEWER, DemoContext, stage_review

    curated = tmp_path / "kept.parquet"
    table = rows(3)
    for r in table:
        r["id"] = example_id(r["messages"])
        del r["quality"]  # as long as no quality step has run: the rule must match nothing
    pl.DataFrame(table).write_parquet(curated)
    synthetic = tmp_path / "synthetic.parquet"
    synth_rows = [{**rows(5)[4], "origin": "synthetic", "quality": 0.95}]
    synth_rows[0]["id"] = example_id(synth_rows[0]["messages"])
    pl.DataFrame(synth_rows).write_parquet(synthetic)
    ctx = DemoContext(workspace=workspace, data_dir=tmp_path, reporter=Reporter(quiet=True),
                      outputs={"curated": curated, "synthetic": synthetic})
    stage_review(ctx)
    summary = {row[1]: row[2] for row in ctx.summary}
    assert summary["queued from kept.parquet"] == 3 and summary["queued from synthetic.parquet"] == 1
    assert summary["accepted by rule:high-confidence"] == 1 and summary["left for people"] == 3
    store = ReviewStore(workspace.review_db_url)
    assert store.authenticate(*DEMO_REVIEWER)["role"] == "lead"
    manifests = [json.loads(p.read_text()) for p in workspace.runs_dir.glob("review-*/manifest.json")]
    assert sorted(m["config"]["action"] for m in manifests) == ["auto", "load", "load"]
    stage_review(ctx)  # running the demo stage again on the same workspace changes nothing
    assert store.progress()["items"] == 4 and len(store.decisions()) == 1
