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


# One view at a time: tabs would run every query on each rerun, and on a large estate the sum of
# six analyses is several seconds where one is well under a second.
ROW_LIMIT = 2000  # rows a table shows; the Data views page pages through everything
VIEWS = [
    "Inventory",
    "Coverage gaps",
    "Top risks",
    "Vulnerability aging",
    "Incidents by service",
    "Contradictions",
]
view = st.segmented_control(
    "View", VIEWS, default=VIEWS[0], key="analysis_view", label_visibility="collapsed"
)
view = view or VIEWS[0]

if view == "Inventory":
    st.caption("One row per asset; a column per integration shows which sources see it.")
    frame = ui.frame_or_notice(
        ui.analysis("inventory_presence", "Unified inventory", limit=ROW_LIMIT), "No assets yet."
    )
    if frame is not None:
        sources = list(frame.select_dtypes(include="bool").columns)
        # Counted in SQL over every asset, not over the rows the table shows.
        counts = pd.DataFrame(
            {"source": sources, "assets": [ui.analysis_count("assets", source=name) or 0 for name in sources]}
        )
        if sources:
            bar(counts, "source", "assets", "Assets seen per source")
    table(frame, "inventory")

if view == "Coverage gaps":
    days = st.number_input("Not scanned in (days)", min_value=1, value=30, step=1, key="analysis_scan_days")
    # Counts come from an aggregate; the table shows the first rows, so a large estate stays fast.
    summary = ui.analysis("coverage_summary", "Coverage summary", scan_days=int(days))
    if summary is not None and len(summary):
        bar(summary, "gap", "assets", "Assets per coverage gap")
    frame = ui.frame_or_notice(
        ui.analysis("coverage_gaps", "Coverage gaps", scan_days=int(days), limit=ROW_LIMIT),
        "No coverage gaps found.",
    )
    table(frame, "coverage_gaps")

if view == "Top risks":
    count = st.slider("How many", min_value=5, max_value=50, value=10, key="analysis_top_n")
    frame = ui.frame_or_notice(ui.analysis("top_risks", "Top risks", n=int(count)), "No risks yet.")
    if frame is not None and {"title", "score"} <= set(frame.columns):
        bar(frame, "title", "score", "Risk score")
    table(frame, "top_risks")

if view == "Vulnerability aging":
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

if view == "Incidents by service":
    frame = ui.frame_or_notice(ui.analysis("incidents_by_service", "Incidents by service"), "No incidents.")
    if frame is not None:
        label = next((c for c in ("service_name", "service", "name") if c in frame.columns), None)
        value = next(
            (c for c in ("open_incidents", "incidents", "count", "total") if c in frame.columns), None
        )
        if label:
            bar(frame, label, value, "Incidents per business service")
    table(frame, "incidents_by_service")

if view == "Contradictions":
    st.caption("Records that disagree between sources: retired in the CMDB but still active, OS mismatches.")
    frame = ui.frame_or_notice(ui.analysis("contradictions", "Contradictions"), "No contradictions found.")
    if frame is not None and "kind" in frame.columns:
        bar(frame, "kind", title="Contradictions by kind")
    table(frame, "contradictions")
