"""User SQL stays inside the organisation's views; exports neutralise spreadsheet formulas."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aria_sync as aria
from aria_sync.errors import UsageError
from aria_sync.store import Database

from .conftest import ORG_A, ORG_B


def test_sql_reads_the_organisation_views_with_parameters(estate: Database) -> None:
    frame = aria.sql(
        "SELECT severity, count(*) AS n FROM vulnerabilities WHERE state = ? GROUP BY 1 ORDER BY 1",
        ["open"],
        db=estate,
        org=ORG_A,
    )
    assert frame.values.tolist() == [["critical", 1], ["high", 2], ["info", 1], ["low", 1]]
    assert aria.sql("SELECT count(*) AS n FROM assets", db=estate, org=ORG_B)["n"][0] == 1
    joined = aria.sql(
        "WITH a AS (SELECT * FROM assets) SELECT count(*) AS n FROM a JOIN asset_sources s USING (asset_id) "
        "WHERE s.integration_key = $key;",
        {"key": "tenable"},
        db=estate,
        org=ORG_A,
    )
    assert joined["n"][0] == 3


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM main.assets",
        "SELECT * FROM aria.main.assets",
        "SELECT * FROM memory.main.assets",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT 1; SELECT 2",
        "DELETE FROM assets",
        "INSERT INTO assets (asset_id, org_id) VALUES ('x', 'acme')",
        "CREATE TABLE stolen AS SELECT * FROM assets",
        "ATTACH 'other.duckdb' AS other",
        "SELECT * FROM schema_migrations",
        "",
    ],
)
def test_sql_refuses_anything_but_one_select_over_the_views(estate: Database, query: str) -> None:
    with pytest.raises(UsageError):
        aria.sql(query, db=estate, org=ORG_B)


def test_sql_runs_with_file_and_network_access_switched_off(estate: Database, tmp_path: Path) -> None:
    setting = aria.sql("SELECT current_setting('enable_external_access') AS allowed", db=estate, org=ORG_A)
    assert not setting["allowed"][0]
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    with pytest.raises(UsageError):
        aria.sql("SELECT (SELECT content FROM read_text(?)) AS c", [str(secret)], db=estate, org=ORG_A)
    # The switch lasts only as long as that connection: later reads work as before.
    assert aria.count_assets(db=estate, org=ORG_A) == 6
    assert len(aria.source_records("example", "devices", db=estate, org=ORG_A)) == 3


def test_sql_errors_are_usage_errors(estate: Database) -> None:
    with pytest.raises(UsageError, match="SQL error"):
        aria.sql("SELECT no_such_column FROM assets", db=estate, org=ORG_A)


FORMULA_START = st.sampled_from(["=", "+", "-", "@", "\t", "\r"])
SAFE_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=20).filter(
    lambda s: not s.startswith(("=", "+", "-", "@", "\t", "\r"))
)


def _read_back(data: bytes) -> list[str]:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows[0] == ["cell"]
    return [row[0] if row else "" for row in rows[1:]]


@settings(max_examples=60, deadline=None)
@given(start=FORMULA_START, rest=st.text(max_size=20).filter(lambda s: "\x00" not in s))
def test_csv_prefixes_formula_cells(start: str, rest: str) -> None:
    value = start + rest
    assert _read_back(aria.export_frame(pd.DataFrame({"cell": [value]}), "csv")) == ["'" + value]


@settings(max_examples=60, deadline=None)
@given(value=SAFE_TEXT.filter(lambda s: "\x00" not in s))
def test_csv_round_trips_other_text_unchanged(value: str) -> None:
    assert _read_back(aria.export_frame(pd.DataFrame({"cell": [value]}), "csv")) == [value]


def test_csv_keeps_numbers_and_writes_lists_as_json_and_neutralises_headers() -> None:
    frame = pd.DataFrame(
        {"n": [-3, 4], "=HEADER": [["=1+1"], ["ok"]], "when": pd.to_datetime(["2026-01-01"] * 2)}
    )
    rows = list(csv.reader(io.StringIO(aria.export_frame(frame, "csv").decode(), newline="")))
    assert rows[0] == ["n", "'=HEADER", "when"]
    assert rows[1] == ["-3", '["=1+1"]', "2026-01-01"]


def test_parquet_round_trips(estate: Database) -> None:
    frame = aria.assets(db=estate, org=ORG_A)
    back = pd.read_parquet(io.BytesIO(aria.export_frame(frame, "parquet")))
    assert list(back["asset_id"]) == list(frame["asset_id"])
    assert [list(v) for v in back["sources"]] == [list(v) for v in frame["sources"]]


def test_unknown_export_format() -> None:
    with pytest.raises(UsageError, match="csv, parquet"):
        aria.export_frame(pd.DataFrame(), "xlsx")
