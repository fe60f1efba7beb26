"""`studio synth --from-review DB`: approved examples become exemplars, rejection reasons guidance, and review
acceptance of earlier synthetic examples is measured per generator/template (real SQLite review store)."""

from __future__ import annotations

import json

from review_app.store import ReviewStore
from synth.commands import _review_feedback
from synth.generators.base import Feedback


def _row(q: str, a: str, origin: str = "real", meta: dict | None = None) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}], "origin": origin,
            "source": "t", "meta": json.dumps(meta or {})}


def test_review_feedback_takes_exemplars_reasons_and_acceptance_per_template(tmp_path):
    url = f"sqlite:///{tmp_path / 'review.db'}"
    store = ReviewStore(url, bcrypt_rounds=4)
    store.add_reviewer("ann", "ann-password-1")
    gq = {"generator": "grounded-qa", "template": "grounded_qa.v1"}
    rows = [_row("Can I return boots?", "Yes, within 60 days."),
            _row("Is the stove safe indoors?", "Sure, anywhere."),
            _row("How long is shipping?", "3-5 business days.", "synthetic", gq),
            _row("Do tents have a warranty?", "No.", "synthetic", gq)]
    store.load_dataset(rows)
    ids = [i["id"] for i in store.approved_items("any")] or None
    assert ids is None  # nothing decided yet
    from studio.schema import example_id

    ids = [example_id(r["messages"]) for r in rows]
    store.record_decision(ids[0], "ann", "accept")
    store.record_decision(ids[1], "ann", "reject", reasons=["unsafe", "incorrect"])
    store.record_decision(ids[2], "ann", "accept")
    store.record_decision(ids[3], "ann", "reject", reasons=["incorrect"])
    store.auto_decide("origin == 'real'", "everything-real")  # rule decisions are not people's feedback
    store.close()

    feedback = Feedback(avoid=["too long"])
    stats = _review_feedback(url, feedback)
    assert {e["prompt"] for e in feedback.exemplars} == {"Can I return boots?", "How long is shipping?"}
    assert feedback.avoid == ["too long", "incorrect", "unsafe"]
    assert stats["acceptance"] == {"grounded-qa / grounded_qa.v1": {"accepted": 1, "decided": 2, "rate": 0.5}}
