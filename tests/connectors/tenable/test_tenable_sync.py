"""The Tenable connector end to end: real HTTP to the simulator, real DuckDB file, real install path."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from aria_sync.audit import Actor
from aria_sync.connectors.tenable.export import ExportSettings
from aria_sync.errors import ConfigurationError
from aria_sync.marketplace import Marketplace
from aria_sync.simulators.estate import Estate
from aria_sync.simulators.framework import Fault, SimulatorServer
from aria_sync.simulators.tenable import NGINX_429_BODY, RESTRICTED_KEYS, TenableSimulator, start_tenable
from aria_sync.store import Database, OrgScope
from aria_sync.sync import SyncRunner

ORG = "acme"
FAST_POLLS = {"export_poll_initial_seconds": 0.01, "export_poll_max_seconds": 0.05}


def no_sleep(seconds: float) -> None:
    pass


@pytest.fixture
def estate() -> Estate:
    return Estate.generate("tiny")


def serve(estate: Estate, **options: Any) -> Iterator[tuple[TenableSimulator, SimulatorServer]]:
    server = start_tenable(estate, **options)
    app = server.app
    assert isinstance(app, TenableSimulator)
    try:
        yield app, server
    finally:
        server.stop()


@pytest.fixture
def sim(estate: Estate) -> Iterator[tuple[TenableSimulator, SimulatorServer]]:
    yield from serve(estate)


def install(
    db: Database,
    server: SimulatorServer,
    estate: Estate,
    *,
    keys: dict[str, str] | None = None,
    options: dict[str, Any] | None = None,
) -> str:
    market = Marketplace(db, ORG, Actor("t", "admin"))
    config = {"baseUrl": server.base_url, **(keys or estate.credentials["tenable"])}
    installation, _ = market.install("tenable", "tenable", config, options={**FAST_POLLS, **(options or {})})
    return installation.installation_id


def run(db: Database, *, sleep: Any = no_sleep, **kwargs: Any) -> dict[str, Any]:
    result = SyncRunner(db, ORG, Actor("t", "analyst"), sleep=sleep).sync("tenable", **kwargs)
    return {**result.as_json(), "detail": result.streams}


def scalar(db: Database, sql: str, params: list[Any] | None = None) -> Any:
    with OrgScope(db, ORG).read() as conn:
        return conn.scalar(sql, params or [])


def rows(db: Database, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    with OrgScope(db, ORG).read() as conn:
        return conn.rows(sql, params or [])


def export_requests(server: SimulatorServer, kind: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in server.requests(rf"^/{kind}/export$", "POST")]


def findings_by_id(estate: Estate) -> dict[str, dict[str, Any]]:
    return {f["finding_id"]: f for f in estate.tenable_findings()}


def chunk_findings(estate: Estate, *, chunk_id: int, assets_per_chunk: int) -> list[dict[str, Any]]:
    """The findings Tenable puts in one vulnerability chunk: ``assets_per_chunk`` assets' worth, in order."""
    order: dict[str, int] = {}
    picked = []
    for finding in estate.tenable_findings():
        position = order.setdefault(finding["asset"]["uuid"], len(order))
        if position // assets_per_chunk == chunk_id - 1:
            picked.append(finding)
    return picked


# -- full and incremental ---------------------------------------------------------------------


