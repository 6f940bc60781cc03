"""Where ServiceNow credentials may go: the instance URL policy, redirects, and query building."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from aria_sync.audit import Actor
from aria_sync.connectors.base import ConnectorContext
from aria_sync.connectors.servicenow import ServiceNowConnector, api
from aria_sync.connectors.servicenow.config import ServiceNowConfig
from aria_sync.connectors.servicenow.query import EncodedQuery, field_list, instance_datetime, updated_since
from aria_sync.errors import ConfigurationError, PaginationLoopError, UrlPolicyError
from aria_sync.http import AllowList, RetryBudget, VendorHttp
from aria_sync.marketplace import Marketplace
from aria_sync.simulators.estate import Estate
from aria_sync.simulators.framework import Fault, SimulatorServer, VendorApp, json_response
from aria_sync.simulators.servicenow import start_servicenow
from aria_sync.store import Database
from aria_sync.sync import SyncRunner

ORG = "acme"


@pytest.fixture(scope="module")
def estate() -> Estate:
    return Estate.generate("tiny")


@pytest.fixture
def server(estate: Estate) -> Iterator[SimulatorServer]:
    srv = start_servicenow(estate)
    yield srv
    srv.stop()


@pytest.fixture
def bystander() -> Iterator[SimulatorServer]:
    """A second listener standing for any host a credential must never reach."""
    srv = SimulatorServer(VendorApp()).start()
    yield srv
    srv.stop()


def market(db: Database) -> Marketplace:
    return Marketplace(db, ORG, Actor("t", "admin"))


def config_for(estate: Estate, url: str) -> dict[str, Any]:
    return {"instanceUrl": url, **estate.credentials["servicenow"]}


REFUSED = [
    ("http://acme.service-now.com", "https"),
    ("https://acme.service-now.com:8443", "port 8443"),
    ("https://acme.service-now.com.evil.com", "not under 'service-now.com'"),
    ("https://evil.com/acme.service-now.com", "path"),
    ("https://acme.service-now.com@evil.com", "user name or password"),
    ("https://169.254.169.254", "IP address"),
    ("https://93.184.216.34", "IP address"),
    ("https://2130706433", "IP address"),
    ("https://0x7f.1", "IP address"),
    ("https://[::1]", "IP address"),
    ("https://[::ffff:10.0.0.1]", "IP address"),
    ("https://localtest.me", "not under 'service-now.com'"),
    ("https://xn--acm-ioa.service-now.com", "xn--"),
    ("acme.service-now.com", "no scheme; write it as https://acme.service-now.com"),
    ("https://acme.service-now.com/api/now/table", "remove path"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_refused_instance_urls_never_reach_a_server(
    db: Database,
    server: SimulatorServer,
    estate: Estate,
    url: str,
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As in production: no host is exempt (with loopback allowed, 2130706433 *is* the allowed 127.0.0.1).
    monkeypatch.setenv("ARIA_SYNC_ALLOWED_HOSTS", "")
    with pytest.raises(ConfigurationError, match="instanceUrl") as refused:
        market(db).install("servicenow", "sn", config_for(estate, url))
    assert reason in str(refused.value)
    assert estate.credentials["servicenow"]["password"] not in str(refused.value)
    assert server.request_log == []


def test_loopback_simulator_is_refused_when_no_host_is_allowed(
    db: Database, server: SimulatorServer, estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARIA_SYNC_ALLOWED_HOSTS", "")
    with pytest.raises(UrlPolicyError, match="127.0.0.1"):
        market(db).install("servicenow", "sn", config_for(estate, server.base_url))
    assert server.request_log == []


def _context(allowed: str = "") -> ConnectorContext:
    return ConnectorContext(allowed=AllowList.parse(allowed), budget=RetryBudget(3))


def test_a_name_resolving_to_a_private_address_is_refused_before_connecting(
    server: SimulatorServer, estate: Estate
) -> None:
    lookups: list[str] = []

    def private_dns(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 443))]

    connector = ServiceNowConnector(resolver=private_dns)
    config = ServiceNowConfig.model_validate(config_for(estate, "https://acme.service-now.com"))
    session = connector.session(config, _context())
    with pytest.raises(UrlPolicyError, match=r"resolves to private address 10\.0\.0\.5"):
        session.__enter__()
    assert lookups == ["acme.service-now.com"]
    assert server.request_log == []


def test_the_valid_instance_url_passes_the_policy(estate: Estate) -> None:
    def public_dns(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("149.96.5.10", 443))]

    config = ServiceNowConfig.model_validate(config_for(estate, "https://acme.service-now.com/"))
    with ServiceNowConnector(resolver=public_dns).session(config, _context()) as session:
        assert session.http.checked.host == "acme.service-now.com"
        assert session.http.checked.addresses == ("149.96.5.10",)
        assert session.page_size == 1000


@pytest.mark.parametrize("status", [301, 302])
def test_redirect_to_another_host_is_not_followed(
    db: Database, server: SimulatorServer, bystander: SimulatorServer, estate: Estate, status: int
) -> None:
    server.faults.add(
        Fault(
            path="/api/now/table/",
            status=status,
            headers={"Location": f"{bystander.base_url}/steal"},
            times=50,
        )
    )
    with pytest.raises(ConfigurationError, match="redirect"):
        market(db).install("servicenow", "sn", config_for(estate, server.base_url))
    assert len(server.request_log) == 1  # the first probe, answered by the redirect; nothing after it
    assert bystander.request_log == []


def test_redirect_during_a_sync_fails_the_job_and_sends_nothing_elsewhere(
    db: Database, server: SimulatorServer, bystander: SimulatorServer, estate: Estate
) -> None:
    market(db).install("servicenow", "sn", config_for(estate, server.base_url))
    server.faults.add(
        Fault(
            path="/api/now/table/", status=302, headers={"Location": "http://acme.service-now.com/"}, times=50
        )
    )
    server.faults.add(
        Fault(path="/api/now/table/", status=302, headers={"Location": f"{bystander.base_url}/"}, times=50)
    )
    result = SyncRunner(db, ORG, sleep=lambda s: None).sync("sn")
    assert result.status == "failed"
    assert all("redirect" in (c["error"] or "") for c in result.streams.values())
    assert bystander.request_log == []


class _StuckInstance(VendorApp):
    """An instance that ignores sysparm_offset and serves the first page forever."""

    name = "stuck"

    def __init__(self) -> None:
        super().__init__()
        rows = [{"sys_id": f"{n:032x}", "sys_updated_on": "2024-05-20 06:00:00"} for n in range(2)]
        self.route(
            "GET",
            r"/api/now/table/cmdb_ci_computer",
            lambda request, match: json_response({"result": rows}, headers={"X-Total-Count": "50"}),
        )


def test_an_instance_repeating_a_page_is_a_pagination_loop() -> None:
    with SimulatorServer(_StuckInstance()) as srv:
        http = VendorHttp(srv.base_url, connector="ServiceNow", allowed=AllowList.parse("127.0.0.1"))
        session = api.ServiceNowSession(http, page_size=2)
        pages = api.table_pages(
            session, "cmdb_ci_computer", EncodedQuery("cmdb_ci_computer"), stream="cmdb_items"
        )
        assert len(next(pages)) == 2
        with pytest.raises(PaginationLoopError, match="repeated"):
            next(pages)
        assert len(srv.request_log) == 2


def test_queries_name_only_known_fields() -> None:
    query = updated_since(EncodedQuery("cmdb_ci_computer"), "2024-05-20 06:00:00")
    assert str(query) == "sys_updated_on>=2024-05-20 06:00:00^ORDERBYsys_updated_on^ORDERBYsys_id"
    assert str(updated_since(EncodedQuery("incident"), None)) == "ORDERBYsys_updated_on^ORDERBYsys_id"
    with pytest.raises(ConfigurationError, match="not a known field of cmdb_ci_computer"):
        EncodedQuery("cmdb_ci_computer").where("sys_updated_no", ">=", "2024-05-20 06:00:00")
    with pytest.raises(ConfigurationError, match="not a known field"):
        EncodedQuery("incident").order_by("sys_udpated_on")
    with pytest.raises(ConfigurationError, match="not a known field"):
        field_list("sys_audit_delete", ["sys_id", "documentkey", "payload_typo"])
    with pytest.raises(ConfigurationError, match="no field list"):
        EncodedQuery("sys_user").where("name", "=", "x")


def test_query_values_cannot_smuggle_terms() -> None:
    with pytest.raises(ConfigurationError, match=r"'\^'"):
        EncodedQuery("incident").where("number", "=", "INC1^NQactive=true")
    with pytest.raises(ConfigurationError, match="comma"):
        EncodedQuery("sys_audit_delete").where("tablename", "IN", ["incident,cmdb_ci"])
    with pytest.raises(ConfigurationError, match="operator"):
        EncodedQuery("incident").where("number", "LIKE%", "x")
    listed = EncodedQuery("sys_audit_delete").where("tablename", "IN", ["incident", "cmdb_rel_ci"])
    assert str(listed) == "tablenameINincident,cmdb_rel_ci"
    assert str(EncodedQuery("incident").where("resolved_at", "ISEMPTY")) == "resolved_atISEMPTY"


def test_cursor_literals_are_utc_instance_datetimes() -> None:
    assert instance_datetime("2024-05-20 06:00:00") == "2024-05-20 06:00:00"
    assert instance_datetime("2024-05-20T08:00:00+02:00") == "2024-05-20 06:00:00"
    with pytest.raises(ConfigurationError, match="time zone"):
        instance_datetime("2024-05-20T08:00:00")
    with pytest.raises(ConfigurationError, match="not a date"):
        instance_datetime("yesterday")
