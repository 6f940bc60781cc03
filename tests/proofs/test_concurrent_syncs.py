"""Two syncs of one installation started together: exactly one runs, the other is refused with no writes."""

from __future__ import annotations

import threading

import pytest

from aria_sync.audit import Actor
from aria_sync.errors import AlreadyRunningError
from aria_sync.marketplace import Marketplace
from aria_sync.simulators.example import TOKEN, start_example
from aria_sync.simulators.framework import Fault
from aria_sync.store import Database, OrgScope
from aria_sync.sync import SyncRunner

from .killing import RecordFigure

ROUNDS = 100


@pytest.mark.timeout(900)  # 100 rounds; slow on a busy machine, never stuck
def test_two_syncs_started_together_run_exactly_once(db: Database, proof_figure: RecordFigure) -> None:
    _, server = start_example(devices=5, events=3)
    try:
        Marketplace(db, "acme", Actor("t", "admin")).install(
            "example", "inv", {"baseUrl": server.base_url, "token": TOKEN}
        )
        outcomes: list[list[str]] = []
        for _ in range(ROUNDS):
            # the winner holds the lock for its whole sync (~0.7 s) and its first page is slowed as well, so
            # the two attempts, released together by the barrier, always overlap
            server.faults.add(Fault(kind="delay", path="/api/devices", seconds=0.05, times=1))
            barrier = threading.Barrier(2)
            results: list[str] = []

            def attempt(barrier: threading.Barrier = barrier, results: list[str] = results) -> None:
                barrier.wait()
                try:
                    results.append(SyncRunner(db, "acme").sync("inv").status)
                except AlreadyRunningError:
                    results.append("refused")

            threads = [threading.Thread(target=attempt) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            outcomes.append(sorted(results))
        exactly_one = sum(1 for outcome in outcomes if outcome == ["refused", "succeeded"])
        proof_figure(
            "concurrency", f"{ROUNDS} rounds of two syncs started together: exactly one ran in {exactly_one}"
        )
        assert outcomes == [["refused", "succeeded"]] * ROUNDS
        with OrgScope(db, "acme").read() as conn:
            assert conn.scalar("SELECT count(*) FROM integration_sync_jobs") == ROUNDS
            assert conn.scalar("SELECT count(*) FROM example_devices") == 5
    finally:
        server.stop()