def test_full_sync_lands_every_state_normalised(
    db: Database, estate: Estate, sim: tuple[TenableSimulator, SimulatorServer]
) -> None:
    app, server = sim
    install(db, server, estate)
    result = run(db)

    assets, findings, scans = estate.tenable_assets(), findings_by_id(estate), estate.tenable_scans()
    assert result["status"] == "succeeded", result
    assert result["streams"]["assets"]["inserted"] == len(assets)
    assert result["streams"]["vulnerabilities"]["inserted"] == estate.tenable_finding_count() == len(findings)
    assert result["streams"]["scans"]["inserted"] == len(scans)
    # The first vuln export asked for everything: all three states and no 30-day window.
    (body,) = export_requests(server, "vulns")
    assert body["filters"] == {"since": 0, "state": ["OPEN", "REOPENED", "FIXED"]}
    (asset_body,) = export_requests(server, "assets")
    assert asset_body["filters"] == {}

    by_state = {
        r["state"]: r["n"] for r in rows(db, "SELECT state, count(*) n FROM vulnerabilities GROUP BY 1")
    }
    expected_states: dict[str, int] = {}
    for finding in findings.values():
        expected_states[finding["state"].lower()] = expected_states.get(finding["state"].lower(), 0) + 1
    assert by_state == expected_states and "fixed" in by_state
    assert scalar(db, "SELECT count(*) FROM vulnerabilities WHERE state = 'fixed' AND fixed_at IS NULL") == 0
    assert scalar(db, "SELECT count(DISTINCT finding_id) FROM vulnerabilities") == len(findings)

    gone = {a["id"] for a in assets if a.get("deleted_at") or a.get("terminated_at")}
    assert gone
    landed = {
        r["source_id"]: r["is_deleted"] for r in rows(db, "SELECT source_id, is_deleted FROM tenable_assets")
    }
    assert {sid for sid, deleted in landed.items() if deleted} == gone
    assert scalar(db, "SELECT count(*) FROM asset_identities WHERE integration_key = 'tenable'") == len(
        assets
    )


def check_aria_rows_are_normalised(db: Database, estate: Estate) -> None:
    asset = next(a for a in estate.tenable_assets() if a.get("servicenow_sysid") and a.get("mac_addresses"))
    (identity,) = rows(db, "SELECT * FROM asset_identities WHERE source_id = ?", [asset["id"]])
    assert identity["servicenow_sysid"] == asset["servicenow_sysid"]
    assert identity["bios_uuid"] == asset["bios_uuid"].lower()
    assert identity["fqdn"] == asset["fqdns"][0].lower()
    assert identity["hostname"] == asset["hostnames"][0].split(".")[0].lower()
    assert identity["mac_addresses"] == [m.replace(":", "").lower() for m in asset["mac_addresses"]]
    assert identity["ip_addresses"] == asset["ipv4s"]
    assert identity["os"] == asset["operating_systems"][0]
    assert identity["edr_id"] is None and identity["source_table"] == "tenable_assets"
    assert identity["last_seen"].tzinfo is not None
    cloud = next(a for a in estate.tenable_assets() if a.get("azure_vm_id"))
    assert (
        scalar(db, "SELECT cloud_id FROM asset_identities WHERE source_id = ?", [cloud["id"]])
        == cloud["azure_vm_id"]
    )

    finding = next(f for f in estate.tenable_findings() if f["plugin"].get("cve") and f["plugin"].get("vpr"))
    (vuln,) = rows(db, "SELECT * FROM vulnerabilities WHERE source_id = ?", [finding["finding_id"]])
    plugin = finding["plugin"]
    assert vuln["source_asset_id"] == finding["asset"]["uuid"]  # equals the asset_identities source_id
    assert vuln["cve_ids"] == sorted(set(plugin["cve"]))
    assert vuln["vendor_vuln_id"] == str(plugin["id"]) and vuln["title"] == plugin["name"]
    assert vuln["severity"] == finding["severity"].lower()
    assert vuln["cvss_score"] == (plugin.get("cvss3_base_score") or plugin.get("cvss_base_score"))
    assert vuln["exploit_score"] == plugin["vpr"]["score"]
    assert vuln["exploit_available"] == bool(plugin.get("exploit_available"))
    assert vuln["port"] == finding["port"]["port"] and vuln["protocol"] == finding["port"]["protocol"].lower()
    assert scalar(db, "SELECT count(*) FROM risks") > 0  # the shared register read our rows


