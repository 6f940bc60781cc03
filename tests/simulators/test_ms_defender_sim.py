"""The Defender for Endpoint simulator, exercised through msal and httpx over real loopback HTTPS."""

from __future__ import annotations

import base64
import datetime as dt
import json
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msal
import pytest
import requests

from aria_sync.simulators.framework import SimulatorServer
from aria_sync.simulators.ms_defender import (
    LIMITED_CLIENT,
    MDE_SCOPE,
    NO_CONSENT_CLIENT,
    XDR_SCOPE,
    error_fault,
    start_ms_defender,
)

ANCHOR = dt.datetime(2024, 5, 20, tzinfo=dt.UTC)
TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
CLIENT_SECRET = "fake-estate-demo-secret"


def mde_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def export_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


class FakeEstate:
    """A handful of Defender records in the real wire shape, with an ``advance()`` that changes a few."""

    def __init__(self, machines: int = 7) -> None:
        self.generation = 0
        self.now = ANCHOR
        self.credentials = {
            "ms-defender": {"tenantId": TENANT, "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}
        }
        self.machines = [self._machine(index) for index in range(machines)]
        if machines >= 2:
            # A re-imaged device: the old id lingers Inactive under the same name.
            self.machines[1]["computerDnsName"] = self.machines[0]["computerDnsName"]
            self.machines[1]["healthStatus"] = "Inactive"
            self.machines[1]["lastSeen"] = mde_time(ANCHOR - dt.timedelta(days=20))
        self.alerts = [self._alert(index) for index in range(min(machines, 4))]
        self.incidents = [self._incident(index) for index in range(3)]
        self.incidents[0]["redirectIncidentId"] = 7002

    @staticmethod
    def _machine(index: int) -> dict[str, Any]:
        machine_id = f"{index:02x}" + "a1" * 19
        return {
            "id": machine_id,
            "computerDnsName": f"host-{index:03d}.corp.example.com",
            "firstSeen": mde_time(ANCHOR - dt.timedelta(days=300)),
            "lastSeen": mde_time(ANCHOR - dt.timedelta(hours=index)),
            "osPlatform": "Windows11" if index % 2 == 0 else "Linux",
            "healthStatus": "Active",
            "onboardingStatus": "Onboarded",
            "riskScore": "Medium",
            "exposureLevel": "Low",
            "deviceValue": "Normal",
            "rbacGroupId": index % 3,
            "aadDeviceId": None,
            "machineTags": ["vip"] if index == 3 else [],
            "lastIpAddress": f"10.0.0.{index + 10}",
            "ipAddresses": [
                {
                    "ipAddress": f"10.0.0.{index + 10}",
                    "macAddress": f"00155DAB{index:04X}",
                    "type": "Ethernet",
                }
            ],
        }

    def _alert(self, index: int) -> dict[str, Any]:
        created = ANCHOR - dt.timedelta(hours=10 - index)
        return {
            "id": f"da6385{index:014d}_-{1000 + index}",
            "incidentId": 7000 + index % 2,
            "severity": ["High", "Medium", "Low", "Informational"][index],
            "status": "New",
            "title": f"Alert {index}",
            "alertCreationTime": mde_time(created),
            "lastUpdateTime": mde_time(created + dt.timedelta(minutes=5)),
            "resolvedTime": None,
            "machineId": self.machines[index]["id"],
            "computerDnsName": self.machines[index]["computerDnsName"],
            "evidence": [{"entityType": "File", "fileName": f"payload{index}.exe", "sha1": "0" * 40}],
        }

    @staticmethod
    def _incident(index: int) -> dict[str, Any]:
        created = ANCHOR - dt.timedelta(days=3 - index)
        return {
            "incidentId": 7000 + index,
            "redirectIncidentId": None,
            "incidentName": f"Incident {index}",
            "createdTime": mde_time(created),
            "lastUpdateTime": mde_time(created + dt.timedelta(hours=1)),
            "status": "Active",
            "severity": "High",
            "assignedTo": None,
            "alerts": [],
        }

    def defender_machines(self) -> list[dict[str, Any]]:
        return list(self.machines)

    def defender_alerts(self) -> list[dict[str, Any]]:
        return list(self.alerts)

    def defender_incidents(self) -> list[dict[str, Any]]:
        return list(self.incidents)

    def defender_vulnerabilities(self) -> Iterator[dict[str, Any]]:
        for machine in self.machines:
            for number in range(5):
                cve = f"CVE-2024-{1000 + number}" if number < 4 else None
                yield {
                    "id": f"{machine['id']}_app{number}_1.{number}_{cve or ''}",
                    "deviceId": machine["id"],
                    "deviceName": machine["computerDnsName"],
                    "softwareVendor": "contoso",
                    "softwareName": f"app{number}",
                    "softwareVersion": f"1.{number}",
                    "cveId": cve,
                    "vulnerabilitySeverityLevel": "High",
                    "recommendedSecurityUpdateId": "KB5034765" if number == 0 else None,
                    "firstSeenTimestamp": export_time(ANCHOR - dt.timedelta(days=9)),
                    "lastSeenTimestamp": export_time(self.now),
                }

    def defender_vulnerability_count(self) -> int:
        return len(self.machines) * 5

    def defender_vulnerability_changes(self, since: dt.datetime) -> list[dict[str, Any]]:
        changes = []
        for generation in range(1, self.generation + 1):
            stamp = ANCHOR + dt.timedelta(hours=6 * generation - 1)
            for number, status in enumerate(("New", "Fixed", "Updated")):
                changes.append(
                    {
                        "id": f"change-{generation}-{number}",
                        "deviceId": self.machines[number]["id"],
                        "cveId": f"CVE-2024-{2000 + number}",
                        "status": status,
                        "eventTimestamp": mde_time(stamp),
                    }
                )
        return [row for row in changes if dt.datetime.fromisoformat(row["eventTimestamp"]) >= since]

    def advance(self) -> None:
        old_now = self.now
        self.now += dt.timedelta(hours=6)
        self.generation += 1
        changed = old_now + dt.timedelta(hours=1)
        self.alerts[0] = {
            **self.alerts[0],
            "status": "Resolved",
            "resolvedTime": mde_time(changed),
            "lastUpdateTime": mde_time(changed),
        }
        self.machines[2] = {**self.machines[2], "healthStatus": "Inactive"}


# ----------------------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture(autouse=True)
def _trust_only_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests ignores Session.verify when these are set.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture
def estate() -> FakeEstate:
    return FakeEstate()


@pytest.fixture(scope="module")
def _running_servers() -> Iterator[list[SimulatorServer]]:
    servers: list[SimulatorServer] = []
    yield servers
    # Each stop waits out the server's poll interval; stopping them together keeps the file fast.
    stoppers = [threading.Thread(target=server.stop) for server in servers]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()


@pytest.fixture
def start(tmp_path: Path, _running_servers: list[SimulatorServer]) -> Any:
    def _start(estate: Any, **options: Any) -> SimulatorServer:
        server = start_ms_defender(estate, cert_dir=tmp_path / f"tls{len(_running_servers)}", **options)
        _running_servers.append(server)
        return server

    return _start


@pytest.fixture
def server(start: Any, estate: FakeEstate) -> SimulatorServer:
    return start(estate)


def client_for(server: SimulatorServer) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    return httpx.Client(base_url=server.base_url, verify=context, timeout=10)


def token_for(
    server: SimulatorServer,
    scope: str = MDE_SCOPE,
    client_id: str = CLIENT_ID,
    secret: str = CLIENT_SECRET,
) -> str:
    with client_for(server) as http:
        response = http.post(
            f"/{TENANT}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "scope": scope,
            },
        )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def api(server: SimulatorServer, token: str | None = None) -> httpx.Client:
    http = client_for(server)
    http.headers["Authorization"] = f"Bearer {token or token_for(server)}"
    return http


