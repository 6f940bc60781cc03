"""The asset inventory: ARIA assets, the vendor records behind each one, and which tools see it."""

from __future__ import annotations

import pandas as pd

from aria_sync.analysis._context import DbArg, OneOrMany, Query, quote_identifier, scoped_read

_ASSET_COLUMNS = (
    "asset_id, name, hostname, fqdn, ip_addresses, mac_addresses, serial_number, os, asset_type, owner, "
    "service_id, criticality, status, sources, first_seen, last_seen"
)


def _assets_query(search: str | None, source: OneOrMany, status: OneOrMany) -> Query:
    query = Query(_ASSET_COLUMNS, "assets", order_by="lower(name) NULLS LAST, asset_id")
    if search:
        # Substring match over every identifier a person might type, addresses included.
        query.add(
            "contains(lower(concat_ws(' ', name, hostname, fqdn, serial_number, owner, asset_id, "
            "array_to_string(ip_addresses, ' '), array_to_string(mac_addresses, ' '))), $needle)",
            needle=search.lower(),
        )
    if source is not None:
        sources = [source] if isinstance(source, str) else list(source)
        query.add("len(list_intersect(sources, $sources::VARCHAR[])) > 0", sources=sources)
    query.equals("status", "status", status)
    return query


def assets(
    search: str | None = None,
    source: OneOrMany = None,
    status: OneOrMany = None,
    *,
    limit: int | None = None,
    offset: int = 0,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """ARIA assets (one row per correlated machine), ordered by name.

    ``search`` matches name, hostname, FQDN, serial, owner, IP or MAC; ``source`` keeps assets seen
    by that integration key (or any of several); ``status`` keeps one status or several.

    Example::

        >>> import aria_sync as aria
        >>> aria.assets(search="web", source="ms-defender", limit=20)  # doctest: +SKIP
    """
    query = _assets_query(search, source, status)
    with scoped_read(db, org) as conn:
        return query.frame(conn, limit, offset)


def count_assets(
    search: str | None = None,
    source: OneOrMany = None,
    status: OneOrMany = None,
    *,
    db: DbArg = None,
    org: str | None = None,
) -> int:
    """How many assets :func:`assets` returns with the same filters (for page counts).

    Example::

        >>> aria.count_assets(status="active")  # doctest: +SKIP
        1204
    """
    query = _assets_query(search, source, status)
    with scoped_read(db, org) as conn:
        return query.count(conn)


def asset_sources(
    asset_id: str | None = None,
    *,
    integration: OneOrMany = None,
    limit: int | None = None,
    offset: int = 0,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """The vendor records linked to assets: which installation, which record, matched on what.

    Example::

        >>> aria.asset_sources(asset_id="3f2a...")  # doctest: +SKIP
    """
    query = Query(
        "s.asset_id, s.integration_key, s.installation_id, i.name AS installation_name, s.source_table, "
        "s.source_id, s.matched_on, s.last_seen, s.is_deleted, s.linked_at",
        "asset_sources s LEFT JOIN integration_installations i ON i.installation_id = s.installation_id",
        order_by="s.asset_id, s.integration_key, s.source_id",
    )
    if asset_id is not None:
        query.add("s.asset_id = $asset_id", asset_id=asset_id)
    query.equals("s.integration_key", "integration", integration)
    with scoped_read(db, org) as conn:
        return query.frame(conn, limit, offset)


def inventory_presence(
    *,
    limit: int | None = None,
    offset: int = 0,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """One row per asset with a boolean column per integration: does that tool hold a live record of it?

    The integration columns are every integration with an installation or a linked record in the
    organisation, so a newly installed tool shows up as an all-False column before its first sync.

    Example::

        >>> aria.inventory_presence().query("servicenow and not `ms-defender`")  # doctest: +SKIP
    """
    with scoped_read(db, org) as conn:
        keys = [
            str(row["integration_key"])
            for row in conn.rows(
                "SELECT integration_key FROM integration_installations UNION "
                "SELECT integration_key FROM asset_sources WHERE integration_key IS NOT NULL "
                "ORDER BY integration_key"
            )
        ]
        params: dict[str, object] = {}
        flags = []
        for index, key in enumerate(keys):
            params[f"k{index}"] = key
            flags.append(
                f"coalesce(bool_or(s.integration_key = $k{index} AND NOT s.is_deleted), false) "
                f"AS {quote_identifier(key)}"
            )
        flag_sql = "".join(", " + f for f in flags)
        query = Query(
            f"a.asset_id, a.name, a.hostname, a.status{flag_sql}",
            "assets a LEFT JOIN asset_sources s ON s.asset_id = a.asset_id",
            params=params,
            group_by="a.asset_id, a.name, a.hostname, a.status",
            order_by="lower(a.name) NULLS LAST, a.asset_id",
        )
        frame = query.frame(conn, limit, offset)
    for key in keys:
        frame[key] = frame[key].astype(bool)
    return frame


def services(
    *,
    limit: int | None = None,
    offset: int = 0,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """Business services from the CMDB with how many assets and open incidents each one has.

    Example::

        >>> aria.services()[["name", "criticality", "asset_count", "open_incidents"]]  # doctest: +SKIP
    """
    from aria_sync.analysis.incidents import OPEN_INCIDENT_SQL, RESOLVED_INCIDENTS_CTE

    query = Query(
        "s.service_id, s.name, s.owner, s.criticality, s.status, s.integration_key, s.installation_id, "
        "s.source_id, coalesce(m.asset_count, 0)::BIGINT AS asset_count, "
        "coalesce(n.open_incidents, 0)::BIGINT AS open_incidents",
        f"""services s
            LEFT JOIN (SELECT installation_id, service_source_id, count(DISTINCT asset_source_id) AS asset_count
                       FROM service_assets GROUP BY ALL) m
              ON m.installation_id = s.installation_id AND m.service_source_id = s.source_id
            LEFT JOIN ({RESOLVED_INCIDENTS_CTE}
                       SELECT effective_service_id, count(*) FILTER (WHERE {OPEN_INCIDENT_SQL}) AS open_incidents
                       FROM resolved GROUP BY ALL) n
              ON n.effective_service_id = s.service_id""",
        where=["NOT s.is_deleted"],
        order_by="lower(s.name) NULLS LAST, s.service_id",
    )
    with scoped_read(db, org) as conn:
        return query.frame(conn, limit, offset)
