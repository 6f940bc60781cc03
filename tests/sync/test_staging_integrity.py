"""The apply refuses a staged batch that does not read back whole, and long records read back whole."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from aria_sync.connectors.example.connector import ExampleConnector
from aria_sync.errors import StagingError
from aria_sync.store import Database, OrgScope
from aria_sync.sync.loader import ApplyTarget, StreamCounts, apply_stream
from aria_sync.sync.staging import StreamStage

NOW = dt.datetime(2026, 12, 8, tzinfo=dt.UTC)
DEVICES = next(s for s in ExampleConnector.streams if s.name == "devices")


def device(n: int, **extra: object) -> dict[str, object]:
    return {"id": f"dev-{n}", "name": f"host{n}", **extra}


def apply(db: Database, stage: StreamStage) -> StreamCounts:
    counts = StreamCounts()
    with db.write() as conn:
        apply_stream(
            conn,
            ApplyTarget("acme", "inst-1", "example", "job-1"),
            DEVICES,
            stage,
            counts,
            complete=True,
            previous_cursor=None,
            now=NOW,
        )
    return counts


def test_a_staged_batch_that_reads_back_short_is_refused_and_nothing_is_written(
    db: Database, tmp_path: Path
) -> None:
    stage = StreamStage(tmp_path / "devices")
    stage.write_page([device(n) for n in range(5)])
    stage.records += 1  # as if a line had been lost between staging and the apply
    with pytest.raises(StagingError, match="6 records were staged but 5 were read back"):
        apply(db, stage)
    with OrgScope(db, "acme").read() as conn:
        assert conn.scalar("SELECT count(*) FROM example_devices") == 0


@pytest.mark.parametrize("length", [300_000, 1_500_000])
def test_records_far_longer_than_the_rest_read_back_whole(db: Database, tmp_path: Path, length: int) -> None:
    stage = StreamStage(tmp_path / "devices")
    for page in range(4):
        stage.write_page(
            [device(page * 10 + n, note="😀" * length if n == 3 else "short") for n in range(10)]
        )
    counts = apply(db, stage)
    assert counts.fetched == 40 and counts.inserted == 40
    with OrgScope(db, "acme").read() as conn:
        assert conn.scalar("SELECT count(*) FROM example_devices") == 40
        assert conn.scalar("SELECT max(length(raw->>'$.note')) FROM example_devices") == length
