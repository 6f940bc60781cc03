"""Kill a real sync process at seeded points, restart it, and check nothing was lost or duplicated."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aria_sync.simulators.framework import SimulatorServer
from aria_sync.store import Database, OrgScope

# What the ``proof_figure`` fixture (tests/conftest.py) hands a test: ``(suite, text, kills=None)``.
RecordFigure = Callable[..., None]


@dataclass
class KillReport:
    kills: int = 0
    finished_before_kill: int = 0
    lost: int = 0
    duplicated: int = 0
    cursor_ahead: int = 0
    not_interrupted: int = 0
    undeleted: int = 0  # keys the vendor deleted that are still live after the final sync
    notes: list[str] = field(default_factory=list)
    points: list[str] = field(default_factory=list)  # where each attempt was killed, in order

    def line(self) -> str:
        return f"{self.kills} kills, {self.lost} lost, {self.duplicated} duplicated"

    @property
    def clean(self) -> bool:
        return not (
            self.lost or self.duplicated or self.cursor_ahead or self.not_interrupted or self.undeleted
        )


def sync_process(db_path: Path, org: str, name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aria_sync", "--db", str(db_path), "--org", org, "--json", "sync", name],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ),
    )


def kill_and_restart(
    db_path: Path,
    org: str,
    name: str,
    server: SimulatorServer,
    *,
    kills: int,
    seed: int,
    max_requests: int,
    between: Callable[[int], None] | None = None,
    delay_range: tuple[float, float] = (0.3, 3.0),
    min_kills: int = 0,
) -> KillReport:
    """SIGKILL ``kills`` sync processes, each after a seeded number of vendor requests (page boundaries)
    or a seeded delay (anywhere, including inside a commit).

    ``between(n)`` runs before attempt ``n`` (upstream changes). With ``min_kills``, attempts go on
    past ``kills`` until that many processes were actually killed (a run may finish before its
    kill point), up to twice ``kills`` attempts. ``report.points`` says where each attempt was
    aimed (``req+N`` or ``t=S``) and whether it finished first, so a failure can be replayed.
    """
    rng = random.Random(seed)
    report = KillReport()
    n = 0
    while n < kills or (report.kills < min_kills and n < 2 * max(kills, min_kills)):
        if between:
            between(n)
        before = len(server.request_log)
        proc = sync_process(db_path, org, name)
        if rng.random() < 0.5:
            offset = rng.randint(1, max_requests)
            point = f"req+{offset}"
            deadline = time.monotonic() + 60
            while (
                len(server.request_log) < before + offset
                and proc.poll() is None
                and time.monotonic() < deadline
            ):
                time.sleep(0.002)
        else:
            delay = rng.uniform(*delay_range)
            point = f"t={delay:.2f}s"
            time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            report.kills += 1
        else:
            report.finished_before_kill += 1
            point += " (finished first)"
        report.points.append(point)
        proc.wait()
        n += 1
    return report


def check_landing(db: Database, org: str, table: str, expected_ids: set[str], report: KillReport) -> None:
    with OrgScope(db, org).read() as conn:
        rows = conn.rows(
            f"SELECT source_id, count(*) AS n FROM {table} WHERE NOT is_deleted GROUP BY source_id"
        )
        all_rows = conn.scalar(f"SELECT count(*) FROM {table}")
        distinct = conn.scalar(f"SELECT count(DISTINCT (installation_id, source_id)) FROM {table}")
    present = {r["source_id"] for r in rows}
    report.lost += len(expected_ids - present)
    report.duplicated += int(all_rows) - int(distinct)
    extra = present - expected_ids
    if extra:
        report.notes.append(f"{table}: {len(extra)} rows not upstream")


def check_keys(
    db: Database, org: str, table: str, live: set[str], gone: set[str], report: KillReport
) -> None:
    """After a sync to completion: every ``live`` key is present and not deleted, every row is there
    once, and no key the vendor deleted (``gone``) is still live. Rows marked deleted are allowed."""
    with OrgScope(db, org).read() as conn:
        rows = conn.rows(f"SELECT source_id FROM {table} WHERE NOT is_deleted")
        all_rows = conn.scalar(f"SELECT count(*) FROM {table}")
        distinct = conn.scalar(f"SELECT count(DISTINCT (installation_id, source_id)) FROM {table}")
    present = {r["source_id"] for r in rows}
    lost = live - present
    undeleted = gone & present
    report.lost += len(lost)
    report.duplicated += int(all_rows) - int(distinct)
    report.undeleted += len(undeleted)
    if lost:
        report.notes.append(f"{table}: lost {sorted(lost)[:5]}")
    if undeleted:
        report.notes.append(f"{table}: deleted upstream but live {sorted(undeleted)[:5]}")
    extra = present - live - gone
    if extra:
        report.notes.append(f"{table}: {len(extra)} live rows not upstream")


def check_cursors(db: Database, org: str, table: str, stream: str, kind: str, report: KillReport) -> None:
    cast = "TRY_CAST({} AS TIMESTAMPTZ)" if kind == "timestamp" else "TRY_CAST({} AS DOUBLE)"
    with OrgScope(db, org).read() as conn:
        row = conn.rows(
            f"SELECT {cast.format('s.cursor')} AS saved, (SELECT max({cast.format('cursor_value')}) FROM {table}) AS top "
            "FROM integration_sync_state s WHERE s.stream = ?",
            [stream],
        )
    if row and row[0]["saved"] is not None and row[0]["top"] is not None and row[0]["saved"] > row[0]["top"]:
        report.cursor_ahead += 1


def check_jobs(db: Database, org: str, report: KillReport) -> None:
    with OrgScope(db, org).read() as conn:
        statuses = [r["status"] for r in conn.rows("SELECT status FROM integration_sync_jobs")]
    report.not_interrupted += sum(1 for s in statuses if s in ("running", "queued"))
