"""Cross-source correlation: every ``asset_identities`` row becomes, or joins, exactly one ARIA asset.

The heavy work is SQL (normalisation, junk detection, uniqueness counts, candidate pairs by equal
identifier); Python only runs a union-find over the candidate links and picks stable asset ids.
See docs/correlation.md for the rules.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter, deque

import duckdb
import numpy as np
import pyarrow as pa

from aria_sync.correlation.graph import LinkGraph
from aria_sync.correlation.identifiers import (
    PLACEHOLDER_HOSTNAMES,
    STRONG_KINDS,
    WEAK_KINDS,
    build_identifier_tables,
    record_quality_findings,
)
from aria_sync.correlation.policy import DEFAULT_POLICY, PRECEDENCE_FIELDS, CorrelationPolicy
from aria_sync.errors import StoreError
from aria_sync.store.db import parse_size

# The large estate (300,000 records) peaks near 2 GB RSS with DuckDB's default limit; it needs far less.
MEMORY_LIMIT_BYTES = 1024 * 2**20
ASSET_NAMESPACE = uuid.UUID("6f1d3c52-9a47-4f0e-9d1b-2b7c8e0a5a10")
INACTIVE_STATUSES = ("inactive", "retired", "offboarded", "stale", "decommissioned")
CONFLICT_KINDS = ("servicenow_sysid", "bios_uuid", "cloud_id", "serial", "fqdn", "hostname")
REIMAGE = "reimage"
_EDGE_BATCH = 65_536
# Assets aggregated per statement: the aggregate's per-asset lists and JSON cannot spill to disk,
# so one statement over every asset of a large estate is the run's peak.
ASSETS_PER_CHUNK = 25_000
# What asset_sources.matched_on says for each kind of link.
MATCHED_ON = {
    "servicenow_sysid": "servicenow_sysid",
    "bios_uuid": "bios_uuid",
    "cloud_id": "cloud_id",
    "serial": "serial",
    "edr_id": "edr_id",
    REIMAGE: "hostname (re-imaged EDR device)",
    "fqdn": "fqdn (unique both sides)",
    "hostname": "hostname (unique both sides)",
    "mac": "mac (unique both sides)",
}
LINK_ORDER: tuple[str, ...] = (*STRONG_KINDS, REIMAGE, *WEAK_KINDS)
_STRONG_CHECKS = ("servicenow_sysid", "bios_uuid", "cloud_id", "serial")
# (identifier kinds that must not contradict, whether one source may not appear twice) per link kind.
_LINK_RULES: dict[str, tuple[tuple[str, ...], bool]] = {
    **{kind: (_STRONG_CHECKS, False) for kind in STRONG_KINDS},
    REIMAGE: (_STRONG_CHECKS, False),
    "fqdn": (_STRONG_CHECKS, True),
    "hostname": ((*_STRONG_CHECKS, "fqdn"), True),
    "mac": ((*_STRONG_CHECKS, "fqdn", "hostname"), True),
}


def asset_id_for(org: str, installation_id: str, source_table: str, source_id: str) -> str:
    """The id of an asset founded by this record: stable across runs and databases of one installation."""
    return str(uuid.uuid5(ASSET_NAMESPACE, "\x1f".join((org, installation_id, source_table, source_id))))


def correlate(
    conn: duckdb.DuckDBPyConnection,
    org: str,
    now: dt.datetime,
    policy: CorrelationPolicy = DEFAULT_POLICY,
) -> None:
    """Rebuild this organisation's assets and asset_sources inside the caller's write transaction."""
    previous_limit = _cap_memory(conn)
    try:
        _correlate(conn, org, now, policy)
    finally:
        if previous_limit is not None:
            conn.execute(f"SET memory_limit = '{previous_limit}'")


def _cap_memory(conn: duckdb.DuckDBPyConnection) -> str | None:
    """Lower DuckDB's memory limit to MEMORY_LIMIT for the run (it spills to disk beyond); the old value."""
    current = str(_scalar(conn, "SELECT current_setting('memory_limit')") or "")
    try:
        current_bytes = parse_size(current)
    except StoreError:
        return None
    if current_bytes <= MEMORY_LIMIT_BYTES:
        return None
    conn.execute(f"SET memory_limit = '{MEMORY_LIMIT_BYTES // 2**20}MiB'")
    return current.replace(" ", "")


