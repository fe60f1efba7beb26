"""The review app (Streamlit): `studio review` runs it. Login first; then the review queue, and for leads
the lead view. Each page is a small module calling tested functions (`logic`, `store`).

The database comes from $STUDIO_REVIEW_DB (set by `studio review`), else the workspace's review.db.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

# `streamlit run review_app/app.py` puts only this folder on sys.path; the package's own tree goes first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st  # noqa: E402

from review_app import logic, page_lead, page_login, page_review  # noqa: E402


@st.cache_resource
def get_store(url: str):
    from review_app.store import ReviewStore

    return ReviewStore(url)


def db_url() -> str:
    """$STUDIO_REVIEW_DB (set by `studio review`), else the workspace's database."""
    from studio.errors import StudioError
    from studio.workspace import Workspace, review_db

    url = os.environ.get("STUDIO_REVIEW_DB")
    try:
        return review_db(url, None if url else Workspace.find())
    except StudioError:
        st.error("No review database: start the app with `studio review` inside a workspace.")
        st.stop()


def guidelines_text() -> str:
    root = os.environ.get("STUDIO_WORKSPACE")
    if root:
        path = Path(root) / "guidelines.md"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return "No guidelines file (guidelines.md in the workspace)."


#: minutes without a page run after which a session logs out ($STUDIO_REVIEW_IDLE_MINUTES, default 30)
IDLE_MINUTES = float(os.environ.get("STUDIO_REVIEW_IDLE_MINUTES") or 30)


def current_user(store) -> dict | None:
    """The logged-in account as it is now: re-read on every page run, so deactivating or demoting a user
    takes effect at their next click; a session idle for IDLE_MINUTES is logged out."""
    user = st.session_state.get("user")
    if user is None:
        return None
    now = time.monotonic()
    idle = now - st.session_state.get("last_seen", now)
    fresh = store.session_user(user["name"]) if idle <= IDLE_MINUTES * 60 else None
    if fresh is None:
        st.session_state.clear()
        st.session_state["login_note"] = ("You were logged out after being idle." if idle > IDLE_MINUTES * 60
                                          else "Your account was changed; log in again.")
        return None
    st.session_state["user"], st.session_state["last_seen"] = fresh, now
    return fresh


def main() -> None:
    st.set_page_config(page_title="Review · Fine-Tuning Data Studio", page_icon="✅", layout="wide")
    store = get_store(db_url())
    user = current_user(store)
    if user is None:
        page_login.render(store)
        st.stop()
    with st.sidebar:
        st.markdown(f"**{logic.safe_markdown(user['name'])}** ({user['role']})")
        if st.button("Log out", key="logout"):
            st.session_state.clear()
            st.rerun()
        view = st.radio("View", ["Review", "Lead view"], key="view") if user["role"] == "lead" else "Review"
        with st.expander("Guidelines", expanded=False):
            st.markdown(guidelines_text())
    if view == "Lead view":
        page_lead.render(store, user)
    else:
        page_review.render(store, user)


main()
