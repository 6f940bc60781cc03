"""Sync schedules: an interval ("6h", "30m", "1d") or a cron expression, and the loop that runs due syncs.

Rules: a missed run after downtime runs once (the next slot is computed from *now*, never by
replaying missed slots); two syncs of one installation never overlap (the installation lock); a
failing installation backs off exponentially instead of hammering the vendor.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from croniter import croniter

from aria_sync.audit import Actor
from aria_sync.errors import AlreadyRunningError, AriaSyncError, UsageError
from aria_sync.marketplace import Installation, Marketplace, iter_orgs
from aria_sync.store import Database, OrgScope, utcnow

log = logging.getLogger("aria_sync.schedule")

_INTERVAL = re.compile(r"^\s*(?:every\s+)?(\d+)\s*([smhd])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_INTERVAL = dt.timedelta(minutes=1)
BACKOFF_BASE = dt.timedelta(minutes=5)
BACKOFF_MAX = dt.timedelta(hours=6)


def parse_schedule(text: str, *, now: dt.datetime | None = None) -> tuple[str, str, dt.datetime]:
    """("interval", "6h", next run) or ("cron", "0 */6 * * *", next run); UsageError if neither."""
    now = now or utcnow()
    match = _INTERVAL.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2).lower()
        if dt.timedelta(seconds=amount * _UNIT_SECONDS[unit]) < MIN_INTERVAL:
            raise UsageError(f"schedule {text!r} is shorter than the 1-minute minimum")
        expr = f"{amount}{unit}"
        return "interval", expr, now
    if croniter.is_valid(text.strip()):
        expr = text.strip()
        return "cron", expr, next_after("cron", expr, now)
    raise UsageError(f"invalid schedule {text!r}: use an interval like 6h, 30m, 1d or a cron expression")


def next_after(kind: str, expr: str, now: dt.datetime) -> dt.datetime:
    if kind == "interval":
        match = _INTERVAL.match(expr)
        assert match
        return now + dt.timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])
    nxt = croniter(expr, now).get_next(dt.datetime)
    return nxt if nxt.tzinfo else nxt.replace(tzinfo=dt.UTC)


def backoff_for(failures: int) -> dt.timedelta:
    if failures <= 0:
        return dt.timedelta(0)
    return min(BACKOFF_BASE * (2 ** (failures - 1)), BACKOFF_MAX)


@dataclass(frozen=True)
class ScheduledRun:
    org: str
    installation: str
    status: str
    job_id: str | None
    detail: str = ""


def due_installations(db: Database, org: str, now: dt.datetime) -> list[Installation]:
    return [
        i
        for i in Marketplace(db, org).installations()
        if i.enabled
        and i.schedule_kind
        and i.next_run_at is not None
        and i.next_run_at <= now
        and (i.backoff_until is None or i.backoff_until <= now)
    ]


def run_due(
    db: Database,
    *,
    orgs: list[str] | None = None,
    now: Callable[[], dt.datetime] = utcnow,
    sleep: Callable[[float], None] | None = None,
) -> list[ScheduledRun]:
    """Run every due sync once, one after another; returns what ran."""
    from aria_sync.sync.engine import SyncRunner

    runs: list[ScheduledRun] = []
    actor = Actor("scheduler", "analyst")
    for org in orgs or list(iter_orgs(db)):
        for installation in due_installations(db, org, now()):
            runner = SyncRunner(db, org, actor, sleep=sleep)
            try:
                result = runner.sync(installation.installation_id, trigger="schedule")
                runs.append(
                    ScheduledRun(org, installation.name, result.status, result.job_id, result.error or "")
                )
            except AlreadyRunningError as exc:
                runs.append(ScheduledRun(org, installation.name, "skipped", None, str(exc)))
                continue
            except AriaSyncError as exc:
                runs.append(ScheduledRun(org, installation.name, "failed", None, str(exc)))
            _reschedule(db, org, installation, now())
    return runs


def _reschedule(db: Database, org: str, installation: Installation, now: dt.datetime) -> None:
    fresh = Marketplace(db, org).get(installation.installation_id)
    assert fresh.schedule_kind and fresh.schedule_expr
    next_run = next_after(fresh.schedule_kind, fresh.schedule_expr, now)
    failed = fresh.last_sync_status in ("failed", "interrupted")
    backoff_until = now + backoff_for(fresh.consecutive_failures) if failed else None
    with OrgScope(db, org).write() as conn:
        conn.execute(
            "UPDATE integration_installations SET next_run_at = ?, backoff_until = ? "
            "WHERE org_id = ? AND installation_id = ?",
            [next_run, backoff_until, org, installation.installation_id],
        )


def run_forever(
    db: Database,
    *,
    stop: threading.Event,
    poll_seconds: float = 30.0,
    on_run: Callable[[ScheduledRun], None] | None = None,
) -> None:
    """The `aria-sync schedule` loop: run what is due, wait, repeat until ``stop`` is set."""
    while not stop.is_set():
        for run in run_due(db):
            if on_run:
                on_run(run)
        stop.wait(poll_seconds)
