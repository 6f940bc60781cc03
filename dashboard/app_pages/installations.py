"""My integrations: health, Sync now with live progress, enable/disable, schedule, uninstall, bulk actions."""

from __future__ import annotations

from typing import Any

import streamlit as st

from aria_sync.errors import AriaSyncError
from aria_sync.health import installation_health
from aria_sync.jobs_registry import JobStatus
from aria_sync.marketplace import Marketplace
from dashboard import ui

ctx = ui.context()
registry = ui.job_registry()
CONFIRM_KEY = "installations_confirm_uninstall"


# -- actions (button callbacks run before the page is drawn) ---------------------------------------
def start_sync(installation_id: str, name: str) -> None:
    try:
        registry.start_sync(ctx.db, ctx.org, ctx.actor, installation_id)
        ui.flash("info", f"Sync of {name} started.")
    except AriaSyncError as exc:
        ui.flash("error", str(exc))


def set_enabled(installation_id: str, enabled: bool) -> None:
    try:
        installation = Marketplace(ctx.db, ctx.org, ctx.actor).set_enabled(installation_id, enabled)
        ui.flash("success", f"{installation.name} {'enabled' if enabled else 'disabled'}.")
    except AriaSyncError as exc:
        ui.flash("error", str(exc))


def save_schedule(installation_id: str, widget_key: str) -> None:
    value = str(st.session_state.get(widget_key, "")).strip()
    try:
        installation = Marketplace(ctx.db, ctx.org, ctx.actor).set_schedule(installation_id, value or None)
        ui.flash("success", f"Schedule of {installation.name}: {value or 'none (manual only)'}.")
    except AriaSyncError as exc:
        ui.flash("error", str(exc))


def ask_uninstall(installation_id: str) -> None:
    st.session_state[CONFIRM_KEY] = installation_id


def cancel_uninstall() -> None:
    st.session_state.pop(CONFIRM_KEY, None)


def uninstall(installation_id: str, purge_key: str) -> None:
    try:
        purge = bool(st.session_state.get(purge_key, False))
        removed = Marketplace(ctx.db, ctx.org, ctx.actor).uninstall(installation_id, purge_data=purge)
        ui.flash("success", f"{removed.name} uninstalled{' and its data deleted' if purge else ''}.")
    except AriaSyncError as exc:
        ui.flash("error", str(exc))
    st.session_state.pop(CONFIRM_KEY, None)


