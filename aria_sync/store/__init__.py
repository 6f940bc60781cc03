"""The DuckDB store: short-lived connections, migrations and the organisation-scoped query layer."""

from aria_sync.store.db import Database, schema_version, sql_string, utcnow
from aria_sync.store.scope import OrgScope, ScopedConnection, check_user_sql

__all__ = [
    "Database",
    "OrgScope",
    "ScopedConnection",
    "check_user_sql",
    "schema_version",
    "sql_string",
    "utcnow",
]
