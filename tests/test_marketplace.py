"""Installing, testing and removing integrations: bad input gets one clear error and leaves nothing behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aria_sync.audit import Actor
from aria_sync.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    UnknownIntegrationError,
    UrlPolicyError,
    UsageError,
)
from aria_sync.marketplace import Marketplace
from aria_sync.simulators.example import DEVICES_ONLY_TOKEN, TOKEN, start_example
from aria_sync.simulators.framework import SimulatorServer
from aria_sync.store import Database, OrgScope
from aria_sync.sync import SyncRunner


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    _, srv = start_example(devices=10, events=5)
    yield srv
    srv.stop()


@pytest.fixture
def market(db: Database) -> Marketplace:
    return Marketplace(db, "acme", Actor("admin-user", "admin"))


def count_installations(db: Database) -> int:
    with OrgScope(db, "acme").read() as conn:
        return int(conn.scalar("SELECT count(*) FROM integration_installations"))


@pytest.mark.parametrize(
    ("key", "config", "error", "message"),
    [
        ("nope", {}, UnknownIntegrationError, "unknown integration 'nope'; valid keys: ms-defender"),
        ("crowdstrike", {"clientId": "x", "clientSecret": "y"}, UsageError, "coming soon"),
        ("tenable", {"accessKey": "a"}, ConfigurationError, "missing config key 'secretKey'"),
        ("tenable", {"accessKey": "a", "secretKey": "b", "colour": "red"}, ConfigurationError,
         "unknown config key 'colour'"),
        ("example", {"baseUrl": "https://example.test", "token": "t", "pageSize": "many"}, ConfigurationError,
         "config key 'pageSize'"),
        ("tenable", {"accessKey": "a", "secretKey": "b", "baseUrl": "http://cloud.tenable.com"}, UrlPolicyError,
         "https"),
        ("servicenow", {"instanceUrl": "https://10.0.0.5", "username": "u", "password": "p"}, UrlPolicyError,
         "instanceUrl"),
        ("tenable", {"accessKey": "a", "secretKey": "b", "baseUrl": "https://169.254.169.254"}, UrlPolicyError,
         "baseUrl"),
    ],
)
def test_bad_config_is_refused_with_a_clear_error(
    db: Database, market: Marketplace, key: str, config: dict, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        market.install(key, "x", config, test=False)
    assert count_installations(db) == 0


def test_failed_connection_test_installs_nothing(db: Database, market: Marketplace, server: SimulatorServer) -> None:
    with pytest.raises(ConfigurationError, match="connection test failed.*events: missing permission events:read"):
        market.install("example", "inv", {"baseUrl": server.base_url, "token": DEVICES_ONLY_TOKEN})
    assert count_installations(db) == 0


def test_install_test_sync_uninstall(db: Database, db_path: Path, market: Marketplace, server: SimulatorServer) -> None:
    installation, report = market.install("example", "inv", {"baseUrl": server.base_url, "token": TOKEN})
    assert report is not None and report.ok
    assert [r.capability for r in report.results] == ["devices", "events"]
    assert installation.public_config()["token"] == "********"
    assert market.config_for(installation).token.get_secret_value() == TOKEN  # type: ignore[attr-defined]
    with OrgScope(db, "acme").read() as conn:
        stored = conn.rows("SELECT config, secret_fields FROM integration_installations")[0]
    assert TOKEN not in stored["config"] and stored["secret_fields"] == ["token"]
    assert market.test("inv").ok
    with pytest.raises(ConflictError, match="already exists"):
        market.install("example", "inv", {"baseUrl": server.base_url, "token": TOKEN})
    SyncRunner(db, "acme").sync("inv")
    market.uninstall("inv", purge_data=True)
    assert count_installations(db) == 0
    with OrgScope(db, "acme").read() as conn:
        assert conn.scalar("SELECT count(*) FROM example_devices") == 0
        actions = [r["action"] for r in conn.rows("SELECT action FROM integration_activity_logs ORDER BY seq")]
    assert actions[0] == "installation.test" and "installation.create" in actions and actions[-1] == "installation.delete"
    with pytest.raises(NotFoundError):
        market.get("inv")
    with pytest.raises(Exception, match="no secrets"):
        market.vault.get(installation.secret_ref)
    assert TOKEN.encode() not in db_path.read_bytes()


def test_roles_are_enforced_in_the_library(db: Database, server: SimulatorServer) -> None:
    viewer = Marketplace(db, "acme", Actor("v", "viewer"))
    analyst = Marketplace(db, "acme", Actor("a", "analyst"))
    with pytest.raises(PermissionDeniedError, match="needs the admin role"):
        viewer.install("example", "inv", {"baseUrl": server.base_url, "token": TOKEN})
    with pytest.raises(PermissionDeniedError):
        analyst.install("example", "inv", {"baseUrl": server.base_url, "token": TOKEN})
    Marketplace(db, "acme", Actor("root", "admin")).install("example", "inv", {"baseUrl": server.base_url, "token": TOKEN})
    with pytest.raises(PermissionDeniedError):
        analyst.uninstall("inv")
    with pytest.raises(PermissionDeniedError):
        viewer.test("inv")
    assert analyst.test("inv").ok


def test_other_organisations_cannot_see_or_touch_an_installation(db: Database, server: SimulatorServer) -> None:
    Marketplace(db, "org-a", Actor("root", "admin")).install("example", "inv", {"baseUrl": server.base_url, "token": TOKEN})
    other = Marketplace(db, "org-b", Actor("root", "admin"))
    assert other.installations() == []
    with pytest.raises(NotFoundError):
        other.get("inv")
    with pytest.raises(NotFoundError):
        other.uninstall("inv")
