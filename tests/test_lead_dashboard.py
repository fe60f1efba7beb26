"""The lead dashboard's figures against the decisions that made them: per person (decided, accept rate, median
seconds, agreement with the others), decisions by where they were made, the queue's breakdown and the items awaiting
another reviewer — on SQLite and on a real PostgreSQL server, and in the real page (Streamlit in headless Chromium).

The expected figures are computed here, in plain Python, from the list of decisions the test makes."""

from __future__ import annotations

import statistics
from collections import defaultdict

from appserver import CHROMIUM, FLAGS, REPO, log_in
from test_review_browser import server  # noqa: F401  (fixture: a real streamlit server)
from test_review_postgres import pg_url  # noqa: F401  (fixture: a real PostgreSQL server for this module)

from review_app.store import ReviewStore

#: (item index, reviewer, verdict, seconds, source) in the order they are made. cat@x.org decides in the app and in
#: Label Studio (as labelstudio:cat@x.org): one person; on item 5 her later Label Studio verdict replaces her app one.
DECISIONS = [
    (0, "ann", "accept", 10.0, "app"), (0, "bob", "accept", 20.0, "app"),
    (1, "ann", "reject", 30.0, "app"), (1, "bob", "accept", 40.0, "app"),
    (2, "ann", "accept", 50.0, "app"), (2, "labelstudio:cat@x.org", "accept", 5.0, "labelstudio"),
    (3, "bob", "reject", 7.0, "app"), (3, "cat@x.org", "reject", 9.0, "app"),
    (4, "ann", "accept", 12.0, "app"),
    (5, "cat@x.org", "accept", 3.0, "app"), (5, "labelstudio:cat@x.org", "reject", 8.0, "labelstudio"),
    (6, "ann", "skip", 2.0, "app"),  # a skip decides nothing
]
N_ITEMS = 10


def items() -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"Question number {i}?"},
                          {"role": "assistant", "content": f"Reply number {i}."}],
             "origin": "synthetic" if i % 3 == 0 else "real", "source": f"{'a' if i < 6 else 'b'}.jsonl:{i}",
             "meta": '{"category": "%s"}' % ("billing" if i % 2 else "claims"), "quality": i / N_ITEMS, "pii_count": 0}
            for i in range(N_ITEMS)]


def item_ids(store: ReviewStore) -> dict[int, str]:
    from sqlalchemy import select

    from review_app.store.database import ITEMS

    with store.db.tx() as conn:
        rows = conn.execute(select(ITEMS.c.id, ITEMS.c.source)).all()
    return {int(source.rsplit(":", 1)[1]): item_id for item_id, source in rows}


def make_decisions(store: ReviewStore) -> dict[int, str]:
    store.load_dataset(items(), overlap=2)
    for name in ("ann", "bob", "cat@x.org"):
        store.ensure_reviewer(name, role="reviewer")
    store.ensure_reviewer("labelstudio:cat@x.org")
    ids = item_ids(store)
    for i, reviewer, verdict, seconds, source in DECISIONS:
        store.record_decision(ids[i], reviewer, verdict, seconds=seconds, source=source)
    store.record_decision(ids[7], "bob", "accept", seconds=99.0)
    assert store.undo_last("bob")["item_id"] == ids[7]  # withdrawn: counts nowhere
    return ids


def expected_people() -> dict[str, dict]:
    """Per person from DECISIONS: the latest non-skip verdict of each person on each item, then the figures."""
    latest: dict[tuple[int, str], tuple[str, float]] = {}
    for i, reviewer, verdict, seconds, _ in DECISIONS:
        if verdict != "skip":
            latest[(i, reviewer.removeprefix("labelstudio:"))] = (verdict, seconds)
    by_item: dict[int, dict[str, str]] = defaultdict(dict)
    for (i, person), (verdict, _) in latest.items():
        by_item[i][person] = verdict
    out = {}
    for person in sorted({p for _, p in latest}):
        mine = {i: v for (i, p), v in latest.items() if p == person}
        pairs = [(v[0], other_v) for i, v in mine.items() for other, other_v in by_item[i].items() if other != person]
        out[person] = {"reviewer": person, "decided": len(mine),
                       "accept_rate": round(sum(v == "accept" for v, _ in mine.values()) / len(mine), 4),
                       "median_seconds": round(statistics.median(s for _, s in mine.values()), 2),
                       "shared_items": len({i for i in mine if len(by_item[i]) > 1}),
                       "agreement": round(sum(a == b for a, b in pairs) / len(pairs), 4) if pairs else None}
    return out


