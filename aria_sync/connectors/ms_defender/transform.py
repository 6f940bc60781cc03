"""Pure transforms: SQL over this job's Defender landing rows into ARIA tables.

Each transform deletes the ARIA rows of the records staged or removed in this run and inserts them
again from the landing table, so a re-run converges and nothing is duplicated. Every cast is a
``TRY_CAST`` and every field is read with ``json_extract_string``: drifting vendor JSON never
crashes a sync. Fields are extracted with one multi-path call per row, because a million export
rows read field by field would parse each JSON document a dozen times.
"""

from __future__ import annotations

from collections.abc import Sequence

from aria_sync.connectors.base import DeriveContext

# Alert and incident severities: UnSpecified and Informational are both "info" in ARIA.
_ALERT_SEVERITY = """CASE lower({v}) WHEN 'high' THEN 'high' WHEN 'medium' THEN 'medium' WHEN 'low' THEN 'low'
                     ELSE 'info' END"""
_VULN_SEVERITY = """CASE lower({v}) WHEN 'critical' THEN 'critical' WHEN 'high' THEN 'high'
                    WHEN 'medium' THEN 'medium' WHEN 'low' THEN 'low' ELSE 'info' END"""
# exploitabilityLevel on ARIA's 0-10 exploit scale: in an exploit kit is as bad as it gets.
_EXPLOIT_SCORE = """CASE {v} WHEN 'ExploitIsInKit' THEN 10.0 WHEN 'ExploitIsVerified' THEN 8.0
                    WHEN 'ExploitIsPublic' THEN 5.0 WHEN 'NoExploit' THEN 0.0 END"""


def _fields(paths: Sequence[str]) -> str:
    """One JSON parse per row: ``f[1]`` .. ``f[n]`` are the string values of ``paths``."""
    listed = ", ".join(f"'{path}'" for path in paths)
    return f"json_extract_string(raw, [{listed}])"


def _delete(ctx: DeriveContext, table: str) -> None:
    ctx.conn.execute(
        f"""DELETE FROM {table} WHERE org_id = $org AND installation_id = $inst
            AND source_table = $table AND source_id IN (SELECT source_id FROM {ctx.touched})""",
        {"org": ctx.org, "inst": ctx.installation_id, "table": ctx.table},
    )


def _run(ctx: DeriveContext, sql: str) -> None:
    """Execute ``sql`` with the named parameters it uses (DuckDB refuses unused ones)."""
    values = {
        "org": ctx.org,
        "inst": ctx.installation_id,
        "key": ctx.integration_key,
        "table": ctx.table,
        "now": ctx.now,
    }
    ctx.conn.execute(sql, {name: value for name, value in values.items() if f"${name}" in sql})


def _touched_rows(ctx: DeriveContext, paths: Sequence[str]) -> str:
    """This run's records with their fields (``ctx.rows``: the accepted ones as staged, plus landing
    rows that became deleted without being fetched); every deletion among them happened this run."""
    return f"""SELECT source_id, raw, is_deleted, CASE WHEN is_deleted THEN $now END AS deleted_at,
                      {_fields(paths)} AS f
               FROM {ctx.rows}"""


MACHINE_FIELDS = (
    "$.computerDnsName",  # 1
    "$.osPlatform",  # 2
    "$.version",  # 3
    "$.healthStatus",  # 4
    "$.vmMetadata.vmId",  # 5
    "$.firstSeen",  # 6
    "$.lastSeen",  # 7
    "$.lastIpAddress",  # 8
    "$.aadDeviceId",  # 9
)


def machines_to_identities(ctx: DeriveContext) -> None:
    """Defender machines -> ``asset_identities`` (one row per machine id)."""
    _delete(ctx, "asset_identities")
    dns = "lower(nullif(trim(f[1]), ''))"
    _run(
        ctx,
        f"""INSERT INTO asset_identities (org_id, installation_id, integration_key, source_table, source_id, name,
              hostname, fqdn, domain, ip_addresses, mac_addresses, cloud_id, edr_id, os, asset_type, status,
              first_seen, last_seen, is_deleted, updated_at)
            WITH m AS ({_touched_rows(ctx, MACHINE_FIELDS)})
            SELECT $org, $inst, $key, $table, source_id, coalesce(f[1], source_id),
                   nullif(split_part({dns}, '.', 1), ''),
                   CASE WHEN position('.' IN {dns}) > 0 THEN {dns} END,
                   CASE WHEN position('.' IN {dns}) > 0 THEN substr({dns}, position('.' IN {dns}) + 1) END,
                   list_distinct(list_filter(
                       list_prepend(f[8], coalesce(json_extract_string(raw, '$.ipAddresses[*].ipAddress'), [])),
                       ip -> ip IS NOT NULL AND ip <> '' AND ip NOT IN ('127.0.0.1', '::1'))),
                   list_distinct(list_filter(
                       list_transform(coalesce(json_extract_string(raw, '$.ipAddresses[*].macAddress'), []),
                                      mac -> lower(regexp_replace(mac, '[^0-9A-Fa-f]', '', 'g'))),
                       mac -> length(mac) = 12)),
                   nullif(f[5], ''),
                   source_id,
                   nullif(trim(concat_ws(' ', f[2], f[3])), ''),
                   CASE WHEN f[2] ILIKE 'WindowsServer%' THEN 'server' ELSE 'computer' END,
                   CASE WHEN is_deleted THEN 'deleted' WHEN f[4] = 'Inactive' THEN 'inactive' ELSE 'active' END,
                   TRY_CAST(f[6] AS TIMESTAMPTZ), TRY_CAST(f[7] AS TIMESTAMPTZ),
                   is_deleted, $now
            FROM m""",
    )