def msal_app(
    server: SimulatorServer, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET, tenant: str = TENANT
) -> msal.ConfidentialClientApplication:
    session = requests.Session()
    session.verify = str(server.ca_file)
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,
        authority=f"{server.base_url}/{tenant}",
        instance_discovery=False,
        http_client=session,
    )


def assert_mde_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    uuid.UUID(error["target"])
    return str(error["message"])


# ----------------------------------------------------------------------------------------------------------
# Authority and tokens


def test_msal_acquires_a_token_and_serves_the_second_from_its_cache(server: SimulatorServer) -> None:
    app = msal_app(server)
    first = app.acquire_token_for_client(scopes=[MDE_SCOPE])
    second = app.acquire_token_for_client(scopes=[MDE_SCOPE])

    assert first["token_type"] == "Bearer"
    assert first["token_source"] == "identity_provider"
    assert second["token_source"] == "cache"
    assert second["access_token"] == first["access_token"]
    assert len(server.requests(r"/oauth2/v2\.0/token$", "POST")) == 1
    assert len(server.requests(r"/v2\.0/\.well-known/openid-configuration$", "GET")) == 1
    claims = claims_of(first["access_token"])
    assert claims["aud"] == "https://api.securitycenter.microsoft.com"
    assert claims["tid"] == TENANT
    assert claims["appid"] == CLIENT_ID
    assert set(claims["roles"]) == {
        "Machine.Read.All",
        "Alert.Read.All",
        "Vulnerability.Read.All",
        "Software.Read.All",
    }
    assert claims["exp"] >= time.time() + 3500
    with api(server, first["access_token"]) as http:
        assert http.get("/api/machines").status_code == 200


