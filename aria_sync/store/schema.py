"""Versioned schema migrations. Each entry runs once, in order, inside one transaction.

No PRIMARY KEY or UNIQUE constraints: DuckLake (the scale-out path in DESIGN.md) has none, and
DuckDB's ART indexes slow bulk MERGEs. Uniqueness is kept by the loaders, which de-duplicate every
batch and MERGE on the natural key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb

LANDING_COLUMNS = """
    org_id VARCHAR NOT NULL,
    installation_id VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    raw JSON,
    record_hash VARCHAR,
    cursor_value VARCHAR,
    first_seen_at TIMESTAMPTZ,
    last_seen_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ,
    is_deleted BOOLEAN DEFAULT false,
    deleted_at TIMESTAMPTZ,
    job_id VARCHAR
"""

CORE_TABLES = """
CREATE TABLE integration_catalog (
    org_id VARCHAR NOT NULL,            -- '*' : the catalogue is the same for every organisation
    key VARCHAR NOT NULL,
    name VARCHAR, vendor VARCHAR, category VARCHAR, auth_type VARCHAR, description VARCHAR,
    status VARCHAR,                     -- available | coming_soon
    capabilities VARCHAR[], required_permissions VARCHAR[],
    config_fields JSON, streams JSON, docs_url VARCHAR, updated_at TIMESTAMPTZ
);
CREATE TABLE integration_installations (
    org_id VARCHAR NOT NULL,
    installation_id VARCHAR NOT NULL,
    integration_key VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    config JSON,                        -- non-secret fields only
    secret_ref VARCHAR,                 -- where the vault keeps the secret fields
    secret_fields VARCHAR[],
    enabled BOOLEAN DEFAULT true,
    status VARCHAR,                     -- active | disabled | credentials_invalid | error
    options JSON,
    schedule_kind VARCHAR, schedule_expr VARCHAR, next_run_at TIMESTAMPTZ,
    consecutive_failures INTEGER DEFAULT 0, backoff_until TIMESTAMPTZ,
    last_sync_at TIMESTAMPTZ, last_sync_status VARCHAR, last_success_at TIMESTAMPTZ, last_error VARCHAR,
    created_at TIMESTAMPTZ, created_by VARCHAR, updated_at TIMESTAMPTZ
);
CREATE TABLE integration_sync_jobs (
    org_id VARCHAR NOT NULL,
    job_id VARCHAR NOT NULL,
    installation_id VARCHAR NOT NULL,
    integration_key VARCHAR,
    installation_name VARCHAR,
    trigger VARCHAR,                    -- manual | schedule | dashboard | api
    status VARCHAR,                     -- queued|running|succeeded|partial|failed|cancelled|interrupted
    full_refresh BOOLEAN,
    requested_by VARCHAR,
    pid INTEGER, host VARCHAR,
    created_at TIMESTAMPTZ, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, heartbeat_at TIMESTAMPTZ,
    duration_seconds DOUBLE,
    streams JSON,                       -- {stream: {fetched, inserted, updated, unchanged, removed, rejected, status}}
    progress JSON,
    error VARCHAR,
    warnings JSON
);
CREATE TABLE integration_activity_logs (
    org_id VARCHAR NOT NULL,
    seq BIGINT NOT NULL,                -- 1, 2, 3 ... per organisation, a gap means a deleted row
    log_id VARCHAR NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    actor VARCHAR, actor_role VARCHAR,
    action VARCHAR NOT NULL,
    target_type VARCHAR, target_id VARCHAR,
    outcome VARCHAR,
    details JSON,
    prev_hash VARCHAR, hash VARCHAR
);
CREATE TABLE integration_data_mappings (
    org_id VARCHAR NOT NULL,
    integration_key VARCHAR NOT NULL,
    stream VARCHAR, source_table VARCHAR, target_tables VARCHAR[], description VARCHAR
);
CREATE TABLE integration_webhooks (
    org_id VARCHAR NOT NULL,
    webhook_id VARCHAR NOT NULL,
    installation_id VARCHAR,
    url VARCHAR, events VARCHAR[], secret_ref VARCHAR, enabled BOOLEAN, created_at TIMESTAMPTZ
);
CREATE TABLE integration_sync_state (
    org_id VARCHAR NOT NULL,
    installation_id VARCHAR NOT NULL,
    stream VARCHAR NOT NULL,
    cursor VARCHAR,
    state JSON,
    job_id VARCHAR,
    updated_at TIMESTAMPTZ
);
CREATE TABLE integration_rejected_records (
    org_id VARCHAR NOT NULL,
    installation_id VARCHAR NOT NULL,
    job_id VARCHAR,
    stream VARCHAR,
    source_table VARCHAR,
    source_id VARCHAR,
    reason VARCHAR,
    raw JSON,
    rejected_at TIMESTAMPTZ
);
"""

ARIA_TABLES = """
CREATE TABLE asset_identities (
    org_id VARCHAR NOT NULL,
    installation_id VARCHAR NOT NULL,
    integration_key VARCHAR NOT NULL,
    source_table VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    name VARCHAR, hostname VARCHAR, fqdn VARCHAR, domain VARCHAR,
    ip_addresses VARCHAR[], mac_addresses VARCHAR[],
    serial_number VARCHAR, bios_uuid VARCHAR, servicenow_sysid VARCHAR, cloud_id VARCHAR, edr_id VARCHAR,
    os VARCHAR, asset_type VARCHAR, owner VARCHAR, service_id VARCHAR, criticality VARCHAR, status VARCHAR,
    first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ,
    is_deleted BOOLEAN DEFAULT false,
    updated_at TIMESTAMPTZ
);
CREATE TABLE assets (
    asset_id VARCHAR NOT NULL,
    org_id VARCHAR NOT NULL,
    name VARCHAR, hostname VARCHAR, fqdn VARCHAR,
    ip_addresses VARCHAR[], mac_addresses VARCHAR[],
    serial_number VARCHAR, os VARCHAR, asset_type VARCHAR, owner VARCHAR, service_id VARCHAR,
    criticality VARCHAR, status VARCHAR,
    first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ,
    sources VARCHAR[], field_sources JSON, updated_at TIMESTAMPTZ
);
CREATE TABLE asset_sources (
    org_id VARCHAR NOT NULL,
    asset_id VARCHAR NOT NULL,
    installation_id VARCHAR NOT NULL,
    integration_key VARCHAR,
    source_table VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    matched_on VARCHAR,
    last_seen TIMESTAMPTZ,
    is_deleted BOOLEAN DEFAULT false,
    linked_at TIMESTAMPTZ
);
CREATE TABLE asset_link_overrides (
    org_id VARCHAR NOT NULL,
    override_id VARCHAR NOT NULL,
    action VARCHAR NOT NULL,            -- link | unlink
    source_table VARCHAR NOT NULL, source_id VARCHAR NOT NULL, installation_id VARCHAR NOT NULL,
    target_asset_id VARCHAR,
    active BOOLEAN DEFAULT true,
    actor VARCHAR, reason VARCHAR, created_at TIMESTAMPTZ, revoked_at TIMESTAMPTZ
);
CREATE TABLE data_quality_findings (
    org_id VARCHAR NOT NULL,
    installation_id VARCHAR, integration_key VARCHAR, source_table VARCHAR,
    kind VARCHAR, identifier VARCHAR, value VARCHAR, record_count INTEGER, detail VARCHAR,
    detected_at TIMESTAMPTZ
);
CREATE TABLE vulnerabilities (
    finding_id VARCHAR NOT NULL,
    org_id VARCHAR NOT NULL,
    asset_id VARCHAR,
    installation_id VARCHAR NOT NULL,
    integration_key VARCHAR,
    source_id VARCHAR NOT NULL,
    source_table VARCHAR,
    source_asset_id VARCHAR,
    cve_ids VARCHAR[],
    vendor_vuln_id VARCHAR,
    title VARCHAR,
    severity VARCHAR,
    cvss_score DOUBLE,
    exploit_score DOUBLE,
    exploit_available BOOLEAN,
    port INTEGER, protocol VARCHAR,
    state VARCHAR,
    first_found TIMESTAMPTZ, last_found TIMESTAMPTZ, fixed_at TIMESTAMPTZ,
    is_deleted BOOLEAN DEFAULT false,
    updated_at TIMESTAMPTZ
);
CREATE TABLE detections (
    detection_id VARCHAR NOT NULL,
    org_id VARCHAR NOT NULL,
    installation_id VARCHAR NOT NULL,
    integration_key VARCHAR,
    source_id VARCHAR NOT NULL,
    source_table VARCHAR,
    source_asset_id VARCHAR,
    asset_id VARCHAR,
    title VARCHAR, category VARCHAR, severity VARCHAR, status VARCHAR,
    created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ, resolved_at TIMESTAMPTZ,
    is_deleted BOOLEAN DEFAULT false
);
CREATE TABLE risks (
    risk_id VARCHAR NOT NULL,
    org_id VARCHAR NOT NULL,
    title VARCHAR,
    category VARCHAR,
    source VARCHAR,
    source_ref VARCHAR,
    likelihood INTEGER,
    impact INTEGER,
    score DOUBLE,
    level VARCHAR,
    status VARCHAR,
    score_breakdown JSON,
    affected_assets INTEGER,
    created_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ
);
CREATE TABLE risk_assets (
    org_id VARCHAR NOT NULL,
    risk_id VARCHAR NOT NULL,
    asset_id VARCHAR NOT NULL
);
CREATE TABLE incidents (
    incident_id VARCHAR NOT NULL,
    org_id VARCHAR NOT NULL,
    installation_id VARCHAR NOT NULL,
    integration_key VARCHAR,
    source_id VARCHAR NOT NULL,
    source_table VARCHAR,
    number VARCHAR,
    title VARCHAR,
    severity VARCHAR,
    status VARCHAR,
    assigned_to VARCHAR,
    opened_at TIMESTAMPTZ,
    resolved_at TIMESTAMPTZ,
    asset_id VARCHAR,
    service_id VARCHAR,
    source_asset_id VARCHAR,
    source_service_id VARCHAR,
    is_deleted BOOLEAN DEFAULT false,
    updated_at TIMESTAMPTZ
);
CREATE TABLE services (
    service_id VARCHAR NOT NULL,
    org_id VARCHAR NOT NULL,
    installation_id VARCHAR NOT NULL,
    integration_key VARCHAR,
    source_id VARCHAR NOT NULL,
    name VARCHAR,
    owner VARCHAR,
    criticality VARCHAR,
    status VARCHAR,
    is_deleted BOOLEAN DEFAULT false,
    updated_at TIMESTAMPTZ
);
CREATE TABLE service_assets (
    org_id VARCHAR NOT NULL,
    installation_id VARCHAR NOT NULL,
    service_source_id VARCHAR NOT NULL,
    asset_source_id VARCHAR NOT NULL,
    relation VARCHAR
);
"""

LANDING_TABLES_V1 = (
    "ms_defender_assets",
    "ms_defender_alerts",
    "ms_defender_incidents",
    "ms_defender_vulnerabilities",
    "servicenow_cmdb_items",
    "servicenow_services",
    "servicenow_incidents",
    "servicenow_catalog_items",
    "servicenow_service_relations",
    "tenable_assets",
    "tenable_vulnerabilities",
    "tenable_scans",
)

LANDING_TABLES_V4 = ("servicenow_deleted_records",)


def _landing(tables: tuple[str, ...]) -> Callable[[duckdb.DuckDBPyConnection], None]:
    def apply(conn: duckdb.DuckDBPyConnection) -> None:
        for table in tables:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({LANDING_COLUMNS})")

    return apply


def _sql(script: str) -> Callable[[duckdb.DuckDBPyConnection], None]:
    def apply(conn: duckdb.DuckDBPyConnection) -> None:
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)

    return apply


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[duckdb.DuckDBPyConnection], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "marketplace tables", _sql(CORE_TABLES)),
    Migration(2, "ARIA entity tables", _sql(ARIA_TABLES)),
    Migration(3, "vendor landing tables: Defender, ServiceNow, Tenable", _landing(LANDING_TABLES_V1)),
    Migration(
        4, "ServiceNow deletion records (sys_audit_delete and sys_id reconciles)", _landing(LANDING_TABLES_V4)
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version

# Tables whose rows belong to one organisation: the scoped reader filters every one of them.
ORG_TABLES: tuple[str, ...] = (
    "integration_installations",
    "integration_sync_jobs",
    "integration_activity_logs",
    "integration_data_mappings",
    "integration_webhooks",
    "integration_sync_state",
    "integration_rejected_records",
    "asset_identities",
    "assets",
    "asset_sources",
    "asset_link_overrides",
    "data_quality_findings",
    "vulnerabilities",
    "detections",
    "risks",
    "risk_assets",
    "incidents",
    "services",
    "service_assets",
    *LANDING_TABLES_V1,
    *LANDING_TABLES_V4,
)
SHARED_TABLES: tuple[str, ...] = ("integration_catalog",)


def registered_landing_tables() -> tuple[str, ...]:
    """Landing tables of connectors registered at run time (extra connectors) not created by a migration."""
    from aria_sync.connectors.registry import all_connectors

    known = set(LANDING_TABLES_V1) | set(LANDING_TABLES_V4)
    extra = sorted({s.table for c in all_connectors() for s in c.streams} - known)
    return tuple(extra)


def org_tables() -> tuple[str, ...]:
    return ORG_TABLES + registered_landing_tables()


def create_registered_landing_tables(conn: duckdb.DuckDBPyConnection) -> None:
    for table in registered_landing_tables():
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({LANDING_COLUMNS})")
