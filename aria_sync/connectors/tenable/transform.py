"""Pure transforms: SQL over this job's Tenable landing rows into ARIA tables.

Each transform deletes the ARIA rows of the records staged or removed in this run and inserts them
again from those records as the landing table now holds them (``ctx.rows``), so a re-run converges and nothing is duplicated. Every cast is a
``TRY_CAST``: vendor JSON with drifting types must never crash a sync.
"""

from __future__ import annotations

from aria_sync.connectors.base import DeriveContext

# A vendor timestamp (ISO-8601, or epoch seconds/milliseconds as some Tenable fields drift to).
_TS = """coalesce(TRY_CAST({v} AS TIMESTAMPTZ),
     CASE WHEN TRY_CAST({v} AS DOUBLE) BETWEEN 0 AND 1e11 THEN to_timestamp(TRY_CAST({v} AS DOUBLE))
          WHEN TRY_CAST({v} AS DOUBLE) BETWEEN 1e11 AND 1e14 THEN to_timestamp(TRY_CAST({v} AS DOUBLE) / 1000)
     END)"""


def _ts(expression: str) -> str:
    return _TS.format(v=expression)


_ASSET_SHAPE = (
    '{"hostnames": ["VARCHAR"], "fqdns": ["VARCHAR"], "netbios_names": ["VARCHAR"], "ipv4s": ["VARCHAR"], '
    '"mac_addresses": ["VARCHAR"], "operating_systems": ["VARCHAR"], "system_types": ["VARCHAR"], '
    '"serial_number": "VARCHAR", "bios_uuid": "VARCHAR", "servicenow_sysid": "VARCHAR", '
    '"azure_vm_id": "VARCHAR", "aws_ec2_instance_id": "VARCHAR", "gcp_instance_id": "VARCHAR", '
    '"azure_resource_id": "VARCHAR", "deleted_at": "VARCHAR", "terminated_at": "VARCHAR", '
    '"first_seen": "VARCHAR", "created_at": "VARCHAR", "last_seen": "VARCHAR"}'
)
_NETWORK_TYPES = "('router', 'switch', 'firewall', 'load-balancer', 'wireless-access-point')"


def assets_to_identities(ctx: DeriveContext) -> None:
    """Tenable assets -> ``asset_identities`` (one row per asset export record)."""
    params = {"org": ctx.org, "inst": ctx.installation_id}
    ctx.conn.execute(
        f"""DELETE FROM asset_identities WHERE org_id = $org AND installation_id = $inst
            AND source_table = '{ctx.table}' AND source_id IN (SELECT source_id FROM {ctx.touched})""",
        params,
    )
    host_source = "coalesce(a.v.hostnames[1], a.v.fqdns[1], a.v.netbios_names[1])"
    fqdn = "lower(a.v.fqdns[1])"
    system_type = "lower(coalesce(a.v.system_types[1], ''))"
    ctx.conn.execute(
        f"""INSERT INTO asset_identities (org_id, installation_id, integration_key, source_table, source_id, name,
              hostname, fqdn, domain, ip_addresses, mac_addresses, serial_number, bios_uuid, servicenow_sysid,
              cloud_id, edr_id, os, asset_type, status, first_seen, last_seen, is_deleted, updated_at)
            WITH a AS MATERIALIZED (
                SELECT l.source_id, l.is_deleted, json_transform(l.raw, '{_ASSET_SHAPE}') AS v
                FROM {ctx.rows} l)
            SELECT $org, $inst, $key, $table, a.source_id, coalesce({host_source}, a.v.ipv4s[1]),
                   nullif(lower(split_part({host_source}, '.', 1)), ''),
                   {fqdn},
                   CASE WHEN position('.' IN {fqdn}) > 0 THEN substr({fqdn}, position('.' IN {fqdn}) + 1) END,
                   coalesce(a.v.ipv4s, []),
                   list_filter(list_transform(coalesce(a.v.mac_addresses, []),
                                              m -> lower(regexp_replace(m, '[^0-9A-Fa-f]', '', 'g'))),
                               m -> length(m) = 12),
                   nullif(trim(a.v.serial_number), ''),
                   nullif(lower(a.v.bios_uuid), ''),
                   nullif(a.v.servicenow_sysid, ''),
                   coalesce(a.v.azure_vm_id, a.v.aws_ec2_instance_id, a.v.gcp_instance_id, a.v.azure_resource_id),
                   NULL,
                   a.v.operating_systems[1],
                   CASE WHEN {system_type} IN ('', 'general-purpose') THEN 'computer'
                        WHEN {system_type} IN {_NETWORK_TYPES} THEN 'network'
                        WHEN {system_type} = 'hypervisor' THEN 'server'
                        WHEN {system_type} = 'embedded' THEN 'iot'
                        ELSE {system_type} END,
                   CASE WHEN a.v.deleted_at IS NOT NULL THEN 'deleted'
                        WHEN a.v.terminated_at IS NOT NULL THEN 'retired'
                        WHEN {_ts("a.v.last_seen")} < $now - INTERVAL 30 DAY THEN 'inactive'
                        ELSE 'active' END,
                   {_ts("coalesce(a.v.first_seen, a.v.created_at)")},
                   {_ts("a.v.last_seen")},
                   a.is_deleted, $now
            FROM a""",
        {**params, "key": ctx.integration_key, "table": ctx.table, "now": ctx.now},
    )
    # Tenable drops the findings of a deleted asset from every later export; without this they
    # would stay open forever.
    ctx.conn.execute(
        """UPDATE vulnerabilities SET is_deleted = true, updated_at = $now
           WHERE org_id = $org AND installation_id = $inst AND source_table = 'tenable_vulnerabilities'
             AND NOT is_deleted AND source_asset_id IN (SELECT source_id FROM _removed)""",
        {**params, "now": ctx.now},
    )


