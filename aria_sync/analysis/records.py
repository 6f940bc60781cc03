"""Landing rows of one vendor stream, with the columns the connector declares for data views.

Everything here comes from the stream declaration (``Stream.table`` and ``Stream.columns``), so a
newly registered integration is browsable without changes to this module.
"""

from __future__ import annotations

import pandas as pd

from aria_sync.analysis._context import (
    DbArg,
    Query,
    installation_filter,
    quote_identifier,
    scoped_read,
)
from aria_sync.errors import NotFoundError


def _stream_query(integration_key: str, stream: str, search: str | None) -> Query:
    from aria_sync.connectors.registry import get_connector

    connector = get_connector(integration_key)
    try:
        declared = connector.stream(stream)
    except KeyError:
        names = ", ".join(s.name for s in connector.streams) or "none"
        raise NotFoundError(
            f"integration {integration_key!r} has no stream {stream!r}; its streams: {names}"
        ) from None
    # Table names and column expressions are the connector's own declarations, never user input.
    labels = [f"({expression}) AS {quote_identifier(label)}" for label, expression in declared.columns] or [
        "raw"
    ]
    query = Query(
        ", ".join(["source_id", *labels, "installation_id", "is_deleted", "first_seen_at", "last_seen_at"]),
        declared.table,
        order_by="last_seen_at DESC NULLS LAST, source_id",
    )
    if search:
        # contains(lower(...)) runs about four times faster than ILIKE over large raw JSON.
        query.add(
            "(contains(lower(source_id), $needle) OR contains(lower(CAST(raw AS VARCHAR)), $needle))",
            needle=search.lower(),
        )
    return query


def source_records(
    integration_key: str,
    stream: str,
    limit: int | None = 100,
    offset: int = 0,
    search: str | None = None,
    *,
    installation: str | None = None,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """Landing rows of one stream, most recently seen first: source_id, the stream's declared
    columns (the raw JSON when it declares none), installation_id, is_deleted and last_seen_at.

    ``search`` matches the record id or any text of the raw record.

    Example::

        >>> aria.source_records("tenable", "assets", limit=20, search="web")  # doctest: +SKIP
    """
    query = _stream_query(integration_key, stream, search)
    with scoped_read(db, org) as conn:
        installation_id = installation_filter(conn, installation)
        if installation_id is not None:
            query.add("installation_id = $installation_id", installation_id=installation_id)
        return query.frame(conn, limit, offset)


def count_source_records(
    integration_key: str,
    stream: str,
    search: str | None = None,
    *,
    installation: str | None = None,
    db: DbArg = None,
    org: str | None = None,
) -> int:
    """How many landing rows :func:`source_records` can page through with the same filters.

    Example::

        >>> aria.count_source_records("servicenow", "cmdb")  # doctest: +SKIP
    """
    query = _stream_query(integration_key, stream, search)
    with scoped_read(db, org) as conn:
        installation_id = installation_filter(conn, installation)
        if installation_id is not None:
            query.add("installation_id = $installation_id", installation_id=installation_id)
        return query.count(conn)