def test_incidents_scope_gives_a_token_for_the_xdr_audience(server: SimulatorServer) -> None:
    result = msal_app(server).acquire_token_for_client(scopes=[XDR_SCOPE])

    claims = claims_of(result["access_token"])
    assert claims["aud"] == "https://api.security.microsoft.com"
    assert claims["roles"] == ["Incident.Read.All"]
    assert result["expires_in"] == 3599


def test_unknown_client_and_wrong_secret_come_back_as_entra_error_dicts(server: SimulatorServer) -> None:
    unknown = msal_app(server, client_id=str(uuid.uuid4())).acquire_token_for_client(scopes=[MDE_SCOPE])
    wrong_secret = msal_app(server, secret="not-the-secret").acquire_token_for_client(scopes=[MDE_SCOPE])

    assert unknown["error"] == "unauthorized_client"
    assert unknown["error_codes"] == [700016]
    assert unknown["error_description"].startswith("AADSTS700016:")
    assert wrong_secret["error"] == "invalid_client"
    assert wrong_secret["error_codes"] == [7000215]
    assert "AADSTS7000215: Invalid client secret provided" in wrong_secret["error_description"]
    assert "not-the-secret" not in wrong_secret["error_description"]
    statuses = [entry.status for entry in server.requests(r"/oauth2/v2\.0/token$", "POST")]
    assert statuses == [400, 401]


def test_scope_without_default_suffix_is_invalid_scope(server: SimulatorServer) -> None:
    result = msal_app(server).acquire_token_for_client(
        scopes=["https://api.securitycenter.microsoft.com/Machine.Read.All"]
    )

    assert result["error"] == "invalid_scope"
    assert result["error_codes"] == [1002012]


def test_unknown_tenant_fails_discovery_and_token_with_aadsts90002(server: SimulatorServer) -> None:
    stranger = "99999999-0000-0000-0000-000000000000"
    with pytest.raises(ValueError, match="double check your tenant") as raised:
        msal_app(server, tenant=stranger)
    assert "AADSTS90002" in str(raised.value.__context__)  # msal wraps the discovery failure

    with client_for(server) as http:
        discovery = http.get(f"/{stranger}/v2.0/.well-known/openid-configuration")
        token = http.post(
            f"/{stranger}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "scope": MDE_SCOPE,
            },
        )
    assert discovery.status_code == 400
    assert discovery.json()["error_codes"] == [90002]
    assert token.status_code == 400
    body = token.json()
    assert body["error"] == "invalid_request"
    assert body["error_codes"] == [90002]
    assert body["error_description"].startswith(f"AADSTS90002: Tenant '{stranger}' not found.")
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= set(body)


def test_discovery_documents_point_at_this_server(server: SimulatorServer) -> None:
    with client_for(server) as http:
        v2 = http.get(f"/{TENANT}/v2.0/.well-known/openid-configuration").json()
        v1 = http.get(f"/{TENANT}/.well-known/openid-configuration").json()

    assert v2["token_endpoint"] == f"{server.base_url}/{TENANT}/oauth2/v2.0/token"
    assert v2["authorization_endpoint"].startswith(f"{server.base_url}/{TENANT}/")
    assert {"issuer", "jwks_uri"} <= set(v2)
    assert v1["token_endpoint"] == f"{server.base_url}/{TENANT}/oauth2/token"


