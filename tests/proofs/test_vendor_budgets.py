"""Vendor budgets, proved from what the simulators saw: full syncs of each vendor, then the request
log (with its timestamps) is checked against the documented limits.

- Defender: requests per endpoint per rolling minute never above 100 (machines, alerts), 50
  (incidents) or 30 (vulnerability export); a 429's Retry-After is waited out.
- Tenable: never more export jobs running at once than the 10 a container allows, tracked from
  export creation to the poll that saw the job end; a 429 is waited out.
- ServiceNow: within the hourly rate-limit rule, and the rule's 429 waited out until the window
  resets, not hammered.

Minutes and hours are scaled down where a proof would otherwise take that long: the client's and
the simulator's windows are shrunk by the same factor, and the log is checked against the scaled
window.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from aria_sync.connectors.ms_defender import api as defender_api
from aria_sync.connectors.ms_defender import connector as defender_connector
from aria_sync.connectors.ms_defender.auth import forget_applications
from aria_sync.simulators.estate import Estate
from aria_sync.simulators.framework import Fault, LoggedRequest
from aria_sync.simulators.ms_defender import DEFAULT_RATE_LIMITS
from aria_sync.simulators.tenable import NGINX_429_BODY, TenableSimulator
from aria_sync.store import Database, OrgScope
from aria_sync.sync import SyncRunner

from .killing import RecordFigure
from .vendors import ORG, Rig, defender_rig, servicenow_rig, tenable_rig

# Documented (core-defender-servicenow-tenable.md, section 1.6 and the limits table).
DEFENDER_PER_MINUTE = {"machines": 100, "alerts": 100, "incidents": 50, "vulnerability_export": 30}
TENABLE_CONCURRENT_EXPORTS = 10


@pytest.fixture(autouse=True)
def fresh_token_caches() -> Iterator[None]:
    forget_applications()
    yield
    forget_applications()


def sync_to_completion(db: Database, rig: Rig) -> None:
    result = SyncRunner(db, ORG, sleep=time.sleep).sync(rig.name)
    assert result.status == "succeeded", (result.error, result.streams)
    with OrgScope(db, ORG).read() as conn:
        for table, expected in rig.expected().items():
            live = {r["source_id"] for r in conn.rows(f"SELECT source_id FROM {table} WHERE NOT is_deleted")}
            assert expected.live <= live, table


def most_in_window(times: Sequence[float], window: float) -> int:
    """The largest number of ``times`` inside any half-open window of ``window`` seconds."""
    ordered = sorted(times)
    best, first = 0, 0
    for last, moment in enumerate(ordered):
        while moment - ordered[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


def gaps_after_refusals(log: Sequence[LoggedRequest], pattern: str) -> list[float]:
    """For each 429 on a path matching ``pattern``: seconds until the next request to such a path."""
    matching = [r for r in log if re.search(pattern, r.path)]
    return [
        later.started - refused.started
        for refused, later in itertools.pairwise(matching)
        if refused.status == 429
    ]


# -- Microsoft Defender for Endpoint ------------------------------------------------------------------

DEFENDER_GROUPS = {
    "machines": r"^/api/machines$",
    "alerts": r"^/api/alerts$",
    "incidents": r"^/api/incidents$",
    "vulnerability_export": r"^/api/machines/SoftwareVulnerabilitiesByMachine$",
}


def test_defender_stays_under_each_endpoints_per_minute_quota(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, proof_figure: RecordFigure
) -> None:
    # The simulator enforces what the docs publish, and so does the client, endpoint by endpoint.
    assert {group: DEFAULT_RATE_LIMITS[group][0][0] for group in DEFENDER_PER_MINUTE} == DEFENDER_PER_MINUTE
    assert all(DEFAULT_RATE_LIMITS[group][0][1] == 60.0 for group in DEFENDER_PER_MINUTE)
    client_limits = {path: calls for path, (calls, seconds) in defender_connector.RATE_LIMITS.items()}
    assert client_limits == {
        defender_api.MACHINES_PATH: 100,
        defender_api.ALERTS_PATH: 100,
        defender_api.INCIDENTS_PATH: 50,
        defender_api.EXPORT_PATH: 30,
    }
    # 706 export rows in pages of 25 make 29 export requests. The export quota is scaled from 30 per
    # minute to 4 per second on both sides; the simulator's window is a little shorter than the
    # client's, so loopback jitter cannot turn a compliant request into a 429.
    monkeypatch.setitem(defender_connector.RATE_LIMITS, defender_api.EXPORT_PATH, (4, 1.0))
    rig = defender_rig(
        db,
        Estate.generate("tiny"),
        tmp_path / "tls",
        options={
            "machines_page_size": 1,
            "alerts_page_size": 1,
            "incidents_page_size": 1,
            "export_page_size": 25,
        },
        rate_limits={"vulnerability_export": ((4, 0.95), (1000, 3600.0))},
    )
    try:
        # One 429 with Retry-After on the first machines page: the client must wait it out.
        rig.server.faults.add(
            Fault(kind="status", path=DEFENDER_GROUPS["machines"], status=429, times=1,
                  headers={"Retry-After": "1", "Content-Type": "application/json"},
                  body=b'{"error":{"code":"TooManyRequests","message":"quota","target":"t"}}')
        )  # fmt: skip
        sync_to_completion(db, rig)
        log = list(rig.server.request_log)
    finally:
        rig.stop()

    windows = {group: 60.0 for group in DEFENDER_GROUPS} | {"vulnerability_export": 0.95}
    limits = DEFENDER_PER_MINUTE | {"vulnerability_export": 4}
    seen = {}
    for group, pattern in DEFENDER_GROUPS.items():
        times = [r.started for r in log if re.search(pattern, r.path)]
        seen[group] = (len(times), most_in_window(times, windows[group]))
    proof_figure(
        "vendor budgets",
        "Defender, most requests in any rolling window (limit): "
        + ", ".join(f"{group} {busiest} ({limits[group]})" for group, (_, busiest) in seen.items()),
    )
    for group in DEFENDER_GROUPS:
        assert seen[group][1] <= limits[group], (group, seen[group])
    assert seen["machines"][0] >= 27 and seen["vulnerability_export"][0] >= 29, seen
    # The scaled export quota was reached and respected: never refused by the vendor for it.
    assert seen["vulnerability_export"][1] == 4
    assert [r.status for r in log if r.status == 429 and "Software" in r.path] == []
    assert gaps_after_refusals(log, DEFENDER_GROUPS["machines"]) and all(
        gap >= 1.0 for gap in gaps_after_refusals(log, DEFENDER_GROUPS["machines"])
    )


# -- Tenable ------------------------------------------------------------------------------------------

_EXPORT_JOB = re.compile(r"^/(vulns|assets)/export/([0-9a-fA-F-]{36})/")


def export_intervals(log: Sequence[LoggedRequest]) -> dict[str, tuple[float, float]]:
    """Export job uuid -> (created, last seen running or cancelled), from the request log alone.

    The log holds no response bodies, so a job is named by the first uuid its kind's requests use
    after its ``POST /{kind}/export``; it counts as running until the last request on it (its final
    status poll, chunk download or cancel), which over-states how long it held a slot, never less.
    """
    pending: dict[str, list[float]] = {"vulns": [], "assets": []}
    intervals: dict[str, tuple[float, float]] = {}
    for request in log:
        created = re.fullmatch(r"/(vulns|assets)/export", request.path)
        if created and request.method == "POST" and request.status == 200:
            pending[created.group(1)].append(request.started)
            continue
        job = _EXPORT_JOB.match(request.path)
        if job is None:
            continue
        kind, uuid = job.groups()
        if uuid not in intervals:
            assert pending[kind], f"{uuid} used before any {kind} export was created"
            intervals[uuid] = (pending[kind].pop(0), request.started)
        intervals[uuid] = (intervals[uuid][0], request.started)
    return intervals


def most_at_once(intervals: Sequence[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = best = 0
    for _, change in events:
        running += change
        best = max(best, running)
    return best


def test_tenable_never_runs_more_exports_at_once_than_allowed(
    db: Database, proof_figure: RecordFigure
) -> None:
    rig = tenable_rig(
        db,
        Estate.generate("small"),
        chunks_per_poll=1,
        max_concurrent_exports=TENABLE_CONCURRENT_EXPORTS,
        options={"asset_export_chunk_size": 100, "vuln_export_num_assets": 50},
    )
    app = rig.server.app
    assert isinstance(app, TenableSimulator)
    try:
        sync_to_completion(db, rig)
        # A second run, after six hours of changes, creates incremental exports.
        rig.estate.advance()
        # One nginx 429 with retry-after on a status poll of the second run's vulnerability export.
        rig.server.faults.add(
            Fault(kind="status", path=r"^/vulns/export/[0-9a-f-]+/status$", status=429, times=1,
                  headers={"retry-after": "1", "Content-Type": "text/html"}, body=NGINX_429_BODY)
        )  # fmt: skip
        sync_to_completion(db, rig)
        log = list(rig.server.request_log)
    finally:
        rig.stop()

    intervals = export_intervals(log)
    creates = [r for r in log if r.method == "POST" and re.fullmatch(r"/(vulns|assets)/export", r.path)]
    assert len(intervals) == len(creates) == 4  # assets and vulns, twice
    at_once = most_at_once(list(intervals.values()))
    proof_figure(
        "vendor budgets",
        f"Tenable, most exports running at once over two syncs: {at_once} (limit {TENABLE_CONCURRENT_EXPORTS})",
    )
    assert at_once <= TENABLE_CONCURRENT_EXPORTS
    assert app.counters["concurrency_limited"] == 0
    # Every job it created it saw to an end (polled to FINISHED), none left holding a slot.
    assert not [job.uuid for job in app.exports.values() if job.active]
    gaps = gaps_after_refusals(log, r"^/vulns/export/[0-9a-f-]+/status$")
    assert len(gaps) == 1 and gaps[0] >= 1.0, gaps


# -- ServiceNow ---------------------------------------------------------------------------------------


def fixed_windows(log: Sequence[LoggedRequest], seconds: float) -> list[list[LoggedRequest]]:
    """Requests grouped the way a rate-limit rule counts them: a window opens at the first request
    after the previous one closed and lasts ``seconds``."""
    windows: list[list[LoggedRequest]] = []
    opened = float("-inf")
    for request in sorted(log, key=lambda r: r.wall_time):
        if request.wall_time >= opened + seconds:
            opened = request.wall_time
            windows.append([])
        windows[-1].append(request)
    return windows


def test_servicenow_stays_within_the_hourly_rule_and_waits_out_its_429(
    db: Database, proof_figure: RecordFigure
) -> None:
    # The hour is scaled to one second: at most 5 requests per window for this user. Small pages make
    # the sync itself reach the rule, not only the install's connection test.
    limit, window = 5, 1.0
    rig = servicenow_rig(db, Estate.generate("small"), page_size=25,
                         hourly_limit=limit, rate_limit_window_seconds=window)  # fmt: skip
    try:
        started = time.time()
        sync_to_completion(db, rig)
        # The rule counts every request of the user, the install's connection test included, so the
        # windows are rebuilt from the whole log.
        log = [r for r in rig.server.request_log if r.path.startswith("/api/now/")]
    finally:
        rig.stop()

    windows = fixed_windows(log, window)
    accepted = [sum(1 for r in w if r.status != 429) for w in windows]
    refused = [sum(1 for r in w if r.status == 429) for w in windows]
    proof_figure(
        "vendor budgets",
        f"ServiceNow, most requests accepted in one rule window: {max(accepted)} (limit {limit}); "
        f"{sum(refused)} refused, each waited out",
    )
    assert sum(1 for r in log if r.wall_time >= started and r.status == 429) >= 1  # the sync reached it
    assert max(accepted) <= limit, accepted
    # Waited out, not hammered: at most one refusal per window, and the next request only once the
    # window the instance named in Retry-After had reset.
    assert sum(refused) >= 1 and max(refused) <= 1, refused
    for current, following in itertools.pairwise(windows):
        if any(r.status == 429 for r in current):
            assert current[-1].status == 429  # nothing more was sent in the refused window
            assert following[0].wall_time >= current[0].wall_time + window
