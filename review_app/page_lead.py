"""Lead view: the dashboard (people, pace, the queue, items awaiting another reviewer, Label Studio and app side
by side), agreement between reviewers (per pair and overall) and the items where they disagree, each with buttons
to resolve it. Every figure comes from `store.dashboard()` / `store.agreement()`; this module only lays them out."""

from __future__ import annotations

import html
from typing import Any

import streamlit as st

from review_app import logic

#: disagreements shown with their resolve buttons (the table above lists them all)
MAX_EXPANDERS = 25


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _secs(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def reviewer_rows(stats: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The per-reviewer table as shown: one row per person, figures formatted."""
    return [{"reviewer": r["reviewer"], "decided": str(r["decided"]), "accept rate": _pct(r["accept_rate"]),
             "median s / item": _secs(r["median_seconds"]), "agreement with others": _pct(r["agreement"]),
             "items shared": str(r["shared_items"])} for r in stats]


def source_rows(stats: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Decisions by where they were made, as shown."""
    names = {"app": "review app", "labelstudio": "Label Studio", "rule": "rules", "resolution": "lead resolutions"}
    return [{"made in": names.get(r["source"], r["source"]), "decisions": str(r["decisions"]), "items": str(r["items"]),
             "reviewers": str(r["reviewers"]), "accept rate": _pct(r["accept_rate"]),
             "median s / decision": _secs(r["median_seconds"])} for r in stats]


def _bar(counts: dict[str, int], title: str):
    import plotly.graph_objects as go

    # plotly reads a small HTML subset in labels (links included): names from the data are shown as typed
    fig = go.Figure(go.Bar(x=list(counts.values()), y=[html.escape(str(k)) for k in counts], orientation="h"))
    fig.update_layout(title=title, height=80 + 28 * max(1, len(counts)), margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      yaxis={"autorange": "reversed"})
    return fig


def _by_day(rows: list[dict[str, Any]]):
    import plotly.graph_objects as go

    fig = go.Figure()
    for source in sorted({r["source"] for r in rows}):
        mine = [r for r in rows if r["source"] == source]
        fig.add_trace(go.Bar(x=[r["day"] for r in mine], y=[r["decisions"] for r in mine], name=html.escape(source)))
    fig.update_layout(barmode="stack", title="Decisions per day (UTC), by where they were made", height=300,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


# Every figure is computed once per store and version and shared by every lead's session (a resource cache: nothing
# is copied on a hit, so nothing here may change what it returns). The people's figures change only with a decision;
# the queue's also with a load or a claim, and its minute's expiry covers a lease that lapses (which changes no
# version).
@st.cache_resource(ttl=600, max_entries=4, show_spinner="Counting decisions…")
def _decided(url: str, version: tuple, _store) -> dict[str, Any]:
    a = _store.analytics
    disagreements = a.disagreements()
    return {"reviewers": a.reviewer_stats(), "sources": a.source_stats(), "by_day": a.decisions_by_day(),
            "agreement": a.agreement(), "disagreements": disagreements,
            "disagreement_rows": logic.disagreement_rows(disagreements)}


@st.cache_resource(ttl=60, max_entries=4, show_spinner="Counting the queue…")
def _queue(url: str, version: tuple, _store) -> dict[str, Any]:
    import time

    a = _store.analytics
    return {"queue": a.queue_breakdown(), "awaiting_second": a.awaiting_second(), "progress": a.progress(),
            "at": time.strftime("%H:%M:%S")}


def render_dashboard(dash: dict[str, Any]) -> None:
    queue, progress = dash["queue"], dash["progress"]
    c = st.columns(5)
    c[0].metric("items", progress["items"])
    for col, stage in zip(c[1:], ("awaiting first review", "awaiting another reviewer", "complete", "decided by rule"),
                          strict=True):
        col.metric(stage, queue["stage"].get(stage, 0))
    st.subheader("Reviewers")
    if dash["reviewers"]:
        st.table(reviewer_rows(dash["reviewers"]))
        st.caption("Current accept/reject decisions per person (a Label Studio annotator and the app login of the same "
                   "person are one row). Agreement: share of their verdicts that match another person's on the same item.")
    else:
        st.info("No decisions yet.")
    st.subheader("Label Studio and the review app side by side")
    if dash["sources"]:
        st.table(source_rows(dash["sources"]))
    if dash["by_day"]:
        st.plotly_chart(_by_day(dash["by_day"]), width="stretch")
    st.subheader("Queue")
    cols = st.columns(2)
    for i, (key, title) in enumerate((("status", "by status"), ("origin", "by origin"), ("source", "by source file"),
                                      ("tag", "by tag"))):
        if queue[key]:
            cols[i % 2].plotly_chart(_bar(queue[key], f"Items {title}"), width="stretch")
    waiting = dash["awaiting_second"]
    st.subheader(f"Awaiting another reviewer: {waiting['count']}")
    if waiting["items"]:
        st.dataframe([{**w, "by": ", ".join(w["by"])} for w in waiting["items"]], width="stretch", hide_index=True)


def render(store, user) -> None:
    st.title("Lead view")
    figures = {**_decided(store.url, store.decisions_version(), store),
               **_queue(store.url, store.dashboard_version(), store)}
    st.caption(f"Figures as of {figures['at']}; they refresh with the next decision, load or claim.")
    render_dashboard(figures)
    ag = figures["agreement"]
    st.subheader("Agreement")
    c = st.columns(4)
    c[0].metric("items reviewed by 2+", ag["items_with_overlap"])
    c[1].metric("Fleiss' kappa", ag["fleiss"]["fleiss_kappa"] if ag["fleiss"]["fleiss_kappa"] is not None else "–")
    c[2].metric("Krippendorff α (verdicts)", ag["verdict_alpha"] if ag["verdict_alpha"] is not None else "–")
    c[3].metric("Krippendorff α (ratings)", ag["rating_alpha"] if ag["rating_alpha"] is not None else "–")
    if ag["pairs"]:
        st.dataframe(ag["pairs"], width="stretch", hide_index=True)
    st.subheader("Disagreements")
    disagreements = figures["disagreements"]
    if not disagreements:
        st.info("No disagreements.")
        return
    st.dataframe(figures["disagreement_rows"], width="stretch", hide_index=True)
    # one expander per item costs a query and a dozen elements: at 100k items thousands of them took minutes to render
    shown = sorted(disagreements, key=lambda d: d["resolution"] is not None)[:MAX_EXPANDERS]
    if len(disagreements) > len(shown):
        st.caption(f"The first {len(shown)} of {len(disagreements)} disagreements (open ones first) to resolve here.")
    for d in shown:
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