def _correlate(
    conn: duckdb.DuckDBPyConnection, org: str, now: dt.datetime, policy: CorrelationPolicy
) -> None:
    source_order = _source_order(conn, org, policy)
    build_identifier_tables(conn, org, source_order, policy.shared_identifier_threshold)
    record_quality_findings(conn, org, now, policy.shared_identifier_threshold)
    _build_reimage_pairs(conn, policy)
    record_count = int(str(_scalar(conn, "SELECT count(*) FROM _corr_ids")))
    graph = _link(conn, record_count)
    asset_of, matched_on = _assign(conn, org, graph, record_count, policy)
    del graph  # the union-find is the largest Python structure; the writes below do not need it
    _write_sources(conn, org, now, asset_of, matched_on)
    _write_assets(conn, org, now, policy)
    _link_findings(conn, org)
    for table in ("_corr_ids", "_corr_values", "_corr_reimage", "_corr_prev", "_corr_result", "_corr_good"):
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def _scalar(conn: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> object:
    row = conn.execute(sql, params or []).fetchone()
    return row[0] if row else None


def _source_order(conn: duckdb.DuckDBPyConnection, org: str, policy: CorrelationPolicy) -> list[str]:
    present = [
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT integration_key FROM asset_identities WHERE org_id = ? ORDER BY 1", [org]
        ).fetchall()
    ]
    ordered = [key for key in policy.source_order if key in present]
    return ordered + [key for key in present if key not in ordered]


def _build_reimage_pairs(conn: duckdb.DuckDBPyConnection, policy: CorrelationPolicy) -> None:
    """Two live records of one EDR source with one name, one of them Inactive or older: a re-imaged machine."""
    conn.execute(
        """CREATE OR REPLACE TEMP TABLE _corr_reimage AS
        WITH keyed AS (
            SELECT rid, slot, status_norm, first_seen, last_seen, coalesce(n_fqdn, n_hostname) AS name_key
            FROM _corr_ids
            WHERE NOT is_deleted AND list_contains($edr, integration_key)
              AND coalesce(n_fqdn, n_hostname) IS NOT NULL AND NOT list_contains($hosts, coalesce(n_fqdn, n_hostname))
        )
        SELECT min(rid) AS a, max(rid) AS b FROM keyed
        GROUP BY slot, name_key
        HAVING count(*) = 2
           AND (bool_or(list_contains($inactive, status_norm)) OR min(last_seen) <= max(first_seen))""",
        {
            "edr": list(policy.edr_sources),
            "hosts": list(PLACEHOLDER_HOSTNAMES),
            "inactive": list(INACTIVE_STATUSES),
        },
    )


