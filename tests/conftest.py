"""Shared fixtures: a clean environment per test, a real DuckDB file, loopback allowed for simulators."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from aria_sync.audit import Actor
from aria_sync.store import Database

TEST_MASTER_KEY = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in ("ARIA_SYNC_DB", "ARIA_SYNC_ORG", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARIA_SYNC_VAULT", "file")
    monkeypatch.setenv("ARIA_SYNC_MASTER_KEY", TEST_MASTER_KEY)
    monkeypatch.setenv("ARIA_SYNC_ALLOWED_HOSTS", "127.0.0.1,localhost")
    monkeypatch.setenv("ARIA_SYNC_EXTRA_CONNECTORS", "aria_sync.connectors.example")
    yield


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "aria.duckdb"


@pytest.fixture
def db(db_path: Path) -> Database:
    return Database(db_path)


@pytest.fixture
def admin() -> Actor:
    return Actor("test-admin", "admin")
