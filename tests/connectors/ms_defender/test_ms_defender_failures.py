"""Defender failure paths over real HTTPS: 429s, expiring tokens, 5xx pages, Entra errors, URL policy."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from aria_sync.connectors.base import ConnectorContext
from aria_sync.connectors.ms_defender import DefenderConnector
from aria_sync.connectors.ms_defender.auth import MDE_SCOPE, XDR_SCOPE
from aria_sync.connectors.ms_defender.config import DefenderConfig
from aria_sync.errors import ConfigurationError, UrlPolicyError
from aria_sync.http import AllowList, RetryBudget
from aria_sync.simulators.estate import Estate
from aria_sync.simulators.framework import Fault, SimulatorServer
from aria_sync.simulators.ms_defender import LIMITED_CLIENT, NO_CONSENT_CLIENT, error_fault


def test_a_429_storm_is_waited_out_as_told(mde: Any, estate: Estate, server: SimulatorServer) -> None:
    mde.install(server, estate)
    server.faults.add(error_fault(429, "TooManyRequests", path="^/api/alerts$", times=2, retry_after=1))
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    result = mde.run(sleep=sleep)

    assert result["status"] == "succeeded", result
    assert mde.statuses(server, "^/api/alerts$")[-4:-1] == [429, 429, 200]
    assert len(waits) == 2 and all(1.0 <= w <= 1.2 for w in waits)
    answered = [r.wall_time for r in server.requests("^/api/alerts$")][-4:-1]
    assert answered[1] - answered[0] >= 1.0 and answered[2] - answered[1] >= 1.0


def test_a_token_that_expires_mid_sync_is_renewed_once(
    mde: Any, estate: Estate, start: Callable[..., SimulatorServer]
) -> None:
    holder: dict[str, SimulatorServer] = {}

    def clock() -> float:
        # From the second machines page of the sync on, the simulator lives two hours later, so every
        # token issued before then has expired while msal's cache still holds it.
        machine_calls = len(holder["server"].requests("^/api/machines$")) if "server" in holder else 0
        return time.time() + (7200 if machine_calls >= 2 else 0)

    holder["server"] = server = start(estate, clock=clock, max_top_machines=10)
    mde.install(server, estate)  # the probe is machines call 1
    result = mde.run()

    assert result["status"] == "succeeded", result
    assert mde.statuses(server, "^/api/machines$") == [200, 200, 401, 200, 200]
    assert mde.statuses(server, "^/api/incidents$")[1:3] == [401, 200]
    assert sorted(mde.token_scopes(server)) == sorted([MDE_SCOPE, MDE_SCOPE, XDR_SCOPE, XDR_SCOPE])
    assert result["streams"]["machines"]["inserted"] == len(estate.defender_machines())


def test_a_second_401_after_renewal_is_fatal(mde: Any, estate: Estate, server: SimulatorServer) -> None:
    mde.install(server, estate)
    body = orjson.dumps(
        {"error": {"code": "Unauthorized", "message": "revoked", "target": str(uuid.uuid4())}}
    )
    server.faults.add(Fault(kind="status", path="^/api/machines$", status=401, body=body, times=2))
    result = mde.run()

    assert result["status"] == "failed"
    assert "401 twice" in result["error"]
    assert mde.statuses(server, "^/api/machines$")[1:] == [401, 401]
    assert len(server.requests("^/api/alerts$")) == 1  # only the install probe: the job stopped
    assert mde.scalar("SELECT status FROM integration_installations") == "credentials_invalid"


def test_a_500_on_one_page_leaves_every_machine_in_place(
    mde: Any, estate: Estate, start: Callable[..., SimulatorServer]
) -> None:
    server = start(estate, max_top_machines=10)
    mde.install(server, estate, options={"max_stale_fraction": 1.0})
    assert mde.run()["status"] == "succeeded"
    fault = error_fault(500, "InternalServerError", path="^/api/machines$", times=10)
    fault.skip = 1  # the first page arrives, every later one fails past the retries
    server.faults.add(fault)
    result = mde.run()

    assert result["status"] == "partial", result
    machines = result["detail"]["machines"]
    assert machines["status"] == "partial" and machines["removed"] == 0 and "500" in machines["error"]
    assert (
        result["streams"]["alerts"]["fetched"] >= 0
        and result["detail"]["vulnerabilities"]["status"] == "succeeded"
    )
    assert mde.scalar("SELECT count(*) FROM ms_defender_assets WHERE is_deleted") == 0
    assert mde.scalar("SELECT count(*) FROM asset_identities WHERE is_deleted OR status = 'deleted'") == 0
    assert mde.scalar("SELECT count(*) FROM ms_defender_assets") == len(estate.defender_machines())


# -- credentials and permissions ----------------------------------------------------------------

ENTRA_FAILURES = (
    ({"tenantId": "99999999-8888-7777-6666-555555555555"}, "AADSTS90002"),
    ({"clientId": "12345678-1234-4234-8234-123456789abc"}, "AADSTS700016"),
    ({"clientSecret": "not-the-right-secret"}, "AADSTS7000215"),
    (NO_CONSENT_CLIENT, "AADSTS65001"),
)


def test_each_entra_failure_has_its_own_plain_message(
    mde: Any, estate: Estate, server: SimulatorServer
) -> None:
    messages = []
    for overrides, code in ENTRA_FAILURES:
        with pytest.raises(ConfigurationError) as caught:
            mde.install(server, estate, **overrides)
        message = str(caught.value)
        assert code in message and "Fix:" in message, message
        for secret in (estate.credentials["ms-defender"]["clientSecret"], overrides.get("clientSecret")):
            assert not secret or secret not in message
        messages.append(message.split("(", 1)[1])

    assert len(set(messages)) == len(ENTRA_FAILURES)
    assert mde.scalar("SELECT count(*) FROM integration_installations") == 0


def test_a_limited_app_is_told_each_missing_permission(
    mde: Any, estate: Estate, server: SimulatorServer
) -> None:
    report = mde.test_config(mde.config(server, estate, **LIMITED_CLIENT))

    results = {r.capability: r for r in report.results}
    assert results["machines"].ok and not report.ok
    assert (
        "WindowsDefenderATP Alert.Read.All (application permission) + admin consent"
        in results["alerts"].message
    )
    assert "WindowsDefenderATP Vulnerability.Read.All" in results["vulnerabilities"].message
    assert "Microsoft Threat Protection Incident.Read.All" in results["incidents"].message


@pytest.mark.parametrize(
    "api_base_url",
    ["http://api.securitycenter.microsoft.com", "https://10.20.30.40", "https://169.254.169.254"],
)
def test_a_non_https_or_private_api_url_is_refused_before_any_request(
    mde: Any, estate: Estate, server: SimulatorServer, api_base_url: str
) -> None:
    with pytest.raises(UrlPolicyError):
        mde.install(server, estate, apiBaseUrl=api_base_url)
    config = DefenderConfig.model_validate(mde.config(server, estate, apiBaseUrl=api_base_url))
    context = ConnectorContext(allowed=AllowList.from_env(), budget=RetryBudget(5))
    with pytest.raises(UrlPolicyError), DefenderConnector().session(config, context):
        pass

    assert server.request_log == []


def test_the_simulator_itself_is_refused_without_the_allow_list(
    mde: Any, estate: Estate, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ARIA_SYNC_ALLOWED_HOSTS")
    with pytest.raises(UrlPolicyError):
        mde.install(server, estate)
    assert server.request_log == []
