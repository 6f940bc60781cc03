"""Fixtures of the Defender connector tests: simulators over HTTPS, installs and syncs on a real DuckDB file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from aria_sync.audit import Actor
from aria_sync.connectors.ms_defender.auth import forget_applications
from aria_sync.marketplace import Marketplace
from aria_sync.simulators.estate import Estate
from aria_sync.simulators.framework import SimulatorServer
from aria_sync.simulators.ms_defender import start_ms_defender
from aria_sync.store import Database, OrgScope
from aria_sync.sync import SyncRunner

ORG = "acme"
NAME = "defender"


def no_sleep(seconds: float) -> None:
    pass


@pytest.fixture(autouse=True)
def fresh_token_caches() -> Iterator[None]:
    # Applications are process-wide by design; a test must not inherit another test's tokens.
    forget_applications()
    yield
    forget_applications()


@pytest.fixture
def estate() -> Estate:
    return Estate.generate("tiny")


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., SimulatorServer]]:
    servers: list[SimulatorServer] = []

    def _start(estate: Any, **options: Any) -> SimulatorServer:
        server = start_ms_defender(estate, cert_dir=tmp_path / f"tls{len(servers)}", **options)
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start: Callable[..., SimulatorServer], estate: Estate) -> SimulatorServer:
    return start(estate)


@dataclass
class Defender:
    """Install, sync and read back one ``ms-defender`` installation of organisation ``acme``."""

    db: Database

    @staticmethod
    def config(server: SimulatorServer, estate: Estate, **overrides: str) -> dict[str, Any]:
        return {
            **estate.credentials["ms-defender"],
            "apiBaseUrl": server.base_url,
            "authorityHost": server.base_url,
            "caBundle": str(server.ca_file),
            **overrides,
        }

    def install(
        self,
        server: SimulatorServer,
        estate: Estate,
        *,
        options: dict[str, Any] | None = None,
        **overrides: str,
    ) -> str:
        market = Marketplace(self.db, ORG, Actor("t", "admin"))
        installation, _ = market.install(
            "ms-defender", NAME, self.config(server, estate, **overrides), options=options
        )
        return installation.installation_id

    def test_config(self, config: dict[str, Any]) -> Any:
        return Marketplace(self.db, ORG, Actor("t", "admin")).test_config("ms-defender", config)

    def run(self, *, sleep: Callable[[float], None] = no_sleep) -> dict[str, Any]:
        result = SyncRunner(self.db, ORG, Actor("t", "analyst"), sleep=sleep).sync(NAME)
        return {**result.as_json(), "detail": result.streams}

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        with OrgScope(self.db, ORG).read() as conn:
            return conn.scalar(sql, params or [])

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        with OrgScope(self.db, ORG).read() as conn:
            return conn.rows(sql, params or [])

    @staticmethod
    def token_scopes(server: SimulatorServer) -> list[str]:
        """The scope of every token request the simulator answered, in order."""
        posts = server.requests(r"/oauth2/v2\.0/token$", "POST")
        return [parse_qs(r.body.decode())["scope"][0] for r in posts]

    @staticmethod
    def statuses(server: SimulatorServer, path: str) -> list[int]:
        """HTTP statuses of the GETs on ``path`` (a regex), in order."""
        return [r.status for r in server.requests(path, "GET")]


@pytest.fixture
def mde(db: Database) -> Defender:
    return Defender(db)
