"""Coverage gaps and contradictions between CMDB, EDR and scanner records."""

from __future__ import annotations

import datetime as dt

import pandas as pd

import aria_sync as aria
from aria_sync.store import Database

from .conftest import AS_OF, ORG_A


def pairs(frame: pd.DataFrame, first: str = "gap") -> list[tuple[str, str]]:
    return list(zip(frame[first], frame["asset_id"], strict=True))


def test_coverage_gaps_in_one_frame(estate: Database) -> None:
    frame = aria.coverage_gaps(db=estate, org=ORG_A, as_of=AS_OF)
    assert pairs(frame) == [
        ("in CMDB, no EDR", "acme-a2"),  # critical before low
        ("in CMDB, no EDR", "acme-a5"),
        ("not scanned in 30 days", "acme-a2"),  # scanned 45 days ago
        ("not scanned in 30 days", "acme-a5"),  # never scanned
        ("EDR/scanner asset missing from CMDB", "acme-a3"),
    ]
    # The retired (a4) and deleted (a6) assets are no gaps; web-01 (a1) is fully covered.
    scanned = (AS_OF - dt.timedelta(days=45)).strftime("%Y-%m-%d")
    assert list(frame["detail"][2:4]) == [f"last scanned {scanned}", "never scanned"]


def test_scan_window_and_gap_filter(estate: Database) -> None:
    wide = aria.coverage_gaps(60, gap="not scanned in 60 days", db=estate, org=ORG_A, as_of=AS_OF)
    assert pairs(wide) == [("not scanned in 60 days", "acme-a5")]
    assert aria.count_coverage_gaps(db=estate, org=ORG_A, as_of=AS_OF) == 5
    assert aria.count_coverage_gaps(gap="in CMDB, no EDR", db=estate, org=ORG_A, as_of=AS_OF) == 2
    page = aria.coverage_gaps(db=estate, org=ORG_A, as_of=AS_OF, limit=2, offset=3)
    assert pairs(page) == [
        ("not scanned in 30 days", "acme-a5"),
        ("EDR/scanner asset missing from CMDB", "acme-a3"),
    ]


def test_coverage_summary_lists_every_gap(estate: Database) -> None:
    frame = aria.coverage_summary(7, db=estate, org=ORG_A, as_of=AS_OF)
    assert frame.values.tolist() == [
        ["in CMDB, no EDR", 2],
        ["not scanned in 7 days", 2],
        ["EDR/scanner asset missing from CMDB", 1],
    ]
    empty = aria.coverage_summary(db=estate, org="nobody", as_of=AS_OF)
    assert list(empty["assets"]) == [0, 0, 0]


def test_contradictions(estate: Database) -> None:
    frame = aria.contradictions(db=estate, org=ORG_A, as_of=AS_OF)
    assert pairs(frame, "kind") == [
        ("retired in CMDB, seen by EDR recently", "acme-a4"),
        ("OS differs between sources", "acme-a3"),
    ]
    assert frame["detail"][0].startswith("servicenow status retired; EDR last seen ")
    assert frame["detail"][1] == "ms-defender: Windows11; tenable: Ubuntu 22.04"
    # web-01 reports three spellings of Windows Server 2019 and db-01 two Linux names: one family each.
    narrow = aria.contradictions(1, db=estate, org=ORG_A, as_of=AS_OF)
    assert pairs(narrow, "kind") == [("OS differs between sources", "acme-a3")]
