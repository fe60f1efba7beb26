"""Authentication abuse: guessing is throttled with a doubling backoff for known and unknown names alike, an unknown
name costs the same bcrypt check as a known one, a login flood writes nothing once throttled, and the app
re-checks the account on every page run (Streamlit's AppTest runs the real app script): a deactivated or demoted
user loses access at their next click, a reviewer never reaches the lead view, an idle session logs out."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from review_app.store import ReviewStore
from review_app.store import auth as auth_module
from review_app.store.auth import LoginThrottled

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def store(tmp_path):
    s = ReviewStore(f"sqlite:///{tmp_path / 'review.db'}", bcrypt_rounds=4)
    s.add_reviewer("ann", "ann-password")
    s.add_reviewer("lea", "lea-password", role="lead")
    s.load_dataset([{"messages": [{"role": "user", "content": f"Question {i}?"},
                                  {"role": "assistant", "content": f"Answer {i}."}]} for i in range(3)])
    yield s
    s.close()


@pytest.mark.parametrize("name", ["ann", "nobody-by-this-name"])
def test_guessing_is_throttled_with_a_doubling_backoff_for_known_and_unknown_names(store, monkeypatch, name):
    monkeypatch.setattr(auth_module, "BACKOFF_SECONDS", 0.3)
    for _ in range(auth_module.FREE_FAILURES):
        assert store.authenticate(name, "wrong-guess") is None
    with pytest.raises(LoginThrottled):
        store.authenticate(name, "ann-password")  # even the right password is not checked while throttled
    time.sleep(0.35)
    assert store.authenticate(name, "wrong-again") is None
    with pytest.raises(LoginThrottled) as err:
        store.authenticate(name, "ann-password")
    assert 0.3 < err.value.seconds <= 0.6  # doubled
    assert store.authenticate("lea", "lea-password") == {"name": "lea", "role": "lead"}  # others are unaffected


def test_an_unknown_name_costs_the_same_bcrypt_check_as_a_known_one(tmp_path, monkeypatch):
    monkeypatch.setattr(auth_module, "FREE_FAILURES", 10_000)
    s = ReviewStore(f"sqlite:///{tmp_path / 'timing.db'}", bcrypt_rounds=8)
    s.add_reviewer("ann", "ann-password")

    # CPU time of this thread (bcrypt runs in it), measured in turns, so other processes' load does not count
    cost: dict[str, list[float]] = {"ann": [], "nobody-by-this-name": []}
    for _ in range(9):
        for name, times in cost.items():
            t0 = time.thread_time()
            s.authenticate(name, "wrong-guess")
            times.append(time.thread_time() - t0)
    known, unknown = statistics.median(cost["ann"]), statistics.median(cost["nobody-by-this-name"])
    print(f"\nfailed login CPU time: known name {known * 1000:.1f} ms, unknown name {unknown * 1000:.1f} ms")
    assert 0.6 < unknown / known < 1.6
    s.close()


def test_a_login_flood_writes_nothing_once_throttled(store):
    refused = 0
    for _ in range(200):
        try:
            store.authenticate("ann", "flood")
        except LoginThrottled:
            refused += 1
    assert refused == 200 - auth_module.FREE_FAILURES
    assert len(store.audit_log(action="login_failed")) == auth_module.FREE_FAILURES
    store.record_decision(store.next_item("lea").id, "lea", "accept")  # reviewers' saves go on


def _logged_in(monkeypatch, store, name: str, password: str):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("STUDIO_REVIEW_DB", store.url)
    at = AppTest.from_file(str(REPO / "review_app" / "app.py"), default_timeout=60).run()
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    at.button[0].click().run()
    assert not at.exception and "Log in" not in [b.label for b in at.button]
    return at


def test_a_deactivated_user_is_logged_out_at_the_next_click(store, monkeypatch):
    at = _logged_in(monkeypatch, store, "ann", "ann-password")
    store.set_active("ann", False)
    at.run()
    assert [t.label for t in at.text_input] == ["Name", "Password"]
    assert store.authenticate("ann", "ann-password") is None
    store.set_active("ann", True)
    assert store.authenticate("ann", "ann-password") == {"name": "ann", "role": "reviewer"}


def test_a_demoted_lead_loses_the_lead_view_and_a_reviewer_never_reaches_it(store, monkeypatch):
    at = _logged_in(monkeypatch, store, "lea", "lea-password")
    at.radio(key="view").set_value("Lead view").run()
    assert "Lead view" in [t.value for t in at.title]
    store.set_role("lea", "reviewer")
    at.run()
    assert "Lead view" not in [t.value for t in at.title] and "view" not in [r.key for r in at.radio]
    at.session_state["view"] = "Lead view"  # a reviewer's session asking for it anyway
    at.session_state["user"] = {"name": "lea", "role": "lead"}  # and claiming the old role
    at.run()
    assert "Lead view" not in [t.value for t in at.title]
    with pytest.raises(Exception, match="only leads resolve"):
        store.resolve(store.next_item("ann").id, "lea", "accept")


def test_an_idle_session_is_logged_out(store, monkeypatch):
    at = _logged_in(monkeypatch, store, "ann", "ann-password")
    at.session_state["last_seen"] = time.monotonic() - 31 * 60
    at.run()
    assert [t.label for t in at.text_input] == ["Name", "Password"]
    assert "You were logged out after being idle." in [i.value for i in at.info]
