"""Organisation B sees exactly what it would see alone, through every public analysis function."""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd
import pytest

import aria_sync as aria
from aria_sync import analysis
from aria_sync.store import Database

from .conftest import AS_OF, ORG_A, ORG_B

# Arguments per function; time-dependent ones get the fixed as_of so both calls agree.
CALLS: dict[str, dict[str, Any]] = {
    "activity_log": {},
    "asset_sources": {},
    "assets": {},
    "changes_since_previous_sync": {},
    "contradictions": {"as_of": AS_OF},
    "count_activity_log": {},
    "count_assets": {},
    "count_coverage_gaps": {"as_of": AS_OF},
    "count_incidents": {},
    "count_rejected_records": {},
    "count_risks": {},
    "count_source_records": {"integration_key": "example", "stream": "devices"},
    "count_vulnerabilities": {},
    "coverage_gaps": {"as_of": AS_OF},
    "coverage_summary": {"as_of": AS_OF},
    "data_quality_findings": {},
    "incidents": {},
    "incidents_by_service": {},
    "inventory_presence": {},
    "rejected_records": {},
    "risks": {},
    "services": {},
    "sla_summary": {"as_of": AS_OF},
    "source_records": {"integration_key": "example", "stream": "devices"},
    "sql": {"query": "SELECT * FROM assets JOIN asset_sources USING (asset_id) ORDER BY asset_id"},
    "sync_health": {},
    "sync_jobs": {},
    "top_risks": {},
    "verify_activity_log": {},
    "vulnerabilities": {},
    "vulnerability_aging": {"as_of": AS_OF},
}
# Recomputed from the clock on every call, so not comparable between two calls.
CLOCK_COLUMNS = {"sync_health": ["freshness_hours"]}


def test_every_public_reader_is_covered() -> None:
    assert set(CALLS) == set(analysis.__all__) - {"export_frame"}


def _comparable(name: str, result: Any) -> Any:
    if isinstance(result, pd.DataFrame):
        return result.drop(columns=CLOCK_COLUMNS.get(name, []))
    return result


@pytest.mark.parametrize("name", sorted(CALLS))
def test_org_b_never_sees_org_a(name: str, estate: Database, estate_b_only: Database) -> None:
    function = getattr(aria, name)
    shared = function(db=estate, org=ORG_B, **CALLS[name])
    alone = function(db=estate_b_only, org=ORG_B, **CALLS[name])
    seen_by_a = function(db=estate, org=ORG_A, **CALLS[name])
    if isinstance(shared, pd.DataFrame):
        assert "acme" not in shared.to_string()
        pd.testing.assert_frame_equal(_comparable(name, shared), _comparable(name, alone))
        assert not _comparable(name, seen_by_a).equals(_comparable(name, shared))
    else:
        assert shared == alone
        assert "acme" not in repr(shared)
    # Nothing stays open: a read-write open in this process fails while any connection is held.
    duckdb.connect(str(estate.path)).close()
