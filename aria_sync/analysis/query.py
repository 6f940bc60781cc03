"""Read-only SQL over the organisation's views, for analysts who outgrow the ready-made functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import duckdb
import pandas as pd

from aria_sync.analysis._context import DbArg, scoped_read
from aria_sync.errors import UsageError
from aria_sync.store import check_user_sql


def sql(
    query: str,
    params: Sequence[Any] | dict[str, Any] | None = None,
    *,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """Run one SELECT over the organisation's tables (plain names: ``assets``, ``vulnerabilities``, ...).

    Refused: more than one statement, anything but a SELECT, schema- or catalogue-qualified names
    (``main.assets``), table functions (``read_csv(...)``) and unknown tables. File and network
    access is switched off for the connection before the query runs. Pass values as ``params``
    (``?`` or ``$name``), never inside the text.

    Example::

        >>> aria.sql("SELECT severity, count(*) AS n FROM vulnerabilities WHERE state = ? GROUP BY 1",
        ...          ["open"])  # doctest: +SKIP
    """
    if not isinstance(query, str) or not query.strip():
        raise UsageError("the query is empty")
    with scoped_read(db, org) as conn:
        # check_user_sql only parses the text; the scoped connection offers the same execute().
        check_user_sql(cast(duckdb.DuckDBPyConnection, conn), query)
        # After the organisation views exist: nothing the query does may touch files or the network.
        conn.execute("SET enable_external_access = false")
        try:
            return conn.df(query.strip().rstrip(";"), params)
        except duckdb.Error as exc:
            raise UsageError(f"SQL error: {str(exc).splitlines()[0]}") from None
