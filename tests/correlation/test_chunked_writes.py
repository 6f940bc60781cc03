"""Assets are aggregated in slices of asset ids; the slicing must not change a single value or row order."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from aria_sync.correlation import correlate, engine
from aria_sync.simulators.estate import Estate
from aria_sync.store import Database

ORG = "acme"
NOW = dt.datetime(2026, 12, 7, 6, tzinfo=dt.UTC)


def _correlated(path: Path, estate: Estate, helpers: SimpleNamespace) -> dict[str, list[tuple[Any, ...]]]:
    db = Database(path)
    with db.write() as conn:
        helpers.insert_rows(conn, "asset_identities", helpers.estate_identities(estate))
        helpers.load_estate_services(conn, estate)
        correlate(conn, ORG, NOW)
    with db.read() as conn:
        # rowid order is the order rows were written in.
        return {
            "assets": conn.execute("SELECT * EXCLUDE (updated_at) FROM assets ORDER BY rowid").fetchall(),
            "asset_sources": conn.execute("SELECT * FROM asset_sources ORDER BY rowid").fetchall(),
        }


def test_slices_of_assets_give_the_same_tables_as_one_statement(
    tmp_path: Path, small_estate: Estate, helpers: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _correlated(tmp_path / "whole" / "a.duckdb", small_estate, helpers)
    monkeypatch.setattr(engine, "ASSETS_PER_CHUNK", 7)  # many slices, most boundaries inside the estate
    sliced = _correlated(tmp_path / "sliced" / "a.duckdb", small_estate, helpers)
    assert len(whole["assets"]) > 7 * 10
    assert sliced == whole
