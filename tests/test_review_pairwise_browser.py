"""Pairwise review in a real browser (headless Chromium against `streamlit run`): two reviewers complete blind
pairwise items with the keys a / b / t; the choices land in the store as candidate ids (the side order undone),
their agreement is computed, and the page's DOM never holds a candidate's model, run or origin."""

from __future__ import annotations

import json

import pytest
from appserver import CHROMIUM, FLAGS, log_in, need_chromium, review_app

from review_app.pairwise import TIE, choices, load_pairwise, pairwise_agreement, side_order
from review_app.store import ReviewStore

SECRETS = ("zz-base-model-x", "zz-tuned-model-y", "train-zzsecret", "zzorigin")


@pytest.fixture()
def server(tmp_path):
    need_chromium()
    url = f"sqlite:///{tmp_path / 'review.db'}"
    store = ReviewStore(url, bcrypt_rounds=4)
    for name in ("ann", "bob"):
        store.add_reviewer(name, f"{name}-password")
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({
        "messages": [{"role": "user", "content": f"Prompt number {i}?"}],
        "candidates": [{"content": f"Short answer {i}.", "model": SECRETS[0], "run": SECRETS[2], "origin": SECRETS[3]},
                       {"content": f"Long answer {i}, with steps.", "model": SECRETS[1], "run": SECRETS[2],
                        "origin": SECRETS[3]}],
        "source": "blind", "blind": True}) + "\n" for i in range(3)), encoding="utf-8")
    load_pairwise(store, path, overlap=2)
    with review_app(url, tmp_path) as base:
        yield base, store
    store.close()


def review_with_keys(browser, base, store, name, keys):
    from playwright.sync_api import expect

    page = browser.new_context().new_page()
    log_in(page, base, name, f"{name}-password")
    marker = page.locator('[data-testid="review-item-id"]')
    expected = {}
    previous = None
    for key in keys:
        expect(page.get_by_role("button", name="Tie [t]")).to_be_visible(timeout=30_000)
        if previous is not None:
            expect(marker).not_to_have_text(previous, timeout=20_000)
        item_id = marker.inner_text(timeout=20_000).strip() or marker.text_content().strip()
        html = page.content()
        assert not any(s in html for s in SECRETS), "a blind item's provenance reached the page"
        item = store.get_item(item_id)
        order = side_order(item_id, name, [c["id"] for c in item.extra["candidates"]])
        expected[item_id] = TIE if key == "t" else order["ab".index(key)]
        page.get_by_text("Prompt number").first.click()  # focus outside text boxes
        page.keyboard.press(key)
        previous = item_id
    expect(page.get_by_text("Nothing left in your queue")).to_be_visible(timeout=30_000)
    page.close()
    return expected


def test_two_reviewers_complete_blind_pairwise_items_with_keys(server):
    from playwright.sync_api import sync_playwright

    base, store = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        ann = review_with_keys(browser, base, store, "ann", ["a", "b", "t"])
        bob = review_with_keys(browser, base, store, "bob", ["b", "b", "a"])
        browser.close()
    stored = {i: {p: d["choice"] for p, d in per.items()} for i, per in choices(store).items()}
    assert {i: per["ann"] for i, per in stored.items()} == ann
    assert {i: per["bob"] for i, per in stored.items()} == bob
    same = sum(ann[i] == bob[i] for i in ann)
    report = pairwise_agreement(store)
    assert report["items_with_overlap"] == 3 and report["percent_agreement"] == round(same / 3, 4)
    decisions = store.decisions(reviewer="ann")
    assert all(d["seconds"] is not None and d["verdict"] == "accept" for d in decisions)
    assert [e["action"] for e in store.audit_log(actor="ann")][-3:] == ["decide"] * 3
