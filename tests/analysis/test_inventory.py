"""Assets, their vendor records, presence per integration and services, against the hand-built estate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

import aria_sync as aria
from aria_sync.analysis.inventory import _assets_query
from aria_sync.analysis.vulns import _vulnerabilities_query
from aria_sync.errors import UsageError
from aria_sync.store import Database, OrgScope

from .conftest import ORG_A


def ids(frame: pd.DataFrame, column: str = "asset_id") -> list[str]:
    return list(frame[column])


def test_assets_are_ordered_by_name_with_their_sources(estate: Database) -> None:
    frame = aria.assets(db=estate, org=ORG_A)
    assert ids(frame, "name") == ["db-01", "gone-01", "laptop-07", "old-srv", "printer-3", "web-01"]
    web = frame.set_index("asset_id").loc["acme-a1"]
    assert list(web["sources"]) == ["servicenow", "ms-defender", "tenable"]
    assert list(web["ip_addresses"]) == ["10.1.0.11"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"search": "WEB"}, ["acme-a1"]),
        ({"search": "10.1.0.12"}, ["acme-a2"]),
        ({"search": "acme-sn"}, ["acme-a1"]),  # serial, case-insensitive
        ({"search": "j.doe_acme"}, ["acme-a3"]),  # owner; "_" is literal, not a wildcard
        ({"search": "doe%"}, []),
        ({"source": "ms-defender"}, ["acme-a3", "acme-a4", "acme-a1"]),
        ({"source": ["tenable", "example"]}, ["acme-a2", "acme-a3", "acme-a1"]),
        ({"status": "retired"}, ["acme-a4"]),
        ({"status": ["Retired", "deleted"]}, ["acme-a6", "acme-a4"]),
        ({"source": "servicenow", "status": "active"}, ["acme-a2", "acme-a5", "acme-a1"]),
    ],
)
def test_asset_filters(estate: Database, kwargs: dict[str, Any], expected: list[str]) -> None:
    assert ids(aria.assets(db=estate, org=ORG_A, **kwargs)) == expected
    assert aria.count_assets(db=estate, org=ORG_A, **kwargs) == len(expected)


def test_limit_and_offset_page_through_the_same_order(estate: Database) -> None:
    everything = ids(aria.assets(db=estate, org=ORG_A))
    pages = [ids(aria.assets(db=estate, org=ORG_A, limit=4, offset=o)) for o in (0, 4, 8)]
    assert pages == [everything[:4], everything[4:], []]
    assert ids(aria.vulnerabilities(db=estate, org=ORG_A, limit=2, offset=1), "finding_id") == [
        "acme-v3",
        "acme-v2",
    ]


@pytest.mark.parametrize("bad", [{"limit": -1}, {"offset": -3}, {"limit": 2.5}])
def test_bad_page_arguments_are_usage_errors(estate: Database, bad: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        aria.assets(db=estate, org=ORG_A, **bad)


def test_pages_are_cut_inside_duckdb(estate: Database) -> None:
    """The query plan itself holds the limit: DuckDB never hands a whole table to Python."""
    for query in (_assets_query("web", None, "active"), _vulnerabilities_query("critical", None, None, None)):
        sql, params = query.page_sql(10, 20)
        with OrgScope(estate, ORG_A).read() as conn:
            plan = "\n".join(str(row[1]) for row in conn.execute("EXPLAIN " + sql, params).fetchall())
        assert "TOP_N" in plan or "LIMIT" in plan


def test_asset_sources_of_one_asset(estate: Database) -> None:
    frame = aria.asset_sources("acme-a1", db=estate, org=ORG_A)
    assert ids(frame, "integration_key") == ["ms-defender", "servicenow", "tenable"]
    assert ids(frame, "installation_name") == ["Defender", "SNOW prod", "Tenable"]
    assert len(aria.asset_sources(db=estate, org=ORG_A)) == 11
    assert ids(aria.asset_sources(integration="tenable", db=estate, org=ORG_A, limit=1)) == ["acme-a1"]


def test_inventory_presence_has_a_boolean_column_per_integration(estate: Database) -> None:
    frame = aria.inventory_presence(db=estate, org=ORG_A).set_index("asset_id")
    assert {"example", "ms-defender", "servicenow", "tenable"} <= set(frame.columns)
    assert frame["tenable"].dtype == bool
    assert frame.loc["acme-a1", ["ms-defender", "servicenow", "tenable"]].tolist() == [True, True, True]
    assert frame.loc["acme-a3", ["ms-defender", "servicenow", "tenable"]].tolist() == [True, False, True]
    # A deleted vendor record does not count as presence; an installed tool with no records is all False.
    assert not frame.loc["acme-a6", "servicenow"]
    assert not frame["example"].any()


def test_services_with_asset_and_open_incident_counts(estate: Database) -> None:
    frame = aria.services(db=estate, org=ORG_A)
    assert frame[["name", "asset_count", "open_incidents"]].values.tolist() == [
        ["HR Portal", 1, 1],
        ["Payments", 2, 1],
    ]


def test_defaults_come_from_the_environment(estate: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARIA_SYNC_DB", str(estate.path))
    monkeypatch.setenv("ARIA_SYNC_ORG", ORG_A)
    assert aria.count_assets() == 6
    assert len(aria.assets(db=str(estate.path), org="globex")) == 1


def test_nothing_keeps_the_file_open_after_a_call(estate: Database) -> None:
    aria.assets(db=estate, org=ORG_A)
    # A leaked read-only connection would make this read-write open fail inside this process.
    duckdb.connect(str(Path(estate.path))).close()
