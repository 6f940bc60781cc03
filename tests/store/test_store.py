"""The store: migrations, version refusal, corrupt files, organisation scoping."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from aria_sync.errors import CorruptDatabaseError, SchemaVersionError, UsageError
from aria_sync.store import Database, OrgScope, check_user_sql, schema_version
from aria_sync.store import db as db_module
from aria_sync.store.schema import LATEST_VERSION, MIGRATIONS, ORG_TABLES


def _forget(path: Path) -> None:
    db_module._schema_checked.discard(path.resolve())


def test_migrations_create_every_table_once(db: Database) -> None:
    db.ensure_schema()
    with db.read() as conn:
        tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        applied = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert set(ORG_TABLES) <= tables
    assert {"integration_catalog", "schema_migrations"} <= tables
    assert [v for (v,) in applied] == [m.version for m in MIGRATIONS]
    _forget(db.path)
    db.ensure_schema()  # re-running is a no-op
    with db.read() as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (len(MIGRATIONS),)
    assert schema_version(db) == LATEST_VERSION


def test_every_org_table_has_org_id(db: Database) -> None:
    db.ensure_schema()
    with db.read() as conn:
        for table in ORG_TABLES:
            columns = {r[0] for r in conn.execute(f"DESCRIBE {table}").fetchall()}
            assert "org_id" in columns, table


def test_catalog_is_filled_by_migrations(db: Database) -> None:
    with OrgScope(db, "acme").read() as conn:
        rows = conn.rows("SELECT key, status FROM integration_catalog ORDER BY key")
    status = {r["key"]: r["status"] for r in rows}
    assert status["tenable"] == status["ms-defender"] == status["servicenow"] == "available"
    assert status["crowdstrike"] == status["qualys"] == status["splunk"] == status["okta"] == "coming_soon"


def test_database_newer_than_code_is_refused(db: Database) -> None:
    db.ensure_schema()
    with db.write() as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (?, 'from the future', now())", [LATEST_VERSION + 5])
    _forget(db.path)
    with pytest.raises(SchemaVersionError, match=f"schema version {LATEST_VERSION + 5}, newer"):
        Database(db.path).ensure_schema()


def test_corrupt_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.duckdb"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CorruptDatabaseError, match="broken.duckdb"):
        Database(path).ensure_schema()
    assert path.read_bytes().startswith(b"this is not a database")  # nothing overwritten


def _seed_two_orgs(db: Database) -> None:
    db.ensure_schema()
    with db.write() as conn:
        for org, name in (("org-a", "alpha-host"), ("org-b", "beta-host")):
            conn.execute(
                "INSERT INTO assets (asset_id, org_id, name, status) VALUES (?, ?, ?, 'active')", [f"{org}-1", org, name]
            )
            conn.execute(
                "INSERT INTO integration_installations (org_id, installation_id, integration_key, name) "
                "VALUES (?, ?, 'tenable', ?)",
                [org, f"inst-{org}", f"tio-{org}"],
            )


def test_scoped_reads_never_cross_organisations(db: Database) -> None:
    _seed_two_orgs(db)
    with OrgScope(db, "org-b").read() as conn:
        assert conn.rows("SELECT name FROM assets") == [{"name": "beta-host"}]
        # joins, unions and aggregates over plain names stay inside the organisation
        assert conn.scalar("SELECT count(*) FROM assets a JOIN integration_installations i ON true") == 1
        assert conn.scalar("SELECT count(DISTINCT org_id) FROM (SELECT org_id FROM assets UNION ALL "
                           "SELECT org_id FROM integration_installations)") == 1


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM main.assets",
        'SELECT * FROM "aria".main.assets',
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT 1; SELECT 2",
        "SELECT * FROM schema_migrations",
    ],
)
def test_user_sql_cannot_escape_the_scope(db: Database, sql: str) -> None:
    _seed_two_orgs(db)
    with OrgScope(db, "org-b").read() as conn, pytest.raises(UsageError):
        check_user_sql(conn, sql)


def test_user_sql_allows_plain_selects_and_ctes(db: Database) -> None:
    _seed_two_orgs(db)
    with OrgScope(db, "org-b").read() as conn:
        check_user_sql(conn, "WITH x AS (SELECT * FROM assets) SELECT count(*) FROM x")


def test_invalid_org_id_is_refused(db: Database) -> None:
    with pytest.raises(UsageError, match="invalid organisation id"):
        OrgScope(db, "a'; DROP TABLE assets; --")


def test_write_rolls_back_on_error(db: Database) -> None:
    db.ensure_schema()
    with pytest.raises(RuntimeError), db.write() as conn:
        conn.execute("INSERT INTO assets (asset_id, org_id) VALUES ('x', 'o')")
        raise RuntimeError("boom")
    with db.read() as conn:
        assert conn.execute("SELECT count(*) FROM assets").fetchone() == (0,)


def test_foreign_lock_gives_a_busy_message(db: Database) -> None:
    db.ensure_schema()
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb,sys,time; c=duckdb.connect({str(db.path)!r}); print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        from aria_sync.errors import DatabaseBusyError

        with pytest.raises(DatabaseBusyError, match="database busy") as busy, Database(db.path, busy_timeout=0.5).read():
            pass
        assert f"PID {holder.pid}" in str(busy.value)  # DuckDB's line names the holder
    finally:
        holder.kill()
        holder.wait()
    assert duckdb.__version__ == "1.4.4"