def test_incremental_sync_after_advance(
    db: Database, estate: Estate, sim: tuple[TenableSimulator, SimulatorServer]
) -> None:
    _, server = sim
    install(db, server, estate)
    run(db)
    cursor = scalar(db, "SELECT cursor FROM integration_sync_state WHERE stream = 'vulnerabilities'")
    asset_cursor = scalar(db, "SELECT cursor FROM integration_sync_state WHERE stream = 'assets'")
    before = findings_by_id(estate)
    live_before = {a["id"] for a in estate.tenable_assets() if not a.get("deleted_at")}

    estate.advance()
    after = findings_by_id(estate)
    result = run(db)
    assert result["status"] == "succeeded", result

    second = export_requests(server, "vulns")[-1]
    assert second["filters"] == {"since": math.floor(float(cursor)), "state": ["OPEN", "REOPENED", "FIXED"]}
    assert export_requests(server, "assets")[-1]["filters"] == {
        "updated_at": math.floor(float(asset_cursor)) - 1
    }
    # Only the changes came back, not the whole estate again.
    assert 0 < result["streams"]["vulnerabilities"]["fetched"] < len(after)

    newly_fixed = [
        fid
        for fid, f in after.items()
        if f["state"] == "FIXED" and before.get(fid, {}).get("state") != "FIXED"
    ]
    reopened = [
        fid
        for fid, f in after.items()
        if f["state"] == "REOPENED" and before.get(fid, {}).get("state") == "FIXED"
    ]
    assert newly_fixed and reopened
    states = {r["source_id"]: r for r in rows(db, "SELECT source_id, state, fixed_at FROM vulnerabilities")}
    assert all(states[fid]["state"] == "fixed" and states[fid]["fixed_at"] is not None for fid in newly_fixed)
    assert all(states[fid]["state"] == "reopened" and states[fid]["fixed_at"] is None for fid in reopened)
    # Nothing duplicated: one landing row and one ARIA row per finding ever seen.
    ever = set(before) | set(after)
    assert scalar(db, "SELECT count(*) FROM tenable_vulnerabilities") == len(ever)
    assert scalar(db, "SELECT count(*) FROM vulnerabilities") == len(ever)
    assert scalar(db, "SELECT count(DISTINCT source_id) FROM asset_identities") == scalar(
        db, "SELECT count(*) FROM asset_identities"
    )

    deleted_now = live_before - {a["id"] for a in estate.tenable_assets() if not a.get("deleted_at")}
    assert len(deleted_now) == 1
    (gone,) = deleted_now
    assert scalar(db, "SELECT is_deleted FROM tenable_assets WHERE source_id = ?", [gone]) is True
    assert scalar(db, "SELECT status FROM asset_identities WHERE source_id = ?", [gone]) == "deleted"
    # Tenable drops a deleted asset's findings from later exports; ours stop counting as open.
    orphaned = [fid for fid, f in before.items() if f["asset"]["uuid"] == gone]
    if orphaned:
        assert (
            scalar(
                db,
                "SELECT count(*) FROM vulnerabilities WHERE source_asset_id = ? AND NOT is_deleted",
                [gone],
            )
            == 0
        )
    assert result["streams"]["assets"]["removed"] == 1
    assert result["streams"]["vulnerabilities"]["removed"] == 0


# -- connection tests -------------------------------------------------------------------------


def test_invalid_keys_are_refused_at_install(
    db: Database, estate: Estate, sim: tuple[TenableSimulator, SimulatorServer]
) -> None:
    _, server = sim
    with pytest.raises(ConfigurationError) as raised:
        install(db, server, estate, keys={"accessKey": "wrong-access", "secretKey": "wrong-secret"})
    assert "Tenable rejected the API keys (401)" in str(raised.value)
    assert "wrong-secret" not in str(raised.value)
    assert scalar(db, "SELECT count(*) FROM integration_installations") == 0


def test_restricted_keys_name_the_missing_export_permission(
    db: Database, estate: Estate, sim: tuple[TenableSimulator, SimulatorServer]
) -> None:
    _, server = sim
    market = Marketplace(db, ORG, Actor("t", "admin"))
    report = market.test_config("tenable", {"baseUrl": server.base_url, **RESTRICTED_KEYS})
    results = {r.capability: r for r in report.results}
    assert results["keys"].ok and results["scans"].ok
    assert not results["exports"].ok
    assert "Basic [16] role or the VM export privilege" in results["exports"].message
    with pytest.raises(ConfigurationError, match=r"Basic \[16\] role or the VM export privilege"):
        install(db, server, estate, keys=RESTRICTED_KEYS)


