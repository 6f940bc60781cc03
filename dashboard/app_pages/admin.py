"""Admin: sync jobs (failed first, with the reason), the activity log with its chain check, rejected records."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import ui

ctx = ui.context()
st.title("Admin")
if not ctx.can("admin"):
    st.info("The Admin page needs the admin role.")
    st.stop()

jobs_tab, activity_tab, rejected_tab = st.tabs(["Sync jobs", "Activity log", "Rejected records"])

with jobs_tab:
    frame = ui.frame_or_notice(ui.analysis("sync_jobs", "Sync jobs", limit=200), "No sync jobs yet.")
    if frame is not None:
        if "status" in frame.columns:
            failed_first = (frame["status"] != "failed").astype(int)
            frame = (
                frame.assign(_order=failed_first).sort_values("_order", kind="stable").drop(columns="_order")
            )
            failed = int((frame["status"] == "failed").sum())
            if failed:
                st.error(f"{failed} failed job(s); the reason is in the error column.")
        st.dataframe(frame, hide_index=True, width="stretch")
        ui.download_buttons(frame, "sync_jobs", "admin_jobs")

with activity_tab:
    check = ui.analysis("verify_activity_log", "Activity log verification")
    if check is not None:
        ok = bool(check.get("ok") if isinstance(check, dict) else getattr(check, "ok", False))
        checked = check.get("checked") if isinstance(check, dict) else getattr(check, "checked", None)
        reason = check.get("reason") if isinstance(check, dict) else getattr(check, "reason", None)
        if ok:
            st.success(f"Activity log chain verified: {checked} entries, none altered or missing.")
        else:
            st.error(ui.md(f"Activity log chain broken: {reason}"))
    frame = ui.frame_or_notice(ui.analysis("activity_log", "Activity log", limit=200), "No activity yet.")
    if frame is not None:
        st.dataframe(frame, hide_index=True, width="stretch")
        ui.download_buttons(frame, "activity_log", "admin_activity")

with rejected_tab:
    frame = ui.frame_or_notice(
        ui.analysis("rejected_records", "Rejected records", limit=200), "No rejected records."
    )
    if isinstance(frame, pd.DataFrame):
        st.dataframe(frame, hide_index=True, width="stretch")
        ui.download_buttons(frame, "rejected_records", "admin_rejected")
