"""Short-lived DuckDB connections behind a reader/writer file lock.

Nothing in aria_sync keeps the database open between calls: a read opens the file read-only,
queries and closes (about 15 ms); a write opens it read-write for one short transaction. Network
fetching never happens while a connection is open. See :mod:`aria_sync.store.locks` for why this
lets a CLI sync, the dashboard and notebooks share one file without lock errors.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import duckdb

from aria_sync.errors import CorruptDatabaseError, DatabaseBusyError, SchemaVersionError, StoreError
from aria_sync.store import schema
from aria_sync.store.locks import database_lock

log = logging.getLogger("aria_sync.store")
T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT = 30.0
# Identical for every connection of a process: DuckDB refuses a second connection to the same file
# with a different configuration while the first is open.
_CONNECT_CONFIG = {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
# DuckDB buffers a whole row group (122,880 rows by default) of a table before compressing it. Landing
# rows carry the vendor's raw JSON (about 2 KB each), so the default holds ~250 MB per writer thread;
# 16,384 rows halves a bulk load's time and memory and costs nothing measurable on reads.
ROW_GROUP_SIZE = 16_384
CATALOG = "aria"

_schema_checked: set[Path] = set()
_schema_lock = threading.Lock()


def memory_limit() -> str:
    """DuckDB's memory budget per process (``ARIA_SYNC_MEMORY_LIMIT``, default 1GB)."""
    value = os.environ.get("ARIA_SYNC_MEMORY_LIMIT", "1GB").strip()
    try:
        parse_size(value)
    except StoreError:
        raise StoreError(f"ARIA_SYNC_MEMORY_LIMIT={value!r} is not a size like 512MB or 2GB") from None
    return value


_UNITS = {
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}  # fmt: skip


