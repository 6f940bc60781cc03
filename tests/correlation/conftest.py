"""Correlation fixtures: estate vendor records mapped to asset_identities rows the way connectors map them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from aria_sync.simulators.estate import Estate

ORG = "acme"
INSTALLATIONS = {"tenable": "inst-tenable", "ms-defender": "inst-defender", "servicenow": "inst-servicenow"}
IDENTITY_COLUMNS = (
    "org_id", "installation_id", "integration_key", "source_table", "source_id", "name", "hostname", "fqdn",
    "domain", "ip_addresses", "mac_addresses", "serial_number", "bios_uuid", "servicenow_sysid", "cloud_id",
    "edr_id", "os", "asset_type", "owner", "service_id", "criticality", "status", "first_seen", "last_seen",
    "is_deleted",
)  # fmt: skip


def _time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, tail = text.split(".", 1)
        digits = "".join(ch for ch in tail if ch.isdigit())
        zone = tail[len(digits) :] or "+00:00"
        text = f"{head}.{digits[:6]}{zone}"
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def identity(integration_key: str, source_table: str, source_id: str, **fields: Any) -> dict[str, Any]:
    """One asset_identities row with every column present (unset ones NULL)."""
    row: dict[str, Any] = dict.fromkeys(IDENTITY_COLUMNS)
    row.update(
        org_id=ORG,
        installation_id=INSTALLATIONS.get(integration_key, f"inst-{integration_key}"),
        integration_key=integration_key,
        source_table=source_table,
        source_id=source_id,
        ip_addresses=[],
        mac_addresses=[],
        is_deleted=False,
    )
    row.update(fields)
    return row


def tenable_identity(asset: dict[str, Any]) -> dict[str, Any]:
    hostnames, fqdns = asset.get("hostnames") or [], asset.get("fqdns") or []
    return identity(
        "tenable", "tenable_assets", asset["id"],
        name=(hostnames or fqdns or [None])[0], hostname=(hostnames or [None])[0], fqdn=(fqdns or [None])[0],
        ip_addresses=list(asset.get("ipv4s") or []), mac_addresses=list(asset.get("mac_addresses") or []),
        serial_number=asset.get("serial_number"), bios_uuid=asset.get("bios_uuid"),
        servicenow_sysid=asset.get("servicenow_sysid"),
        cloud_id=asset.get("azure_vm_id") or asset.get("aws_ec2_instance_id"),
        os=(asset.get("operating_systems") or [None])[0], asset_type=(asset.get("system_types") or [None])[0],
        status="deleted" if asset.get("deleted_at") else ("terminated" if asset.get("terminated_at") else "active"),
        first_seen=_time(asset.get("first_seen")), last_seen=_time(asset.get("last_seen")),
        is_deleted=bool(asset.get("deleted_at")),
    )  # fmt: skip


def defender_identity(machine: dict[str, Any]) -> dict[str, Any]:
    dns = (machine.get("computerDnsName") or "").lower()
    interfaces = machine.get("ipAddresses") or []
    return identity(
        "ms-defender", "ms_defender_assets", machine["id"],
        name=dns or None, hostname=dns.split(".")[0] or None, fqdn=dns if "." in dns else None,
        ip_addresses=[i["ipAddress"] for i in interfaces if i.get("ipAddress")],
        mac_addresses=[i["macAddress"] for i in interfaces if i.get("macAddress")],
        edr_id=machine["id"], cloud_id=(machine.get("vmMetadata") or {}).get("vmId"),
        os=" ".join(p for p in (machine.get("osPlatform"), machine.get("version")) if p) or None,
        status=(machine.get("healthStatus") or "").lower() or None,
        first_seen=_time(machine.get("firstSeen")), last_seen=_time(machine.get("lastSeen")),
    )  # fmt: skip


def servicenow_identity(ci: dict[str, Any]) -> dict[str, Any]:
    def blank(key: str) -> str | None:
        return ci.get(key) or None

    return identity(
        "servicenow", "servicenow_cmdb_items", ci["sys_id"],
        name=blank("name"), hostname=blank("host_name"), fqdn=blank("fqdn"), domain=blank("dns_domain"),
        ip_addresses=[ci["ip_address"]] if ci.get("ip_address") else [],
        mac_addresses=[ci["mac_address"]] if ci.get("mac_address") else [],
        serial_number=blank("serial_number"), servicenow_sysid=ci["sys_id"], cloud_id=blank("object_id"),
        os=blank("os"), asset_type=blank("sys_class_name"), owner=blank("assigned_to"),
        status="retired" if ci.get("install_status") == "7" else "installed",
        first_seen=_time(blank("first_discovered")), last_seen=_time(blank("last_discovered")),
    )  # fmt: skip


def estate_identities(estate: Estate) -> list[dict[str, Any]]:
    """Every vendor asset record of the estate as an identity row."""
    rows = [tenable_identity(a) for a in estate.tenable_assets()]
    rows += [defender_identity(m) for m in estate.defender_machines()]
    rows += [servicenow_identity(ci) for ci in estate.servicenow_records("cmdb_ci_computer")]
    return rows


def insert_rows(conn: duckdb.DuckDBPyConnection, table: str, rows: Iterable[dict[str, Any]]) -> None:
    """Bulk insert dict rows (all with the same keys) through Arrow."""
    rows = list(rows)
    if not rows:
        return
    columns = list(rows[0])
    data = pa.Table.from_pylist(rows)
    conn.register("_rows_to_insert", data)
    try:
        conn.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM _rows_to_insert"
        )
    finally:
        conn.unregister("_rows_to_insert")


def load_estate_services(conn: duckdb.DuckDBPyConnection, estate: Estate) -> None:
    """ServiceNow business services and CI relationships, as the ServiceNow connector lands them."""
    inst = INSTALLATIONS["servicenow"]
    services = [
        {"service_id": f"svc-{s['sys_id']}", "org_id": ORG, "installation_id": inst, "integration_key": "servicenow",
         "source_id": s["sys_id"], "name": s["name"], "criticality": s["busines_criticality"], "status": "active"}
        for s in estate.servicenow_records("cmdb_ci_service")
    ]  # fmt: skip
    relations = [
        {"org_id": ORG, "installation_id": inst, "service_source_id": r["parent"], "asset_source_id": r["child"],
         "relation": r["type"]}
        for r in estate.servicenow_records("cmdb_rel_ci")
    ]  # fmt: skip
    insert_rows(conn, "services", services)
    insert_rows(conn, "service_assets", relations)


@pytest.fixture(scope="session")
def small_estate() -> Estate:
    return Estate.generate("small", seed=7, anchor=dt.datetime(2026, 12, 7, tzinfo=dt.UTC))


@pytest.fixture
def helpers() -> SimpleNamespace:
    """The row builders above, for tests (test modules cannot import conftest under importlib mode)."""
    return SimpleNamespace(
        ORG=ORG,
        identity=identity,
        estate_identities=estate_identities,
        insert_rows=insert_rows,
        load_estate_services=load_estate_services,
    )
