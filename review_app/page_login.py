"""Login page of the review app: nothing else is shown until a reviewer logs in."""

from __future__ import annotations

import streamlit as st


def render(store) -> None:
    st.title("Review — log in")
    with st.form("login"):
        name = st.text_input("Name", key="login_name")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        user = store.authenticate(name, password)
        if user is None:
            st.error("Wrong name or password.")
        else:
            st.session_state["user"] = user
            st.rerun()