def test_legacy_v1_token_endpoint_takes_a_resource(server: SimulatorServer) -> None:
    with client_for(server) as http:
        response = http.post(
            f"/{TENANT}/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "resource": "https://api.securitycenter.microsoft.com",
            },
        )
    body = response.json()
    assert response.status_code == 200
    assert body["expires_in"] == "3599"
    with api(server, body["access_token"]) as http:
        assert http.get("/api/alerts").status_code == 200


# ----------------------------------------------------------------------------------------------------------
# Bearer checks


def test_no_consent_and_limited_clients_get_403_naming_the_role(server: SimulatorServer) -> None:
    no_roles = token_for(
        server, client_id=NO_CONSENT_CLIENT["clientId"], secret=NO_CONSENT_CLIENT["clientSecret"]
    )
    limited = token_for(server, client_id=LIMITED_CLIENT["clientId"], secret=LIMITED_CLIENT["clientSecret"])
    limited_xdr = token_for(
        server, XDR_SCOPE, client_id=LIMITED_CLIENT["clientId"], secret=LIMITED_CLIENT["clientSecret"]
    )
    assert "roles" not in claims_of(no_roles)

    with api(server, no_roles) as http:
        message = assert_mde_error(http.get("/api/machines"), 403, "Forbidden")
        assert "Machine.Read.All" in message
    with api(server, limited) as http:
        assert http.get("/api/machines").status_code == 200
        assert "Alert.Read.All" in assert_mde_error(http.get("/api/alerts"), 403, "Forbidden")
        export = http.get("/api/machines/SoftwareVulnerabilitiesByMachine")
        assert "Vulnerability.Read.All" in assert_mde_error(export, 403, "Forbidden")
    with api(server, limited_xdr) as http:
        assert "Incident.Read.All" in assert_mde_error(http.get("/api/incidents"), 403, "Forbidden")


def test_a_token_of_the_wrong_audience_is_401(server: SimulatorServer) -> None:
    with api(server, token_for(server, MDE_SCOPE)) as http:
        assert_mde_error(http.get("/api/incidents"), 401, "Unauthorized")
    with api(server, token_for(server, XDR_SCOPE)) as http:
        assert_mde_error(http.get("/api/machines"), 401, "Unauthorized")
        assert http.get("/api/incidents").status_code == 200


def test_missing_and_forged_tokens_are_401(server: SimulatorServer) -> None:
    genuine = token_for(server)
    header, _payload, signature = genuine.split(".")
    claims = claims_of(genuine) | {"roles": ["Machine.Read.All"], "appid": NO_CONSENT_CLIENT["clientId"]}
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    with client_for(server) as http:
        assert_mde_error(http.get("/api/machines"), 401, "Unauthorized")
        forged = http.get(
            "/api/machines", headers={"Authorization": f"Bearer {header}.{forged_payload}.{signature}"}
        )
        assert_mde_error(forged, 401, "Unauthorized")


def test_expired_token_is_401(start: Any, estate: FakeEstate) -> None:
    server = start(estate, token_lifetime=1)
    token = token_for(server)
    assert claims_of(token)["exp"] - time.time() <= 2
    with api(server, token) as http:
        assert http.get("/api/machines").status_code == 200
        time.sleep(2.1)
        message = assert_mde_error(http.get("/api/machines"), 401, "Unauthorized")
    assert "expired" in message


# ----------------------------------------------------------------------------------------------------------
# Collections


def test_machines_top_skip_paging_returns_every_machine_once(start: Any, estate: FakeEstate) -> None:
    server = start(estate, max_top_machines=3)
    seen: list[str] = []
    with api(server) as http:
        for skip in range(0, 30, 2):
            body = http.get("/api/machines", params={"$top": 2, "$skip": skip}).json()
            assert body["@odata.context"].endswith("$metadata#Machines")
            assert "@odata.nextLink" not in body
            seen.extend(machine["id"] for machine in body["value"])
            if len(body["value"]) < 2:
                break
        clamped = http.get("/api/machines", params={"$top": 50_000}).json()

    assert len(seen) == len(estate.machines) == len(set(seen))
    assert seen == sorted(seen)
    assert len(clamped["value"]) == 3
    assert "@odata.nextLink" not in clamped


def test_machines_without_top_link_to_the_next_page(start: Any, estate: FakeEstate) -> None:
    server = start(estate, max_top_machines=3)
    seen: list[str] = []
    url: str | None = "/api/machines?$filter=healthStatus eq 'Active'"
    with api(server) as http:
        while url:
            body = http.get(url).json()
            seen.extend(machine["id"] for machine in body["value"])
            url = body.get("@odata.nextLink")
            assert url is None or url.startswith(server.base_url)

    active = [m["id"] for m in estate.machines if m["healthStatus"] == "Active"]
    assert sorted(seen) == sorted(active)