def _candidate_edges(conn: duckdb.DuckDBPyConnection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rid, rid, link kind index) columns in the order links are tried: strongest kind first, then by rid."""
    columns = conn.execute(
        """WITH strong AS (
            SELECT kind, value, rid, min(rid) OVER (PARTITION BY kind, value) AS anchor
            FROM _corr_values WHERE junk IS NULL AND list_contains($strong, kind)
        ), grouped AS (
            SELECT b AS rid, a AS ugroup FROM _corr_reimage
        ), eligible AS (
            SELECT v.rid, v.slot, v.kind, v.value, coalesce(g.ugroup, v.rid) AS ugroup
            FROM _corr_values v JOIN _corr_ids i USING (rid) LEFT JOIN grouped g USING (rid)
            WHERE v.junk IS NULL AND list_contains($weak, v.kind) AND NOT i.is_deleted
        ), unique_in_source AS (
            SELECT kind, value, slot FROM eligible GROUP BY kind, value, slot HAVING count(DISTINCT ugroup) = 1
        ), weak AS (
            SELECT e.kind, e.value, e.rid, e.slot FROM eligible e JOIN unique_in_source u USING (kind, value, slot)
        ), weak_linked AS (
            SELECT kind, value, rid, min(rid) OVER (PARTITION BY kind, value) AS anchor,
                   count(DISTINCT slot) OVER (PARTITION BY kind, value) AS sources
            FROM weak
        ), edges AS (
            SELECT anchor AS a, rid AS b, list_position($order, kind) - 1 AS k FROM strong WHERE rid <> anchor
            UNION ALL SELECT a, b, list_position($order, 'reimage') - 1 FROM _corr_reimage
            UNION ALL SELECT anchor, rid, list_position($order, kind) - 1 FROM weak_linked
                      WHERE rid <> anchor AND sources >= 2
        )
        SELECT a::INTEGER AS a, b::INTEGER AS b, k::TINYINT AS k FROM edges ORDER BY k, a, b""",
        {"strong": list(STRONG_KINDS), "weak": list(WEAK_KINDS), "order": list(LINK_ORDER)},
    ).fetchnumpy()
    return columns["a"], columns["b"], columns["k"]


def _link(conn: duckdb.DuckDBPyConnection, record_count: int) -> LinkGraph:
    # rids are 0..n-1, so the slots ordered by rid are the slot of each rid.
    slots = conn.execute("SELECT slot FROM _corr_ids ORDER BY rid").fetchnumpy()["slot"]
    graph = LinkGraph(slots.tolist(), CONFLICT_KINDS)
    del slots
    for kind in CONFLICT_KINDS:
        # One kind at a time keeps only one kind's value codes in memory; a record has one value per kind.
        values = conn.execute(
            """SELECT rid, (dense_rank() OVER (ORDER BY value))::INTEGER AS code
               FROM _corr_values WHERE junk IS NULL AND kind = ?""",
            [kind],
        ).fetchnumpy()
        for rid, code in zip(values["rid"].tolist(), values["code"].tolist(), strict=True):
            graph.set_value(rid, kind, code)
        del values
    overridden = {
        int(r[0])
        for r in conn.execute(
            """SELECT i.rid FROM asset_link_overrides o JOIN _corr_ids i
                 ON i.org_id = o.org_id AND i.installation_id = o.installation_id
                AND i.source_table = o.source_table AND i.source_id = o.source_id
               WHERE o.active"""
        ).fetchall()
    }
    rules = [_LINK_RULES[kind] for kind in LINK_ORDER]
    anchors, rids, kinds = _candidate_edges(conn)
    # Python ints for a slice at a time: the whole edge list as objects would cost ~100 bytes per edge.
    for start in range(0, len(kinds), _EDGE_BATCH):
        stop = start + _EDGE_BATCH
        batch = zip(
            anchors[start:stop].tolist(), rids[start:stop].tolist(), kinds[start:stop].tolist(), strict=True
        )
        for a, b, kind in batch:
            if a in overridden or b in overridden:
                continue  # a manual decision replaces every automatic link of the record
            checks, check_slots = rules[kind]
            graph.link(a, b, kind, checks, check_slots)
    return graph


def _assign(
    conn: duckdb.DuckDBPyConnection, org: str, graph: LinkGraph, record_count: int, policy: CorrelationPolicy
) -> tuple[list[str | None], list[str | None]]:
    """Asset id and matched_on per rid, reusing previous ids where the previous mapping still holds."""
    conn.execute(
        """CREATE OR REPLACE TEMP TABLE _corr_prev AS
           SELECT i.rid, any_value(s.asset_id) AS asset_id, any_value(s.matched_on) AS matched_on,
                  any_value(s.linked_at) AS linked_at
           FROM asset_sources s JOIN _corr_ids i ON i.installation_id = s.installation_id
             AND i.source_table = s.source_table AND i.source_id = s.source_id
           WHERE s.org_id = ? GROUP BY i.rid""",
        [org],
    )
    prev_asset: dict[int, str] = {}
    prev_founder: set[int] = set()
    prev_matched: dict[int, str] = {}
    # One str object per distinct value instead of one per row: an asset id repeats for each record.
    shared: dict[str, str] = {}
    previous = conn.execute("SELECT rid, asset_id, matched_on FROM _corr_prev ORDER BY rid").fetchnumpy()
    for rid, asset_id, matched in zip(
        previous["rid"].tolist(), previous["asset_id"].tolist(), previous["matched_on"].tolist(), strict=True
    ):
        prev_asset[rid] = shared.setdefault(asset_id, asset_id)
        prev_matched[rid] = shared.setdefault(matched, matched)
        if matched == "created":
            prev_founder.add(rid)
    del previous, shared
    records = _RecordInfo(conn)
    overrides: dict[int, tuple[str, str | None]] = {}
    for rid, action, target in conn.execute(
        """SELECT i.rid, o.action, o.target_asset_id FROM asset_link_overrides o JOIN _corr_ids i
             ON i.org_id = o.org_id AND i.installation_id = o.installation_id
            AND i.source_table = o.source_table AND i.source_id = o.source_id
           WHERE o.active ORDER BY o.created_at, o.override_id"""
    ).fetchall():
        overrides[rid] = (action, target)  # the latest active decision wins

    may_create = [policy.can_create(key) for key in records.keys]
    asset_of: list[str | None] = [None] * record_count
    matched_on: list[str | None] = [None] * record_count
    founder_of: dict[str, int] = {}
    claimed: set[str] = set()
    components = sorted(graph.components().values(), key=lambda members: members[0])

    def claim(members: list[int], asset_id: str, founder: int) -> None:
        claimed.add(asset_id)
        founder_of[asset_id] = founder
        for rid in members:
            asset_of[rid] = asset_id

    deleted = records.is_deleted
    live = [
        m for m in components if not (len(m) == 1 and m[0] in overrides) and not all(deleted[r] for r in m)
    ]
    dead = [m for m in components if not (len(m) == 1 and m[0] in overrides) and all(deleted[r] for r in m)]

    def founded_before(members: list[int]) -> bool:
        founder = next((r for r in members if r in prev_founder and prev_asset[r] not in claimed), None)
        if founder is not None:
            claim(members, prev_asset[founder], founder)
        return founder is not None

    def assign_fresh(members: list[int]) -> None:
        votes = Counter(prev_asset[r] for r in members if r in prev_asset and prev_asset[r] not in claimed)
        creators = [r for r in members if may_create[records.key_index[r]]]
        if not creators:
            return  # only sources that may not create assets: they wait for a record to join
        if votes:
            best = max(votes.values())
            asset_id = next(prev_asset[r] for r in members if votes.get(prev_asset.get(r, ""), 0) == best)
        else:
            asset_id = _fresh_id(org, records.identity(creators[0]), claimed)
        claim(members, asset_id, creators[0])

    # Live components choose first, so a deleted founder never takes the id from the live records.
    pending = [members for members in live if not founded_before(members)]
    for members in pending:  # else the id most of its members had, else a new one
        assign_fresh(members)
    for members in dead:  # deleted records keep the asset they were linked to
        rest = []
        for rid in members:
            if rid in prev_asset and prev_asset[rid] in claimed:
                asset_of[rid], matched_on[rid] = prev_asset[rid], prev_matched[rid]
            else:
                rest.append(rid)
        if rest and not founded_before(rest):
            assign_fresh(rest)
    for rid, (action, target) in overrides.items():
        if action == "link" and target:
            asset_of[rid], matched_on[rid] = target, "manual"
            if target not in claimed:
                claim([rid], target, rid)
        else:
            installation_id, source_table, source_id = records.identity(rid)
            own = asset_id_for(org, installation_id, source_table, "unlinked:" + source_id)
            claim([rid], own, rid)
            matched_on[rid] = "manual"
    _explain(graph, asset_of, matched_on, founder_of)
    return asset_of, matched_on


def _fresh_id(org: str, identity: tuple[str, str, str], claimed: set[str]) -> str:
    installation_id, source_table, source_id = identity
    asset_id = asset_id_for(org, installation_id, source_table, source_id)
    suffix = 1
    while asset_id in claimed:  # only when an old mapping already took this id for another machine
        asset_id = asset_id_for(org, installation_id, source_table, f"{source_id}#{suffix}")
        suffix += 1
    return asset_id


class _RecordInfo:
    """Per-rid facts the id assignment needs, held compactly (no Python tuple per record).

    ``slot`` stands for (installation, source table) and ``key_index`` for the integration key, so
    only the source ids are kept as text, in one Arrow buffer, and turned into ``str`` on demand.
    """

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.slot_identity: dict[int, tuple[str, str]] = {
            int(slot): (str(installation_id), str(source_table))
            for slot, installation_id, source_table in conn.execute(
                "SELECT DISTINCT slot, installation_id, source_table FROM _corr_ids"
            ).fetchall()
        }
        self.keys: list[str] = [
            str(r[0])
            for r in conn.execute("SELECT DISTINCT integration_key FROM _corr_ids ORDER BY 1").fetchall()
        ]
        columns = conn.execute(
            """SELECT slot, is_deleted, (list_position($keys, integration_key) - 1)::INTEGER AS key_index
               FROM _corr_ids ORDER BY rid""",
            {"keys": self.keys},
        ).fetchnumpy()
        self.slots: list[int] = columns["slot"].tolist()
        self.is_deleted: list[bool] = columns["is_deleted"].tolist()
        self.key_index: list[int] = columns["key_index"].tolist()
        del columns
        self._source_ids = (
            conn.execute("SELECT source_id FROM _corr_ids ORDER BY rid")
            .fetch_arrow_table()
            .column(0)
            .combine_chunks()
        )

    def identity(self, rid: int) -> tuple[str, str, str]:
        """(installation id, source table, source id) of one record."""
        installation_id, source_table = self.slot_identity[self.slots[rid]]
        return installation_id, source_table, str(self._source_ids[rid].as_py())


def _explain(
    graph: LinkGraph, asset_of: list[str | None], matched_on: list[str | None], founder_of: dict[str, int]
) -> None:
    """matched_on for every linked record: the link that connects it towards its asset's founder."""
    adjacency: dict[int, list[tuple[int, int]]] = {}
    for a, b, kind in graph.tree_edges:
        adjacency.setdefault(a, []).append((b, kind))
        adjacency.setdefault(b, []).append((a, kind))
    for asset_id, founder in founder_of.items():
        if matched_on[founder] is None:
            matched_on[founder] = "created"
        queue = deque([founder])
        seen = {founder}
        while queue:
            current = queue.popleft()
            for neighbour, kind in adjacency.get(current, ()):
                if neighbour in seen or asset_of[neighbour] != asset_id:
                    continue
                seen.add(neighbour)
                if matched_on[neighbour] is None:
                    matched_on[neighbour] = MATCHED_ON[LINK_ORDER[kind]]
                queue.append(neighbour)
    for rid, assigned in enumerate(asset_of):
        if assigned is not None and matched_on[rid] is None:
            matched_on[rid] = "created"


