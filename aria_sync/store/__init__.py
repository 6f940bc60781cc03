"""The DuckDB store: short-lived connections, migrations and the organisation-scoped query layer."""

from aria_sync.store.db import (
    LEAN_MEMORY,
    Database,
    lean_first,
    lean_memory_for,
    schema_version,
    sql_string,
    utcnow,
)
from aria_sync.store.scope import OrgScope, ScopedConnection, check_user_sql

__all__ = [
    "LEAN_MEMORY",
    "Database",
    "OrgScope",
    "ScopedConnection",
    "check_user_sql",
    "lean_first",
    "lean_memory_for",
    "schema_version",
    "sql_string",
    "utcnow",
]