def parse_size(value: str) -> int:
    """Bytes in a DuckDB-style size such as ``256MB``, ``1.5GiB`` or ``953.6 MiB`` (the form
    ``current_setting('memory_limit')`` answers)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]i?B)", value.strip(), re.IGNORECASE)
    if match is None:
        raise StoreError(f"{value!r} is not a size like 512MB or 2GB")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


# Bulk writes (a stream's apply, correlation, the risk register) run first within this DuckDB
# budget, spilling to disk beyond it. Given the process budget (1GB by default) DuckDB fills its
# buffer pool before it spills at all: applying 1,000,000 Defender export rows peaked at 1,102 MB
# of RSS at 1GB and at 538 MB at 256MB, in the same time.
LEAN_MEMORY = "256MB"


def lean_memory_for(records: int) -> str:
    """The budget a stream's apply tries first: a fixed working set plus room for its keys (about
    160 bytes each in ``_keys`` and the joins over it), since the payloads only stream through.
    200,000 Tenable findings applied within 128MB at a 399 MB peak against 534 MB within 256MB,
    0.7 s slower; 1,000,000 Defender rows need 256MB."""
    return f"{max(128, 96 + records * 160 // 10**6)}MB"


def lean_first(attempt: Callable[[str | None], T], what: str, lean: str | None = None) -> T:
    """``attempt(lean)`` (LEAN_MEMORY by default); each time DuckDB runs out of memory (its
    transaction rolled back whole) the attempt runs again with twice the budget, and last with the
    full process budget (``None``)."""
    full = parse_size(memory_limit())
    first = parse_size(lean or LEAN_MEMORY)
    budgets: list[str | None] = [f"{size / 10**6:.0f}MB" for size in (first, 2 * first) if size < full]
    budgets.append(None)
    for budget, following in itertools.pairwise(budgets):
        try:
            return attempt(budget)
        except duckdb.OutOfMemoryException as exc:
            log.info(
                "%s needed more than %s (%s); retrying with %s",
                what,
                budget,
                str(exc).splitlines()[0],
                following or "the full memory budget",
            )
    return attempt(None)


def sql_string(text: str) -> str:
    """``text`` as a SQL string literal, for the few places DuckDB takes no bound parameter (file
    paths in ATTACH and table functions, names inside view definitions)."""
    return "'" + text.replace("'", "''") + "'"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _open(path: Path, *, read_only: bool, deadline: float) -> duckdb.DuckDBPyConnection:
    """Open DuckDB, waiting while a process outside our lock protocol holds the file."""
    delay = 0.01
    while True:
        try:
            conn = _attach(path, read_only=read_only)
            conn.execute("SET TimeZone = 'UTC'")
            # DuckDB defaults to 80% of RAM; a sync or a dashboard should stay small and spill to disk.
            conn.execute(f"SET memory_limit = '{memory_limit()}'")
            conn.execute("SET temp_directory = ?", [str(path.parent / ".duckdb-tmp")])
            return conn
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower() and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
                continue
            if "lock" in text.lower():
                # DuckDB's own line names the program and PID holding the lock.
                raise DatabaseBusyError(
                    f"database busy: {path} is locked by another program (not aria-sync); close it and "
                    f"retry ({text.splitlines()[0]})"
                ) from None
            raise CorruptDatabaseError(
                f"cannot open {path} as a DuckDB database: {text.splitlines()[0]}"
            ) from None
        except duckdb.Error as exc:
            message = str(exc).splitlines()[0]
            if (
                "not a valid DuckDB database" in message
                or "Invalid Input" in message
                or "Serialization" in message
            ):
                raise CorruptDatabaseError(f"{path} is not a readable DuckDB database: {message}") from None
            raise StoreError(f"cannot open {path}: {message}") from None


def _attach(path: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """The file attached to a private in-memory instance: the row group size is an attach option only."""
    conn = duckdb.connect(":memory:", config=dict(_CONNECT_CONFIG))
    try:
        options = f"ROW_GROUP_SIZE {ROW_GROUP_SIZE}" + (", READ_ONLY" if read_only else "")
        conn.execute(f"ATTACH {sql_string(str(path))} AS {CATALOG} ({options})")
        conn.execute(f"USE {CATALOG}")
    except BaseException:
        conn.close()
        raise
    return conn


class Database:
    """One DuckDB file. ``read()`` and ``write()`` are the only ways in."""

    def __init__(self, path: Path | str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.path = Path(path).expanduser().resolve()
        self.busy_timeout = busy_timeout

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r})"

    @contextlib.contextmanager
    def _connection(self, *, write: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        deadline = time.monotonic() + self.busy_timeout
        with database_lock(self.path, write=write, timeout=self.busy_timeout):
            conn = _open(self.path, read_only=not write, deadline=deadline)
            try:
                yield conn
            finally:
                conn.close()

    def ensure_schema(self) -> None:
        """Create or migrate the schema once per process; refuse a database newer than this code."""
        with _schema_lock:
            if self.path in _schema_checked:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                with self._connection(write=False) as conn:
                    version = _current_version(conn)
                    catalog_current = version == schema.LATEST_VERSION and _catalog_is_current(conn)
                if version > schema.LATEST_VERSION:
                    raise SchemaVersionError(
                        f"{self.path} has schema version {version}, newer than this aria_sync "
                        f"(version {schema.LATEST_VERSION}); upgrade aria_sync to open it"
                    )
                if catalog_current:
                    _schema_checked.add(self.path)
                    return
            with self._connection(write=True) as conn:
                _migrate(conn, self.path)
            _schema_checked.add(self.path)

    @contextlib.contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection for the block. Prefer :meth:`OrgScope.read` for org data."""
        self.ensure_schema()
        with self._connection(write=False) as conn:
            yield conn

    @contextlib.contextmanager
    def write(self, *, memory: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection inside one transaction, committed when the block ends; DuckDB
        keeps within ``memory`` (spilling beyond it) when that is below the process budget."""
        self.ensure_schema()
        with self._connection(write=True) as conn:
            budget = parse_size(memory) if memory is not None else None
            if budget is not None and budget < parse_size(memory_limit()):
                conn.execute(f"SET memory_limit = '{budget}B'")
            conn.execute("BEGIN TRANSACTION")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def checkpoint(self) -> None:
        with self._connection(write=True) as conn:
            conn.execute("CHECKPOINT")


def _current_version(conn: duckdb.DuckDBPyConnection) -> int:
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def _catalog_is_current(conn: duckdb.DuckDBPyConnection) -> bool:
    from aria_sync.catalog import catalog_fingerprint

    row = conn.execute("SELECT value FROM schema_meta WHERE key = 'catalog_fingerprint'").fetchone()
    return row is not None and row[0] == catalog_fingerprint()


def _migrate(conn: duckdb.DuckDBPyConnection, path: Path) -> None:
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER, name VARCHAR, applied_at TIMESTAMPTZ)"
        )
        conn.execute("CREATE TABLE IF NOT EXISTS schema_meta (key VARCHAR, value VARCHAR)")
        version = _current_version(conn)
        if version > schema.LATEST_VERSION:
            raise SchemaVersionError(
                f"{path} has schema version {version}, newer than this aria_sync "
                f"(version {schema.LATEST_VERSION}); upgrade aria_sync to open it"
            )
        for migration in schema.MIGRATIONS:
            if migration.version <= version:
                continue
            migration.apply(conn)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                [migration.version, migration.name, utcnow()],
            )
        from aria_sync.catalog import refresh_catalog

        schema.create_registered_landing_tables(conn)
        refresh_catalog(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def schema_version(db: Database) -> int:
    with db.read() as conn:
        return _current_version(conn)