def test_machine_by_id_or_name_prefers_the_active_twin(server: SimulatorServer, estate: FakeEstate) -> None:
    inactive_twin = estate.machines[1]
    with api(server) as http:
        by_id = http.get(f"/api/machines/{inactive_twin['id']}").json()
        by_name = http.get(f"/api/machines/{inactive_twin['computerDnsName'].upper()}").json()
        missing = http.get("/api/machines/" + "f" * 40)

    assert by_id["id"] == inactive_twin["id"]
    assert by_id["@odata.context"].endswith("#Machines/$entity")
    assert by_name["id"] == estate.machines[0]["id"]
    assert_mde_error(missing, 404, "ResourceNotFound")


def test_machines_is_404_when_the_tenant_has_none(start: Any) -> None:
    server = start(FakeEstate(machines=0))
    with api(server) as http:
        assert_mde_error(http.get("/api/machines"), 404, "NotFound")


def test_machine_filters(server: SimulatorServer, estate: FakeEstate) -> None:
    with api(server) as http:

        def ids(expression: str) -> list[str]:
            response = http.get("/api/machines", params={"$filter": expression})
            assert response.status_code == 200, response.text
            return [machine["id"] for machine in response.json()["value"]]

        linux = ids("osPlatform eq 'Linux' and healthStatus ne 'Inactive'")
        tagged = ids("machineTags/any(tag: tag eq 'vip')")
        recent = ids(f"lastSeen ge {mde_time(ANCHOR - dt.timedelta(hours=2))}")
        grouped = ids("rbacGroupId eq 0 or (osPlatform eq 'Linux' and rbacGroupId eq 1)")

    assert linux == sorted(
        m["id"] for m in estate.machines if m["osPlatform"] == "Linux" and m is not estate.machines[1]
    )
    assert tagged == [estate.machines[3]["id"]]
    assert recent == sorted(m["id"] for m in estate.machines[:3] if m["healthStatus"] == "Active")
    expected = [
        m
        for m in estate.machines
        if m["rbacGroupId"] == 0 or (m["osPlatform"] == "Linux" and m["rbacGroupId"] == 1)
    ]
    assert grouped == sorted(m["id"] for m in expected)


@pytest.mark.parametrize(
    "expression",
    [
        "title eq 'Alert 0'",  # not a filterable property
        "status eq",  # incomplete
        "status like 'New'",  # unknown operator
        "lastUpdateTime ge '2024-05-01T00:00:00Z'",  # a datetime compared with a string
        "status eq 'New' and",
        "(status eq 'New'",
    ],
)
def test_bad_filters_are_400_odata_error(server: SimulatorServer, expression: str) -> None:
    with api(server) as http:
        assert_mde_error(http.get("/api/alerts", params={"$filter": expression}), 400, "ODataError")


def test_alerts_expand_evidence_and_filter_on_last_update_after_advance(
    server: SimulatorServer, estate: FakeEstate
) -> None:
    with api(server) as http:
        plain = http.get("/api/alerts").json()["value"]
        expanded = http.get("/api/alerts", params={"$expand": "evidence"}).json()["value"]
        old_now = estate.now
        estate.advance()
        changed = http.get("/api/alerts", params={"$filter": f"lastUpdateTime gt {mde_time(old_now)}"}).json()
        resolved = http.get(
            "/api/alerts",
            params={"$filter": f"status eq 'Resolved' and lastUpdateTime le {mde_time(estate.now)}"},
        ).json()

    assert len(plain) == len(estate.alerts)
    assert all(alert["evidence"] == [] for alert in plain)
    assert all(alert["evidence"] for alert in expanded)
    assert [alert["id"] for alert in changed["value"]] == [estate.alerts[0]["id"]]
    assert changed["value"][0]["status"] == "Resolved"
    assert [alert["id"] for alert in resolved["value"]] == [estate.alerts[0]["id"]]


