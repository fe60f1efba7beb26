"""The review store on a real SQLite file: loading, the queue, decisions, undo, rules, outcomes, agreement."""

from __future__ import annotations

import json

import polars as pl
import pytest
import sqlalchemy as sa

from review_app.store import ReviewStore
from studio.errors import StudioError
from studio.rules import RuleError, parse_rule


def example(i: int, quality: float | None = None, pii: int | None = 0, origin: str = "real", category: str = "billing"):
    row = {"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}],
           "origin": origin, "source": f"tickets.jsonl:{i}", "meta": json.dumps({"category": category})}
    if quality is not None:
        row["quality"] = quality
    if pii is not None:
        row["pii_count"] = pii
    return row


@pytest.fixture()
def store(tmp_path):
    s = ReviewStore(tmp_path / "review.db", bcrypt_rounds=4)
    for name in ("ann", "bob"):
        s.add_reviewer(name, "password-" + name)
    s.add_reviewer("lee", "password-lee", role="lead")
    yield s
    s.close()


def test_opening_a_database_migrates_it_to_head_and_the_models_match_the_migration(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from review_app.models import Base

    s = ReviewStore(tmp_path / "r.db")
    assert s.schema_revision() == "0002"
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    s.close()
    assert ReviewStore(tmp_path / "r.db").schema_revision() == "0002"  # re-opening is a no-op


def test_loading_the_same_data_twice_changes_nothing(store):
    rows = [example(i, quality=i / 10) for i in range(5)] + [example(0, quality=0.0)]
    first = store.load_dataset(rows)
    assert first == {"input": 6, "added": 5, "already_present": 0, "duplicate_in_input": 1, "quarantined": 0}
    second = store.load_dataset(pl.DataFrame(rows[:5]), overlap=3)
    assert second["added"] == 0 and second["already_present"] == 5
    assert store.progress()["items"] == 5 and store.progress()["reviews_needed"] == 5  # overlap unchanged


def test_loading_a_curate_output_records_its_run_and_scores(store, tmp_path):
    run_dir = tmp_path / "runs" / "curate-x"
    run_dir.mkdir(parents=True)
    from studio.atomic import sha256_file
    from studio.schema import example_id

    rows = [example(i, quality=0.5, pii=None) for i in range(3)]
    for r in rows:
        r["id"] = example_id(r["messages"])
        r["q_length"] = 0.25
        r["pii_entities"] = [{"entity_type": "PERSON"}, {"entity_type": "EMAIL_ADDRESS"}]
    pl.DataFrame(rows).write_parquet(run_dir / "kept.parquet")
    (run_dir / "manifest.json").write_text(json.dumps({"run_id": "curate-x", "status": "ok", "outputs": [
        {"path": str(run_dir / "kept.parquet"), "sha256": sha256_file(run_dir / "kept.parquet")}]}))
    assert store.load_dataset(run_dir / "kept.parquet")["added"] == 3
    item = store.get_item(rows[0]["id"])
    assert item.scores == {"quality": 0.5, "q_length": 0.25}
    assert item.pii_count == 2 and item.pii_flags == ["PERSON", "EMAIL_ADDRESS"]
    assert item.tags == ["billing"] and item.extra["dataset_run"] == "curate-x"


def test_queue_serves_lowest_quality_first_and_keeps_serving_the_held_item(store):
    store.load_dataset([example(1, 0.9), example(2, 0.1), example(3, None), example(4, 0.5)])
    first = store.next_item("ann")
    assert first.quality == 0.1
    assert store.next_item("ann").id == first.id  # a page reload shows the same item
    store.record_decision(first.id, "ann", "accept")
    served = [store.next_item("ann")]
    store.record_decision(served[0].id, "ann", "accept")
    served.append(store.next_item("ann"))
    store.record_decision(served[1].id, "ann", "accept")
    served.append(store.next_item("ann"))
    assert [s.quality for s in served] == [0.5, 0.9, None]  # unscored items come last


def test_an_item_needing_one_review_is_never_given_to_two_reviewers(store):
    store.load_dataset([example(1, 0.1), example(2, 0.2)])
    a, b = store.next_item("ann"), store.next_item("bob")
    assert a.id != b.id
    store.ensure_reviewer("cyd", role="reviewer")
    assert store.next_item("cyd") is None


def test_with_overlap_two_an_item_goes_to_two_people_but_never_twice_to_one(store):
    store.load_dataset([example(1, 0.1)], overlap=2)
    item = store.next_item("ann")
    store.record_decision(item.id, "ann", "accept")
    assert store.next_item("ann") is None
    assert store.next_item("bob").id == item.id
    store.record_decision(item.id, "bob", "reject", reasons=["wrong facts"])
    assert store.next_item("lee") is None
    assert store.progress()["complete"] == 1


def test_a_decision_submitted_twice_is_stored_once(store):
    store.load_dataset([example(1, 0.1)])
    item = store.next_item("ann")
    first = store.record_decision(item.id, "ann", "accept", rating=4)
    again = store.record_decision(item.id, "ann", "accept", rating=4)  # double click: same attempt
    assert first["created"] and not again["created"] and again["id"] == first["id"]
    k1 = store.record_decision(item.id, "bob", "reject", reasons=["x"], source="labelstudio", idempotency_key="ls:17")
    k2 = store.record_decision(item.id, "bob", "reject", reasons=["x"], source="labelstudio", idempotency_key="ls:17")
    assert k1["created"] and not k2["created"]
    assert len(store.item_decisions(item.id)) == 2
    assert len(store.audit_log(item_id=item.id, action="decide")) == 2


def test_skip_hands_the_item_to_someone_else_but_not_back_to_the_skipper(store):
    store.load_dataset([example(1, 0.1)])
    item = store.next_item("ann")
    store.record_decision(item.id, "ann", "skip")
    assert store.next_item("ann") is None
    assert store.next_item("bob").id == item.id


def test_undo_brings_the_item_back_and_keeps_the_undone_decision(store):
    store.load_dataset([example(1, 0.1), example(2, 0.2)])
    item = store.next_item("ann")
    store.record_decision(item.id, "ann", "reject", reasons=["incomplete"])
    undone = store.undo_last("ann")
    assert undone["item_id"] == item.id and undone["undone_at"] is not None
    again = store.next_item("ann")
    assert again.id == item.id and again.attempt == 1
    redo = store.record_decision(item.id, "ann", "accept")
    assert redo["created"]
    rows = store.item_decisions(item.id)
    assert [(r["verdict"], r["undone_at"] is None) for r in rows] == [("reject", False), ("accept", True)]
    assert [e["action"] for e in store.audit_log(item_id=item.id)] == ["decide", "undo", "decide"]
    assert store.undo_last("bob") is None


def test_an_expired_lease_puts_the_item_back_in_the_queue(tmp_path):
    s = ReviewStore(tmp_path / "r.db", lease_seconds=0, bcrypt_rounds=4)
    s.ensure_reviewer("ann", "reviewer")
    s.ensure_reviewer("bob", "reviewer")
    s.load_dataset([example(1, 0.1)])
    item = s.next_item("ann")
    assert s.next_item("bob").id == item.id
    # ann's late decision is still kept, never refused
    assert s.record_decision(item.id, "ann", "accept", source="labelstudio")["created"]


def test_filters_narrow_the_queue(store):
    store.load_dataset([example(1, 0.1, pii=2, origin="synthetic", category="claims"), example(2, 0.95, pii=0),
                        example(3, 0.5, pii=0, category="claims")])
    assert store.next_item("ann", {"origins": ["synthetic"]}).source == "tickets.jsonl:1"
    assert store.next_item("bob", {"pii": False, "min_quality": 0.9}).source == "tickets.jsonl:2"
    assert store.next_item("lee", {"tags": ["claims"], "pii": False}).source == "tickets.jsonl:3"
    with pytest.raises(StudioError, match="unknown filter"):
        store.next_item("ann", {"colour": "red"})


def test_auto_rule_decides_untouched_matching_items_and_treats_missing_fields_as_no_match(store):
    store.load_dataset([example(1, 0.95, pii=0), example(2, 0.97, pii=1), example(3, 0.5, pii=0),
                        example(4, None, pii=None), example(5, 0.99, pii=0)])
    held = store.next_item("ann", {"min_quality": 0.99})  # ann holds item 5: rules leave it alone
    result = store.auto_decide("quality >= 0.9 and pii_count == 0", "high-confidence")
    assert result["decided"] == 1 and result["examined"] == 4
    assert result["missing"] == {"quality": 1, "pii_count": 1}
    rule_decisions = store.decisions(reviewer="rule:high-confidence")
    assert [store.get_item(d["item_id"]).source for d in rule_decisions] == ["tickets.jsonl:1"]
    assert store.auto_decide("quality >= 0.9 and pii_count == 0", "high-confidence")["decided"] == 0
    assert store.next_item("bob").source != "tickets.jsonl:1"  # people no longer see it
    assert store.get_item(held.id).extra["status"] != "auto"


@pytest.mark.parametrize("bad", ["__import__('os').system('x')", "quality.real > 1", "scores['q'] > 1",
                                 "lambda: 1", "quality >", ""])
def test_rules_refuse_anything_but_comparisons(bad):
    with pytest.raises(RuleError):
        parse_rule(bad)


def test_rule_semantics():
    rule = parse_rule("(quality >= 0.9 or q_judge > 4) and origin in ['real', 'edited'] and not pii_count > 0")
    assert rule.matches({"quality": 0.95, "q_judge": 1, "origin": "real", "pii_count": 0})
    assert not rule.matches({"quality": 0.95, "q_judge": 1, "origin": "synthetic", "pii_count": 0})
    assert not rule.matches({"quality": 0.95, "q_judge": 1, "origin": "real", "pii_count": 2})
    assert not rule.matches({"quality": 0.95, "origin": "real", "pii_count": 0})  # q_judge missing
    assert parse_rule("'refund' in tags").matches({"tags": ["refund"]})


def test_approved_items_apply_edits_policies_and_resolutions(store):
    store.load_dataset([example(1, 0.1), example(2, 0.2), example(3, 0.95)], overlap=2)
    store.load_dataset([example(4, 0.3)], overlap=1)
    ids = {int(store.get_item(i).source.split(":")[1]): i for i in [d["id"] for d in _all_items(store)]}
    edited = [{"role": "user", "content": "Question 1?"}, {"role": "assistant", "content": "A better answer 1."}]
    store.record_decision(ids[1], "ann", "accept", edited_messages=edited, rating=5)
    store.record_decision(ids[1], "bob", "accept", rating=4)
    store.record_decision(ids[2], "ann", "accept")
    store.record_decision(ids[2], "bob", "reject", reasons=["wrong facts"])
    store.record_decision(ids[4], "ann", "accept")
    store.auto_decide("quality >= 0.9", "hc")
    unanimous = {r["item_id"]: r for r in store.approved_items()}
    assert set(unanimous) == {ids[1], ids[3], ids[4]}
    one = unanimous[ids[1]]
    assert one["messages"] == edited and one["origin"] == "edited" and one["edited"]
    assert one["id"] != ids[1] and one["rating"] == 4.5 and one["reviewers"] == ["ann", "bob"]
    assert unanimous[ids[3]]["decided_by"] == "rule"
    assert ids[2] in {r["item_id"] for r in store.approved_items(policy="any")}
    assert ids[2] not in {r["item_id"] for r in store.approved_items(policy="majority")}
    assert [d["item_id"] for d in store.disagreements()] == [ids[2]]
    with pytest.raises(StudioError, match="not a lead"):
        store.resolve(ids[2], "ann", "accept")
    store.resolve(ids[2], "lee", "accept")
    assert ids[2] in {r["item_id"] for r in store.approved_items()}
    assert store.disagreements()[0]["resolution"]["reviewer"] == "lee"
    frame = store.approved_frame()
    assert frame.height == 4 and frame.filter(pl.col("edited"))["item_id"].to_list() == [ids[1]]


def _all_items(store):
    with store.engine.connect() as conn:
        return [dict(id=r[0]) for r in conn.exec_driver_sql("SELECT id FROM items")]


def test_agreement_matches_hand_computed_kappa(store):
    # ann: A A R R, bob: A R R R  -> observed 0.75, expected 0.5*0.25 + 0.5*0.75 = 0.5, kappa = 0.5
    store.load_dataset([example(i, i / 10) for i in range(4)], overlap=2)
    items = [r["id"] for r in _all_items(store)]
    items.sort(key=lambda i: store.get_item(i).quality)
    for i, (a, b) in zip(items, [("accept", "accept"), ("accept", "reject"), ("reject", "reject"),
                                 ("reject", "reject")], strict=True):
        store.record_decision(i, "ann", a, reasons=["r"] if a == "reject" else (), rating=5 if a == "accept" else 1)
        store.record_decision(i, "bob", b, reasons=["r"] if b == "reject" else (), rating=5 if b == "accept" else 1)
    ag = store.agreement()
    assert ag["items_with_overlap"] == 4
    assert ag["pairs"] == [{"a": "ann", "b": "bob", "items": 4, "agreement": 0.75, "cohen_kappa": 0.5}]
    assert ag["fleiss"]["raters_per_item"] == 2 and ag["fleiss"]["items"] == 4
    # Fleiss with 2 raters: p_accept = 3/8; Pe = (3/8)^2 + (5/8)^2 = 34/64; P = 0.75 -> (0.75-34/64)/(1-34/64)
    assert ag["fleiss"]["fleiss_kappa"] == pytest.approx((0.75 - 34 / 64) / (1 - 34 / 64), abs=1e-4)
    assert ag["verdict_alpha"] is not None and ag["rating_alpha"] is not None


def test_cohen_and_fleiss_from_count_tables_match_scikit_learn_and_statsmodels():
    import random

    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import fleiss_kappa

    from review_app.agreement import cohen_pairs, fleiss

    rng = random.Random(7)
    people = ["ann", "bob", "cat", "dan"]
    labels = {f"item{i}": {p: rng.choice(["accept", "accept", "reject"]) for p in rng.sample(people, 3 if i % 4 else 2)}
              for i in range(300)}
    for pair in cohen_pairs(labels):
        shared = [(v[pair["a"]], v[pair["b"]]) for v in labels.values() if pair["a"] in v and pair["b"] in v]
        assert pair["items"] == len(shared) > 2
        assert pair["cohen_kappa"] == round(cohen_kappa_score(*zip(*shared, strict=True)), 4)
    rows = [list(v.values()) for v in labels.values() if len(v) == 3]
    table = [[row.count(c) for c in ("accept", "reject")] for row in rows]
    assert fleiss(labels) == {"fleiss_kappa": round(fleiss_kappa(table, method="fleiss"), 4), "items": len(rows),
                              "raters_per_item": 3}


def test_agreement_from_the_votes_frame_equals_the_report_from_per_item_labels():
    import random

    import polars as pl

    from review_app.agreement import agreement_from_votes, agreement_report

    for seed in range(20):  # one to four people, empty stores, one label only, ratings sparse or constant
        rng = random.Random(seed)
        people = ["ann", "bob", "cat", "dan"][: rng.choice([1, 2, 3, 4])]
        rows = [(f"item{i}", p, "accept" if seed % 5 == 0 else rng.choice(["accept", "reject"]),
                 rng.choice([None, 1, 2, 3, 4, 5]) if seed % 3 else rng.choice([None, 4]))
                for i in range(rng.choice([0, 1, 2, 5, 40])) for p in rng.sample(people, rng.randint(1, len(people)))]
        verdicts: dict = {}
        ratings: dict = {}
        for item, person, verdict, rating in rows:
            verdicts.setdefault(item, {})[person] = verdict
            if rating is not None:
                ratings.setdefault(item, {})[person] = rating
        frame = pl.DataFrame(rows, schema={"item_id": pl.String, "person": pl.String, "verdict": pl.String,
                                           "rating": pl.Int64}, orient="row")
        assert agreement_from_votes(frame) == agreement_report(verdicts, ratings), seed


def test_audit_log_is_append_only(store):
    store.load_dataset([example(1, 0.1)])
    with store.engine.connect() as conn:
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with conn.begin():
                conn.exec_driver_sql("UPDATE audit_log SET actor = 'mallory'")
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with conn.begin():
                conn.exec_driver_sql("DELETE FROM audit_log")
    assert store.audit_log()[0]["actor"] != "mallory"


def test_passwords_are_bcrypt_hashed_and_checked(store):
    assert store.authenticate("ann", "password-ann") == {"name": "ann", "role": "reviewer"}
    assert store.authenticate("ann", "password-bob") is None
    assert store.authenticate("nobody", "password-ann") is None
    with store.engine.connect() as conn:
        hashed = conn.exec_driver_sql("SELECT password_hash FROM reviewers WHERE name='ann'").scalar()
    assert hashed.startswith("$2b$") and "password-ann" not in hashed
    assert [e["action"] for e in store.audit_log(actor="ann")][-2:] == ["login", "login_failed"]
    with pytest.raises(StudioError, match="already exists"):
        store.add_reviewer("ann", "another-password")
    with pytest.raises(StudioError, match="8 to 72"):
        store.add_reviewer("short", "abc")


def test_bad_decisions_are_refused_with_one_sentence(store):
    store.load_dataset([example(1, 0.1)])
    item = store.next_item("ann")
    with pytest.raises(StudioError, match="verdict 'maybe'"):
        store.record_decision(item.id, "ann", "maybe")
    with pytest.raises(StudioError, match="rating"):
        store.record_decision(item.id, "ann", "accept", rating=9)
    with pytest.raises(StudioError, match="no review item"):
        store.record_decision("nope", "ann", "accept")
    with pytest.raises(StudioError, match="no reviewer named"):
        store.record_decision(item.id, "zed", "accept")
    with pytest.raises(StudioError, match="message 0"):
        store.record_decision(item.id, "ann", "accept", edited_messages=[{"role": "bot", "content": "x"}])
    assert store.decisions() == []


def test_a_saved_decision_is_returned_exactly_as_stored_and_is_fsynced(store):
    """record_decision builds its answer from the values it wrote (no read-back): it must equal the row as
    read from the database, for a fresh decision, a replacement with an edit, and a repeated key."""
    store.load_dataset([example(1, 0.1)])
    item = store.next_item("ann")
    first = store.record_decision(item.id, "ann", "reject", rating=2, reasons=["wrong", "tone"], comment="no",
                                  seconds=3.25)
    edit = [dict(m) for m in item.messages]
    edit[-1]["content"] += " (fixed)"
    second = store.record_decision(item.id, "ann", "accept", edited_messages=edit, rating=5,
                                   idempotency_key="ann-second")
    again = store.record_decision(item.id, "ann", "accept", edited_messages=edit, idempotency_key="ann-second")
    stored = {d["id"]: d for d in store.decisions(item_id=item.id, include_undone=True)}
    assert first["created"] and second["created"] and not again["created"]
    assert {k: v for k, v in second.items() if k != "created"} == stored[second["id"]]
    assert {k: v for k, v in again.items() if k != "created"} == stored[second["id"]]
    assert {k: v for k, v in first.items() if k not in ("created", "undone_at")} == \
        {k: v for k, v in stored[first["id"]].items() if k != "undone_at"}
    assert stored[first["id"]]["undone_at"] is not None and stored[second["id"]]["edited_messages"] == edit
    assert store.get_item(item.id).extra["n_decided"] == 1
    # a decision commits with synchronous=FULL (one WAL fsync); a lease, on the same pooled connection, does not
    with store.engine.connect() as conn:
        assert conn.connection.info["synchronous"] == "FULL"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # 2 = FULL
