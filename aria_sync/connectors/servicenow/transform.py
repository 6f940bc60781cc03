"""Pure transforms: SQL over ServiceNow landing rows into ARIA tables.

Each stream's derive rebuilds the ARIA rows of the records this job touched (accepted or removed);
the deletions stream marks landing rows deleted from ``sys_audit_delete`` (or a sys_id reconcile)
and rebuilds theirs the same way. Raw values are strings; datetimes are UTC without a zone, so
every time goes through :data:`_UTC` rather than a bare cast.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from aria_sync.connectors.base import DeriveContext
from aria_sync.connectors.servicenow.api import (
    COMPUTER_CLASSES,
    INCIDENT_CLASSES,
    RECONCILE_KIND,
    RELATION_CLASSES,
    SERVICE_CLASSES,
)

log = logging.getLogger("aria_sync.connectors.servicenow")

CMDB_TABLE = "servicenow_cmdb_items"
SERVICES_TABLE = "servicenow_services"
RELATIONS_TABLE = "servicenow_service_relations"
INCIDENTS_TABLE = "servicenow_incidents"

# A reconcile that would remove more than this share of a table's live rows is refused: an ACL
# that hides rows from the integration user looks exactly like a mass deletion.
MAX_RECONCILE_FRACTION = 0.30


def _utc(expr: str) -> str:
    """A raw ``YYYY-MM-DD HH:MM:SS`` (UTC) value as TIMESTAMPTZ, NULL when empty or malformed."""
    return f"TRY_CAST(nullif({expr}, '') || '+00' AS TIMESTAMPTZ)"


def _ref(plain: str, value: str) -> str:
    """A reference field: a plain sys_id, or the ``value`` of a ``{"value", "link"}`` object."""
    return f"coalesce(nullif({value}, ''), CASE WHEN left({plain}, 1) <> '{{' THEN nullif({plain}, '') END)"


def _extract(paths: Sequence[str]) -> str:
    return "json_extract_string(l.raw, [" + ", ".join(f"'{p}'" for p in paths) + "])"


def _params(ctx: DeriveContext, table: str) -> dict[str, object]:
    return {
        "org": ctx.org,
        "inst": ctx.installation_id,
        "key": ctx.integration_key,
        "table": table,
        "now": ctx.now,
    }


def _touched_rows(table: str, ids: str, paths: Sequence[str], rows: str | None) -> str:
    """The landing rows ``ids`` with their fields; ``rows`` (source_id, raw, is_deleted) already
    holds exactly those rows when a stream rebuilds what it applied, read from its staged pages."""
    if rows is not None:
        return f"SELECT l.source_id, l.is_deleted, {_extract(paths)} AS f FROM {rows} l"
    return f"""SELECT l.source_id, l.is_deleted, {_extract(paths)} AS f FROM {table} l
               WHERE l.org_id = $org AND l.installation_id = $inst AND l.source_id IN ({ids})"""


# -- CMDB -> asset_identities ---------------------------------------------------------------------

CMDB_FIELDS = (
    "$.name",  # 1
    "$.host_name",  # 2
    "$.fqdn",  # 3
    "$.dns_domain",  # 4
    "$.ip_address",  # 5
    "$.mac_address",  # 6
    "$.serial_number",  # 7
    "$.os",  # 8
    "$.sys_class_name",  # 9
    "$.assigned_to",  # 10
    "$.assigned_to.value",  # 11
    "$.owned_by",  # 12
    "$.owned_by.value",  # 13
    "$.install_status",  # 14
    "$.first_discovered",  # 15
    "$.sys_created_on",  # 16
    "$.last_discovered",  # 17
    "$.sys_updated_on",  # 18
    "$.object_id",  # 19
)


def rebuild_identities(ctx: DeriveContext, table: str, ids: str, rows: str | None = None) -> None:
    """asset_identities of the CMDB landing rows ``ids`` (SQL yielding source_id)."""
    params = _params(ctx, table)
    ctx.conn.execute(
        f"""DELETE FROM asset_identities WHERE org_id = $org AND installation_id = $inst AND source_table = $table
            AND source_id IN ({ids})""",
        {k: params[k] for k in ("org", "inst", "table")},
    )
    mac = "lower(regexp_replace(coalesce(f[6], ''), '[^0-9A-Fa-f]', '', 'g'))"
    # The user of a workstation, else the owner of a server.
    owner = f"coalesce({_ref('f[10]', 'f[11]')}, {_ref('f[12]', 'f[13]')})"
    ctx.conn.execute(
        f"""INSERT INTO asset_identities (org_id, installation_id, integration_key, source_table, source_id, name,
              hostname, fqdn, domain, ip_addresses, mac_addresses, serial_number, servicenow_sysid, cloud_id, os,
              asset_type, owner, status, first_seen, last_seen, is_deleted, updated_at)
            WITH r AS ({_touched_rows(table, ids, CMDB_FIELDS, rows)})
            SELECT $org, $inst, $key, $table, source_id, nullif(f[1], ''),
                   nullif(lower(split_part(coalesce(nullif(f[2], ''), nullif(f[3], ''), f[1], ''), '.', 1)), ''),
                   nullif(lower(f[3]), ''), nullif(lower(f[4]), ''),
                   CASE WHEN nullif(trim(f[5]), '') IS NULL THEN []::VARCHAR[] ELSE [trim(f[5])] END,
                   CASE WHEN length({mac}) = 12 THEN [{mac}] ELSE []::VARCHAR[] END,
                   nullif(trim(f[7]), ''), source_id, nullif(f[19], ''), nullif(f[8], ''),
                   CASE WHEN f[9] LIKE '%server%' THEN 'server' ELSE 'computer' END,
                   {owner},
                   CASE WHEN is_deleted THEN 'deleted' WHEN f[14] = '7' THEN 'retired' ELSE 'active' END,
                   coalesce({_utc("f[15]")}, {_utc("f[16]")}), coalesce({_utc("f[17]")}, {_utc("f[18]")}),
                   is_deleted, $now
            FROM r""",
        params,
    )


def cmdb_items_to_identities(ctx: DeriveContext) -> None:
    rebuild_identities(ctx, ctx.table, f"SELECT source_id FROM {ctx.touched}", ctx.rows)


# -- services -> services ---------------------------------------------------------------------------

SERVICE_FIELDS = (
    "$.name",  # 1
    "$.owned_by",  # 2
    "$.owned_by.value",  # 3
    "$.busines_criticality",  # 4
    "$.install_status",  # 5
    "$.operational_status",  # 6
)
CRITICALITY = """CASE
    WHEN c LIKE '1%' OR c LIKE '%most critical%' OR c = 'critical' THEN 'critical'
    WHEN c LIKE '2%' OR c LIKE '%somewhat critical%' OR c = 'high' THEN 'high'
    WHEN c LIKE '3%' OR c LIKE '%less critical%' OR c = 'medium' THEN 'medium'
    WHEN c LIKE '4%' OR c LIKE '%not critical%' OR c = 'low' THEN 'low' END"""


def rebuild_services(ctx: DeriveContext, table: str, ids: str, rows: str | None = None) -> None:
    """services rows of the service landing rows ``ids``."""
    params = _params(ctx, table)
    ctx.conn.execute(
        f"DELETE FROM services WHERE org_id = $org AND installation_id = $inst AND source_id IN ({ids})",
        {"org": ctx.org, "inst": ctx.installation_id},
    )
    criticality = CRITICALITY.replace("c LIKE", "lower(trim(f[4])) LIKE").replace(
        "c =", "lower(trim(f[4])) ="
    )
    ctx.conn.execute(
        f"""INSERT INTO services (service_id, org_id, installation_id, integration_key, source_id, name, owner,
              criticality, status, is_deleted, updated_at)
            WITH r AS ({_touched_rows(table, ids, SERVICE_FIELDS, rows)})
            SELECT 'svc-' || md5($inst || ':' || source_id), $org, $inst, $key, source_id, nullif(f[1], ''),
                   {_ref("f[2]", "f[3]")}, {criticality},
                   CASE WHEN is_deleted THEN 'deleted' WHEN f[5] = '7' OR f[6] = '6' THEN 'retired'
                        WHEN f[6] = '2' THEN 'inactive' ELSE 'active' END,
                   is_deleted, $now
            FROM r""",
        {k: v for k, v in params.items() if k != "table"},
    )


def services_to_services(ctx: DeriveContext) -> None:
    rebuild_services(ctx, ctx.table, f"SELECT source_id FROM {ctx.touched}", ctx.rows)


# -- relations -> service_assets ----------------------------------------------------------------------


def rebuild_service_assets(ctx: DeriveContext, table: str, ids: str) -> None:
    """service_assets of the installation, rebuilt whole from the live relation rows.

    service_assets carries no relation id, so a changed or removed relation cannot be found by key;
    a full rebuild is a single set operation and stays cheap even for a large CMDB.
    """
    ctx.conn.execute(
        "DELETE FROM service_assets WHERE org_id = $org AND installation_id = $inst",
        {"org": ctx.org, "inst": ctx.installation_id},
    )
    paths = ("$.parent", "$.parent.value", "$.child", "$.child.value", "$.type", "$.type.value")
    ctx.conn.execute(
        f"""INSERT INTO service_assets (org_id, installation_id, service_source_id, asset_source_id, relation)
            WITH r AS (SELECT {_extract(paths)} AS f FROM {table} l
                       WHERE l.org_id = $org AND l.installation_id = $inst AND NOT l.is_deleted)
            SELECT $org, $inst, service, asset, min(relation) FROM (
                SELECT {_ref("f[1]", "f[2]")} AS service, {_ref("f[3]", "f[4]")} AS asset,
                       {_ref("f[5]", "f[6]")} AS relation FROM r)
            WHERE service IS NOT NULL AND asset IS NOT NULL
            GROUP BY service, asset""",
        {"org": ctx.org, "inst": ctx.installation_id},
    )


def relations_to_service_assets(ctx: DeriveContext) -> None:
    rebuild_service_assets(ctx, ctx.table, f"SELECT source_id FROM {ctx.touched}")


# -- incidents -> incidents ---------------------------------------------------------------------------

INCIDENT_FIELDS = (
    "$.number",  # 1
    "$.short_description",  # 2
    "$.priority",  # 3
    "$.state",  # 4
    "$.assigned_to",  # 5
    "$.assigned_to.value",  # 6
    "$.opened_at",  # 7
    "$.resolved_at",  # 8
    "$.closed_at",  # 9
    "$.cmdb_ci",  # 10
    "$.cmdb_ci.value",  # 11
    "$.business_service",  # 12
    "$.business_service.value",  # 13
)


def rebuild_incidents(ctx: DeriveContext, table: str, ids: str, rows: str | None = None) -> None:
    """incidents rows of the incident landing rows ``ids``."""
    params = _params(ctx, table)
    ctx.conn.execute(
        f"""DELETE FROM incidents WHERE org_id = $org AND installation_id = $inst AND source_table = $table
            AND source_id IN ({ids})""",
        {k: params[k] for k in ("org", "inst", "table")},
    )
    ctx.conn.execute(
        f"""INSERT INTO incidents (incident_id, org_id, installation_id, integration_key, source_id, source_table,
              number, title, severity, status, assigned_to, opened_at, resolved_at, source_asset_id,
              source_service_id, is_deleted, updated_at)
            WITH r AS ({_touched_rows(table, ids, INCIDENT_FIELDS, rows)})
            SELECT md5($inst || ':' || source_id), $org, $inst, $key, source_id, $table, nullif(f[1], ''),
                   nullif(f[2], ''),
                   CASE trim(f[3]) WHEN '1' THEN 'critical' WHEN '2' THEN 'high' WHEN '3' THEN 'medium'
                        WHEN '4' THEN 'low' WHEN '5' THEN 'info' END,
                   CASE trim(f[4]) WHEN '1' THEN 'open' WHEN '2' THEN 'in_progress' WHEN '3' THEN 'on_hold'
                        WHEN '6' THEN 'resolved' WHEN '7' THEN 'closed' WHEN '8' THEN 'cancelled' END,
                   {_ref("f[5]", "f[6]")}, {_utc("f[7]")}, coalesce({_utc("f[8]")}, {_utc("f[9]")}),
                   {_ref("f[10]", "f[11]")}, {_ref("f[12]", "f[13]")}, is_deleted, $now
            FROM r""",
        params,
    )


def incidents_to_incidents(ctx: DeriveContext) -> None:
    rebuild_incidents(ctx, ctx.table, f"SELECT source_id FROM {ctx.touched}", ctx.rows)


# -- deletions ----------------------------------------------------------------------------------------

Rebuild = Callable[[DeriveContext, str, str], None]
# (landing table, classes its records are audited under, reconcile scope table, ARIA rebuild)
DELETION_TARGETS: tuple[tuple[str, tuple[str, ...], str, Rebuild], ...] = (
    (CMDB_TABLE, COMPUTER_CLASSES, "cmdb_ci_computer", rebuild_identities),
    (SERVICES_TABLE, SERVICE_CLASSES, "cmdb_ci_service", rebuild_services),
    (RELATIONS_TABLE, RELATION_CLASSES, "cmdb_rel_ci", rebuild_service_assets),
    (INCIDENTS_TABLE, INCIDENT_CLASSES, "incident", rebuild_incidents),
)


def apply_deletions(ctx: DeriveContext) -> None:
    """Mark the landing rows named by this job's audit rows (or absent from a reconcile) deleted,
    then rebuild their ARIA rows. The last known raw record stays in the landing table."""
    base = {"org": ctx.org, "inst": ctx.installation_id}
    ctx.conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE _sn_audit AS
            SELECT raw->>'$.documentkey' AS source_id, raw->>'$.tablename' AS tablename,
                   {_utc("raw->>'$.sys_created_on'")} AS deleted_on
            FROM {ctx.staged}
            WHERE coalesce(raw->>'$.kind', '') <> '{RECONCILE_KIND}' AND nullif(raw->>'$.documentkey', '') IS NOT NULL"""
    )
    for table, classes, scope, rebuild in DELETION_TARGETS:
        ctx.conn.execute("CREATE OR REPLACE TEMP TABLE _sn_gone (source_id VARCHAR)")
        # A record restored after its deletion has a newer sys_updated_on than the audit row: keep it.
        ctx.conn.execute(
            f"""INSERT INTO _sn_gone SELECT DISTINCT l.source_id FROM {table} l
                JOIN _sn_audit a ON a.source_id = l.source_id AND list_contains($classes, a.tablename)
                WHERE l.org_id = $org AND l.installation_id = $inst AND NOT l.is_deleted
                  AND NOT coalesce({_utc("l.raw->>'$.sys_updated_on'")} > a.deleted_on, false)""",
            {**base, "classes": list(classes)},
        )
        _reconcile(ctx, table, scope)
        gone = ctx.conn.execute("SELECT count(*) FROM _sn_gone").fetchone()
        if not gone or not gone[0]:
            continue
        ctx.conn.execute(
            f"""UPDATE {table} SET is_deleted = true, deleted_at = coalesce(deleted_at, $now), updated_at = $now,
                  job_id = $job
                WHERE org_id = $org AND installation_id = $inst AND source_id IN (SELECT source_id FROM _sn_gone)""",
            {**base, "now": ctx.now, "job": ctx.job_id},
        )
        rebuild(ctx, table, "SELECT source_id FROM _sn_gone")


