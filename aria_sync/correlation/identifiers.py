"""Identifier normalisation and junk rules, as SQL over ``asset_identities`` (plus Python twins for tests).

Every identifier of a record becomes one row of ``_corr_values(rid, slot, kind, value, junk)``:
``rid`` numbers the record, ``slot`` numbers its source (installation + source table), ``kind``
is one of :data:`STRONG_KINDS` or :data:`WEAK_KINDS`. Junk values stay in the table (so they can
be reported) but never produce a link.
"""

from __future__ import annotations

import re

import duckdb

# Strongest first: the order in which links are made.
STRONG_KINDS: tuple[str, ...] = ("servicenow_sysid", "bios_uuid", "cloud_id", "serial", "edr_id")
WEAK_KINDS: tuple[str, ...] = ("fqdn", "hostname", "mac")
ALL_KINDS: tuple[str, ...] = STRONG_KINDS + WEAK_KINDS

# Values vendors and BIOS vendors put in a field when they have nothing real (compared upper-case).
PLACEHOLDER_SERIALS: tuple[str, ...] = (
    "TO BE FILLED BY O.E.M.",
    "TO BE FILLED BY OEM",
    "DEFAULT STRING",
    "SYSTEM SERIAL NUMBER",
    "CHASSIS SERIAL NUMBER",
    "SERIAL NUMBER",
    "SERIALNUMBER",
    "NONE",
    "NULL",
    "N/A",
    "NA",
    "NOT SPECIFIED",
    "NOT APPLICABLE",
    "NOT AVAILABLE",
    "UNKNOWN",
    "INVALID",
    "DEFAULT",
    "O.E.M.",
    "OEM",
    "123456789",
    "1234567890",
    "0123456789",
    "12345678",
)
PLACEHOLDER_UUIDS: tuple[str, ...] = (
    "03000200-0400-0500-0006-000700080009",  # a well-known firmware default
    "00020003-0004-0005-0006-000700080009",
)
PLACEHOLDER_HOSTNAMES: tuple[str, ...] = (
    "localhost",
    "localhost.localdomain",
    "unknown",
    "none",
    "null",
    "n/a",
)
# The Windows WAN-miniport / VPN adapter MAC, present on many laptops at once.
PLACEHOLDER_MACS: tuple[str, ...] = ("02004c4f4f50", "000000000000", "ffffffffffff")

_IPV4 = re.compile(r"^[0-9]+(\.[0-9]+){3}$")


def normalise_mac(value: str | None) -> str | None:
    """12 lowercase hex digits, or None when the text is not a MAC address."""
    if value is None:
        return None
    digits = re.sub(r"[^0-9a-fA-F]", "", value).lower()
    return digits if len(digits) == 12 else None


def is_junk_mac(mac: str) -> bool:
    """All-zero, broadcast, multicast or locally administered (random / virtual / VPN) addresses."""
    # The second hex digit carries the multicast (bit 0) and locally-administered (bit 1) flags.
    return mac in PLACEHOLDER_MACS or mac[1] not in "048c" or len(set(mac)) == 1


def is_junk_serial(value: str | None) -> bool:
    """Placeholder serials ("To be filled by O.E.M.", "0", ...), blanks and single repeated characters."""
    if value is None:
        return True
    text = value.strip().upper()
    return not text or text in PLACEHOLDER_SERIALS or len(set(text)) == 1


def short_name(value: str | None) -> str | None:
    """First DNS label, lower case; None for blanks and IP addresses."""
    if value is None:
        return None
    text = value.strip().lower().rstrip(".")
    if not text or _IPV4.match(text):
        return None
    return text.split(".")[0] or None


# SQL twins of the rules above. ``s`` is an upper-cased trimmed serial, ``m`` a 12-digit MAC.
_SQL_SAME_CHAR = "length(replace({v}, left({v}, 1), '')) = 0"
_SQL_IPV4 = r"regexp_matches({v}, '^[0-9]+(\.[0-9]+){{3}}$')"


def _clean_name_sql(column: str) -> str:
    text = f"lower(rtrim(trim({column}), '.'))"
    return f"CASE WHEN {text} = '' OR {_SQL_IPV4.format(v=text)} THEN NULL ELSE {text} END"


