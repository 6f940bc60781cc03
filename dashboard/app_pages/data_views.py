"""Data views: the landing rows of every installed stream and the ARIA tables, paged and filterable."""

from __future__ import annotations

from typing import Any

import streamlit as st

from aria_sync.connectors.registry import get_connector
from aria_sync.errors import AriaSyncError
from aria_sync.marketplace import Marketplace
from dashboard import ui

ctx = ui.context()
PAGE_SIZES = [25, 50, 100, 250]

st.title("Data views")
source_tab, aria_tab = st.tabs(["Source records", "ARIA tables"])


def show_page(name: str, label: str, key: str, filters: dict[str, Any]) -> None:
    size = st.selectbox("Rows per page", PAGE_SIZES, index=1, key=f"{key}_size")
    total = ui.analysis_count(name, **filters)
    # A new filter or page size starts again at page 1.
    offset = ui.page_offset(f"{key}_page_{size}_{abs(hash(repr(sorted(filters.items()))))}", total, size)
    frame = ui.frame_or_notice(
        ui.analysis(name, label, limit=size, offset=offset, **filters), f"No {label.lower()} match."
    )
    if frame is not None:
        st.dataframe(frame, hide_index=True, width="stretch")
        ui.download_buttons(frame, key.removeprefix("data_"), key)


with source_tab:
    try:
        installations = Marketplace(ctx.db, ctx.org, ctx.actor).installations()
    except AriaSyncError as exc:
        ui.show_error(exc)
        installations = []
    # Streams come from each connector's declaration, so a new integration appears here unchanged.
    choices: list[tuple[str, str]] = []
    for key in sorted({i.integration_key for i in installations}):
        try:
            connector = get_connector(key)
        except AriaSyncError:
            continue
        choices.extend((key, stream.name) for stream in connector.streams)
    if not choices:
        st.info("Install and sync an integration to see its records here.")
    else:
        integration_key, stream = st.selectbox(
            "Stream",
            choices,
            format_func=lambda c: f"{get_connector(c[0]).name} · {c[1]}",
            key="data_source_stream",
        )
        search = st.text_input("Filter", key="data_source_search", placeholder="text anywhere in the record")
        show_page(
            "source_records",
            "Source records",
            f"data_source_{integration_key}_{stream}",
            {"integration_key": integration_key, "stream": stream, "search": search.strip() or None},
        )

with aria_tab:
    table = st.selectbox(
        "Table", ["assets", "vulnerabilities", "incidents", "services", "risks"], key="data_aria_table"
    )
    filters: dict[str, Any] = {}
    if table == "assets":
        text = st.text_input("Search", key="data_assets_search", placeholder="name, hostname, IP, serial ...")
        filters["search"] = text.strip() or None
    elif table == "vulnerabilities":
        severity = st.multiselect(
            "Severity", ["critical", "high", "medium", "low", "info"], key="data_vulns_severity"
        )
        filters["severity"] = severity or None
    elif table == "incidents":
        status = st.text_input("Status", key="data_incidents_status", placeholder="e.g. open")
        filters["status"] = status.strip() or None
    show_page(table, table.capitalize(), f"data_aria_{table}", filters)