def test_incidents_come_newest_first_with_top_clamped(start: Any, estate: FakeEstate) -> None:
    server = start(estate, max_top_incidents=2)
    with api(server, token_for(server, XDR_SCOPE)) as http:
        first = http.get("/api/incidents", params={"$top": 500}).json()
        second = http.get("/api/incidents", params={"$top": 500, "$skip": 2}).json()
        active = http.get("/api/incidents", params={"$filter": "status eq 'Active'"}).json()

    ids = [incident["incidentId"] for incident in first["value"] + second["value"]]
    assert ids == [7002, 7001, 7000]
    assert first["@odata.context"] == "https://api.security.microsoft.com/api/$metadata#Incidents"
    assert "@odata.nextLink" not in first
    assert "@odata.nextLink" in active  # no $top: a full page links onwards
    assert first["value"][-1]["incidentId"] == 7001
    assert any(incident["redirectIncidentId"] == 7002 for incident in second["value"])


def test_machines_vulnerabilities_are_cve_rows_with_composite_ids(
    server: SimulatorServer, estate: FakeEstate
) -> None:
    with api(server) as http:
        rows = http.get("/api/vulnerabilities/machinesVulnerabilities").json()["value"]
        one_cve = http.get(
            "/api/vulnerabilities/machinesVulnerabilities", params={"$filter": "cveId eq 'CVE-2024-1000'"}
        ).json()["value"]

    assert len(rows) == len(estate.machines) * 4
    assert {row["machineId"] for row in one_cve} == {m["id"] for m in estate.machines}
    assert one_cve[0]["fixingKbId"] == "5034765"
    assert one_cve[0]["id"].startswith(f"{one_cve[0]['machineId']}-_-CVE-2024-1000-_-contoso-_-app0-_-")


# ----------------------------------------------------------------------------------------------------------
# Vulnerability exports