ALERT_FIELDS = (
    "$.title",  # 1
    "$.category",  # 2
    "$.severity",  # 3
    "$.status",  # 4
    "$.alertCreationTime",  # 5
    "$.lastUpdateTime",  # 6
    "$.resolvedTime",  # 7
    "$.machineId",  # 8
)


def alerts_to_detections(ctx: DeriveContext) -> None:
    """Defender alerts -> ``detections``; the vendor category is kept, the risk register adds its own."""
    _delete(ctx, "detections")
    _run(
        ctx,
        f"""INSERT INTO detections (detection_id, org_id, installation_id, integration_key, source_id, source_table,
              source_asset_id, title, category, severity, status, created_at, updated_at, resolved_at, is_deleted)
            WITH a AS ({_touched_rows(ctx, ALERT_FIELDS)})
            SELECT md5($inst || ':' || source_id), $org, $inst, $key, source_id, $table,
                   nullif(f[8], ''), f[1], f[2], {_ALERT_SEVERITY.format(v="f[3]")},
                   CASE f[4] WHEN 'Resolved' THEN 'resolved' WHEN 'InProgress' THEN 'in_progress' ELSE 'open' END,
                   TRY_CAST(f[5] AS TIMESTAMPTZ), TRY_CAST(f[6] AS TIMESTAMPTZ), TRY_CAST(f[7] AS TIMESTAMPTZ),
                   is_deleted
            FROM a""",
    )


INCIDENT_FIELDS = (
    "$.incidentName",  # 1
    "$.severity",  # 2
    "$.status",  # 3
    "$.assignedTo",  # 4
    "$.createdTime",  # 5
    "$.lastUpdateTime",  # 6
    "$.alerts[0].devices[0].deviceId",  # 7
)


def incidents_to_incidents(ctx: DeriveContext) -> None:
    """Defender XDR incidents -> ``incidents``; the asset is the first alert's first device."""
    _delete(ctx, "incidents")
    _run(
        ctx,
        f"""INSERT INTO incidents (incident_id, org_id, installation_id, integration_key, source_id, source_table,
              number, title, severity, status, assigned_to, opened_at, resolved_at, source_asset_id, is_deleted,
              updated_at)
            WITH i AS ({_touched_rows(ctx, INCIDENT_FIELDS)})
            SELECT md5($inst || ':' || source_id), $org, $inst, $key, source_id, $table,
                   source_id, f[1], {_ALERT_SEVERITY.format(v="f[2]")},
                   CASE f[3] WHEN 'Resolved' THEN 'resolved' WHEN 'InProgress' THEN 'in_progress'
                             WHEN 'Redirected' THEN 'closed' ELSE 'open' END,
                   nullif(f[4], ''), TRY_CAST(f[5] AS TIMESTAMPTZ),
                   CASE WHEN f[3] = 'Resolved' THEN TRY_CAST(f[6] AS TIMESTAMPTZ) END,
                   nullif(f[7], ''), is_deleted, $now
            FROM i""",
    )


VULNERABILITY_FIELDS = (
    "$.deviceId",  # 1
    "$.cveId",  # 2
    "$.softwareVendor",  # 3
    "$.softwareName",  # 4
    "$.softwareVersion",  # 5
    "$.vulnerabilitySeverityLevel",  # 6
    "$.cvssScore",  # 7
    "$.exploitabilityLevel",  # 8
    "$.firstSeenTimestamp",  # 9
    "$.lastSeenTimestamp",  # 10
)


def vulnerabilities_to_findings(ctx: DeriveContext) -> None:
    """Export rows with a CVE -> ``vulnerabilities``; software rows without one stay in landing only.

    A row missing from a later complete export is no longer reported on its device: it becomes
    ``fixed`` (the export is a snapshot of what is vulnerable now).
    """
    _delete(ctx, "vulnerabilities")
    _run(
        ctx,
        f"""INSERT INTO vulnerabilities (finding_id, org_id, installation_id, integration_key, source_id,
              source_table, source_asset_id, cve_ids, vendor_vuln_id, title, severity, cvss_score, exploit_score,
              exploit_available, state, first_found, last_found, fixed_at, is_deleted, updated_at)
            WITH v AS ({_touched_rows(ctx, VULNERABILITY_FIELDS)})
            SELECT md5($inst || ':' || source_id), $org, $inst, $key, source_id, $table,
                   nullif(f[1], ''), [f[2]], f[2],
                   f[2] || ' in ' || concat_ws(' ', f[3], f[4], f[5]),
                   {_VULN_SEVERITY.format(v="f[6]")},
                   TRY_CAST(f[7] AS DOUBLE), {_EXPLOIT_SCORE.format(v="f[8]")},
                   CASE WHEN f[8] IS NULL THEN NULL ELSE f[8] <> 'NoExploit' END,
                   CASE WHEN is_deleted THEN 'fixed' ELSE 'open' END,
                   TRY_CAST(f[9] AS TIMESTAMPTZ), TRY_CAST(f[10] AS TIMESTAMPTZ),
                   CASE WHEN is_deleted THEN coalesce(deleted_at, $now) END,
                   is_deleted, $now
            FROM v WHERE nullif(f[2], '') IS NOT NULL""",
    )
