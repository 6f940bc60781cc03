"""Shared plumbing of the analysis API: where to read, scoped reads, filters and pages pushed into SQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from aria_sync.errors import UsageError
from aria_sync.settings import get_settings
from aria_sync.store import Database, OrgScope, ScopedConnection, utcnow

DbArg = str | os.PathLike[str] | Path | Database | None
# One value or several: ``severity="high"`` or ``severity=["critical", "high"]``.
OneOrMany = str | Sequence[str] | None

# Status words vendors use for an asset that is no longer in service (CMDB install_status 7 etc.).
RETIRED_STATUSES: tuple[str, ...] = ("retired", "decommissioned", "disposed", "deleted", "stolen", "absent")
# Catalogue categories whose sources play a role in coverage questions.
CMDB_CATEGORY = "ITSM & CMDB"
EDR_CATEGORY = "EDR"
SCANNER_CATEGORY = "Vulnerability Mgmt"


def scope_for(db: DbArg = None, org: str | None = None) -> OrgScope:
    """The organisation scope for explicit arguments, else ARIA_SYNC_DB / ARIA_SYNC_ORG, else defaults."""
    if isinstance(db, Database):
        return OrgScope(db, get_settings(None, org).org)
    settings = get_settings(db, org)
    return OrgScope(Database(settings.db_path), settings.org)


def database_for(db: DbArg = None) -> Database:
    return db if isinstance(db, Database) else Database(get_settings(db).db_path)


@contextlib.contextmanager
def scoped_read(db: DbArg = None, org: str | None = None) -> Iterator[ScopedConnection]:
    """A short-lived organisation-scoped read; the file is closed again when the block ends."""
    with scope_for(db, org).read() as conn:
        yield conn


def as_of_or_now(as_of: dt.datetime | None) -> dt.datetime:
    if as_of is None:
        return utcnow()
    if as_of.tzinfo is None:
        raise UsageError("as_of must be timezone-aware (UTC)")
    return as_of


def as_list(value: OneOrMany) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    values = [str(v) for v in value]
    return values or None


@dataclass
class Query:
    """A SELECT assembled from trusted SQL fragments and user values passed only as parameters."""

    select: str
    source: str
    where: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    order_by: str = ""
    group_by: str = ""
    qualify: str = ""

    def equals(self, column: str, name: str, value: OneOrMany) -> Query:
        """Filter ``column`` to one value or any of several, case-insensitively."""
        values = as_list(value)
        if values is not None:
            self.where.append(f"lower({column}) IN (SELECT lower(unnest(${name}::VARCHAR[])))")
            self.params[name] = values
        return self

    def add(self, condition: str, **params: Any) -> Query:
        self.where.append(condition)
        self.params.update(params)
        return self

    def _where_sql(self) -> str:
        return (" WHERE " + " AND ".join(f"({c})" for c in self.where)) if self.where else ""

    def page_sql(self, limit: int | None, offset: int) -> tuple[str, dict[str, Any]]:
        check_page(limit, offset)
        sql = f"SELECT {self.select} FROM {self.source}{self._where_sql()}"
        if self.group_by:
            sql += f" GROUP BY {self.group_by}"
        if self.qualify:
            sql += f" QUALIFY {self.qualify}"
        if self.order_by:
            sql += f" ORDER BY {self.order_by}"
        params = dict(self.params)
        if limit is not None:
            sql += " LIMIT $_limit"
            params["_limit"] = limit
        if offset:
            sql += " OFFSET $_offset"
            params["_offset"] = offset
        return sql, params

    def count_sql(self) -> tuple[str, dict[str, Any]]:
        if self.group_by or self.qualify:
            inner, params = self.page_sql(None, 0)
            return f"SELECT count(*) FROM ({inner})", params
        return f"SELECT count(*) FROM {self.source}{self._where_sql()}", dict(self.params)

    def frame(self, conn: ScopedConnection, limit: int | None, offset: int) -> pd.DataFrame:
        sql, params = self.page_sql(limit, offset)
        return conn.df(sql, params)

    def count(self, conn: ScopedConnection) -> int:
        sql, params = self.count_sql()
        return int(conn.scalar(sql, params) or 0)


def check_page(limit: int | None, offset: int) -> None:
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise UsageError(f"limit must be a non-negative integer or None, not {limit!r}")
    if not isinstance(offset, int) or offset < 0:
        raise UsageError(f"offset must be a non-negative integer, not {offset!r}")


def quote_identifier(name: str) -> str:
    """A column label from a declaration, quoted so any text is a safe identifier."""
    return '"' + name.replace('"', '""') + '"'


def installation_filter(conn: ScopedConnection, installation: str | None) -> str | None:
    """The id of an installation named by id or unique name; NotFoundError when there is none."""
    if installation is None:
        return None
    from aria_sync.errors import NotFoundError

    rows = conn.rows(
        "SELECT installation_id FROM integration_installations WHERE installation_id = $ref OR name = $ref "
        "ORDER BY installation_id = $ref DESC LIMIT 1",
        {"ref": installation},
    )
    if not rows:
        raise NotFoundError(f"no installation named {installation!r} in organisation {conn.org!r}")
    return str(rows[0]["installation_id"])