# Parsed once per row: each ->> on the raw JSON re-parses the whole record (2 KB with plugin text).
# Every leaf is VARCHAR, so a field whose type drifts becomes text or NULL instead of an error.
_FINDING_SHAPE = (
    '{"asset": {"uuid": "VARCHAR"}, "plugin": {"id": "VARCHAR", "name": "VARCHAR", "cve": ["VARCHAR"], '
    '"cvss3_base_score": "VARCHAR", "cvss_base_score": "VARCHAR", "vpr": {"score": "VARCHAR"}, '
    '"exploit_available": "VARCHAR"}, "severity": "VARCHAR", "severity_id": "VARCHAR", '
    '"port": {"port": "VARCHAR", "protocol": "VARCHAR"}, "state": "VARCHAR", "first_found": "VARCHAR", '
    '"last_found": "VARCHAR", "last_fixed": "VARCHAR"}'
)


def vulnerabilities_to_findings(ctx: DeriveContext) -> None:
    """Tenable findings -> ``vulnerabilities`` (severity and state lower case, fixed_at when FIXED)."""
    params = {"org": ctx.org, "inst": ctx.installation_id}
    ctx.conn.execute(
        f"""DELETE FROM vulnerabilities WHERE org_id = $org AND installation_id = $inst
            AND source_table = '{ctx.table}' AND source_id IN (SELECT source_id FROM {ctx.touched})""",
        params,
    )
    state = "upper(coalesce(f.v.state, 'OPEN'))"
    ctx.conn.execute(
        f"""INSERT INTO vulnerabilities (finding_id, org_id, asset_id, installation_id, integration_key, source_id,
              source_table, source_asset_id, cve_ids, vendor_vuln_id, title, severity, cvss_score, exploit_score,
              exploit_available, port, protocol, state, first_found, last_found, fixed_at, is_deleted, updated_at)
            WITH f AS MATERIALIZED (
                SELECT l.source_id, l.is_deleted, json_transform(l.raw, '{_FINDING_SHAPE}') AS v
                FROM {ctx.rows} l)
            SELECT md5($inst || ':' || f.source_id), $org, NULL, $inst, $key, f.source_id, $table,
                   f.v.asset.uuid,
                   list_sort(list_distinct(list_transform(coalesce(f.v.plugin.cve, []), c -> upper(trim(c))))),
                   f.v.plugin.id,
                   f.v.plugin.name,
                   CASE WHEN lower(f.v.severity) IN ('critical', 'high', 'medium', 'low', 'info')
                             THEN lower(f.v.severity)
                        ELSE CASE TRY_CAST(f.v.severity_id AS INTEGER)
                             WHEN 4 THEN 'critical' WHEN 3 THEN 'high' WHEN 2 THEN 'medium' WHEN 1 THEN 'low'
                             ELSE 'info' END END,
                   coalesce(TRY_CAST(f.v.plugin.cvss3_base_score AS DOUBLE),
                            TRY_CAST(f.v.plugin.cvss_base_score AS DOUBLE)),
                   TRY_CAST(f.v.plugin.vpr.score AS DOUBLE),
                   TRY_CAST(f.v.plugin.exploit_available AS BOOLEAN),
                   TRY_CAST(f.v.port.port AS INTEGER),
                   lower(f.v.port.protocol),
                   CASE {state} WHEN 'FIXED' THEN 'fixed' WHEN 'REOPENED' THEN 'reopened' ELSE 'open' END,
                   {_ts("f.v.first_found")},
                   {_ts("f.v.last_found")},
                   CASE WHEN {state} = 'FIXED' THEN {_ts("f.v.last_fixed")} END,
                   f.is_deleted OR gone.source_id IS NOT NULL,
                   $now
            FROM f
            LEFT JOIN (SELECT source_id FROM tenable_assets
                       WHERE org_id = $org AND installation_id = $inst AND is_deleted) gone
                   ON gone.source_id = f.v.asset.uuid""",
        {**params, "key": ctx.integration_key, "table": ctx.table, "now": ctx.now},
    )
