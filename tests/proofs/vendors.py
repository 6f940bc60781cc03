"""The three core vendors as proof rigs: a simulator on loopback, one installation, and the upstream truth.

A rig knows, for every landing table of its vendor, which keys the simulator serves now (they must
be present and live after a sync to completion) and which it has deleted (they may be absent, or
present and marked deleted, but never live). The kill and budget proofs share these rigs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aria_sync.audit import Actor
from aria_sync.marketplace import Marketplace
from aria_sync.simulators.estate import Estate
from aria_sync.simulators.framework import SimulatorServer
from aria_sync.simulators.ms_defender import start_ms_defender
from aria_sync.simulators.servicenow import start_servicenow
from aria_sync.simulators.tenable import start_tenable
from aria_sync.store import Database

ORG = "acme"

# ServiceNow tables the connector reads, as sys_audit_delete names them.
SERVICENOW_AUDITED = frozenset(
    {
        "cmdb_ci_computer",
        "cmdb_ci_server",
        "cmdb_ci_win_server",
        "cmdb_ci_linux_server",
        "cmdb_ci_service",
        "cmdb_rel_ci",
        "incident",
    }
)


@dataclass(frozen=True)
class Expected:
    """Keys of one landing table: ``live`` must be present and not deleted; ``gone`` must not be live."""

    live: set[str]
    gone: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class CursorCheck:
    table: str
    stream: str
    kind: str  # "timestamp" or "number", as the stream's CursorSpec says


@dataclass
class Rig:
    """One vendor simulator serving ``estate`` and the installation ``name`` of organisation ``ORG``."""

    key: str
    name: str
    estate: Estate
    server: SimulatorServer
    truth: Callable[[Estate], dict[str, Expected]]
    cursors: tuple[CursorCheck, ...]

    def expected(self) -> dict[str, Expected]:
        """Landing table -> the keys the simulator serves at the estate's current generation."""
        return self.truth(self.estate)

    def stop(self) -> None:
        self.server.stop()


def _install(db: Database, key: str, name: str, config: dict[str, Any], options: dict[str, Any]) -> None:
    Marketplace(db, ORG, Actor("t", "admin")).install(key, name, config, options=options)


# -- Tenable ------------------------------------------------------------------------------------------


def tenable_truth(estate: Estate) -> dict[str, Expected]:
    assets = estate.tenable_assets()
    gone_assets = {a["id"] for a in assets if a.get("deleted_at") or a.get("terminated_at")}
    return {
        "tenable_assets": Expected({a["id"] for a in assets} - gone_assets, gone_assets),
        # Findings of a deleted asset leave the export with it; the landing rows are marked deleted.
        "tenable_vulnerabilities": Expected({f["finding_id"] for f in estate.tenable_findings()}),
        "tenable_scans": Expected({str(s["id"]) for s in estate.tenable_scans()}),
    }


def tenable_rig(
    db: Database, estate: Estate, *, options: dict[str, Any] | None = None, **simulator: Any
) -> Rig:
    server = start_tenable(estate, **simulator)
    config = {"baseUrl": server.base_url, **estate.credentials["tenable"]}
    fast_polls = {"export_poll_initial_seconds": 0.01, "export_poll_max_seconds": 0.05}
    _install(db, "tenable", "tenable", config, {**fast_polls, **(options or {})})
    cursors = (
        CursorCheck("tenable_assets", "assets", "number"),
        CursorCheck("tenable_vulnerabilities", "vulnerabilities", "number"),
    )
    return Rig("tenable", "tenable", estate, server, tenable_truth, cursors)


# -- Microsoft Defender for Endpoint ----------------------------------------------------------------


def defender_truth(estate: Estate) -> dict[str, Expected]:
    return {
        "ms_defender_assets": Expected({m["id"] for m in estate.defender_machines()}),
        "ms_defender_alerts": Expected({a["id"] for a in estate.defender_alerts()}),
        "ms_defender_incidents": Expected({str(i["incidentId"]) for i in estate.defender_incidents()}),
        "ms_defender_vulnerabilities": Expected({v["id"] for v in estate.defender_vulnerabilities()}),
    }


def defender_rig(
    db: Database,
    estate: Estate,
    cert_dir: Path,
    *,
    options: dict[str, Any] | None = None,
    **simulator: Any,
) -> Rig:
    server = start_ms_defender(estate, cert_dir=cert_dir, **simulator)
    config = {
        **estate.credentials["ms-defender"],
        "apiBaseUrl": server.base_url,
        "authorityHost": server.base_url,
        # The sync subprocess trusts the simulator through the installation's CA bundle, as a
        # customer behind a TLS-inspecting proxy would.
        "caBundle": str(server.ca_file),
    }
    _install(db, "ms-defender", "defender", config, options or {})
    cursors = (
        CursorCheck("ms_defender_alerts", "alerts", "timestamp"),
        CursorCheck("ms_defender_incidents", "incidents", "timestamp"),
    )
    return Rig("ms-defender", "defender", estate, server, defender_truth, cursors)


# -- ServiceNow ---------------------------------------------------------------------------------------


def servicenow_truth(estate: Estate) -> dict[str, Expected]:
    deletions = [
        r for r in estate.servicenow_records("sys_audit_delete") if r["tablename"] in SERVICENOW_AUDITED
    ]
    deleted_keys = {r["documentkey"] for r in deletions}
    services = {r["sys_id"] for r in estate.servicenow_records("cmdb_ci_service")}
    relations = {r["sys_id"] for r in estate.servicenow_records("cmdb_rel_ci") if r["parent"] in services}
    return {
        "servicenow_cmdb_items": Expected(
            {r["sys_id"] for r in estate.servicenow_records("cmdb_ci_computer")}, deleted_keys
        ),
        "servicenow_services": Expected(services, deleted_keys),
        "servicenow_service_relations": Expected(relations, deleted_keys),
        "servicenow_catalog_items": Expected({r["sys_id"] for r in estate.servicenow_records("sc_cat_item")}),
        "servicenow_incidents": Expected(
            {r["sys_id"] for r in estate.servicenow_records("incident")}, deleted_keys
        ),
        "servicenow_deleted_records": Expected({r["sys_id"] for r in deletions}),
    }


def servicenow_rig(
    db: Database,
    estate: Estate,
    *,
    page_size: int = 100,
    options: dict[str, Any] | None = None,
    **simulator: Any,
) -> Rig:
    server = start_servicenow(estate, **simulator)
    config = {"instanceUrl": server.base_url, **estate.credentials["servicenow"], "pageSize": page_size}
    _install(db, "servicenow", "servicenow", config, options or {})
    cursors = (
        CursorCheck("servicenow_cmdb_items", "cmdb_items", "timestamp"),
        CursorCheck("servicenow_services", "services", "timestamp"),
        CursorCheck("servicenow_service_relations", "service_relations", "timestamp"),
        CursorCheck("servicenow_incidents", "incidents", "timestamp"),
        CursorCheck("servicenow_deleted_records", "deletions", "timestamp"),
    )
    return Rig("servicenow", "servicenow", estate, server, servicenow_truth, cursors)
