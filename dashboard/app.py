"""aria_sync dashboard: the router. Resolves who is acting, then hands over to one page module."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run dashboard/app.py` puts only this folder on sys.path; the pages import `dashboard.ui`.
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from dashboard import ui  # noqa: E402

st.set_page_config(page_title="aria_sync", page_icon=":material/shield:", layout="wide")

ctx = ui.resolve_context()
if ctx is None:
    st.stop()

pages: dict[str, list[st.Page]] = {
    "Integrations": [
        st.Page(ui.PAGE_MARKETPLACE, title="Marketplace", icon=":material/storefront:", default=True),
        st.Page(ui.PAGE_INTEGRATION, title="Integration details", icon=":material/tune:"),
        st.Page(ui.PAGE_INSTALLATIONS, title="My integrations", icon=":material/sync:"),
    ],
    "Data": [
        st.Page(ui.PAGE_DATA, title="Data views", icon=":material/table:"),
        st.Page(ui.PAGE_ANALYSIS, title="Analysis", icon=":material/insights:"),
    ],
}
if ctx.can("admin"):
    pages["Administration"] = [st.Page(ui.PAGE_ADMIN, title="Admin", icon=":material/admin_panel_settings:")]

with st.sidebar:
    st.caption(ui.md(f"Organisation: {ctx.org}"))
    st.caption(ui.md(f"Signed in as {ctx.actor.name} ({ctx.actor.role})"))
    if ctx.authenticated:
        st.button("Sign out", key="app_sign_out", on_click=ui.sign_out)

st.navigation(pages).run()
