"""The Tenable.io simulator over real loopback HTTP: auth, export jobs, filters, limits, lists."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from aria_sync.simulators.framework import SimulatorServer
from aria_sync.simulators.tenable import RESTRICTED_KEYS, internal_error_fault, start_tenable

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
ACCESS, SECRET = "demo-tenable-access-0001", "demo-tenable-secret-0001"
ASSET_COUNT = 160
FINDINGS_PER_ASSET = 4


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


class FakeEstate:
    """A small estate in Tenable's wire shape: 160 assets with 4 findings each.

    Per asset: an OPEN finding seen yesterday, an OPEN finding last seen 45 days ago (outside the
    default window), a FIXED finding fixed 3 days ago and a REOPENED finding seen 2 days ago. Every
    40th asset is deleted, every 53rd terminated. Records carry empty attributes on purpose.
    """

    def __init__(self) -> None:
        self.seed = 7
        self.generation = 0
        self.now = NOW
        self.credentials = {"tenable": {"accessKey": ACCESS, "secretKey": SECRET}}
        self.changed_finding_ids: set[str] = set()
        rng = random.Random(11)
        self.assets: list[dict[str, Any]] = []
        self.findings: list[dict[str, Any]] = []
        for index in range(ASSET_COUNT):
            asset_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            host = f"host-{index:03d}"
            deleted = index % 40 == 7
            terminated = index % 53 == 11
            self.assets.append(
                {
                    "id": asset_id,
                    "has_agent": index % 2 == 0,
                    "created_at": iso(NOW - dt.timedelta(days=300)),
                    "updated_at": iso(NOW - dt.timedelta(days=1 + index % 20)),
                    "last_seen": iso(NOW - dt.timedelta(days=1 + index % 20)),
                    "deleted_at": iso(NOW - dt.timedelta(days=2)) if deleted else None,
                    "terminated_at": iso(NOW - dt.timedelta(days=5)) if terminated else None,
                    "ipv4s": [f"10.0.{index // 200}.{index % 200}"],
                    "ipv6s": [],
                    "fqdns": [f"{host}.corp.example.com"],
                    "hostnames": [host],
                    "mac_addresses": [f"00:15:5d:00:{index // 256:02x}:{index % 256:02x}"],
                    "netbios_names": [host.upper()],
                    "operating_systems": ["Microsoft Windows 11 Enterprise"],
                    "agent_names": [host] if index % 2 == 0 else [],
                    "servicenow_sysid": f"{index:032x}" if index % 3 == 0 else "",
                    "sources": [{"name": "NESSUS_AGENT", "first_seen": iso(NOW - dt.timedelta(days=300))}],
                    "acr_score": "7.0",
                    "exposure_score": "702.0",
                    "network_id": "00000000-0000-0000-0000-000000000000",
                }
            )
            wire_asset = {
                "uuid": asset_id,
                "hostname": host,
                "fqdn": f"{host}.corp.example.com",
                "ipv4": f"10.0.{index // 200}.{index % 200}",
                "ipv6": "",
                "mac_address": f"00:15:5d:00:{index // 256:02x}:{index % 256:02x}",
                "serial_number": None,
                "tracked": True,
            }
            ages = [(1, None, "OPEN"), (45, None, "OPEN"), (4, 3, "FIXED"), (2, None, "REOPENED")]
            for kind, (seen_days, fixed_days, state) in enumerate(ages):
                severity = ("info", "low", "medium", "high", "critical")[(index + kind) % 5]
                finding: dict[str, Any] = {
                    "finding_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "asset": wire_asset,
                    "plugin": {
                        "id": 100000 + kind,
                        "name": f"Plugin {kind}",
                        "family": "Windows",
                        "cve": [f"CVE-2025-{1000 + kind}"] if kind != 1 else [],
                        "cvss3_base_score": 5.0 + kind,
                        "vpr": {"score": 6.1},
                    },
                    "port": {"port": 0, "protocol": "TCP", "service": "general"},
                    "severity": severity,
                    "severity_id": ("info", "low", "medium", "high", "critical").index(severity),
                    "severity_modification_type": "NONE",
                    "state": state,
                    "source": "AGENT",
                    "first_found": iso(NOW - dt.timedelta(days=60)),
                    "last_found": iso(NOW - dt.timedelta(days=seen_days)),
                    "last_fixed": iso(NOW - dt.timedelta(days=fixed_days)) if fixed_days else None,
                    "recast_reason": "",
                    "indexed": iso(NOW - dt.timedelta(days=seen_days)),
                }
                self.findings.append(finding)

    def advance(self) -> None:
        """Six hours later: some OPEN findings fixed, some FIXED reopened, one asset deleted."""
        old_now = self.now
        self.now = old_now + dt.timedelta(hours=6)
        self.generation += 1
        for position, finding in enumerate(self.findings):
            asset_index, kind = divmod(position, FINDINGS_PER_ASSET)
            if kind == 0 and asset_index % 10 == 0:
                finding["state"] = "FIXED"
                finding["last_fixed"] = iso(old_now + dt.timedelta(hours=1))
                self.changed_finding_ids.add(finding["finding_id"])
            elif kind == 2 and asset_index % 25 == 1:
                finding["state"] = "REOPENED"
                finding["last_found"] = iso(old_now + dt.timedelta(hours=2))
                self.changed_finding_ids.add(finding["finding_id"])
        self.assets[3]["deleted_at"] = iso(old_now + dt.timedelta(hours=3))
        self.assets[3]["updated_at"] = iso(old_now + dt.timedelta(hours=3))

    def tenable_assets(self) -> list[dict[str, Any]]:
        return self.assets

    def tenable_findings(self) -> Iterator[dict[str, Any]]:
        return iter(self.findings)

    def tenable_finding_count(self) -> int:
        return len(self.findings)

    def tenable_scans(self) -> list[dict[str, Any]]:
        return [
            {
                "id": 12,
                "uuid": "template-0c1e2d3f",
                "name": "Weekly agents",
                "status": "completed",
                "enabled": True,
                "type": "remote",
                "owner": "secops@example.com",
                "creation_date": int((NOW - dt.timedelta(days=90)).timestamp()),
                "last_modification_date": int((NOW - dt.timedelta(days=1)).timestamp()),
            }
        ]


class FakeClock:
    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


AUTH = {"X-ApiKeys": f"accessKey={ACCESS};secretKey={SECRET}"}


@pytest.fixture
def estate() -> FakeEstate:
    return FakeEstate()


@pytest.fixture
def serve(estate: FakeEstate) -> Iterator[Any]:
    servers: list[SimulatorServer] = []
    clients: list[httpx.Client] = []

    def start(**options: Any) -> tuple[SimulatorServer, httpx.Client]:
        server = start_tenable(estate, **options)
        client = httpx.Client(base_url=server.base_url, headers=AUTH, timeout=10)
        servers.append(server)
        clients.append(client)
        return server, client

    yield start
    for client in clients:
        client.close()
    for server in servers:
        # stop() waits out serve_forever's 0.5 s poll; stopping in the background keeps the suite fast
        threading.Thread(target=server.stop, daemon=True).start()


def run_export(
    client: httpx.Client, kind: str, body: dict[str, Any], max_polls: int = 200
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """Creates an export, polls it and downloads each chunk as soon as it is listed."""
    created = client.post(f"/{kind}/export", json=body)
    assert created.status_code == 200, created.text
    export_uuid = created.json()["export_uuid"]
    records: list[dict[str, Any]] = []
    statuses: list[dict[str, Any]] = []
    downloaded: set[int] = set()
    for _ in range(max_polls):
        status = client.get(f"/{kind}/export/{export_uuid}/status").json()
        statuses.append(status)
        for chunk_id in status["chunks_available"]:
            if chunk_id not in downloaded:
                chunk = client.get(f"/{kind}/export/{export_uuid}/chunks/{chunk_id}")
                assert chunk.status_code == 200
                records.extend(chunk.json())
                downloaded.add(chunk_id)
        if status["status"] in ("FINISHED", "ERROR", "CANCELLED"):
            return export_uuid, records, statuses
    raise AssertionError(f"export {export_uuid} did not finish: {statuses[-1]}")


def assert_no_empty_attributes(value: Any) -> None:
    if isinstance(value, dict):
        for item in value.values():
            assert item not in (None, "", [], {})
            assert_no_empty_attributes(item)
    elif isinstance(value, list):
        for item in value:
            assert_no_empty_attributes(item)


def window_ids(estate: FakeEstate, states: set[str], days: int = 30) -> set[str]:
    cutoff = estate.now - dt.timedelta(days=days)
    return {
        f["finding_id"]
        for f in estate.findings
        if f["state"] in states
        and (
            parse_iso(f["last_found"]) >= cutoff or (f["last_fixed"] and parse_iso(f["last_fixed"]) >= cutoff)
        )
    }


# -- authentication ----------------------------------------------------------------------------


def test_api_keys_with_and_without_space_authenticate(serve: Any) -> None:
    server, client = serve()
    for header in (f"accessKey={ACCESS};secretKey={SECRET}", f"accessKey={ACCESS}; secretKey={SECRET}"):
        response = client.get("/scans", headers={"X-ApiKeys": header})
        assert response.status_code == 200
    assert [r.status for r in server.requests("/scans")] == [200, 200]


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-ApiKeys": f"accessKey={ACCESS};secretKey=wrong"}, {"X-ApiKeys": "garbage"}],
)
def test_bad_or_missing_keys_get_401_body(serve: Any, headers: dict[str, str]) -> None:
    server, _ = serve()
    with httpx.Client(base_url=server.base_url, headers=headers) as anonymous:
        response = anonymous.post("/vulns/export", json={})
    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "error": "Unauthorized", "message": "Invalid credentials."}
    assert server.app.exports == {}


def test_restricted_keys_list_but_cannot_export(serve: Any) -> None:
    server, _ = serve()
    header = f"accessKey={RESTRICTED_KEYS['accessKey']};secretKey={RESTRICTED_KEYS['secretKey']}"
    with httpx.Client(base_url=server.base_url, headers={"X-ApiKeys": header}) as restricted:
        assert restricted.get("/scans").status_code == 200
        assert restricted.get("/assets").status_code == 200
        assert restricted.post("/vulns/export", json={}).status_code == 403
        assert restricted.post("/assets/export", json={"chunk_size": 100}).status_code == 403
        assert restricted.get("/vulns/export/status").status_code == 403
    assert server.app.exports == {}
    assert server.app.counters["forbidden"] == 3


# -- vulnerability export lifecycle ---------------------------------------------------------------


def test_full_vuln_export_is_progressive_out_of_order_and_complete(serve: Any, estate: FakeEstate) -> None:
    server, client = serve(chunks_per_poll=1)
    body = {"num_assets": 50, "filters": {"since": 0, "state": ["OPEN", "REOPENED", "FIXED"]}}
    export_uuid, records, statuses = run_export(client, "vulns", body)

    assert len(records) == len(estate.findings)
    assert {r["finding_id"] for r in records} == {f["finding_id"] for f in estate.findings}
    assert [s["status"] for s in statuses] == ["QUEUED", "PROCESSING", "PROCESSING", "PROCESSING", "FINISHED"]
    # one more chunk per poll, released in a shuffled order
    assert [len(s["chunks_available"]) for s in statuses] == [0, 1, 2, 3, 4]
    release_order = [
        next(c for c in later["chunks_available"] if c not in earlier["chunks_available"])
        for earlier, later in itertools.pairwise(statuses)
    ]
    assert sorted(release_order) == [1, 2, 3, 4]
    assert release_order != [1, 2, 3, 4]
    final = statuses[-1]
    assert final["uuid"] == export_uuid
    assert final["total_chunks"] == 4
    assert final["chunks_available_count"] == 4
    assert final["finished_chunks"] == 4
    assert final["chunks_failed"] == [] and final["chunks_cancelled"] == []
    assert final["num_assets_per_chunk"] == 50
    assert final["filters"]["state"] == ["OPEN", "REOPENED", "FIXED"]
    assert abs(final["created"] / 1000 - dt.datetime.now(dt.UTC).timestamp()) < 60
    # every chunk holds whole assets, at most num_assets of them, and no empty attributes
    per_chunk_assets = [
        len(
            {
                r["asset"]["uuid"]
                for r in json.loads(client.get(f"/vulns/export/{export_uuid}/chunks/{c}").content)
            }
        )
        for c in range(1, 5)
    ]
    assert per_chunk_assets == [50, 50, 50, 10]
    assert_no_empty_attributes(records)
    assert "last_fixed" not in records[0] and records[0]["port"]["port"] == 0
    assert len(server.requests(r"/chunks/\d+$")) == 8
    assert server.app.exports[export_uuid].status == "FINISHED"
    assert server.app.exports[export_uuid].chunk_ids == [1, 2, 3, 4]


def test_default_window_and_states_drop_fixed_and_old_findings(serve: Any, estate: FakeEstate) -> None:
    _, client = serve(chunks_per_poll=10)
    _, records, _ = run_export(client, "vulns", {})
    expected = window_ids(estate, {"OPEN", "REOPENED"})
    assert len(expected) == ASSET_COUNT * 2  # yesterday's OPEN + the REOPENED one per asset
    assert {r["finding_id"] for r in records} == expected
    assert {r["state"] for r in records} == {"OPEN", "REOPENED"}


def test_lower_case_state_is_accepted_and_echoed_upper_case(serve: Any, estate: FakeEstate) -> None:
    _, client = serve(chunks_per_poll=10)
    _, records, statuses = run_export(client, "vulns", {"filters": {"state": ["fixed"]}})
    assert statuses[-1]["filters"]["state"] == ["FIXED"]
    assert len(records) == ASSET_COUNT
    assert {r["state"] for r in records} == {"FIXED"}


def test_since_after_advance_returns_only_changed_findings(serve: Any, estate: FakeEstate) -> None:
    server, client = serve(chunks_per_poll=10)
    before = int(estate.now.timestamp())
    estate.advance()
    all_states = ["OPEN", "REOPENED", "FIXED"]
    export_uuid, records, statuses = run_export(
        client, "vulns", {"filters": {"since": before, "state": all_states}}
    )
    assert {r["finding_id"] for r in records} == estate.changed_finding_ids
    assert len(records) == 16 + 7
    fixed = [r for r in records if r["state"] == "FIXED"]
    assert len(fixed) == 16 and all(parse_iso(r["last_fixed"]) > NOW for r in fixed)
    # without `state`, `since` still returns both the fixed and the reopened ones
    _, records_without_state, _ = run_export(client, "vulns", {"filters": {"since": before}})
    assert {r["finding_id"] for r in records_without_state} == estate.changed_finding_ids
    # batches of assets without a change are empty chunks: counted, never listed
    final = statuses[-1]
    assert final["empty_chunks_count"] + final["total_chunks"] == 4
    assert server.app.exports[export_uuid].filters["since"] == before


def test_severity_filter(serve: Any, estate: FakeEstate) -> None:
    _, client = serve(chunks_per_poll=10)
    _, records, _ = run_export(client, "vulns", {"filters": {"severity": ["critical", "HIGH"]}})
    in_window = window_ids(estate, {"OPEN", "REOPENED"})
    expected = {
        f["finding_id"]
        for f in estate.findings
        if f["finding_id"] in in_window and f["severity"] in ("critical", "high")
    }
    assert expected and {r["finding_id"] for r in records} == expected


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ({"since": 1, "last_found": 1, "state": ["OPEN"]}, "since"),
        ({"since": 1, "first_found": 1, "state": ["OPEN"]}, "since"),
        ({"first_found": 1}, "state"),
        ({"last_found": 1}, "state"),
        ({"last_fixed": 1}, "state"),
        ({"state": ["CLOSED"]}, "state"),
        ({"since": "yesterday"}, "since"),
        ({"severity": ["urgent"]}, "severity"),
    ],
)
def test_vuln_export_filter_validation(serve: Any, filters: dict[str, Any], fragment: str) -> None:
    server, client = serve()
    response = client.post("/vulns/export", json={"filters": filters})
    assert response.status_code == 400
    assert response.json()["statusCode"] == 400
    assert fragment in response.json()["message"]
    assert server.app.exports == {}


def test_first_found_with_state_is_accepted(serve: Any, estate: FakeEstate) -> None:
    _, client = serve(chunks_per_poll=10)
    since = int((NOW - dt.timedelta(days=3)).timestamp())
    _, records, _ = run_export(client, "vulns", {"filters": {"last_found": since, "state": ["OPEN"]}})
    assert len(records) == ASSET_COUNT
    assert all(
        r["state"] == "OPEN" and parse_iso(r["last_found"]) >= NOW - dt.timedelta(days=3) for r in records
    )


@pytest.mark.parametrize(("requested", "clamped"), [(1, 50), (50, 50), (700, 700), (99999, 5000)])
def test_num_assets_is_clamped(serve: Any, requested: int, clamped: int) -> None:
    _, client = serve()
    export_uuid = client.post("/vulns/export", json={"num_assets": requested}).json()["export_uuid"]
    status = client.get(f"/vulns/export/{export_uuid}/status").json()
    assert status["num_assets_per_chunk"] == clamped


def test_identical_in_flight_export_is_409(serve: Any) -> None:
    _, client = serve()
    body = {"filters": {"state": ["OPEN"], "since": 5}}
    first = client.post("/vulns/export", json=body).json()["export_uuid"]
    duplicate = client.post("/vulns/export", json=body)
    assert duplicate.status_code == 409
    assert duplicate.json()["active_job_id"] == first
    assert duplicate.json()["failure_reason"]
    other = client.post("/vulns/export", json={"filters": {"state": ["FIXED"], "since": 5}})
    assert other.status_code == 200
    assert client.post(f"/vulns/export/{first}/cancel").json() == {"status": "CANCELLED"}
    assert client.post("/vulns/export", json=body).status_code == 200


def test_cancel_stops_the_job_and_its_chunks(serve: Any) -> None:
    server, client = serve(chunks_per_poll=1)
    export_uuid = client.post("/vulns/export", json={"filters": {"since": 0}}).json()["export_uuid"]
    client.get(f"/vulns/export/{export_uuid}/status")
    processing = client.get(f"/vulns/export/{export_uuid}/status").json()
    assert processing["status"] == "PROCESSING"
    released = processing["chunks_available"][0]
    assert client.post(f"/vulns/export/{export_uuid}/cancel").json() == {"status": "CANCELLED"}
    status = client.get(f"/vulns/export/{export_uuid}/status").json()
    assert status["status"] == "CANCELLED"
    assert sorted(status["chunks_cancelled"] + status["chunks_available"]) == [1, 2, 3, 4]
    unreleased = status["chunks_cancelled"][0]
    assert client.get(f"/vulns/export/{export_uuid}/chunks/{unreleased}").status_code == 404
    assert client.get(f"/vulns/export/{export_uuid}/chunks/{released}").status_code == 200
    assert server.app.counters["cancelled"] == 1


def test_unknown_export_is_404(serve: Any) -> None:
    _, client = serve()
    missing = str(uuid.UUID(int=1))
    assert client.get(f"/vulns/export/{missing}/status").status_code == 404
    assert client.get(f"/vulns/export/{missing}/chunks/1").status_code == 404
    assert client.post(f"/assets/export/{missing}/cancel").status_code == 404


def test_failed_chunk_is_listed_and_job_still_finishes(serve: Any, estate: FakeEstate) -> None:
    _, client = serve(chunks_per_poll=2, fail_chunks={2})
    export_uuid, records, statuses = run_export(client, "vulns", {"num_assets": 50, "filters": {"since": 0}})
    final = statuses[-1]
    assert final["status"] == "FINISHED"
    assert final["chunks_failed"] == [2]
    assert sorted(final["chunks_available"]) == [1, 3, 4]
    assert "1 of 4 chunks failed" in final["reason"]
    assert len(records) == len(estate.findings) - 50 * FINDINGS_PER_ASSET
    assert client.get(f"/vulns/export/{export_uuid}/chunks/2").status_code == 404


def test_truncated_chunk_is_whole_on_second_download(serve: Any) -> None:
    server, client = serve(chunks_per_poll=4, truncate_chunks_once={3})
    export_uuid = client.post("/vulns/export", json={"filters": {"since": 0}}).json()["export_uuid"]
    client.get(f"/vulns/export/{export_uuid}/status")
    assert client.get(f"/vulns/export/{export_uuid}/status").json()["status"] == "FINISHED"
    first = client.get(f"/vulns/export/{export_uuid}/chunks/3")
    assert first.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(first.content)
    second = client.get(f"/vulns/export/{export_uuid}/chunks/3")
    assert len(json.loads(second.content)) == 50 * FINDINGS_PER_ASSET
    assert second.headers["content-type"] == "application/octet-stream"
    assert [r.status for r in server.requests(r"/chunks/3$")] == [200, 200]


def test_garbage_chunk_is_never_json(serve: Any) -> None:
    _, client = serve(chunks_per_poll=4, garbage_chunks={1})
    export_uuid = client.post("/vulns/export", json={"filters": {"since": 0}}).json()["export_uuid"]
    client.get(f"/vulns/export/{export_uuid}/status")
    client.get(f"/vulns/export/{export_uuid}/status")
    for _ in range(3):
        with pytest.raises(json.JSONDecodeError):
            json.loads(client.get(f"/vulns/export/{export_uuid}/chunks/1").content)
    assert isinstance(json.loads(client.get(f"/vulns/export/{export_uuid}/chunks/2").content), list)


def test_chunk_not_ready_is_400_and_expired_chunk_is_404(serve: Any) -> None:
    clock = FakeClock()
    _, client = serve(chunks_per_poll=4, chunk_expiry_seconds=5, clock=clock)
    export_uuid = client.post("/vulns/export", json={"filters": {"since": 0}}).json()["export_uuid"]
    assert client.get(f"/vulns/export/{export_uuid}/chunks/1").status_code == 400
    client.get(f"/vulns/export/{export_uuid}/status")
    assert client.get(f"/vulns/export/{export_uuid}/status").json()["status"] == "FINISHED"
    clock.value += 4
    assert client.get(f"/vulns/export/{export_uuid}/chunks/1").status_code == 200
    clock.value += 2
    expired = client.get(f"/vulns/export/{export_uuid}/chunks/1")
    assert expired.status_code == 404
    assert expired.json()["statusCode"] == 404


def test_stuck_and_error_jobs(serve: Any) -> None:
    _, stuck_client = serve(stuck=True, chunks_per_poll=10)
    export_uuid = stuck_client.post("/vulns/export", json={}).json()["export_uuid"]
    statuses = [stuck_client.get(f"/vulns/export/{export_uuid}/status").json()["status"] for _ in range(6)]
    assert statuses == ["QUEUED"] + ["PROCESSING"] * 5
    _, error_client = serve(error_jobs=True)
    export_uuid = error_client.post("/vulns/export", json={}).json()["export_uuid"]
    error_client.get(f"/vulns/export/{export_uuid}/status")
    status = error_client.get(f"/vulns/export/{export_uuid}/status").json()
    assert status["status"] == "ERROR" and status["reason"]


def test_polls_per_stage_slows_the_state_machine(serve: Any) -> None:
    _, client = serve(polls_per_stage=3, chunks_per_poll=4)
    export_uuid = client.post("/vulns/export", json={"filters": {"since": 0}}).json()["export_uuid"]
    statuses = [client.get(f"/vulns/export/{export_uuid}/status").json()["status"] for _ in range(4)]
    assert statuses == ["QUEUED", "QUEUED", "QUEUED", "FINISHED"]


def test_export_lists(serve: Any) -> None:
    _, client = serve(chunks_per_poll=10)
    finished, _, _ = run_export(client, "vulns", {"filters": {"since": 0}})
    queued = client.post("/vulns/export", json={}).json()["export_uuid"]
    exports = client.get("/vulns/export/status").json()["exports"]
    assert [e["uuid"] for e in exports] == [queued, finished]
    assert [e["status"] for e in exports] == ["QUEUED", "FINISHED"]
    assert exports[1]["total_chunks"] == 4 and exports[1]["num_assets_per_chunk"] == 50
    asset_export, _, _ = run_export(client, "assets", {"chunk_size": 100})
    assert [e["uuid"] for e in client.get("/assets/export/status").json()["exports"]] == [asset_export]


# -- limits ----------------------------------------------------------------------------------------


def test_concurrent_export_limit_is_429_with_retry_after(serve: Any) -> None:
    server, client = serve(max_concurrent_exports=2, chunks_per_poll=10)
    first = client.post("/vulns/export", json={"filters": {"since": 1}}).json()["export_uuid"]
    assert client.post("/assets/export", json={"chunk_size": 100}).status_code == 200
    refused = client.post("/vulns/export", json={"filters": {"since": 2}})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "<title>429 Too Many Requests</title>" in refused.text
    for _ in range(2):
        client.get(f"/vulns/export/{first}/status")
    assert client.post("/vulns/export", json={"filters": {"since": 2}}).status_code == 200
    assert server.app.counters["concurrency_limited"] == 1


def test_per_minute_limit_is_429_with_html_body(serve: Any) -> None:
    clock = FakeClock()
    server, client = serve(requests_per_minute=3, clock=clock)
    assert [client.get("/scans").status_code for _ in range(3)] == [200, 200, 200]
    clock.value += 20
    limited = client.get("/scans")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "40"
    assert limited.headers["content-type"].startswith("text/html")
    assert limited.text.startswith("<html>") and "<title>429 Too Many Requests</title>" in limited.text
    clock.value += 41
    assert client.get("/scans").status_code == 200
    assert [r.status for r in server.requests("/scans")] == [200, 200, 200, 429, 200]


def test_internal_error_fault_body(serve: Any) -> None:
    server, client = serve()
    server.faults.add(internal_error_fault(path="/scans"))
    failed = client.get("/scans")
    assert failed.status_code == 500
    assert failed.json()["error"] == "Internal Server Error"
    assert client.get("/scans").status_code == 200


# -- asset export ----------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [99, 10001, "1000"])
def test_asset_chunk_size_out_of_range_is_400(serve: Any, chunk_size: Any) -> None:
    _, client = serve()
    response = client.post("/assets/export", json={"chunk_size": chunk_size})
    assert response.status_code == 400
    assert "chunk_size" in response.json()["message"]


def test_asset_export_includes_deleted_and_terminated_by_default(serve: Any, estate: FakeEstate) -> None:
    _, client = serve(chunks_per_poll=1)
    _, records, statuses = run_export(client, "assets", {"chunk_size": 100})
    assert len(records) == ASSET_COUNT
    assert {r["id"] for r in records} == {a["id"] for a in estate.assets}
    assert sum(1 for r in records if "deleted_at" in r) == 4
    assert sum(1 for r in records if "terminated_at" in r) == 3
    assert statuses[-1]["status"] == "FINISHED" and sorted(statuses[-1]["chunks_available"]) == [1, 2]
    assert_no_empty_attributes(records)


def test_asset_export_updated_and_deleted_filters(serve: Any, estate: FakeEstate) -> None:
    _, client = serve(chunks_per_poll=10)
    _, deleted, _ = run_export(client, "assets", {"chunk_size": 100, "filters": {"is_deleted": True}})
    assert sorted(r["hostnames"][0] for r in deleted) == ["host-007", "host-047", "host-087", "host-127"]
    _, live, _ = run_export(
        client, "assets", {"chunk_size": 100, "filters": {"is_deleted": False, "is_terminated": False}}
    )
    assert len(live) == ASSET_COUNT - 4 - 3
    recent = int((NOW - dt.timedelta(days=3, hours=1)).timestamp())
    _, updated, _ = run_export(client, "assets", {"chunk_size": 100, "filters": {"updated_at": recent}})
    assert len(updated) == ASSET_COUNT // 20 * 3  # updated 1, 2 or 3 days ago
    before = int(estate.now.timestamp())
    estate.advance()
    _, newly_deleted, _ = run_export(client, "assets", {"chunk_size": 100, "filters": {"deleted_at": before}})
    assert [r["hostnames"] for r in newly_deleted] == [["host-003"]]


def test_identical_asset_export_replaces_the_running_one(serve: Any) -> None:
    server, client = serve()
    first = client.post("/assets/export", json={"chunk_size": 500}).json()["export_uuid"]
    second = client.post("/assets/export", json={"chunk_size": 500}).json()["export_uuid"]
    assert first != second
    assert server.app.exports[first].status == "CANCELLED"
    assert server.app.exports[second].status == "QUEUED"


# -- lists -----------------------------------------------------------------------------------------


def test_assets_list_uses_singular_names_and_skips_deleted(serve: Any) -> None:
    _, client = serve()
    body = client.get("/assets").json()
    assert body["total"] == ASSET_COUNT - 4 - 3 == len(body["assets"])
    first = body["assets"][0]
    assert first["hostname"] == ["host-000"]
    assert first["ipv4"] == ["10.0.0.0"]
    assert first["mac_address"] == ["00:15:5d:00:00:00"]
    assert first["sources"] == ["NESSUS_AGENT"]
    assert first["acr_score"] == 7 and first["exposure_score"] == 702
    assert "hostnames" not in first
    assert client.get(f"/assets/{first['id']}").json()["id"] == first["id"]


def test_scans_list_has_folders_scans_and_timestamp(serve: Any, estate: FakeEstate) -> None:
    _, client = serve()
    body = client.get("/scans").json()
    assert {folder["type"] for folder in body["folders"]} == {"main", "trash"}
    assert [scan["name"] for scan in body["scans"]] == ["Weekly agents"]
    assert body["timestamp"] == int(estate.now.timestamp())
    assert client.get("/scans/12/latest-status").json() == {"status": "completed"}
    recent = int(NOW.timestamp())
    assert client.get("/scans", params={"last_modification_date": recent}).json()["scans"] == []


def test_workbench_vulnerabilities_aggregate_per_plugin(serve: Any, estate: FakeEstate) -> None:
    _, client = serve()
    body = client.get("/workbenches/vulnerabilities").json()
    assert body["total_vulnerability_count"] == ASSET_COUNT * 2
    assert body["total_asset_count"] == ASSET_COUNT
    assert {row["plugin_id"]: row["count"] for row in body["vulnerabilities"]} == {
        100000: ASSET_COUNT,
        100003: ASSET_COUNT,
    }
    assert client.get("/workbenches/assets").json()["total"] == ASSET_COUNT - 7


def test_background_build_serves_the_same_records(serve: Any, estate: FakeEstate) -> None:
    _, client = serve(background_build_threshold=0, chunks_per_poll=2)
    _, records, _ = run_export(client, "vulns", {"filters": {"since": 0}})
    assert sorted(r["finding_id"] for r in records) == sorted(f["finding_id"] for f in estate.findings)


def test_chunks_spilled_to_disk_are_served_whole(serve: Any, estate: FakeEstate) -> None:
    server, client = serve(chunks_per_poll=10, chunk_memory_limit_bytes=1)
    _, records, _ = run_export(client, "vulns", {"filters": {"since": 0}})
    assert len(records) == len(estate.findings)
    assert server.app.chunks.spilled_files() == 4


def test_old_finished_exports_are_purged(serve: Any) -> None:
    _, client = serve(chunks_per_poll=10, keep_finished_exports=1)
    first, _, _ = run_export(client, "vulns", {"filters": {"since": 0}})
    second, _, _ = run_export(client, "vulns", {"filters": {"since": 1}})
    client.post("/vulns/export", json={"filters": {"since": 2}})
    assert client.get(f"/vulns/export/{first}/chunks/1").status_code == 404
    assert client.get(f"/vulns/export/{second}/chunks/1").status_code == 200


# -- the shared synthetic estate ---------------------------------------------------------------------


def test_serves_the_generated_tiny_estate() -> None:
    estate_module = pytest.importorskip("aria_sync.simulators.estate")
    if not hasattr(estate_module, "Estate"):
        pytest.skip("the estate module does not define Estate yet")
    tiny = estate_module.Estate.generate("tiny")
    keys = tiny.credentials["tenable"]
    server = start_tenable(tiny, chunks_per_poll=50)
    try:
        with httpx.Client(
            base_url=server.base_url,
            headers={"X-ApiKeys": f"accessKey={keys['accessKey']}; secretKey={keys['secretKey']}"},
        ) as client:
            all_states = ["OPEN", "REOPENED", "FIXED"]
            _, findings, _ = run_export(client, "vulns", {"filters": {"since": 0, "state": all_states}})
            assert len(findings) == tiny.tenable_finding_count()
            assert len({f["finding_id"] for f in findings}) == len(findings)
            _, assets, _ = run_export(client, "assets", {"chunk_size": 100})
            assert len(assets) == len(tiny.tenable_assets())
            assert_no_empty_attributes(findings)
            assert client.get("/scans").json()["scans"] == tiny.tenable_scans()
            before = tiny.now
            tiny.advance()
            since = {"since": int(before.timestamp()), "state": all_states}
            _, changed, _ = run_export(client, "vulns", {"filters": since})
            assert changed
            for finding in changed:
                moment = finding["last_fixed"] if finding["state"] == "FIXED" else finding["last_found"]
                assert before <= parse_iso(moment) <= tiny.now
    finally:
        server.stop()