def check_store_figures(store: ReviewStore, ids: dict[int, str]) -> None:
    expected = expected_people()
    assert {r["reviewer"]: r for r in store.reviewer_stats()} == expected
    # the hand-worked values, so a shared mistake in the expectation above would show
    assert expected["ann"] == {"reviewer": "ann", "decided": 4, "accept_rate": 0.75, "median_seconds": 21.0,
                                    "shared_items": 3, "agreement": 0.6667}
    assert expected["cat@x.org"]["decided"] == 3 and expected["cat@x.org"]["agreement"] == 1.0
    sources = {r["source"]: r for r in store.source_stats()}
    assert sources["app"]["decisions"] == 9 and sources["labelstudio"]["decisions"] == 2
    assert sources["labelstudio"]["accept_rate"] == 0.5 and sources["labelstudio"]["median_seconds"] == 6.5
    assert sources["app"]["median_seconds"] == statistics.median([10, 20, 30, 40, 50, 7, 9, 12, 3])
    by_day = store.decisions_by_day()
    assert {r["source"]: r["decisions"] for r in by_day} == {"app": 9, "labelstudio": 2} and len(by_day) == 2
    queue = store.queue_breakdown()
    assert queue["origin"] == {"real": 6, "synthetic": 4}
    assert queue["source"] == {"a.jsonl": 6, "b.jsonl": 4}
    assert queue["tag"] == {"billing": 5, "claims": 5}
    assert sum(queue["status"].values()) == N_ITEMS
    waiting = store.awaiting_second()
    assert waiting["count"] == queue["stage"]["awaiting another reviewer"]
    assert ids[4] in {w["item_id"] for w in waiting["items"]}
    assert next(w for w in waiting["items"] if w["item_id"] == ids[4])["by"] == ["ann: accept"]
    check_agreement_and_disagreements(store, ids)


def check_agreement_and_disagreements(store: ReviewStore, ids: dict[int, str]) -> None:
    """Agreement and the disagreement list (read from the compact votes projection) against DECISIONS, and fresh
    again after one more decision (the projection is kept per decisions version)."""
    # people's latest verdicts on items with two or more people: 0 ann A bob A, 1 ann R bob A, 2 ann A cat A,
    # 3 bob R cat R (item 5 is cat twice: one person)
    ag = store.agreement()
    assert ag["items_with_overlap"] == 4
    assert ag["pairs"] == [{"a": "ann", "b": "bob", "items": 2, "agreement": 0.5, "cohen_kappa": 0.0},
                           {"a": "ann", "b": "cat@x.org", "items": 1, "agreement": 1.0, "cohen_kappa": None},
                           {"a": "bob", "b": "cat@x.org", "items": 1, "agreement": 1.0, "cohen_kappa": None}]
    assert ag["fleiss"]["items"] == 4 and ag["fleiss"]["raters_per_item"] == 2
    # Fleiss: P = 3/4 items agree; p_accept = 5/8 -> Pe = (5/8)^2 + (3/8)^2 = 34/64
    assert ag["fleiss"]["fleiss_kappa"] == round((0.75 - 34 / 64) / (1 - 34 / 64), 4)
    [one] = store.disagreements()
    assert one["item_id"] == ids[1] and one["resolution"] is None
    assert [(d["reviewer"], d["verdict"]) for d in one["decisions"]] == [("ann", "reject"), ("bob", "accept")]
    store.record_decision(ids[4], "bob", "reject", reasons=["wrong facts"], seconds=1.0)
    assert [d["item_id"] for d in store.disagreements()] == [ids[1], ids[4]]
    assert store.disagreements()[1]["decisions"][1]["reasons"] == ["wrong facts"]
    assert {r["reviewer"]: r["decided"] for r in store.reviewer_stats()}["bob"] == 4
    assert store.agreement()["items_with_overlap"] == 5


