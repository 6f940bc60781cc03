"""Schedules: parsing, one run after downtime, back-off of failing installations, no overlap."""

from __future__ import annotations

import datetime as dt

import pytest

from aria_sync.audit import Actor
from aria_sync.errors import UsageError
from aria_sync.marketplace import Marketplace
from aria_sync.schedule import backoff_for, next_after, parse_schedule, run_due
from aria_sync.simulators.example import TOKEN, start_example
from aria_sync.store import Database, OrgScope
from aria_sync.store.locks import InstallationLock

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def test_parse_intervals_and_cron() -> None:
    assert parse_schedule("6h", now=NOW) == ("interval", "6h", NOW)
    assert parse_schedule("every 30m", now=NOW)[1] == "30m"
    kind, expr, nxt = parse_schedule("0 */6 * * *", now=NOW)
    assert (kind, expr, nxt) == ("cron", "0 */6 * * *", dt.datetime(2026, 12, 7, 18, 0, tzinfo=dt.UTC))
    assert next_after("interval", "1d", NOW) == NOW + dt.timedelta(days=1)
    for bad in ("soon", "5s", "99 * * *"):
        with pytest.raises(UsageError):
            parse_schedule(bad, now=NOW)


def test_backoff_grows_and_is_capped() -> None:
    waits = [backoff_for(n) for n in range(0, 10)]
    assert waits[0] == dt.timedelta(0) and waits[1] == dt.timedelta(minutes=5)
    assert waits == sorted(waits) and waits[-1] == dt.timedelta(hours=6)


def set_next_run(db: Database, when: dt.datetime) -> None:
    with OrgScope(db, "acme").write() as conn:
        conn.execute("UPDATE integration_installations SET next_run_at = ?, backoff_until = NULL", [when])


def jobs(db: Database) -> list[dict]:
    with OrgScope(db, "acme").read() as conn:
        return conn.rows("SELECT trigger, status FROM integration_sync_jobs ORDER BY started_at")


def test_missed_runs_after_downtime_run_once_then_failures_back_off(db: Database) -> None:
    app, server = start_example(devices=5, events=2)
    try:
        market = Marketplace(db, "acme", Actor("t", "admin"))
        market.install("example", "inv", {"baseUrl": server.base_url, "token": TOKEN}, schedule="1h")
        set_next_run(db, NOW - dt.timedelta(days=3))  # 72 slots missed while the machine was off
        runs = run_due(db, now=lambda: NOW, sleep=lambda s: None)
        assert [r.status for r in runs] == ["succeeded"]
        assert run_due(db, now=lambda: NOW, sleep=lambda s: None) == []
        assert market.get("inv").next_run_at == NOW + dt.timedelta(hours=1)
        assert [j["trigger"] for j in jobs(db)] == ["schedule"]

        server.stop()  # the vendor goes away: the next due run fails and backs off
        later = NOW + dt.timedelta(hours=1)
        runs = run_due(db, now=lambda: later, sleep=lambda s: None)
        assert [r.status for r in runs] == ["failed"]
        installation = market.get("inv")
        assert installation.backoff_until == later + dt.timedelta(minutes=5)
        set_next_run(db, later)
        with OrgScope(db, "acme").write() as conn:
            conn.execute("UPDATE integration_installations SET backoff_until = ?", [later + dt.timedelta(minutes=5)])
        assert run_due(db, now=lambda: later + dt.timedelta(minutes=1), sleep=lambda s: None) == []
    finally:
        server.stop()


def test_a_running_sync_is_never_doubled(db: Database) -> None:
    app, server = start_example(devices=5, events=2)
    try:
        market = Marketplace(db, "acme", Actor("t", "admin"))
        installation, _ = market.install("example", "inv", {"baseUrl": server.base_url, "token": TOKEN},
                                         schedule="1h")
        set_next_run(db, NOW)
        lock = InstallationLock(db.path, installation.installation_id)
        assert lock.try_acquire()
        try:
            runs = run_due(db, now=lambda: NOW, sleep=lambda s: None)
        finally:
            lock.release()
        assert [r.status for r in runs] == ["skipped"]
        assert jobs(db) == []
    finally:
        server.stop()
