"""Analysis: unified inventory, coverage gaps, top risks, vulnerability aging, incidents, contradictions."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import ui

ui.context()
st.title("Analysis")


def bar(frame: pd.DataFrame, category: str, value: str | None = None, title: str = "") -> None:
    """A bar chart of counts (or of ``value``) per ``category``, when the frame has those columns."""
    if category not in frame.columns:
        return
    if value is None or value not in frame.columns:
        data = frame.groupby(category, dropna=False).size().reset_index(name="count")
        value = "count"
    else:
        data = frame[[category, value]]
    data = data.assign(**{category: data[category].astype(str)})
    chart = (
        alt.Chart(data, title=title)
        .mark_bar()
        .encode(x=alt.X(f"{category}:N", sort="-y", title=category), y=alt.Y(f"{value}:Q", title=value))
    )
    st.altair_chart(chart, width="stretch")


def table(frame: pd.DataFrame | None, basename: str) -> None:
    if frame is not None:
        st.dataframe(frame, hide_index=True, width="stretch")
        ui.download_buttons(frame, basename, f"analysis_{basename}")


inventory, gaps, risks, aging, incidents, contradictions = st.tabs(
    [
        "Inventory",
        "Coverage gaps",
        "Top risks",
        "Vulnerability aging",
        "Incidents by service",
        "Contradictions",
    ]
)

with inventory:
    st.caption("One row per asset; a column per integration shows which sources see it.")
    frame = ui.frame_or_notice(ui.analysis("inventory_presence", "Unified inventory"), "No assets yet.")
    if frame is not None:
        presence = frame.select_dtypes(include="bool")
        if not presence.empty:
            counts = presence.sum().rename_axis("source").reset_index(name="assets")
            bar(counts, "source", "assets", "Assets seen per source")
    table(frame, "inventory")

with gaps:
    days = st.number_input("Not scanned in (days)", min_value=1, value=30, step=1, key="analysis_scan_days")
    frame = ui.frame_or_notice(
        ui.analysis("coverage_gaps", "Coverage gaps", scan_days=int(days)), "No coverage gaps found."
    )
    if frame is not None:
        bar(frame, "gap", title="Assets per coverage gap")
    table(frame, "coverage_gaps")

with risks:
    count = st.slider("How many", min_value=5, max_value=50, value=10, key="analysis_top_n")
    frame = ui.frame_or_notice(ui.analysis("top_risks", "Top risks", n=int(count)), "No risks yet.")
    if frame is not None and {"title", "score"} <= set(frame.columns):
        bar(frame, "title", "score", "Risk score")
    table(frame, "top_risks")

with aging:
    summary = ui.frame_or_notice(ui.analysis("sla_summary", "SLA summary"), "No open findings.")
    if summary is not None:
        numeric = [
            c for c in summary.columns if c != "severity" and pd.api.types.is_numeric_dtype(summary[c])
        ]
        if "severity" in summary.columns and numeric:
            bar(summary, "severity", "breached" if "breached" in numeric else numeric[0], "SLA by severity")
        st.dataframe(summary, hide_index=True, width="stretch")
    frame = ui.frame_or_notice(
        ui.analysis("vulnerability_aging", "Vulnerability aging", limit=500), "No open findings."
    )
    table(frame, "vulnerability_aging")

with incidents:
    frame = ui.frame_or_notice(ui.analysis("incidents_by_service", "Incidents by service"), "No incidents.")
    if frame is not None:
        label = next((c for c in ("service_name", "service", "name") if c in frame.columns), None)
        value = next(
            (c for c in ("open_incidents", "incidents", "count", "total") if c in frame.columns), None
        )
        if label:
            bar(frame, label, value, "Incidents per business service")
    table(frame, "incidents_by_service")

with contradictions:
    st.caption("Records that disagree between sources: retired in the CMDB but still active, OS mismatches.")
    frame = ui.frame_or_notice(ui.analysis("contradictions", "Contradictions"), "No contradictions found.")
    if frame is not None and "kind" in frame.columns:
        bar(frame, "kind", title="Contradictions by kind")
    table(frame, "contradictions")
