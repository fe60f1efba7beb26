"""Login page of the review app: nothing else is shown until a reviewer logs in."""

from __future__ import annotations

import streamlit as st


def render(store) -> None:
    st.title("Review — log in")
    note = st.session_state.pop("login_note", None)
    if note:
        st.info(note)
    with st.form("login"):
        name = st.text_input("Name", key="login_name")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        from review_app.store.auth import LoginThrottled

        try:
            user = store.authenticate(name, password)
        except LoginThrottled as err:
            st.error(f"Too many failed logins for this name; try again in {max(1, round(err.seconds))} seconds.")
            return
        if user is None:
            st.error("Wrong name or password.")
        else:
            st.session_state["user"] = user
            st.rerun()
