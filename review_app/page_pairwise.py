"""Pairwise review page: one prompt, its candidate answers side by side in a random order that is fixed per
reviewer and item (`pairwise.side_order`), buttons "A is better [a]", "B is better [b]", "Tie [t]",
"Skip [s]" (more candidates: "C is better", ... without keys), an optional reason, and each answer in an
editable box: an edit to the answer that wins is stored as the winner's edit.

Blind items (`meta.blind`, e.g. from `studio eval --to-review`) show no provenance, source or origin: the
page's DOM holds the prompt and the answers' text only (tests/test_review_pairwise_browser.py checks it)."""

from __future__ import annotations

import string
import time

import streamlit as st

from review_app import logic
from review_app.pairwise import TIE, record_preference, side_order


def _decide(store, user, item, choice: str | None, edits: dict[str, str], reason: str) -> None:
    shown = st.session_state.get("shown_at", {}).get(item.id)
    seconds = round(time.monotonic() - shown, 2) if shown else None
    if choice is None:
        store.record_decision(item.id, user["name"], "skip", seconds=seconds)
        st.session_state["flash"] = "skipped"
        return
    record_preference(store, item.id, user["name"], choice, reason=reason or None,
                      edited_answer=edits.get(choice) if choice != TIE else None, seconds=seconds)
    st.session_state["flash"] = "tie" if choice == TIE else "preference"


def render_item(store, user, item) -> None:
    md = logic.safe_markdown
    blind = bool(item.meta.get("blind"))
    cands = {c["id"]: c for c in item.extra["candidates"]}
    order = side_order(item.id, user["name"], list(cands))
    letters = string.ascii_uppercase[:len(order)]
    st.caption("Pick the better answer" + (" · blind comparison" if blind else
                                           f" · source {md(item.source)}" if item.source else ""))
    st.markdown(f'<span data-testid="review-item-id" style="display:none">{logic.inert_html(item.id)}</span>',
                unsafe_allow_html=True)
    for m in item.messages:
        with st.chat_message(m["role"]):
            st.markdown(md(m["content"]))
    key = f"{item.id}_{item.attempt}"
    edits: dict[str, str] = {}
    cols = st.columns(len(order))
    for col, letter, cid in zip(cols, letters, order, strict=True):
        c = cands[cid]
        with col:
            st.markdown(f"**Answer {letter}**")
            if not blind:
                prov = " · ".join(f"{k} {md(c[k])}" for k in ("model", "run", "origin") if c.get(k))
                if prov:
                    st.caption(prov)
            text = st.text_area(f"Answer {letter}", c["content"], height=220, key=f"cand_{key}_{letter}",
                                label_visibility="collapsed")
            if text.strip() and text != c["content"]:
                edits[cid] = text.strip()
                st.caption("edited: your edit is kept if this answer wins")
    reason = st.text_input("Reason (optional)", key=f"reason_{key}")
    b = st.columns(len(order) + 3)
    for i, (letter, cid) in enumerate(zip(letters, order, strict=True)):
        label = f"{letter} is better" + (f" [{letter.lower()}]" if letter in "AB" else "")
        if b[i].button(label, type="primary", key=f"pick_{letter}", width="stretch"):
            _decide(store, user, item, cid, edits, reason)
            st.rerun()
    if b[len(order)].button("Tie [t]", key="tie", width="stretch"):
        _decide(store, user, item, TIE, edits, reason)
        st.rerun()
    if b[len(order) + 1].button("Skip [s]", key="skip", width="stretch"):
        _decide(store, user, item, None, edits, reason)
        st.rerun()
    b[len(order) + 2].caption("Keys: **a** / **b** better · **t** tie · **s** skip · **u** undo (outside text boxes)")
