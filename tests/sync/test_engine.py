"""The sync engine end to end: the example connector over real HTTP into a real DuckDB file."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from aria_sync.audit import Actor
from aria_sync.errors import AlreadyRunningError, PermissionDeniedError
from aria_sync.marketplace import Marketplace
from aria_sync.simulators.example import DEVICES_ONLY_TOKEN, TOKEN, ExampleSimulator, start_example
from aria_sync.simulators.framework import Fault, SimulatorServer
from aria_sync.store import Database, OrgScope
from aria_sync.store.locks import InstallationLock
from aria_sync.sync import Progress, SyncRunner, recover_interrupted

ORG = "acme"


def no_sleep(seconds: float) -> None:
    pass


@pytest.fixture
def sim() -> Iterator[tuple[ExampleSimulator, SimulatorServer]]:
    app, server = start_example(devices=120, events=75, tie_count=30)
    yield app, server
    server.stop()


def install(
    db: Database, server: SimulatorServer, token: str = TOKEN, name: str = "inventory", test: bool = True
) -> str:
    market = Marketplace(db, ORG, Actor("tester", "admin"))
    config = {"baseUrl": server.base_url, "token": token, "pageSize": 25}
    installation, _ = market.install("example", name, config, test=test)
    return installation.installation_id


def run(db: Database, ref: str = "inventory", **kwargs: object) -> dict:
    result = SyncRunner(db, ORG, Actor("tester", "analyst"), sleep=no_sleep).sync(ref, **kwargs)  # type: ignore[arg-type]
    return {**result.as_json(), "detail": result.streams}


def landing(db: Database, table: str) -> list[dict]:
    with OrgScope(db, ORG).read() as conn:
        return conn.rows(f"SELECT source_id, is_deleted, record_hash FROM {table} ORDER BY source_id")


def assert_first_sync_landed_every_device_once(db: Database, result: dict) -> None:
    assert result["status"] == "succeeded"
    assert result["streams"]["devices"] == {
        "fetched": 120,
        "inserted": 120,
        "updated": 0,
        "unchanged": 0,
        "removed": 0,
        "rejected": 0,
    }
    assert len(landing(db, "example_devices")) == 120
    with OrgScope(db, ORG).read() as conn:
        assert conn.scalar("SELECT count(*) FROM asset_identities") == 120


def test_full_sync_lands_exact_counts(db: Database, sim: tuple[ExampleSimulator, SimulatorServer]) -> None:
    app, server = sim
    install(db, server)
    result = run(db)
    assert_first_sync_landed_every_device_once(db, result)
    assert result["streams"]["events"]["inserted"] == 75
    with OrgScope(db, ORG).read() as conn:
        assert conn.scalar("SELECT count(*) FROM assets") == 120
        job = conn.rows("SELECT status, streams, started_at, finished_at FROM integration_sync_jobs")[0]
    assert job["status"] == "succeeded" and job["finished_at"] >= job["started_at"]
    assert json.loads(job["streams"])["devices"]["inserted"] == 120
    devices_pages = server.requests("/api/devices")
    assert len(devices_pages) == 1 + 120 // 25 + 1  # test connection + 5 pages


def test_second_sync_is_incremental_and_loses_no_tie(
    db: Database, sim: tuple[ExampleSimulator, SimulatorServer]
) -> None:
    app, server = sim
    install(db, server)
    run(db)
    # A late record with the cursor's exact timestamp must still arrive (inclusive cursor).
    with OrgScope(db, ORG).read() as conn:
        cursor = conn.scalar("SELECT cursor FROM integration_sync_state WHERE stream = 'events'")
    app.events["evt-late"] = {"id": "evt-late", "kind": "change", "updated_at": cursor}
    app.add_event("evt-new", dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
    result = run(db)
    events = result["streams"]["events"]
    assert events["inserted"] == 2 and events["fetched"] == 3  # the boundary record re-read, unchanged
    assert server.requests("/api/events")[-1].query["since"] == [cursor]
    assert len(landing(db, "example_events")) == 77
    assert result["streams"]["devices"]["unchanged"] == 120


def test_ties_across_page_boundaries_all_land(
    db: Database, sim: tuple[ExampleSimulator, SimulatorServer]
) -> None:
    app, server = sim  # 30 events share one timestamp across pages of 25
    install(db, server)
    run(db)
    ids = {r["source_id"] for r in landing(db, "example_events")}
    assert ids == set(app.events)


def test_removed_upstream_becomes_soft_deleted_and_comes_back(db: Database, sim) -> None:
    app, server = sim
    install(db, server)
    run(db)
    gone = app.devices.pop("dev-00007")
    result = run(db)
    assert result["streams"]["devices"]["removed"] == 1
    rows = {r["source_id"]: r for r in landing(db, "example_devices")}
    assert rows["dev-00007"]["is_deleted"] is True and len(rows) == 120
    app.devices["dev-00007"] = gone
    result = run(db)
    assert result["streams"]["devices"]["updated"] == 1
    assert {r["source_id"]: r for r in landing(db, "example_devices")}["dev-00007"]["is_deleted"] is False


def test_stale_guard_refuses_mass_deletion(db: Database, sim) -> None:
    app, server = sim
    install(db, server)
    run(db)
    for key in list(app.devices)[:60]:
        del app.devices[key]
    result = run(db)
    assert result["status"] == "partial"
    assert "refused to mark 60 of 120" in result["error"]
    assert not any(r["is_deleted"] for r in landing(db, "example_devices"))


def test_bad_records_are_quarantined_and_the_sync_goes_on(db: Database, sim) -> None:
    app, server = sim
    app.devices["dev-00003"]["name"] = None
    app.devices["dev-bad"] = {"id": None, "name": "no id"}
    install(db, server)
    result = run(db)
    assert result["streams"]["devices"]["rejected"] == 2
    assert result["streams"]["devices"]["inserted"] == 119
    with OrgScope(db, ORG).read() as conn:
        reasons = sorted(r["reason"] for r in conn.rows("SELECT reason FROM integration_rejected_records"))
    assert reasons == ["device without a name", "missing primary key: raw->>'$.id'"]
    # the quarantined device is still upstream: a later removal pass must not mark it stale
    result = run(db)
    assert result["streams"]["devices"]["removed"] == 0


def test_server_error_mid_fetch_marks_nothing_stale(db: Database, sim) -> None:
    app, server = sim
    install(db, server)
    run(db)
    del app.devices["dev-00001"]
    server.faults.add(Fault(kind="status", path="/api/devices", status=503, times=50, skip=2))
    result = run(db)
    assert result["detail"]["devices"]["status"] == "partial"  # pages that arrived were kept
    assert result["status"] == "partial"
    assert "503" in result["error"]
    assert not any(r["is_deleted"] for r in landing(db, "example_devices"))


def test_incomplete_incremental_fetch_does_not_move_the_cursor(db: Database, sim) -> None:
    app, server = sim
    install(db, server)
    run(db)
    with OrgScope(db, ORG).read() as conn:
        before = conn.scalar("SELECT cursor FROM integration_sync_state WHERE stream = 'events'")
    for n in range(60):
        app.add_event(f"evt-x{n:03d}", dt.datetime(2027, 2, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=n))
    server.faults.add(Fault(kind="status", path="/api/events", status=500, times=50, skip=1))
    result = run(db)
    assert result["detail"]["events"]["status"] == "partial"
    with OrgScope(db, ORG).read() as conn:
        after = conn.scalar("SELECT cursor FROM integration_sync_state WHERE stream = 'events'")
    assert after == before
    server.faults.clear()
    result = run(db)  # the next run re-reads from the old cursor and catches up, no duplicates
    assert result["status"] == "succeeded"
    ids = [r["source_id"] for r in landing(db, "example_events")]
    assert len(ids) == len(set(ids)) == 135


def test_wrong_token_fails_with_plain_message_and_no_secret(db: Database, db_path: Path, sim) -> None:
    app, server = sim
    install(db, server)
    market = Marketplace(db, ORG, Actor("tester", "admin"))
    installation = market.get("inventory")
    market.vault.put(installation.secret_ref, {"token": "WRONG-token-s3cr3t-value"})
    result = run(db)
    assert result["status"] == "failed"
    assert "401" in result["error"]
    assert market.get("inventory").status == "credentials_invalid"
    blob = b"".join(
        p.read_bytes() for p in db_path.parent.rglob("*") if p.is_file() and "vault" not in p.name
    )
    assert b"WRONG-token-s3cr3t-value" not in blob
    assert TOKEN.encode() not in blob


def test_missing_permission_on_one_stream_keeps_the_others(db: Database, sim) -> None:
    app, server = sim
    install(db, server, token=DEVICES_ONLY_TOKEN, name="limited", test=False)
    result = run(db, "limited")
    assert result["streams"]["devices"]["inserted"] == 120
    assert result["status"] == "partial"
    assert "403" in result["error"]


def test_second_sync_is_refused_while_one_runs(db: Database, sim) -> None:
    app, server = sim
    installation_id = install(db, server)
    lock = InstallationLock(db.path, installation_id)
    assert lock.try_acquire()
    try:
        with pytest.raises(AlreadyRunningError, match="already running"):
            run(db)
    finally:
        lock.release()
    assert run(db)["status"] == "succeeded"


def test_job_left_running_by_a_dead_process_becomes_interrupted(db: Database, sim) -> None:
    app, server = sim
    installation_id = install(db, server)
    with OrgScope(db, ORG).write() as conn:
        conn.execute(
            "INSERT INTO integration_sync_jobs (org_id, job_id, installation_id, status, started_at) "
            "VALUES (?, 'dead-job', ?, 'running', now())",
            [ORG, installation_id],
        )
    assert recover_interrupted(db, ORG) == 1
    with OrgScope(db, ORG).read() as conn:
        assert (
            conn.scalar("SELECT status FROM integration_sync_jobs WHERE job_id = 'dead-job'") == "interrupted"
        )


def test_three_identical_syncs_leave_identical_content(db: Database, sim) -> None:
    app, server = sim
    install(db, server)

    def content_hash() -> str:
        with OrgScope(db, ORG).read() as conn:
            parts = []
            for table in ("example_devices", "example_events", "asset_identities", "assets"):
                cols = "source_id, record_hash, is_deleted" if table.startswith("example") else "*"
                if table == "asset_identities":
                    cols = "source_id, name, fqdn, is_deleted"
                if table == "assets":
                    cols = "asset_id, name, status"
                rows = conn.execute(f"SELECT {cols} FROM {table} ORDER BY ALL").fetchall()
                parts.append(repr(rows))
        return hashlib.sha256("".join(parts).encode()).hexdigest()

    hashes = []
    for _ in range(3):
        run(db)
        hashes.append(content_hash())
    assert hashes[0] == hashes[1] == hashes[2]


def test_progress_is_reported(db: Database, sim) -> None:
    app, server = sim
    install(db, server)
    seen: list[Progress] = []
    SyncRunner(db, ORG, sleep=no_sleep).sync("inventory", on_progress=seen.append)
    phases = [p.phase for p in seen]
    assert phases[0] == "starting" and phases[-1] == "done"
    assert "fetching" in phases and "applying" in phases
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_viewer_cannot_sync(db: Database, sim) -> None:
    app, server = sim
    install(db, server)
    with pytest.raises(PermissionDeniedError, match="viewer"):
        SyncRunner(db, ORG, Actor("guest", "viewer")).sync("inventory")


def test_apply_out_of_memory_at_the_lean_budget_is_retried_whole_at_the_full_one(
    db: Database, sim, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import aria_sync.sync.engine as engine

    # 1MB cannot hold even one of the CSV reader's 1 MiB buffers: every lean attempt runs out.
    monkeypatch.setattr(engine, "lean_memory_for", lambda records: "1MB")
    app, server = sim
    install(db, server)
    with caplog.at_level("INFO", logger="aria_sync.store"):
        result = run(db)
    assert_first_sync_landed_every_device_once(db, result)
    assert "applying devices needed more than 1MB (" in caplog.text
    with OrgScope(db, ORG).read() as conn:
        assert conn.scalar("SELECT count(*) FROM integration_rejected_records") == 0