# -- export failures --------------------------------------------------------------------------


def test_truncated_chunks_are_downloaded_again(
    db: Database, estate: Estate, sim: tuple[TenableSimulator, SimulatorServer]
) -> None:
    app, server = sim
    app.truncate_chunks_once = {1}  # the first (only) chunk of both exports
    install(db, server, estate)
    result = run(db)
    assert result["status"] == "succeeded", result
    assert result["streams"]["vulnerabilities"]["inserted"] == estate.tenable_finding_count()
    assert result["streams"]["assets"]["inserted"] == len(estate.tenable_assets())
    assert {job.kind: job.downloads[1] for job in app.exports.values()} == {"vulns": 2, "assets": 2}


@pytest.fixture
def small() -> Estate:
    return Estate.generate("small")


def test_failed_and_garbage_chunks_make_the_run_partial_and_keep_rows(db: Database, small: Estate) -> None:
    """Chunk 3 fails upstream and chunk 2 never decodes: the rest lands, nothing else changes."""
    for app, server in serve(small):
        install(db, server, small, options={"vuln_export_num_assets": 50})  # 252 assets -> several chunks
        assert run(db)["status"] == "succeeded"
        cursor = scalar(db, "SELECT cursor FROM integration_sync_state WHERE stream = 'vulnerabilities'")
        landed = "SELECT source_id, record_hash, is_deleted FROM tenable_vulnerabilities ORDER BY 1"
        before = rows(db, landed)
        deleted_before = scalar(
            db, "SELECT count(*) FROM vulnerabilities WHERE is_deleted"
        )  # terminated assets'

        app.fail_chunks, app.garbage_chunks = {3}, {2}
        result = run(db, full=True)
        vulns = result["detail"]["vulnerabilities"]
        assert result["status"] == "partial" and vulns["status"] == "partial"
        total = math.ceil(len({f["asset"]["uuid"] for f in small.tenable_findings()}) / 50)
        assert f"2 of {total} chunks failed" in vulns["error"]
        assert "chunks 3 failed on the Tenable side" in vulns["error"]
        assert "chunk 2 was not valid JSON after 4 downloads" in vulns["error"]
        lost = sum(len(chunk_findings(small, chunk_id=c, assets_per_chunk=50)) for c in (2, 3))
        assert lost > 0 and vulns["fetched"] == small.tenable_finding_count() - lost
        job = [j for j in app.exports.values() if j.kind == "vulns"][-1]
        assert job.downloads[2] == 4 and 3 not in job.downloads
        # Earlier data untouched, nothing marked stale, the cursor did not move.
        assert rows(db, landed) == before
        assert scalar(db, "SELECT count(*) FROM vulnerabilities WHERE is_deleted") == deleted_before
        assert scalar(db, "SELECT count(*) FROM vulnerabilities") == small.tenable_finding_count()
        assert (
            scalar(db, "SELECT cursor FROM integration_sync_state WHERE stream = 'vulnerabilities'") == cursor
        )


def test_stuck_export_is_cancelled_at_the_deadline(db: Database, estate: Estate) -> None:
    # QUEUED for ever: no chunk is ever listed, so the streams fail outright.
    for app, server in serve(estate, stuck=True, polls_per_stage=1_000_000):
        install(db, server, estate, options={"export_deadline_seconds": 0.3})
        started = time.monotonic()
        result = run(db)
        assert time.monotonic() - started < 10
        for stream in ("assets", "vulnerabilities"):
            detail = result["detail"][stream]
            assert detail["status"] == "failed"
            assert "did not finish within 0.3 s" in detail["error"] and "cancelled" in detail["error"]
        assert result["detail"]["scans"]["status"] == "succeeded"
        assert result["status"] == "partial"  # the scans stream still succeeded
        assert "did not finish within 0.3 s" in result["error"]
        assert len(server.requests(r"^/vulns/export/[0-9a-f-]+/cancel$", "POST")) == 1
        assert len(server.requests(r"^/assets/export/[0-9a-f-]+/cancel$", "POST")) == 1
        assert all(job.status == "CANCELLED" for job in app.exports.values())
        assert scalar(db, "SELECT count(*) FROM tenable_vulnerabilities") == 0
        assert scalar(db, "SELECT count(*) FROM integration_sync_state WHERE stream <> 'scans'") == 0


