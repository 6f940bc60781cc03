"""The Defender connector end to end: msal and real HTTPS to the simulator, a real DuckDB file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from aria_sync.connectors.ms_defender.auth import MDE_SCOPE, XDR_SCOPE
from aria_sync.simulators.estate import Estate
from aria_sync.simulators.framework import SimulatorServer


def test_full_sync_lands_every_record_normalised_with_exact_counts(
    mde: Any, estate: Estate, server: SimulatorServer
) -> None:
    mde.install(server, estate)
    result = mde.run()

    machines, alerts, incidents = (
        estate.defender_machines(),
        estate.defender_alerts(),
        estate.defender_incidents(),
    )
    vulnerabilities = list(estate.defender_vulnerabilities())
    with_cve = [v for v in vulnerabilities if v["cveId"]]
    assert result["status"] == "succeeded", result
    counts = {name: stream["inserted"] for name, stream in result["streams"].items()}
    assert counts == {
        "machines": len(machines),
        "alerts": len(alerts),
        "incidents": len(incidents),
        "vulnerabilities": estate.defender_vulnerability_count(),
    }
    assert len(with_cve) < len(vulnerabilities)  # the estate has software rows without a CVE
    assert mde.scalar("SELECT count(*) FROM ms_defender_vulnerabilities") == len(vulnerabilities)
    assert mde.scalar("SELECT count(*) FROM vulnerabilities") == len(with_cve)
    assert mde.scalar("SELECT count(*) FROM asset_identities WHERE integration_key = 'ms-defender'") == len(
        machines
    )
    assert mde.scalar("SELECT count(*) FROM detections") == len(alerts)
    assert mde.scalar("SELECT count(*) FROM incidents WHERE integration_key = 'ms-defender'") == len(
        incidents
    )
    # $expand=evidence was asked for, so the landing rows keep it.
    landed = {
        r["source_id"]: orjson.loads(r["raw"])
        for r in mde.rows("SELECT source_id, raw FROM ms_defender_alerts")
    }
    assert all(landed[a["id"]]["evidence"] == a["evidence"] for a in alerts)
    assert all(
        "evidence" in (r.query.get("$expand") or [""])[0] for r in server.requests("^/api/alerts$")[1:]
    )

    # Normalised ARIA rows

    machine = next(
        m for m in estate.defender_machines() if m.get("vmMetadata") and m["healthStatus"] == "Active"
    )
    (identity,) = mde.rows("SELECT * FROM asset_identities WHERE source_id = ?", [machine["id"]])
    assert identity["edr_id"] == machine["id"] and identity["source_table"] == "ms_defender_assets"
    assert identity["fqdn"] == machine["computerDnsName"].lower()
    assert identity["hostname"] == machine["computerDnsName"].split(".")[0].lower()
    macs = [a["macAddress"].lower() for a in machine["ipAddresses"] if a.get("macAddress")]
    assert identity["mac_addresses"] == macs and all(len(m) == 12 for m in macs)
    assert (
        machine["lastIpAddress"] in identity["ip_addresses"] and "127.0.0.1" not in identity["ip_addresses"]
    )
    assert identity["os"] == f"{machine['osPlatform']} {machine['version']}"
    assert identity["cloud_id"] == machine["vmMetadata"]["vmId"]
    assert identity["status"] == "active" and identity["last_seen"].tzinfo is not None
    inactive = {m["id"] for m in estate.defender_machines() if m["healthStatus"] == "Inactive"}
    assert inactive
    assert {
        r["source_id"] for r in mde.rows("SELECT source_id FROM asset_identities WHERE status = 'inactive'")
    } == inactive

    severity = {
        "High": "high",
        "Medium": "medium",
        "Low": "low",
        "Informational": "info",
        "UnSpecified": "info",
    }
    status = {"New": "open", "InProgress": "in_progress", "Resolved": "resolved"}
    for alert in estate.defender_alerts():
        (detection,) = mde.rows("SELECT * FROM detections WHERE source_id = ?", [alert["id"]])
        assert detection["severity"] == severity[alert["severity"]]
        assert detection["status"] == status[alert["status"]]
        assert (
            detection["category"] == alert["category"] and detection["source_asset_id"] == alert["machineId"]
        )

    incident = next(i for i in estate.defender_incidents() if i["alerts"])
    (row,) = mde.rows("SELECT * FROM incidents WHERE source_id = ?", [str(incident["incidentId"])])
    assert row["source_asset_id"] == incident["alerts"][0]["devices"][0]["deviceId"]

    exploit = {"NoExploit": 0.0, "ExploitIsPublic": 5.0, "ExploitIsVerified": 8.0, "ExploitIsInKit": 10.0}
    finding = next(v for v in estate.defender_vulnerabilities() if v["cveId"])
    (vuln,) = mde.rows("SELECT * FROM vulnerabilities WHERE source_id = ?", [finding["id"]])
    assert vuln["source_asset_id"] == finding["deviceId"] and vuln["cve_ids"] == [finding["cveId"]]
    assert vuln["severity"] == finding["vulnerabilitySeverityLevel"].lower() and vuln["state"] == "open"
    assert vuln["cvss_score"] == finding["cvssScore"]
    assert vuln["exploit_score"] == exploit[finding["exploitabilityLevel"]]
    assert mde.scalar("SELECT count(*) FROM vulnerabilities WHERE source_asset_id NOT IN "
                      "(SELECT source_id FROM asset_identities)") == 0  # fmt: skip


def test_incremental_sync_after_advance_reuses_tokens_and_filters_on_last_update_time(
    mde: Any, estate: Estate, server: SimulatorServer
) -> None:
    mde.install(server, estate)
    mde.run()
    cursor = max(a["lastUpdateTime"] for a in estate.defender_alerts())
    incident_cursor = max(i["lastUpdateTime"] for i in estate.defender_incidents())
    before = {a["id"]: a for a in estate.defender_alerts()}
    estate.advance()
    seen = len(server.request_log)
    result = mde.run()

    assert result["status"] == "succeeded", result
    later = server.request_log[seen:]
    alert_filters = {r.query.get("$filter", [""])[0] for r in later if r.path == "/api/alerts"}
    incident_filters = {r.query.get("$filter", [""])[0] for r in later if r.path == "/api/incidents"}
    assert alert_filters == {f"lastUpdateTime ge {cursor}"}
    assert incident_filters == {f"lastUpdateTime ge {incident_cursor}"}
    changed = [a for a in estate.defender_alerts() if before.get(a["id"]) != a]
    assert changed and result["streams"]["alerts"]["fetched"] >= len(changed)
    assert mde.scalar("SELECT count(*) FROM ms_defender_alerts") == len(estate.defender_alerts())
    for alert in changed:
        status = mde.scalar("SELECT status FROM detections WHERE source_id = ?", [alert["id"]])
        assert status == {"New": "open", "InProgress": "in_progress", "Resolved": "resolved"}[alert["status"]]
    assert mde.scalar("SELECT count(*) FROM incidents") == len(estate.defender_incidents())
    # One token per scope for install, first and second sync: msal's cache served the rest.
    assert sorted(mde.token_scopes(server)) == sorted([MDE_SCOPE, XDR_SCOPE])
    assert len(server.requests(r"openid-configuration$")) == 1  # one application, discovered once


def test_machines_page_on_clamped_top_until_a_short_page(
    mde: Any, estate: Estate, start: Callable[..., SimulatorServer]
) -> None:
    server = start(estate, max_top_machines=10)
    mde.install(server, estate)
    result = mde.run()

    count = len(estate.defender_machines())
    skips = [int(r.query["$skip"][0]) for r in server.requests("^/api/machines$")[1:]]
    assert result["streams"]["machines"]["inserted"] == count
    assert skips == list(range(0, count, 10))  # the short last page ends the walk


class _NoMachines:
    """The tiny estate with no onboarded machines (Defender answers /api/machines with 404)."""

    def __init__(self, estate: Estate) -> None:
        self._estate = estate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._estate, name)

    def defender_machines(self) -> list[dict[str, Any]]:
        return []


def test_a_tenant_without_machines_syncs_zero_machines(
    mde: Any, estate: Estate, start: Callable[..., SimulatorServer]
) -> None:
    server = start(_NoMachines(estate))
    mde.install(server, estate)
    result = mde.run()

    assert result["detail"]["machines"]["status"] == "succeeded"
    assert result["streams"]["machines"]["fetched"] == 0
    assert mde.statuses(server, "^/api/machines$") == [404, 404]
