"""Kill test: SIGKILL sync processes at page boundaries and random points; 0 lost, 0 duplicated."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from aria_sync.audit import Actor
from aria_sync.marketplace import Marketplace
from aria_sync.simulators.example import TOKEN, start_example
from aria_sync.simulators.framework import Fault
from aria_sync.store import Database, OrgScope
from aria_sync.sync import SyncRunner

from .killing import RecordFigure, check_cursors, check_jobs, check_landing, kill_and_restart

ORG = "acme"


def test_example_connector_survives_kills(db: Database, db_path: Path, proof_figure: RecordFigure) -> None:
    app, server = start_example(devices=400, events=300, tie_count=40)
    try:
        # a small delay per page widens the window in which a kill lands mid-fetch or mid-apply
        server.faults.add(Fault(kind="delay", seconds=0.05, times=10**6))
        Marketplace(db, ORG, Actor("t", "admin")).install(
            "example", "inv", {"baseUrl": server.base_url, "token": TOKEN, "pageSize": 20}
        )

        def upstream_changes(n: int) -> None:
            app.add_event(f"evt-k{n:03d}", dt.datetime(2027, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=n))

        report = kill_and_restart(
            db_path, ORG, "inv", server, kills=12, seed=20261207, max_requests=40, between=upstream_changes
        )
        final = SyncRunner(db, ORG).sync("inv")
        assert final.status == "succeeded", final.error
        check_landing(db, ORG, "example_devices", set(app.devices), report)
        check_landing(db, ORG, "example_events", set(app.events), report)
        check_cursors(db, ORG, "example_events", "events", "timestamp", report)
        check_jobs(db, ORG, report)
        with OrgScope(db, ORG).read() as conn:
            interrupted = conn.scalar(
                "SELECT count(*) FROM integration_sync_jobs WHERE status = 'interrupted'"
            )
        proof_figure(
            "kill test example connector",
            f"{report.line()} ({report.finished_before_kill} attempts finished first)",
        )
        assert report.kills >= 6
        assert (report.lost, report.duplicated, report.cursor_ahead, report.not_interrupted) == (0, 0, 0, 0)
        # a kill during interpreter start-up lands before the job row exists; every other kill leaves one
        assert report.kills // 2 <= interrupted <= report.kills
    finally:
        server.stop()
