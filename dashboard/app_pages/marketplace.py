"""Marketplace: the integration catalogue as cards, with search and a category filter."""

from __future__ import annotations

import streamlit as st

from aria_sync.catalog import CatalogEntry, catalog
from aria_sync.errors import AriaSyncError
from aria_sync.marketplace import Marketplace
from dashboard import ui

ctx = ui.context()
st.title("Marketplace")
st.caption("Connect vendor tools; their data is synced into one local database for cross-source analysis.")

entries = catalog()
try:
    installed_keys = {i.integration_key for i in Marketplace(ctx.db, ctx.org, ctx.actor).installations()}
except AriaSyncError as exc:
    ui.show_error(exc)
    installed_keys = set()

search_col, category_col = st.columns([2, 1])
search = search_col.text_input("Search", key="marketplace_search", placeholder="name, vendor or capability")
categories = sorted({e.category for e in entries})
category = category_col.selectbox("Category", ["All categories", *categories], key="marketplace_category")


def matches(entry: CatalogEntry) -> bool:
    if category != "All categories" and entry.category != category:
        return False
    needle = search.strip().lower()
    if not needle:
        return True
    haystack = " ".join(
        [
            entry.name,
            entry.vendor,
            entry.category,
            entry.description,
            *(c["name"] for c in entry.capabilities),
        ]
    ).lower()
    return needle in haystack


def open_details(key: str) -> None:
    st.session_state["integration_key"] = key


shown = [e for e in entries if matches(e)]
if not shown:
    st.info("No integration matches the search.")

columns = st.columns(3)
for index, entry in enumerate(shown):
    with columns[index % 3].container(border=True):
        st.subheader(ui.md(entry.name))
        st.caption(ui.md(f"{entry.vendor} · {entry.category} · {entry.auth_type}"))
        badges = st.container(horizontal=True)
        with badges:
            if entry.status == "available":
                st.badge("Available", color="green")
            else:
                st.badge("Coming soon", color="gray")
            if entry.key in installed_keys:
                st.badge("Installed", icon=":material/check:", color="blue")
        st.text(entry.description)
        st.text("Capabilities: " + ", ".join(c["name"] for c in entry.capabilities))
        if st.button(
            "Details", key=f"marketplace_open_{entry.key}", on_click=open_details, args=(entry.key,)
        ):
            st.switch_page(ui.PAGE_INTEGRATION)
