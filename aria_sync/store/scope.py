"""The organisation-scoped query layer: the only way library code reads organisation data.

``OrgScope(db, org).read()`` yields a read-only connection in which every organisation table
name resolves to a temporary view holding only that organisation's rows. Queries written against
plain table names therefore cannot see another organisation, whatever they join or aggregate.
Queries that name the underlying catalogue explicitly are refused by :func:`check_user_sql`, which
guards the one entry point that accepts SQL from users (``aria_sync.sql``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:
    import pandas as pd

from aria_sync.errors import UsageError
from aria_sync.settings import validate_org
from aria_sync.store.db import Database
from aria_sync.store.schema import SHARED_TABLES, org_tables


class ScopedConnection:
    """A connection whose table names are the organisation's views. Read-only."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, org: str) -> None:
        self._conn = conn
        self.org = org

    def execute(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> duckdb.DuckDBPyConnection:
        return self._conn.execute(sql, params) if params is not None else self._conn.execute(sql)

    def df(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
        return self.execute(sql, params).df()

    def rows(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.execute(sql, params)
        names = [d[0] for d in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        row = self.execute(sql, params).fetchone()
        return row[0] if row else None


class OrgScope:
    """Reads and writes on behalf of one organisation."""

    def __init__(self, db: Database, org: str) -> None:
        self.db = db
        self.org = validate_org(org)

    @contextlib.contextmanager
    def read(self) -> Iterator[ScopedConnection]:
        with self.db.read() as conn:
            catalog = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
            quoted_catalog = '"' + str(catalog).replace('"', '""') + '"'
            for table in org_tables():
                conn.execute(
                    f"CREATE TEMP VIEW {table} AS SELECT * FROM {quoted_catalog}.main.{table} "
                    f"WHERE org_id = '{self.org}'"
                )
            for table in SHARED_TABLES:
                conn.execute(
                    f"CREATE TEMP VIEW {table} AS SELECT * FROM {quoted_catalog}.main.{table} "
                    f"WHERE org_id IN ('*', '{self.org}')"
                )
            yield ScopedConnection(conn, self.org)

    @contextlib.contextmanager
    def write(self, *, memory: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write transaction. Writers pass ``self.org`` explicitly into every statement."""
        with self.db.write(memory=memory) as conn:
            yield conn


def check_user_sql(conn: ScopedConnection | duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse user SQL that is not a single SELECT over the organisation's views."""
    if ";" in sql.strip().rstrip(";"):
        raise UsageError("only one SQL statement is allowed")
    row = conn.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    tree = json.loads(row[0]) if row else {}
    if tree.get("error"):
        raise UsageError(f"SQL error: {tree.get('error_message', 'cannot parse the query')}")
    allowed = set(org_tables()) | set(SHARED_TABLES)
    for node in _walk(tree):
        node_type = node.get("type")
        if node_type == "BASE_TABLE":
            if node.get("catalog_name") or node.get("schema_name"):
                raise UsageError("qualified table names are not allowed; use plain table names")
            if node.get("table_name") not in allowed and not _is_cte(tree, node.get("table_name")):
                raise UsageError(f"unknown table {node.get('table_name')!r}")
        if node_type == "TABLE_FUNCTION":
            raise UsageError("table functions (read_csv, read_parquet, ...) are not allowed")


def _is_cte(tree: dict[str, Any], name: object) -> bool:
    for node in _walk(tree):
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            for entry in cte_map.get("map", []):
                if isinstance(entry, dict) and entry.get("key") == name:
                    return True
    return False


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)