def build_identifier_tables(
    conn: duckdb.DuckDBPyConnection, org: str, source_order: list[str], shared_threshold: int
) -> None:
    """Create ``_corr_ids`` (one row per identity, numbered) and ``_corr_values`` (its identifiers).

    ``rid`` follows a fixed order (source precedence, then integration key, source table,
    installation, source id), which makes every later choice deterministic.
    """
    conn.execute("DROP TABLE IF EXISTS _corr_ids")
    conn.execute("DROP TABLE IF EXISTS _corr_values")
    fqdn_any = (
        "coalesce({f}, CASE WHEN contains({h}, '.') THEN {h} END, CASE WHEN contains({n}, '.') THEN {n} END)"
    )
    fq, hn, nm = _clean_name_sql("fqdn"), _clean_name_sql("hostname"), _clean_name_sql("name")
    conn.execute(
        f"""CREATE TEMP TABLE _corr_ids AS
        SELECT (row_number() OVER (ORDER BY coalesce(list_position($order, integration_key), 1000000),
                    integration_key, source_table, installation_id, source_id) - 1)::INTEGER AS rid,
               (dense_rank() OVER (ORDER BY installation_id, source_table) - 1)::INTEGER AS slot,
               org_id, installation_id, integration_key, source_table, source_id,
               coalesce(is_deleted, false) AS is_deleted,
               lower(trim(coalesce(status, ''))) AS status_norm,
               first_seen, last_seen,
               CASE WHEN contains({fqdn_any.format(f=fq, h=hn, n=nm)}, '.')
                    THEN {fqdn_any.format(f=fq, h=hn, n=nm)} END AS n_fqdn,
               nullif(split_part(coalesce({hn}, {fq}, {nm}), '.', 1), '') AS n_hostname,
               upper(trim(serial_number)) AS n_serial,
               lower(trim(bios_uuid)) AS n_bios,
               lower(trim(servicenow_sysid)) AS n_sysid,
               lower(trim(cloud_id)) AS n_cloud,
               lower(trim(edr_id)) AS n_edr,
               list_distinct(list_filter(
                   list_transform(coalesce(mac_addresses, []),
                                  m -> lower(regexp_replace(m, '[^0-9A-Fa-f]', '', 'g'))),
                   m -> length(m) = 12)) AS n_macs
        FROM asset_identities WHERE org_id = $org""",
        {"org": org, "order": source_order},
    )
    conn.execute(
        f"""CREATE TEMP TABLE _corr_values AS
        WITH long AS (
            SELECT rid, slot, 'servicenow_sysid' AS kind, n_sysid AS value FROM _corr_ids WHERE n_sysid <> ''
            UNION ALL SELECT rid, slot, 'bios_uuid', n_bios FROM _corr_ids WHERE n_bios <> ''
            UNION ALL SELECT rid, slot, 'cloud_id', n_cloud FROM _corr_ids WHERE n_cloud <> ''
            UNION ALL SELECT rid, slot, 'serial', n_serial FROM _corr_ids WHERE n_serial <> ''
            UNION ALL SELECT rid, slot, 'edr_id', n_edr FROM _corr_ids WHERE n_edr <> ''
            UNION ALL SELECT rid, slot, 'fqdn', n_fqdn FROM _corr_ids WHERE n_fqdn IS NOT NULL
            UNION ALL SELECT rid, slot, 'hostname', n_hostname FROM _corr_ids WHERE n_hostname IS NOT NULL
            UNION ALL SELECT rid, slot, 'mac', unnest(n_macs) FROM _corr_ids WHERE len(n_macs) > 0
        ), counted AS (
            SELECT *, count(*) OVER (PARTITION BY slot, kind, value) AS slot_count FROM long
        )
        SELECT rid, slot, kind, value, slot_count,
               CASE
                 WHEN kind = 'serial' AND (list_contains($serials, value) OR {_SQL_SAME_CHAR.format(v="value")})
                   THEN 'placeholder'
                 WHEN kind IN ('bios_uuid', 'cloud_id', 'servicenow_sysid', 'edr_id')
                      AND (list_contains($uuids, value)
                           OR {_SQL_SAME_CHAR.format(v="replace(value, '-', '')")}) THEN 'placeholder'
                 WHEN kind IN ('fqdn', 'hostname') AND list_contains($hosts, value) THEN 'placeholder'
                 WHEN kind = 'mac' AND (list_contains($macs, value) OR substr(value, 2, 1) NOT IN ('0', '4', '8', 'c')
                                         OR {_SQL_SAME_CHAR.format(v="value")}) THEN 'placeholder'
                 WHEN slot_count > $threshold THEN 'shared'
               END AS junk
        FROM counted""",
        {
            "serials": list(PLACEHOLDER_SERIALS),
            "uuids": list(PLACEHOLDER_UUIDS),
            "hosts": list(PLACEHOLDER_HOSTNAMES),
            "macs": list(PLACEHOLDER_MACS),
            "threshold": shared_threshold,
        },
    )


def record_quality_findings(
    conn: duckdb.DuckDBPyConnection, org: str, now: object, shared_threshold: int
) -> None:
    """Replace this organisation's identifier findings with those of the current run.

    A junk value carried by more than ``shared_threshold`` records of one source is reported as
    ``shared_identifier``; rarer placeholders as ``placeholder_identifier``.
    """
    conn.execute(
        "DELETE FROM data_quality_findings WHERE org_id = ? AND kind IN ('shared_identifier', 'placeholder_identifier')",
        [org],
    )
    conn.execute(
        """INSERT INTO data_quality_findings (org_id, installation_id, integration_key, source_table, kind,
                                              identifier, value, record_count, detail, detected_at)
        SELECT ?, i.installation_id, any_value(i.integration_key), i.source_table,
               CASE WHEN count(*) > ? THEN 'shared_identifier' ELSE 'placeholder_identifier' END,
               v.kind, v.value, count(*)::INTEGER,
               CASE WHEN any_value(v.junk) = 'placeholder' THEN 'placeholder value; never used to link'
                    ELSE 'value shared by many records of one source; never used to link' END, ?
        FROM _corr_values v JOIN _corr_ids i USING (rid)
        WHERE v.junk IS NOT NULL
        GROUP BY i.installation_id, i.source_table, v.kind, v.value
        ORDER BY i.installation_id, i.source_table, v.kind, v.value""",
        [org, shared_threshold, now],
    )
