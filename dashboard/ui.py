"""Shared UI helpers: who is acting for which organisation, safe text, analysis calls, pagination.

Pages call the library only; nothing here writes SQL. Vendor strings are shown through
``st.dataframe``/``st.text`` or escaped with :func:`md` before they reach any markdown element.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import streamlit as st

from aria_sync.audit import Actor
from aria_sync.errors import AriaSyncError
from aria_sync.jobs_registry import JobRegistry
from aria_sync.marketplace import ROLE_RANK
from aria_sync.settings import get_settings, validate_org
from aria_sync.store import Database
from aria_sync.users import User, UserStore, users_path

CONTEXT_KEY = "aria_context"
AUTH_USER_KEY = "aria_auth_user"
FLASH_KEY = "aria_flash"

PAGE_MARKETPLACE = "app_pages/marketplace.py"
PAGE_INTEGRATION = "app_pages/integration.py"
PAGE_INSTALLATIONS = "app_pages/installations.py"
PAGE_DATA = "app_pages/data_views.py"
PAGE_ANALYSIS = "app_pages/analysis.py"
PAGE_ADMIN = "app_pages/admin.py"

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+|~$!>])")


@dataclass(frozen=True)
class AppContext:
    """The database, organisation and actor of this browser session."""

    db: Database
    org: str
    actor: Actor
    authenticated: bool

    def can(self, role: str) -> bool:
        """Whether the actor has at least ``role`` (viewer < analyst < admin)."""
        return ROLE_RANK.get(self.actor.role, -1) >= ROLE_RANK[role]


# -- safe text ----------------------------------------------------------------------------------
def md(text: object) -> str:
    """Escape a string for markdown so vendor text can never become links, images or markup."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", "" if text is None else str(text))


def show_error(error: BaseException | str) -> None:
    """A plain-words error box; exception messages are escaped, never rendered."""
    message = str(error) if isinstance(error, BaseException) else error
    st.error(md(message or "the action failed"), icon=":material/error:")


def flash(kind: str, message: str) -> None:
    """Queue a message for the next run of the current page (set from button callbacks)."""
    st.session_state.setdefault(FLASH_KEY, []).append((kind, message))


def show_flashes() -> None:
    for kind, message in st.session_state.pop(FLASH_KEY, []):
        if kind == "error":
            show_error(message)
        elif kind == "success":
            st.success(md(message))
        else:
            st.info(md(message))


# -- who is acting -------------------------------------------------------------------------------
def auth_required(db_path: Path | str) -> bool:
    """Sign-in is on when a users file exists beside the database or ARIA_SYNC_AUTH=builtin."""
    return os.environ.get("ARIA_SYNC_AUTH", "").lower() == "builtin" or users_path(db_path).is_file()


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all is the normal local case
        return False


def _login_form(store: UserStore) -> None:
    st.title("Sign in to aria_sync")
    with st.form("login_form", clear_on_submit=True):
        name = st.text_input("User name", key="login_name")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Sign in", key="login_submit")
    if submitted:
        user = store.verify(name.strip(), password)
        if user is None:
            failures = int(st.session_state.get("login_failures", 0)) + 1
            st.session_state["login_failures"] = failures
            if failures > 3:
                time.sleep(min(failures - 3, 5))  # slows guessing from one browser session
            st.error("Wrong user name or password.")
        else:
            st.session_state.pop("login_failures", None)
            st.session_state[AUTH_USER_KEY] = {"name": user.name, "role": user.role, "org": user.org}
            st.rerun()
    if _oidc_configured():
        st.divider()
        st.button("Sign in with single sign-on", key="login_oidc", on_click=st.login)


def _oidc_user(store: UserStore) -> User | None:
    """A single sign-on identity is allowed in only if an admin listed its e-mail in the users file."""
    if not _oidc_configured() or not st.user.is_logged_in:
        return None
    email = str(st.user.get("email") or "")
    user = store.get(email) if email else None
    if user is None:
        st.error("Your account is not registered for aria_sync; ask an administrator to add it.")
        st.button("Sign out", key="logout_oidc", on_click=st.logout)
        st.stop()
    return user