def test_stuck_export_keeps_the_chunks_that_arrived(db: Database, estate: Estate) -> None:
    # PROCESSING for ever, but every chunk listed: the rows land, the run is partial, no cursor moves.
    for _app, server in serve(estate, stuck=True):
        install(db, server, estate, options={"export_deadline_seconds": 0.3})
        result = run(db)
        vulns = result["detail"]["vulnerabilities"]
        assert vulns["status"] == "partial" and "did not finish within 0.3 s" in vulns["error"]
        assert vulns["inserted"] == estate.tenable_finding_count()
        assert result["status"] == "partial"
        assert scalar(db, "SELECT count(*) FROM integration_sync_state WHERE stream = 'vulnerabilities'") == 0


def test_error_job_fails_and_a_rerun_completes_without_duplicates(db: Database, estate: Estate) -> None:
    for app, server in serve(estate, error_jobs=True):
        install(db, server, estate)
        failed = run(db)
        assert failed["detail"]["vulnerabilities"]["status"] == "failed"
        assert "ended in ERROR" in failed["detail"]["vulnerabilities"]["error"]
        assert scalar(db, "SELECT count(*) FROM integration_sync_state WHERE stream = 'vulnerabilities'") == 0

        app.error_jobs = False
        result = run(db)
        assert result["status"] == "succeeded", result
        count = estate.tenable_finding_count()
        assert scalar(db, "SELECT count(*) FROM tenable_vulnerabilities") == count
        assert scalar(db, "SELECT count(*) FROM vulnerabilities") == count
        assert scalar(db, "SELECT count(*) FROM asset_identities") == len(estate.tenable_assets())


def test_expired_chunk_fails_the_stream(db: Database, estate: Estate) -> None:
    for _app, server in serve(estate, chunk_expiry_seconds=0.0):
        install(db, server, estate, options={"export_poll_initial_seconds": 0.05})
        result = run(db)
        assert result["detail"]["vulnerabilities"]["status"] == "failed"
        assert "expired or vanished (404)" in result["detail"]["vulnerabilities"]["error"]


def test_duplicate_export_reuses_the_running_job(
    db: Database, estate: Estate, sim: tuple[TenableSimulator, SimulatorServer]
) -> None:
    app, server = sim
    install(db, server, estate)
    keys = estate.credentials["tenable"]
    headers = {"X-ApiKeys": f"accessKey={keys['accessKey']};secretKey={keys['secretKey']}"}
    body = {
        "num_assets": ExportSettings().vuln_num_assets,
        "filters": {"since": 0, "state": ["OPEN", "REOPENED", "FIXED"]},
    }
    running = httpx.post(f"{server.base_url}/vulns/export", json=body, headers=headers).json()["export_uuid"]

    result = run(db)
    assert result["status"] == "succeeded", result
    assert result["streams"]["vulnerabilities"]["inserted"] == estate.tenable_finding_count()
    assert app.counters["conflicts"] == 1 and app.counters["vulns_exports_created"] == 1
    assert server.requests(rf"^/vulns/export/{running}/chunks/\d+$", "GET")


def test_rate_limit_retry_after_is_waited_out(
    db: Database, estate: Estate, sim: tuple[TenableSimulator, SimulatorServer]
) -> None:
    _, server = sim
    install(db, server, estate)
    server.faults.add(
        Fault(
            kind="status",
            path=r"^/vulns/export$",
            method="POST",
            status=429,
            headers={"retry-after": "1", "Content-Type": "text/html"},
            body=NGINX_429_BODY,
        )
    )
    started = time.monotonic()
    result = SyncRunner(db, ORG, Actor("t", "analyst")).sync("tenable")
    assert result.status == "succeeded", result.as_json()
    posts = server.requests(r"^/vulns/export$", "POST")
    assert [p.status for p in posts] == [429, 200]
    assert posts[1].started - posts[0].started >= 1.0
    assert time.monotonic() - started >= 1.0
