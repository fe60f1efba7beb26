"""Review page: the next item in the reviewer's queue, the response editor with its diff, and the
accept / reject / skip / undo buttons (keys a, r, s, u). Pairwise items are shown by `page_pairwise`
(keys a, b, t, s)."""

from __future__ import annotations

import time

import streamlit as st

from review_app import logic


def _filters(store) -> dict:
    opts = store.filter_options()
    with st.sidebar:
        st.markdown("### Filters")
        origins = st.multiselect("Origin", opts["origins"], key="f_origin")
        bounds = opts["quality"]
        quality = None
        if bounds[0] is not None and bounds[1] is not None and bounds[0] < bounds[1]:
            quality = st.slider("Quality score", float(bounds[0]), float(bounds[1]),
                                (float(bounds[0]), float(bounds[1])), key="f_quality")
        pii = st.radio("Personal data", ["all", "flagged", "not flagged"], horizontal=True, key="f_pii")
        source = st.text_input("Source contains", key="f_source")
        tags = st.multiselect("Tags", opts["tags"], key="f_tags")
    return logic.filters_from_widgets(origins, quality, bounds, pii, source, tags)


def _progress(store, user) -> None:
    fig = logic.progress_figures(store.progress(user["name"]))
    with st.sidebar:
        st.markdown("### Progress")
        st.progress(min(fig["mine"], 1.0), text=fig["mine_text"])
        st.progress(min(fig["overall"], 1.0), text=fig["overall_text"])


def _decide(store, user, item, verdict: str, edit, rating, reasons, comment) -> None:
    shown = st.session_state.get("shown_at", {}).get(item.id)
    seconds = round(time.monotonic() - shown, 2) if shown else None
    store.record_decision(item.id, user["name"], verdict, edited_messages=edit if verdict == "accept" else None,
                          rating=rating, reasons=reasons if verdict == "reject" else (), comment=comment or None,
                          seconds=seconds)
    st.session_state["flash"] = f"{verdict}ed" if verdict != "skip" else "skipped"


def render(store, user) -> None:
    filters = _filters(store)
    _progress(store, user)
    st.iframe(logic.shortcut_script(), height=1)
    flash = st.session_state.pop("flash", None)
    if flash:
        st.toast(f"Saved: {flash}")
    item = store.next_item(user["name"], filters)
    top = st.columns([6, 1])
    top[0].title("Review")
    if top[1].button("Undo [u]", key="undo", help="Take back your last decision (key u)"):
        undone = store.undo_last(user["name"])
        st.session_state["flash"] = "undo" if undone else None
        st.rerun()
    if item is None:
        st.success("Nothing left in your queue with these filters. Thank you!")
        return
    st.session_state.setdefault("shown_at", {}).setdefault(item.id, time.monotonic())
    if item.extra.get("kind") == "pairwise":
        from review_app import page_pairwise

        page_pairwise.render_item(store, user, item)
        return
    md = logic.safe_markdown
    facts = [f"origin **{md(item.origin)}**", f"source {md(item.source)}"]
    if item.quality is not None:
        facts.append(f"quality **{item.quality:.2f}**")
    if item.pii_count:
        facts.append(f"⚠️ personal data found: **{item.pii_count}** ({md(', '.join(item.pii_flags)) or 'unknown type'})")
    if item.tags:
        facts.append("tags " + md(", ".join(item.tags)))
    st.caption(" · ".join(facts))
    st.markdown(f'<span data-testid="review-item-id" style="display:none">{logic.inert_html(item.id)}</span>', unsafe_allow_html=True)
    for m in item.messages[:-1] if item.messages[-1]["role"] == "assistant" else item.messages:
        with st.chat_message(m["role"]):
            st.markdown(md(m["content"]))
    original = logic.last_response(item.messages)
    key = f"{item.id}_{item.attempt}"
    st.markdown("**Response** (edit it if it is nearly right, then accept)")
    response = st.text_area("Response", original, height=220, key=f"edit_{key}", label_visibility="collapsed")
    edit = logic.edit_of(item.messages, response)
    # One container for the preview, whichever form it takes, so the widgets below keep their place in the page:
    # otherwise, going from an edited item (two elements) to the next one (one), the old item's Reasons box lingers
    # beside the new one until the rerun ends.
    with st.container():
        if edit is not None:
            st.markdown("Your changes:")
            st.markdown(logic.response_diff_html(original, response.strip()), unsafe_allow_html=True)
        else:
            with st.chat_message("assistant"):
                st.markdown(md(original))
    cols = st.columns(3)
    rating = cols[0].radio("Rating (1 poor – 5 excellent)", [1, 2, 3, 4, 5], index=None, horizontal=True, key=f"rating_{key}")
    reasons = cols[1].multiselect("Reasons (for reject)", logic.REJECT_REASONS, key=f"reasons_{key}")
    comment = cols[2].text_input("Comment", key=f"comment_{key}")
    b = st.columns([1, 1, 1, 3])
    if b[0].button("Accept [a]", type="primary", key="accept", width="stretch"):
        _decide(store, user, item, "accept", edit, rating, reasons, comment)
        st.rerun()
    if b[1].button("Reject [r]", key="reject", width="stretch"):
        problem = logic.reject_problem(reasons)
        if problem:
            st.error(problem)
        else:
            _decide(store, user, item, "reject", edit, rating, reasons, comment)
            st.rerun()
    if b[2].button("Skip [s]", key="skip", width="stretch"):
        _decide(store, user, item, "skip", edit, rating, reasons, comment)
        st.rerun()
    b[3].caption("Keys: **a** accept · **r** reject · **s** skip · **u** undo (outside text boxes)")
