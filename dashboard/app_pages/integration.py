"""Integration details: what it syncs, the permissions it needs, and the install form."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from aria_sync.catalog import CatalogEntry, catalog
from aria_sync.errors import AriaSyncError
from aria_sync.marketplace import Marketplace, TestReport
from dashboard import ui

ctx = ui.context()
DRAFT_KEY = "integration_draft"  # non-secret values only, so a cleared form keeps them

entries = {e.key: e for e in catalog()}
keys = list(entries)
chosen = st.session_state.get("integration_key")
index = keys.index(chosen) if chosen in keys else 0
key = st.selectbox(
    "Integration", keys, index=index, format_func=lambda k: entries[k].name, key="integration_select"
)
st.session_state["integration_key"] = key
entry: CatalogEntry = entries[key]

st.title(ui.md(entry.name))
st.caption(ui.md(f"{entry.vendor} · {entry.category} · authentication: {entry.auth_type}"))
st.text(entry.description)
st.text(f"Documentation: {entry.docs_url}")

st.subheader("What it syncs")
streams = pd.DataFrame(
    [
        {
            "stream": s["name"],
            "landing table": s["table"],
            "mode": s["mode"],
            "feeds": ", ".join(s["targets"]),
            "description": s["description"],
        }
        for s in entry.streams
    ]
)
if streams.empty:
    st.caption("Nothing yet: this integration is not built.")
else:
    st.dataframe(streams, hide_index=True, width="stretch")

st.subheader("Permissions it needs")
st.dataframe(
    pd.DataFrame(
        [
            {"capability": c["name"], "what for": c["description"], "vendor permission": c["permission"]}
            for c in entry.capabilities
        ]
    ),
    hide_index=True,
    width="stretch",
)


def show_report(report: TestReport) -> None:
    if report.ok:
        st.success("Connection test passed for every capability.")
    else:
        st.error("Connection test failed.")
    st.dataframe(
        pd.DataFrame([{"capability": r.capability, "ok": r.ok, "result": r.message} for r in report.results]),
        hide_index=True,
        width="stretch",
    )


def remember_draft(key: str, entry: CatalogEntry) -> None:
    """Runs before the page on submit: keep the non-secret values as the form's new defaults."""
    draft = st.session_state.setdefault(DRAFT_KEY, {}).setdefault(key, {})
    for config_field in entry.config_fields:
        if not config_field.secret:
            draft[config_field.name] = st.session_state.get(f"install_{key}_{config_field.name}", "")
    draft["__name__"] = st.session_state.get(f"install_{key}_name", entry.name)
    draft["__schedule__"] = st.session_state.get(f"install_{key}_schedule", "")


def collect(values: dict[str, str]) -> dict[str, Any]:
    """Empty optional fields are left out, so the connector's defaults apply."""
    return {name: value for name, value in values.items() if value.strip()}


st.subheader("Install")
if entry.status != "available":
    st.info("Coming soon: this integration can be browsed but not installed yet.")
elif not ctx.can("analyst"):
    st.info("Your role (viewer) may browse integrations; ask an analyst or admin to install them.")
else:
    draft: dict[str, str] = st.session_state.setdefault(DRAFT_KEY, {}).setdefault(key, {})
    with st.form(f"integration_install_{key}", clear_on_submit=True):
        name = st.text_input(
            "Installation name", value=draft.get("__name__", entry.name), key=f"install_{key}_name"
        )
        values: dict[str, str] = {}
        for config_field in entry.config_fields:
            label = config_field.name + ("" if config_field.required else " (optional)")
            values[config_field.name] = st.text_input(
                label,
                value="" if config_field.secret else draft.get(config_field.name, ""),
                type="password" if config_field.secret else "default",
                placeholder=config_field.default or "",
                help=config_field.description or None,
                key=f"install_{key}_{config_field.name}",
            )
        schedule = st.text_input(
            "Schedule (optional)",
            value=draft.get("__schedule__", ""),
            placeholder="e.g. 6h",
            key=f"install_{key}_schedule",
        )
        buttons = st.columns(2)
        test_clicked = buttons[0].form_submit_button(
            "Test connection", key=f"install_{key}_test", on_click=remember_draft, args=(key, entry)
        )
        install_clicked = buttons[1].form_submit_button(
            "Install",
            type="primary",
            disabled=not ctx.can("admin"),
            key=f"install_{key}_install",
            on_click=remember_draft,
            args=(key, entry),
        )
    if not ctx.can("admin"):
        st.caption("Installing needs the admin role; you can test a connection.")

    if test_clicked or install_clicked:
        config = collect(values)
        marketplace = Marketplace(ctx.db, ctx.org, ctx.actor)
        try:
            if test_clicked:
                show_report(marketplace.test_config(key, config))
            else:
                installation, report = marketplace.install(
                    key, name, config, test=True, schedule=schedule.strip() or None
                )
                if report is not None:
                    show_report(report)
                st.success(ui.md(f"Installed {installation.name}. Open My integrations to sync it."))
                st.session_state[DRAFT_KEY].pop(key, None)
        except AriaSyncError as exc:
            ui.show_error(exc)
        finally:
            values.clear()  # nothing of the secrets outlives this run
        if install_clicked:
            st.page_link(ui.PAGE_INSTALLATIONS, label="Go to My integrations", icon=":material/sync:")
