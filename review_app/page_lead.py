"""Lead view: agreement between reviewers (per pair and overall) and the items where they disagree,
each with buttons to resolve it."""

from __future__ import annotations

import streamlit as st

from review_app import logic


def render(store, user) -> None:
    st.title("Lead view")
    ag = store.agreement()
    st.subheader("Agreement")
    c = st.columns(4)
    c[0].metric("items reviewed by 2+", ag["items_with_overlap"])
    c[1].metric("Fleiss' kappa", ag["fleiss"]["fleiss_kappa"] if ag["fleiss"]["fleiss_kappa"] is not None else "–")
    c[2].metric("Krippendorff α (verdicts)", ag["verdict_alpha"] if ag["verdict_alpha"] is not None else "–")
    c[3].metric("Krippendorff α (ratings)", ag["rating_alpha"] if ag["rating_alpha"] is not None else "–")
    if ag["pairs"]:
        st.dataframe(ag["pairs"], use_container_width=True, hide_index=True)
    st.subheader("Disagreements")
    disagreements = store.disagreements()
    if not disagreements:
        st.info("No disagreements.")
        return
    st.dataframe(logic.disagreement_rows(disagreements), use_container_width=True, hide_index=True)
    for d in disagreements:
        item = store.get_item(d["item_id"])
        md = logic.safe_markdown
        label = f"{md(item.id)} · " + ("resolved: " + d["resolution"]["verdict"] if d["resolution"] else "open")
        with st.expander(label, expanded=d["resolution"] is None):
            for m in item.messages:
                with st.chat_message(m["role"]):
                    st.markdown(md(m["content"]))
            for x in d["decisions"]:
                note = f" — {md(', '.join(x['reasons']))}" if x["reasons"] else ""
                st.markdown(f"- **{md(x['reviewer'])}**: {x['verdict']}{note}" + (f" ({md(x['comment'])})" if x["comment"] else ""))
            cols = st.columns(2)
            if cols[0].button("Resolve: accept", key=f"res_acc_{item.id}"):
                store.resolve(item.id, user["name"], "accept")
                st.rerun()
            if cols[1].button("Resolve: reject", key=f"res_rej_{item.id}"):
                store.resolve(item.id, user["name"], "reject")
                st.rerun()