def _reconcile(ctx: DeriveContext, table: str, scope: str) -> None:
    """Add to ``_sn_gone`` the live landing rows missing from this job's complete sys_id listing of ``scope``."""
    params = {"org": ctx.org, "inst": ctx.installation_id, "scope": scope, "kind": RECONCILE_KIND}
    listed = ctx.conn.execute(
        f"SELECT count(*) FROM {ctx.staged} WHERE (raw->>'$.kind') = $kind AND (raw->>'$.tablename') = $scope",
        {"scope": scope, "kind": RECONCILE_KIND},
    ).fetchone()
    if not listed or not listed[0]:
        return
    ctx.conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE _sn_live AS
            SELECT DISTINCT unnest(json_extract_string(raw, '$.live_sys_ids[*]')) AS source_id FROM {ctx.staged}
            WHERE (raw->>'$.kind') = $kind AND (raw->>'$.tablename') = $scope""",
        {"scope": scope, "kind": RECONCILE_KIND},
    )
    row = ctx.conn.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE source_id NOT IN (SELECT source_id FROM _sn_live))
            FROM {table} WHERE org_id = $org AND installation_id = $inst AND NOT is_deleted""",
        {k: params[k] for k in ("org", "inst")},
    ).fetchone()
    active, missing = (int(row[0]), int(row[1])) if row else (0, 0)
    if missing and missing > MAX_RECONCILE_FRACTION * active:
        log.warning(
            "ServiceNow reconcile of %s: refused to mark %d of %d rows deleted (more than %.0f%%); "
            "check the integration user's read ACLs",
            scope,
            missing,
            active,
            MAX_RECONCILE_FRACTION * 100,
        )
        return
    ctx.conn.execute(
        f"""INSERT INTO _sn_gone SELECT source_id FROM {table}
            WHERE org_id = $org AND installation_id = $inst AND NOT is_deleted
              AND source_id NOT IN (SELECT source_id FROM _sn_live)
              AND source_id NOT IN (SELECT source_id FROM _sn_gone)""",
        {k: params[k] for k in ("org", "inst")},
    )