def resolve_context() -> AppContext | None:
    """The session's context, or None after drawing the sign-in form."""
    settings = get_settings()
    db = Database(settings.db_path)
    if not auth_required(settings.db_path):
        context = AppContext(db=db, org=settings.org, actor=Actor.local(), authenticated=False)
        st.session_state[CONTEXT_KEY] = context
        return context
    store = UserStore(users_path(settings.db_path))
    user = _oidc_user(store)
    signed_in = st.session_state.get(AUTH_USER_KEY)
    if user is None and signed_in:
        # Re-read the file so a removed user or a changed role takes effect on the next click.
        user = store.get(signed_in["name"])
        if user is None:
            st.session_state.pop(AUTH_USER_KEY, None)
    if user is None:
        st.session_state.pop(CONTEXT_KEY, None)
        _login_form(store)
        return None
    context = AppContext(db=db, org=validate_org(user.org), actor=user.actor, authenticated=True)
    st.session_state[CONTEXT_KEY] = context
    return context


def context() -> AppContext:
    """The context set by the router for this run."""
    found = st.session_state.get(CONTEXT_KEY)
    if not isinstance(found, AppContext):
        st.warning("Not signed in.")
        st.stop()
    return found


def sign_out() -> None:
    st.session_state.pop(AUTH_USER_KEY, None)
    st.session_state.pop(CONTEXT_KEY, None)


# -- background jobs ----------------------------------------------------------------------------
@st.cache_resource
def job_registry() -> JobRegistry:
    """One registry per server process, shared by all sessions (the worker threads live here)."""
    return JobRegistry()


# -- the analysis API -----------------------------------------------------------------------------
def _analysis_module() -> ModuleType | None:
    try:
        return importlib.import_module("aria_sync.analysis")
    except ImportError:
        return None


def analysis_function(name: str) -> Callable[..., Any] | None:
    module = _analysis_module()
    found = getattr(module, name, None) if module is not None else None
    return found if callable(found) else None


def analysis(name: str, label: str, **kwargs: Any) -> Any | None:
    """Call ``aria_sync.analysis.<name>`` for this session's org; a plain notice if it is unavailable."""
    function = analysis_function(name)
    if function is None:
        st.info(f"{label} is not available in this version of aria_sync (aria_sync.analysis.{name}).")
        return None
    ctx = context()
    try:
        return function(db=ctx.db, org=ctx.org, **kwargs)
    except AriaSyncError as exc:
        show_error(exc)
    except TypeError as exc:
        st.warning(md(f"{label} could not be shown: {exc}"))
    return None


def analysis_count(name: str, **kwargs: Any) -> int | None:
    """``count_<name>`` when the analysis API offers it, for page counts."""
    function = analysis_function(f"count_{name}")
    if function is None:
        return None
    ctx = context()
    try:
        value = function(db=ctx.db, org=ctx.org, **kwargs)
    except (AriaSyncError, TypeError):
        return None
    return int(value) if value is not None else None


# -- tables ---------------------------------------------------------------------------------------
def page_offset(key: str, total: int | None, page_size: int) -> int:
    """A page picker; returns the row offset of the chosen page."""
    if total is not None:
        pages = max(1, -(-total // page_size))
        page = st.number_input(
            f"Page (of {pages}, {total} rows)", min_value=1, max_value=pages, value=1, step=1, key=key
        )
    else:
        page = st.number_input("Page", min_value=1, value=1, step=1, key=key)
    return (int(page) - 1) * page_size


def download_buttons(frame: pd.DataFrame, basename: str, key: str) -> None:
    """CSV and Parquet downloads of a frame, through ``aria_sync.analysis.export_frame``."""
    export = analysis_function("export_frame")
    if export is None or frame.empty:
        return
    left, right = st.columns(2)
    try:
        csv_bytes = export(frame, "csv")
        parquet_bytes = export(frame, "parquet")
    except (AriaSyncError, ValueError, TypeError) as exc:
        st.warning(md(f"Export unavailable: {exc}"))
        return
    left.download_button(
        "Download CSV", csv_bytes, file_name=f"{basename}.csv", mime="text/csv", key=f"{key}_csv"
    )
    right.download_button(
        "Download Parquet",
        parquet_bytes,
        file_name=f"{basename}.parquet",
        mime="application/vnd.apache.parquet",
        key=f"{key}_parquet",
    )


def frame_or_notice(frame: Any, empty_text: str) -> pd.DataFrame | None:
    """The frame if it has rows; otherwise a plain notice."""
    if frame is None:
        return None
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    if frame.empty:
        st.caption(empty_text)
        return None
    return frame


def ago(value: Any) -> str:
    """A short relative time ("5 min ago") for metrics; "never" for no value."""
    if value is None or value is pd.NaT or not hasattr(value, "tzinfo"):
        return "never"
    seconds = (dt.datetime.now(dt.UTC) - value).total_seconds()
    if seconds < 60:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def fmt_time(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return "never"
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M UTC"))
    return str(value)