def _write_sources(
    conn: duckdb.DuckDBPyConnection,
    org: str,
    now: dt.datetime,
    asset_of: list[str | None],
    matched_on: list[str | None],
) -> None:
    result = pa.table(
        {
            "rid": pa.array(range(len(asset_of)), pa.int32()),
            "asset_id": pa.array(asset_of, pa.string()),
            "matched_on": pa.array(matched_on, pa.string()),
        }
    )
    conn.register("_corr_result_view", result)
    # ``chunk`` splits the assets, in asset id order, into the slices _write_assets aggregates one at a time.
    conn.execute(
        """CREATE OR REPLACE TEMP TABLE _corr_result AS
           SELECT rid, asset_id, matched_on,
                  ((dense_rank() OVER (ORDER BY asset_id) - 1) // $chunk)::INTEGER AS chunk
           FROM _corr_result_view WHERE asset_id IS NOT NULL""",
        {"chunk": ASSETS_PER_CHUNK},
    )
    conn.unregister("_corr_result_view")
    conn.execute("DELETE FROM asset_sources WHERE org_id = ?", [org])
    conn.execute(
        """INSERT INTO asset_sources (org_id, asset_id, installation_id, integration_key, source_table, source_id,
                                      matched_on, last_seen, is_deleted, linked_at)
           SELECT ?, r.asset_id, i.installation_id, i.integration_key, i.source_table, i.source_id, r.matched_on,
                  i.last_seen, i.is_deleted,
                  CASE WHEN p.asset_id = r.asset_id AND p.matched_on = r.matched_on THEN p.linked_at ELSE ? END
           FROM _corr_result r JOIN _corr_ids i USING (rid) LEFT JOIN _corr_prev p USING (rid)
           ORDER BY r.asset_id, i.rid""",
        [org, now],
    )