def bulk_sync(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        if row["installation_id"] in st.session_state.get("installations_bulk", []) and row["enabled"]:
            start_sync(row["installation_id"], row["name"])


def bulk_disable(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        if row["installation_id"] in st.session_state.get("installations_bulk", []) and row["enabled"]:
            set_enabled(row["installation_id"], False)


# -- the page --------------------------------------------------------------------------------------
st.title("My integrations")
ui.show_flashes()

try:
    health = installation_health(ctx.db, ctx.org)
except AriaSyncError as exc:
    ui.show_error(exc)
    st.stop()

if not health:
    st.info("No integrations installed yet.")
    st.page_link(ui.PAGE_MARKETPLACE, label="Browse the Marketplace", icon=":material/storefront:")
    st.stop()

names = {row["installation_id"]: row["name"] for row in health}


def describe(status: JobStatus) -> str:
    name = names.get(status.installation_ref, status.installation_ref)
    if status.running:
        where = f" · {status.stream}" if status.stream else ""
        return f"Syncing {name}: {status.phase}{where}, {status.records} records"
    text = f"Sync of {name} finished: {status.state} ({status.total_records} records)"
    return text + (f". {status.error}" if status.error else "")


def progress_panel() -> None:
    was_running = registry.any_running(ctx.org)

    # The timer exists only while a job runs; a finished job triggers one full rerun to stop it.
    @st.fragment(run_every="1s" if was_running else None)
    def panel() -> None:
        latest: dict[str, JobStatus] = {}
        for status in registry.jobs(ctx.org):
            latest.setdefault(status.installation_ref, status)
        for status in latest.values():
            if status.installation_ref not in names:
                continue
            if status.running:
                st.progress(status.fraction, text=ui.md(describe(status)))
            elif status.state in ("succeeded",):
                st.success(ui.md(describe(status)))
            elif status.state == "partial":
                st.warning(ui.md(describe(status)))
            else:
                st.error(ui.md(describe(status)))
        if was_running and not registry.any_running(ctx.org):
            st.rerun()

    panel()


progress_panel()

can_sync = ctx.can("analyst")
can_admin = ctx.can("admin")

for row in health:
    installation_id = row["installation_id"]
    with st.container(border=True):
        head, actions = st.columns([3, 2])
        with head:
            st.subheader(ui.md(row["name"]))
            st.caption(ui.md(f"{row['integration_key']} · {'enabled' if row['enabled'] else 'disabled'}"))
            st.badge(str(row["health"]), color="green" if row["health"] == "healthy" else "orange")
            metrics = st.columns(3)
            rate = row["success_rate"]
            fresh = row["freshness_hours"]
            metrics[0].metric("Last sync", ui.ago(row["last_sync_at"]), help=ui.fmt_time(row["last_sync_at"]))
            metrics[1].metric("Success rate", "n/a" if rate is None else f"{rate:.0%}")
            metrics[2].metric("Freshness", "n/a" if fresh is None else f"{fresh} h")
            if row["last_error"]:
                st.text(f"Last error: {row['last_error']}")
            st.text(f"Schedule: {row['schedule'] or 'manual only'}")
        with actions:
            if can_sync and row["enabled"]:
                st.button(
                    "Sync now",
                    key=f"installations_sync_{installation_id}",
                    type="primary",
                    on_click=start_sync,
                    args=(installation_id, row["name"]),
                )
            if can_admin:
                st.button(
                    "Disable" if row["enabled"] else "Enable",
                    key=f"installations_toggle_{installation_id}",
                    on_click=set_enabled,
                    args=(installation_id, not row["enabled"]),
                )
            if can_sync:
                schedule_key = f"installations_schedule_{installation_id}"
                st.text_input(
                    "Schedule", value=row["schedule"] or "", placeholder="e.g. 6h", key=schedule_key
                )
                st.button(
                    "Save schedule",
                    key=f"installations_save_schedule_{installation_id}",
                    on_click=save_schedule,
                    args=(installation_id, schedule_key),
                )
            if can_admin:
                if st.session_state.get(CONFIRM_KEY) == installation_id:
                    purge_key = f"installations_purge_{installation_id}"
                    st.warning(ui.md(f"Uninstall {row['name']}? Its credentials are deleted."))
                    st.checkbox("Also delete its synced data", key=purge_key)
                    st.button(
                        "Confirm uninstall",
                        key=f"installations_confirm_{installation_id}",
                        type="primary",
                        on_click=uninstall,
                        args=(installation_id, purge_key),
                    )
                    st.button(
                        "Cancel", key=f"installations_cancel_{installation_id}", on_click=cancel_uninstall
                    )
                else:
                    st.button(
                        "Uninstall",
                        key=f"installations_uninstall_{installation_id}",
                        on_click=ask_uninstall,
                        args=(installation_id,),
                    )

if can_sync:
    st.subheader("Bulk actions")
    st.multiselect(
        "Installations",
        [row["installation_id"] for row in health],
        format_func=lambda i: names.get(i, i),
        key="installations_bulk",
    )
    bulk = st.columns(2)
    bulk[0].button("Sync selected", key="installations_bulk_sync", on_click=bulk_sync, args=(health,))
    if can_admin:
        bulk[1].button(
            "Disable selected", key="installations_bulk_disable", on_click=bulk_disable, args=(health,)
        )