def test_software_vulnerabilities_next_link_walk_returns_every_row_once(
    server: SimulatorServer, estate: FakeEstate
) -> None:
    seen: list[str] = []
    url: str | None = "/api/machines/SoftwareVulnerabilitiesByMachine?pageSize=4"
    pages = 0
    with api(server) as http:
        while url:
            response = http.get(url)
            assert response.status_code == 200, response.text
            body = response.json()
            seen.extend(row["id"] for row in body["value"])
            url = body.get("@odata.nextLink")
            assert url is None or ("$skiptoken=" in url and "pageSize=4" in url)
            pages += 1
        retried = http.get(
            str(server.requests("SoftwareVulnerabilitiesByMachine")[2].path),
            params={k: v[0] for k, v in server.requests("SoftwareVulnerabilitiesByMachine")[2].query.items()},
        ).json()
        top = http.get("/api/machines/SoftwareVulnerabilitiesByMachine", params={"$top": 6}).json()

    expected = [row["id"] for row in estate.defender_vulnerabilities()]
    assert seen == expected
    assert pages == -(-len(expected) // 4)
    assert [row["id"] for row in retried["value"]] == expected[8:12]
    assert [row["id"] for row in top["value"]] == expected[:6]
    assert "@odata.nextLink" not in top


def test_export_rejects_filters_and_skiptokens_from_an_older_snapshot(
    server: SimulatorServer, estate: FakeEstate
) -> None:
    with api(server) as http:
        filtered = http.get(
            "/api/machines/SoftwareVulnerabilitiesByMachine", params={"$filter": "cveId eq 'x'"}
        )
        next_link = http.get("/api/machines/SoftwareVulnerabilitiesByMachine?pageSize=5").json()[
            "@odata.nextLink"
        ]
        estate.advance()
        stale = http.get(next_link)
        garbage = http.get("/api/machines/SoftwareVulnerabilitiesByMachine", params={"$skiptoken": "%%%"})

    assert_mde_error(filtered, 400, "ODataError")
    assert "expired" in assert_mde_error(stale, 400, "InvalidInput")
    assert_mde_error(garbage, 400, "InvalidInput")


def test_vulnerability_changes_validate_since_time(server: SimulatorServer, estate: FakeEstate) -> None:
    path = "/api/machines/SoftwareVulnerabilityChangesByMachine"
    estate.advance()
    estate.advance()
    with api(server) as http:
        missing = http.get(path)
        too_old = http.get(path, params={"sinceTime": mde_time(estate.now - dt.timedelta(days=15))})
        malformed = http.get(path, params={"sinceTime": "yesterday"})
        # Inside the second 6-hour batch: the whole batch comes back, the first batch does not.
        latest = http.get(path, params={"sinceTime": "2024-05-20T07:30:00Z"}).json()
        paged: list[str] = []
        url: str | None = f"{path}?sinceTime=2024-05-20T00:00:00Z&pageSize=4"
        while url:
            body = http.get(url).json()
            paged.extend(row["id"] for row in body["value"])
            url = body.get("@odata.nextLink")

    assert_mde_error(missing, 400, "MissingRequiredParameter")
    assert_mde_error(too_old, 400, "InvalidInput")
    assert_mde_error(malformed, 400, "InvalidInput")
    assert {row["status"] for row in latest["value"]} == {"New", "Fixed", "Updated"}
    assert {row["id"] for row in latest["value"]} == {"change-2-0", "change-2-1", "change-2-2"}
    assert sorted(paged) == sorted(f"change-{g}-{n}" for g in (1, 2) for n in range(3))


# ----------------------------------------------------------------------------------------------------------
# Rate limits


def test_rate_limit_answers_429_with_retry_after(start: Any, estate: FakeEstate) -> None:
    server = start(estate, rate_limits={"alerts": ((2, 30.0),)})
    with api(server) as http:
        statuses = [http.get("/api/alerts").status_code for _ in range(3)]
        limited = http.get("/api/alerts")
        other_endpoint = http.get("/api/machines")

    assert statuses == [200, 200, 429]
    assert_mde_error(limited, 429, "TooManyRequests")
    assert 1 <= int(limited.headers["Retry-After"]) <= 30
    assert other_endpoint.status_code == 200
    assert [entry.status for entry in server.requests("/api/alerts")] == [200, 200, 429, 429]


def test_rate_limit_slot_frees_after_the_window(start: Any, estate: FakeEstate) -> None:
    server = start(estate, rate_limits={"vulnerability_export": ((1, 1.0),)})
    path = "/api/machines/SoftwareVulnerabilitiesByMachine"
    with api(server) as http:
        assert http.get(path, params={"$top": 1}).status_code == 200
        refused = http.get(path, params={"$top": 1})
        time.sleep(float(refused.headers["Retry-After"]))
        again = http.get(path, params={"$top": 1})

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert again.status_code == 200


# ----------------------------------------------------------------------------------------------------------
# The shared estate


def test_serves_the_generated_tiny_estate(start: Any) -> None:
    estate_module = pytest.importorskip("aria_sync.simulators.estate")
    if not hasattr(estate_module, "Estate"):
        pytest.skip("the shared estate is not available yet")
    estate = estate_module.Estate.generate("tiny")
    server = start(estate)
    credentials = estate.credentials["ms-defender"]
    app = msal_app(server, credentials["clientId"], credentials["clientSecret"], credentials["tenantId"])
    token = app.acquire_token_for_client(scopes=[MDE_SCOPE])["access_token"]

    with api(server, token) as http:
        machines = http.get("/api/machines", params={"$top": 10_000}).json()["value"]
        alerts = http.get("/api/alerts").json()["value"]
        expected_counts = (
            len(estate.defender_machines()),
            len(estate.defender_alerts()),
            estate.defender_vulnerability_count(),
        )
        rows: list[dict[str, Any]] = []
        url: str | None = "/api/machines/SoftwareVulnerabilitiesByMachine?pageSize=50"
        while url:
            body = http.get(url).json()
            rows.extend(body["value"])
            url = body.get("@odata.nextLink")
        before = estate.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        estate.advance()
        changed = http.get("/api/alerts", params={"$filter": f"lastUpdateTime gt {before}"}).json()["value"]
        delta = http.get(
            "/api/machines/SoftwareVulnerabilityChangesByMachine", params={"sinceTime": before}
        ).json()["value"]

    assert (len(machines), len(alerts), len(rows)) == expected_counts
    assert changed and all(alert["lastUpdateTime"] > before for alert in changed)
    assert {row["status"] for row in delta} <= {"New", "Fixed", "Updated"}


def test_paths_are_case_insensitive_and_vendor_shaped_faults_apply(server: SimulatorServer) -> None:
    server.faults.add(error_fault(500, "InternalServerError", path="/api/alerts"))
    with api(server) as http:
        assert http.get("/api/Machines").status_code == 200
        failed = http.get("/api/alerts")
        recovered = http.get("/api/alerts")
        unknown = http.get("/api/nothing-here")

    assert_mde_error(failed, 500, "InternalServerError")
    assert recovered.status_code == 200
    assert_mde_error(unknown, 404, "ResourceNotFound")
