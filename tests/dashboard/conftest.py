"""Dashboard fixtures: a tmp database in the environment, the example simulator, fresh Streamlit caches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from aria_sync.audit import Actor
from aria_sync.marketplace import Installation, Marketplace
from aria_sync.simulators.example import TOKEN, start_example
from aria_sync.store import Database

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TIMEOUT = 20


@pytest.fixture(autouse=True)
def fresh_streamlit_caches() -> Iterator[None]:
    # cache_resource is process-wide: without this one test's job registry leaks into the next.
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def dashboard_env(monkeypatch: pytest.MonkeyPatch, db_path: Path) -> Path:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("ARIA_SYNC_DB", str(db_path))
    monkeypatch.setenv("ARIA_SYNC_ORG", "acme")
    monkeypatch.delenv("ARIA_SYNC_AUTH", raising=False)
    return db_path


@pytest.fixture
def example_sim() -> Iterator[tuple[Any, str]]:
    app, server = start_example(devices=40, events=10, tie_count=2)
    try:
        yield app, server.base_url
    finally:
        server.stop()


@pytest.fixture
def installed(dashboard_env: Path, example_sim: tuple[Any, str]) -> Installation:
    market = Marketplace(Database(dashboard_env), "acme", Actor("test-admin", "admin"))
    installation, _ = market.install("example", "Example lab", {"baseUrl": example_sim[1], "token": TOKEN})
    return installation


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    return at


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(page)
    at.run()
    return at


def texts(at: AppTest) -> str:
    """Everything a person can read on the page, joined (markdown, text, alerts, captions, titles)."""
    parts: list[str] = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "text",
        "caption",
        "success",
        "info",
        "warning",
        "error",
    ):
        parts.extend(str(e.value) for e in getattr(at, kind))
    return "\n".join(parts).replace("\\", "")