def _precedence_sql(field: str, value: str) -> tuple[str, str]:
    # Live before deleted, then the policy's rank (< 1024), then rid (< 2^31), packed into one BIGINT:
    # the same order as comparing the three as a struct, at a fraction of the cost per row.
    rank = f"coalesce(list_position($p_{field}, i.integration_key), 1000)"
    key = f"((i.is_deleted::BIGINT << 42) | ({rank}::BIGINT << 32) | i.rid::BIGINT)"
    guard = f"FILTER (WHERE {value} IS NOT NULL)"
    return f"arg_min({value}, {key}) {guard}", f"arg_min(i.integration_key, {key}) {guard}"


_FIELD_VALUES = {
    "name": "nullif(trim(i.name), '')",
    "hostname": "i.n_hostname",
    "fqdn": "i.n_fqdn",
    "serial_number": "CASE WHEN i.good_serial THEN nullif(trim(i.serial_number), '') END",
    "os": "nullif(trim(i.os), '')",
    "asset_type": "nullif(trim(i.asset_type), '')",
    "owner": "nullif(trim(i.owner), '')",
    "service_id": "nullif(trim(i.service_ref), '')",
    "criticality": "nullif(trim(i.criticality), '')",
    "status": "nullif(trim(i.status), '')",
}


def _write_assets(
    conn: duckdb.DuckDBPyConnection, org: str, now: dt.datetime, policy: CorrelationPolicy
) -> None:
    picks, sources = [], []
    for field in PRECEDENCE_FIELDS:
        value_sql, source_sql = _precedence_sql(field, _FIELD_VALUES[field])
        picks.append(f"{value_sql} AS {field}")
        sources.append(f"'{field}', {source_sql}")
    params: dict[str, object] = {f"p_{field}": policy.precedence(field) for field in PRECEDENCE_FIELDS}
    params.update(org=org, now=now)
    conn.execute("DELETE FROM assets WHERE org_id = $org", {"org": org})
    chunks = int(str(_scalar(conn, "SELECT coalesce(max(chunk) + 1, 0) FROM _corr_result")))
    # Once for all slices: each record's usable MACs and whether its serial may be shown.
    conn.execute(
        """CREATE OR REPLACE TEMP TABLE _corr_good AS
           SELECT rid, list(value ORDER BY value) FILTER (WHERE kind = 'mac') AS macs,
                  bool_or(kind = 'serial') AS good_serial
           FROM _corr_values WHERE junk IS NULL AND kind IN ('mac', 'serial') GROUP BY rid"""
    )
    insert = f"""INSERT INTO assets (asset_id, org_id, name, hostname, fqdn, ip_addresses, mac_addresses, serial_number, os,
                                asset_type, owner, service_id, criticality, status, first_seen, last_seen, sources,
                                field_sources, updated_at)
        WITH members AS (
            SELECT r.asset_id, i.*, a.name, a.serial_number, a.os, a.asset_type, a.owner, a.criticality, a.status,
                   coalesce(sv_map.service_id, a.service_id) AS service_ref,
                   coalesce(a.ip_addresses, []) AS ips, coalesce(g.macs, []) AS macs, g.good_serial
            FROM (SELECT rid, asset_id FROM _corr_result WHERE chunk = $chunk) r JOIN _corr_ids i USING (rid)
            LEFT JOIN _corr_good g ON g.rid = i.rid
            JOIN asset_identities a ON a.org_id = $org AND a.installation_id = i.installation_id
             AND a.source_table = i.source_table AND a.source_id = i.source_id
            LEFT JOIN services sv_map ON sv_map.org_id = $org AND sv_map.installation_id = i.installation_id
             AND sv_map.source_id = a.service_id
        ), picked AS (
            SELECT i.asset_id, {", ".join(picks)},
                   list_sort(list_distinct(flatten(list(i.ips)))) AS ip_addresses,
                   list_sort(list_distinct(flatten(list(i.macs)))) AS mac_addresses,
                   min(i.first_seen) AS first_seen, max(i.last_seen) AS last_seen,
                   list_sort(list_distinct(list(i.integration_key))) AS sources,
                   bool_and(i.is_deleted) AS all_deleted,
                   json_object({", ".join(sources)},
                               'first_seen', arg_min(i.integration_key, i.first_seen),
                               'last_seen', arg_max(i.integration_key, i.last_seen),
                               'ip_addresses', list_sort(list_distinct(list(i.integration_key) FILTER (WHERE len(i.ips) > 0))),
                               'mac_addresses', list_sort(list_distinct(list(i.integration_key) FILTER (WHERE len(i.macs) > 0)))
                   ) AS field_sources
            FROM members i
            GROUP BY i.asset_id
        )
        SELECT asset_id, $org, name, hostname, fqdn, ip_addresses, mac_addresses, serial_number, os, asset_type, owner,
               service_id, criticality, CASE WHEN all_deleted THEN 'deleted' ELSE status END, first_seen, last_seen,
               sources, field_sources, $now
        FROM picked ORDER BY asset_id"""
    # Slices go in asset id order, so the table is written in the same order as by one statement.
    for chunk in range(chunks):
        conn.execute(insert, {**params, "chunk": chunk})
    # CMDB relationships give the business service when no record names one.
    conn.execute(
        """UPDATE assets AS a SET service_id = x.service_id,
               field_sources = json_merge_patch(a.field_sources, json_object('service_id', 'service_assets'))
           FROM (
               SELECT s.asset_id, arg_min(sv.service_id, {'rank': coalesce(
                          CASE WHEN lower(sv.criticality) LIKE '1%' OR lower(sv.criticality) LIKE '%most critical%'
                                 OR lower(sv.criticality) = 'critical' THEN 1
                               WHEN lower(sv.criticality) LIKE '2%' OR lower(sv.criticality) = 'high' THEN 2
                               WHEN lower(sv.criticality) LIKE '3%' OR lower(sv.criticality) = 'medium' THEN 3
                               WHEN lower(sv.criticality) LIKE '4%' OR lower(sv.criticality) = 'low' THEN 4 END, 9),
                          'id': sv.service_id}) AS service_id
               FROM service_assets sa
               JOIN asset_sources s ON s.org_id = sa.org_id AND s.installation_id = sa.installation_id
                AND s.source_id = sa.asset_source_id
               JOIN services sv ON sv.org_id = sa.org_id AND sv.installation_id = sa.installation_id
                AND sv.source_id = sa.service_source_id AND NOT coalesce(sv.is_deleted, false)
               WHERE sa.org_id = ?
               GROUP BY s.asset_id
           ) x
           WHERE a.org_id = ? AND a.asset_id = x.asset_id AND a.service_id IS NULL""",
        [org, org],
    )


