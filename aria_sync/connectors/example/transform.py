"""Pure transforms: SQL over the records this job touched (``ctx.rows``) into ARIA tables."""

from __future__ import annotations

from aria_sync.connectors.base import DeriveContext


def devices_to_identities(ctx: DeriveContext) -> None:
    ctx.conn.execute(
        f"""DELETE FROM asset_identities WHERE org_id = $org AND installation_id = $inst
            AND source_id IN (SELECT source_id FROM {ctx.touched})""",
        {"org": ctx.org, "inst": ctx.installation_id},
    )
    ctx.conn.execute(
        f"""INSERT INTO asset_identities (org_id, installation_id, integration_key, source_table, source_id, name,
              hostname, fqdn, ip_addresses, mac_addresses, serial_number, os, asset_type, status, last_seen,
              is_deleted, updated_at)
            SELECT $org, $inst, $key, $table, l.source_id, l.raw->>'$.name', lower(l.raw->>'$.name'),
                   lower(l.raw->>'$.fqdn'), CASE WHEN l.raw->>'$.ip' IS NULL THEN [] ELSE [l.raw->>'$.ip'] END,
                   [], l.raw->>'$.serial', l.raw->>'$.os', 'computer', 'active',
                   TRY_CAST(l.raw->>'$.updated_at' AS TIMESTAMPTZ), l.is_deleted, $now
            FROM {ctx.rows} l""",
        {
            "org": ctx.org,
            "inst": ctx.installation_id,
            "key": ctx.integration_key,
            "table": ctx.table,
            "now": ctx.now,
        },
    )
