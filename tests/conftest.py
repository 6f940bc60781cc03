"""Shared fixtures: a clean environment per test, a real DuckDB file, loopback allowed for simulators.

The proof suites publish figures ("102 kills, 0 lost, 0 duplicated") through ``proof_figure``. They
travel as the test reports' ``user_properties``, so they reach the process that prints the summary
whether the tests ran there or in parallel workers; with ``ARIA_SYNC_PROOF_REPORT=path`` the summary
is also written there as Markdown.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

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


# -- proof figures ---------------------------------------------------------------------------------

FIGURE = "aria_sync_proof_figure"
KILLS = "aria_sync_proof_kills"

RecordFigure = Callable[..., None]


@pytest.fixture
def proof_figure(request: pytest.FixtureRequest) -> RecordFigure:
    """``proof_figure(suite, text, kills=None)``: publish one line; a vendor's kill test also passes
    ``kills`` (a mapping with kills, lost, duplicated), which counts towards the total over the vendors."""

    def record(suite: str, text: str, kills: Mapping[str, int] | None = None) -> None:
        request.node.user_properties.append((FIGURE, (suite, text)))
        if kills is not None:
            request.node.user_properties.append((KILLS, dict(kills)))

    return record


class _FigureCollector:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.kills: list[dict[str, int]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == FIGURE:
                suite, text = value
                self.lines.append((str(suite), str(text)))
            elif name == KILLS:
                self.kills.append({k: int(v) for k, v in dict(value).items()})

    def summary(self) -> list[str]:
        lines = [f"{suite}: {text}" for suite, text in sorted(self.lines)]
        vendor_runs = [k for k in self.kills if k.get("vendor", 1)]
        if vendor_runs:
            total = {
                key: sum(run.get(key, 0) for run in vendor_runs) for key in ("kills", "lost", "duplicated")
            }
            lines.append(
                f"kill tests, {len(vendor_runs)} vendors: {total['kills']} kills, {total['lost']} lost, "
                f"{total['duplicated']} duplicated"
            )
        return lines

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        lines = self.summary()
        if not lines:
            return
        terminalreporter.section("proof figures")
        for line in lines:
            terminalreporter.write_line(line)
        target = os.environ.get("ARIA_SYNC_PROOF_REPORT")
        if target:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            machine = f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"
            body = "\n".join(f"- {line}" for line in lines)
            Path(target).write_text(f"# aria_sync proof figures\n\nRun {stamp}; {machine}.\n\n{body}\n")


_collector = _FigureCollector()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _collector.pytest_runtest_logreport(report)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    _collector.pytest_terminal_summary(terminalreporter)