def _link_findings(conn: duckdb.DuckDBPyConnection, org: str) -> None:
    """Point findings, detections and incidents at the asset their vendor asset record joined."""
    for table in ("vulnerabilities", "detections", "incidents"):
        conn.execute(
            f"""UPDATE {table} AS t SET asset_id = s.asset_id
                FROM (SELECT installation_id, source_id, min(asset_id) AS asset_id FROM asset_sources
                      WHERE org_id = $org GROUP BY installation_id, source_id) s
                WHERE t.org_id = $org AND s.installation_id = t.installation_id AND s.source_id = t.source_asset_id
                  AND t.asset_id IS DISTINCT FROM s.asset_id""",
            {"org": org},
        )
        conn.execute(
            f"""UPDATE {table} AS t SET asset_id = NULL
                WHERE t.org_id = $org AND t.asset_id IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM asset_sources s WHERE s.org_id = $org AND s.installation_id = t.installation_id
                      AND s.source_id = t.source_asset_id)""",
            {"org": org},
        )
    conn.execute(
        """UPDATE incidents AS t SET service_id = sv.service_id FROM services sv
           WHERE t.org_id = ? AND sv.org_id = t.org_id AND sv.installation_id = t.installation_id
             AND sv.source_id = t.source_service_id AND t.service_id IS DISTINCT FROM sv.service_id""",
        [org],
    )