def test_dashboard_figures_match_the_decisions_on_sqlite(tmp_path):
    store = ReviewStore(tmp_path / "review.db", bcrypt_rounds=4)
    ids = make_decisions(store)
    assert store.queue_breakdown()["stage"] == {"complete": 5, "awaiting another reviewer": 1,
                                                "awaiting first review": 4}  # 0-3 and 5; 4; 6-9
    check_store_figures(store, ids)
    store.close()


def test_dashboard_figures_match_the_decisions_on_postgresql(pg_url):  # noqa: F811
    import sqlalchemy as sa

    with sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT").connect() as conn:
        conn.exec_driver_sql("CREATE DATABASE dashboard")
    store = ReviewStore(pg_url.rsplit("/", 1)[0] + "/dashboard", bcrypt_rounds=4)
    assert store.dialect == "postgresql"
    ids = make_decisions(store)
    check_store_figures(store, ids)
    store.close()


def test_lead_sees_per_reviewer_figures_that_match_the_store_in_chromium(server):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    from review_app.page_lead import reviewer_rows

    base, store = server
    store.add_reviewer("lead.lee", "lee-password", role="lead")
    make_decisions(store)
    shown = reviewer_rows(sorted(expected_people().values(), key=lambda r: (-r["decided"], r["reviewer"])))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        log_in(page, base, "lead.lee", "lee-password")
        page.get_by_text("Lead view").click()
        table = page.locator('[data-testid="stTable"]').first
        expect(table).to_contain_text("agreement with others", timeout=30_000)
        body_rows = table.locator("tbody tr")
        expect(body_rows).to_have_count(len(shown))
        cells = [[c.strip() for c in body_rows.nth(k).locator("td").all_inner_texts()] for k in range(len(shown))]
        assert cells == [list(r.values()) for r in shown]
        assert ["ann", "4", "75.0 %", "21.0", "66.7 %", "3"] in cells
        page_text = page.locator("body").inner_text()
        assert "Label Studio" in page_text and "review app" in page_text
        expect(page.get_by_text("Awaiting another reviewer:")).to_be_visible()
        browser.close()


def test_the_lead_page_reuses_its_figures_until_a_decision_load_or_claim_changes_them(tmp_path, monkeypatch):
    """The page's figures are cached per store version: a rerun with nothing new reads nothing again; a new decision
    refreshes everything, a new item or a new claim the queue's figures (the page must never show a stale count)."""
    from streamlit.testing.v1 import AppTest

    APP = str(REPO / "review_app" / "app.py")
    url = f"sqlite:///{tmp_path / 'review.db'}"
    store = ReviewStore(url, bcrypt_rounds=4)
    ids = make_decisions(store)
    monkeypatch.setenv("STUDIO_REVIEW_DB", url)
    store.add_reviewer("lead.lee", "lee-password", role="lead")
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["user"] = {"name": "lead.lee", "role": "lead"}
    at.session_state["view"] = "Lead view"

    def metric(label: str) -> str:
        at.run()
        assert not at.exception, at.exception
        return next(m.value for m in at.metric if m.label == label)

    reads = []
    for name in ("disagreements", "queue_breakdown"):
        real = getattr(type(store.analytics), name)
        monkeypatch.setattr(type(store.analytics), name,
                            lambda self, *a, _real=real, _name=name: reads.append(_name) or _real(self, *a))
    assert (metric("items"), metric("awaiting first review")) == (str(N_ITEMS), "4")
    complete = int(metric("complete"))
    assert reads == ["disagreements", "queue_breakdown"]  # the second and third reruns were served from the cache
    store.record_decision(ids[4], "bob", "accept", seconds=5.0)  # item 4 gets its second verdict
    assert int(metric("complete")) == complete + 1
    assert reads[2:] == ["disagreements", "queue_breakdown"]
    store.load_dataset([{**items()[0], "source": "c.jsonl:0", "messages": [
        {"role": "user", "content": "A new question?"}, {"role": "assistant", "content": "A new reply."}]}], overlap=2)
    assert metric("items") == str(N_ITEMS + 1) and reads[4:] == ["queue_breakdown"]  # people's figures unchanged
    assert store.next_item("ann") is not None  # a claim
    metric("items")
    assert reads[5:] == ["queue_breakdown"]
