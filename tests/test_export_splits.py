"""Leak-free splits: linked examples share a split, assignment is seeded and deterministic, fractions hold."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest

from studio.errors import StudioError
from studio.schema import make_example
from studio.splits import assign_splits, group_rows, parse_split_spec, plan_splits

FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def _row(prompt: str, answer: str, meta: dict | None = None, **columns) -> dict:
    row = make_example([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                       source="t.jsonl:1", meta=meta)
    return {**row, **columns}


def _corpus() -> tuple[list[dict], list[set[int]]]:
    """200 unrelated rows plus planted link groups; returns rows and the index sets that must stay together."""
    rows = [_row(f"question number {i} about topic {i * 7919 % 1000}", f"answer {i}",
                 {"category": ["billing", "claims", "devices"][i % 3]}) for i in range(200)]
    together: list[set[int]] = []
    # near-duplicate cluster (dup_cluster column, as near_dedupe writes it)
    start = len(rows)
    rows += [_row(f"how do i cancel order {k}?", "Use the orders page.", dup_cluster="near-7") for k in range(3)]
    together.append(set(range(start, len(rows))))
    # semantic cluster kept in the store's meta["dedupe"], chained to a dup_of link
    start = len(rows)
    rows.append(_row("what is covered by the warranty", "Parts and labour.", {"dedupe": {"semantic_cluster": "s1"}}))
    rows.append(_row("which repairs does my warranty pay for", "Parts.", {"dedupe": {"semantic_cluster": "s1"}}))
    rows.append(_row("is labour under warranty?", "Yes.", {"dedupe": {"dup_of": rows[start + 1]["id"]}}))
    together.append(set(range(start, len(rows))))
    # variants of one prompt: same prompt up to case and spacing, different answers
    start = len(rows)
    rows += [_row("Where is my  REFUND?", "It takes 5 days."), _row("where is my refund?", "Check your bank.")]
    together.append(set(range(start, len(rows))))
    # a synthetic child (seed_ids) and an evolved grandchild (evolution.parent_id)
    start = len(rows)
    parent = _row("how to file a claim", "Online form.")
    child = _row("steps for filing an insurance claim", "Fill in the form.", {"generator": "paraphrase", "seed_ids": [parent["id"]]})
    grandchild = _row("file a claim for a flooded basement", "Call us.", {"evolution": {"parent_id": child["id"]}})
    rows += [parent, child, grandchild]
    together.append(set(range(start, len(rows))))
    return rows, together


def test_linked_examples_never_cross_splits_for_any_seed():
    rows, together = _corpus()
    for seed in range(20):
        splits = assign_splits(rows, FRACTIONS, seed)
        for group in together:
            assert len({splits[i] for i in group}) == 1, (seed, group)


def test_links_are_closed_transitively_and_unrelated_rows_stay_apart():
    rows, together = _corpus()
    groups = group_rows(rows)
    for group in together:
        assert len({groups[i] for i in group}) == 1
    assert len(set(groups)) == 200 + len(together)


def test_same_seed_same_assignment_whatever_the_input_order():
    rows, _ = _corpus()
    by_id = dict(zip((r["id"] for r in rows), assign_splits(rows, FRACTIONS, 3), strict=True))
    shuffled = rows[::-1]
    again = dict(zip((r["id"] for r in shuffled), assign_splits(shuffled, FRACTIONS, 3), strict=True))
    assert by_id == again
    other = dict(zip((r["id"] for r in rows), assign_splits(rows, FRACTIONS, 4), strict=True))
    assert other != by_id


def test_split_sizes_follow_the_fractions_within_one_group():
    rows, _ = _corpus()
    counts = Counter(assign_splits(rows, FRACTIONS, 0))
    n = len(rows)
    for name, fraction in FRACTIONS.items():
        assert abs(counts[name] - fraction * n) <= 3, counts


def test_small_sets_still_fill_every_split_with_a_positive_fraction():
    rows = [_row(f"q{i}", "a") for i in range(6)]
    counts = Counter(assign_splits(rows, {"train": 0.9, "val": 0.05, "test": 0.05}, 0))
    assert counts == {"train": 4, "val": 1, "test": 1}
    assert set(assign_splits(rows, {"train": 1.0, "val": 0.0}, 0)) == {"train"}


def test_stratified_splits_keep_each_category_mix():
    rows, _ = _corpus()
    splits = assign_splits(rows, FRACTIONS, 1, stratify="category")
    per: dict[str, Counter] = defaultdict(Counter)
    for row, split in zip(rows, splits, strict=True):
        per[json.loads(row["meta"]).get("category", "")][split] += 1
    for category in ("billing", "claims", "devices"):
        total = sum(per[category].values())
        assert abs(per[category]["val"] - 0.1 * total) <= 1 and abs(per[category]["test"] - 0.1 * total) <= 1


def test_planted_duplicates_of_the_sample_data_stay_in_one_split(sample_data, planted):
    """Every planted duplicate set of sample_data (by id or source file:line) lands in one split, once the
    rows carry the cluster label a dedupe step gives them (here the planted truth, as `dup_cluster`)."""
    from studio.readers import read_inputs
    from studio_app.demo import sample_inputs

    rows = read_inputs(sample_inputs(sample_data)).rows
    groups = _planted_duplicate_groups(planted, rows)
    assert len(groups) == len(planted["exact_duplicates"]) + len(planted["near_duplicates"]) + len(planted["paraphrases"])
    for k, group in enumerate(groups):
        for i in group:
            rows[i] = {**rows[i], "dup_cluster": f"planted-{k}"}
    for seed in range(5):
        splits = assign_splits(rows, FRACTIONS, seed)
        for group in groups:
            assert len({splits[i] for i in group}) == 1, (seed, [rows[i]["source"] for i in group])


def _planted_duplicate_groups(planted: dict, rows: list[dict]) -> list[list[int]]:
    """Row indices of each planted duplicate pair (exact, near, paraphrase), located by file:line."""
    by_place = {}
    for i, r in enumerate(rows):
        file, _, line = r["source"].rpartition(":")
        by_place[(file.split("sample_data/", 1)[-1], int(line))] = i
    pairs = [(e["dup"], e["of"]) for e in planted["exact_duplicates"]]
    pairs += [(e["a"], e["b"]) for e in planted["near_duplicates"] + planted["paraphrases"]]
    return [sorted({by_place[(a["file"], a["line"])], by_place[(b["file"], b["line"])]}) for a, b in pairs]


@pytest.mark.parametrize("spec", ["train=0.9,val=0.2", "train", "train=x", "train=0.5,train=0.5", "1x=1"])
def test_bad_split_specs_are_refused_with_one_sentence(spec):
    with pytest.raises(StudioError):
        parse_split_spec(spec)


def test_split_spec_parses_names_and_fractions_in_order():
    assert list(parse_split_spec("train=0.9, val=0.05,test=0.05").items()) == [("train", 0.9), ("val", 0.05), ("test", 0.05)]


def test_pinned_groups_keep_their_split_for_every_seed_and_new_groups_fill_the_fractions():
    rows = [_row(f"question {i} about lanterns", f"answer {i}") for i in range(100)]
    pins = {f"id:{r['id']}": ("test" if i < 20 else "train") for i, r in enumerate(rows[:50])}
    for seed in range(5):
        plan = plan_splits(rows, FRACTIONS, seed, pins=pins)
        assert [plan.splits[i] for i in range(50)] == ["test"] * 20 + ["train"] * 30
        assert plan.pinned_by[:50] == ["earlier"] * 50 and set(plan.pinned_by[50:]) == {None}
        # test already holds 20 rows for a target of 10: the 50 new rows go to val (target 10) and train
        new = Counter(plan.splits[50:])
        assert "test" not in new and abs(new["val"] - 10) <= 1 and new["train"] + new["val"] == 50


def test_a_group_whose_pins_disagree_goes_to_the_split_listed_last_and_a_person_s_move_beats_both():
    a, b = _row("how do i return a tent", "Use the form."), _row("How do I  return a tent", "Send it back.")
    pins = {f"id:{a['id']}": "train", f"id:{b['id']}": "test"}  # one prompt: a and b are one group
    plan = plan_splits([a, b], FRACTIONS, 0, pins=pins)
    assert plan.splits == ["test", "test"] and plan.merged_groups == 1
    moved = plan_splits([a, b], FRACTIONS, 0, pins=pins, moves={f"id:{b['id']}": "val", f"id:{a['id']}": "train"})
    assert moved.splits == ["train", "train"] and moved.pinned_by == ["person", "person"]  # the latest move wins


def test_extra_links_join_groups_through_keys_no_row_has():
    a, b = _row("stove fuel question", "Use canisters."), _row("which gas for the camp stove", "Butane mix.")
    plan = plan_splits([a, b], FRACTIONS, 0, pins={"id:gone": "val"},
                       links=[(f"id:{a['id']}", "id:gone"), ("id:gone", f"id:{b['id']}")])
    assert plan.splits == ["val", "val"] and plan.pinned_by == ["earlier", "earlier"]


def test_a_pinned_split_missing_from_the_fractions_is_one_sentence():
    with pytest.raises(StudioError, match="split 'holdout' holds examples of an earlier version"):
        plan_splits([_row("q", "a")], FRACTIONS, 0, pins={"id:x": "holdout"})
