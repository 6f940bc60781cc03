"""The sync runner: one job = every stream of one installation, fetched, staged and applied.

Per stream: fetch every page over HTTP into staging files (no database connection open), then
apply them in one short write transaction (landing MERGE, quarantine, stale marking, cursor, ARIA
rows, counts). After the last stream, correlation and the risk register run in one more short
transaction. Only this module catches broadly: a failing stream is recorded and the next one runs;
nothing is marked stale and no cursor moves for a stream whose fetch was incomplete.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb

from aria_sync import audit
from aria_sync.audit import Actor
from aria_sync.connectors.base import ConnectorContext, FetchRequest, Stream
from aria_sync.errors import (
    AlreadyRunningError,
    AriaSyncError,
    AuthenticationError,
    NotFoundError,
    RetryBudgetExhausted,
    StoreError,
    UsageError,
)
from aria_sync.http import AllowList, RetryBudget
from aria_sync.http.redact import redact_text
from aria_sync.marketplace import Installation, Marketplace, require_role
from aria_sync.store import Database, OrgScope, lean_first, lean_memory_for, utcnow
from aria_sync.store.locks import InstallationLock
from aria_sync.sync.loader import ApplyTarget, StreamCounts, apply_stream
from aria_sync.sync.read_ahead import read_ahead
from aria_sync.sync.staging import JobStage, StreamStage, remove_stale_stages

log = logging.getLogger("aria_sync.sync")

TERMINAL = ("succeeded", "partial", "failed", "cancelled", "interrupted")
DEFAULT_RETRY_BUDGET = 200
_PROGRESS_EVERY = 2.0  # seconds between progress writes to the job row


@dataclass
class Progress:
    """What a progress callback receives; the CLI draws a bar from it, the dashboard a st.progress."""

    job_id: str
    installation: str
    stream: str | None
    stream_index: int
    stream_count: int
    phase: str  # starting | fetching | applying | correlating | done
    records: int = 0
    pages: int = 0
    message: str = ""

    @property
    def fraction(self) -> float:
        if self.phase == "done":
            return 1.0
        if not self.stream_count:
            return 0.0
        within = {"starting": 0.0, "fetching": 0.4, "applying": 0.8, "correlating": 0.95}.get(self.phase, 0.0)
        return min(0.99, (self.stream_index + within) / self.stream_count)


ProgressCallback = Callable[[Progress], None]


@dataclass
class SyncResult:
    job_id: str
    installation_id: str
    installation: str
    status: str
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "installation": self.installation,
            "installation_id": self.installation_id,
            "status": self.status,
            "streams": {name: StreamCounts.public(c) for name, c in self.streams.items()},
            "error": self.error,
            "warnings": self.warnings,
            "duration_seconds": round(self.duration_seconds, 3),
        }


def recover_interrupted(db: Database, org: str, *, locked_by_caller: str | None = None) -> int:
    """Jobs marked running whose process is gone (its installation lock is free) become interrupted.

    ``locked_by_caller`` is an installation whose lock the caller holds: every job still marked
    running for it belongs to a process that died.
    """
    scope = OrgScope(db, org)
    with scope.read() as conn:
        running = conn.rows(
            "SELECT job_id, installation_id FROM integration_sync_jobs WHERE status = 'running'"
        )
    dead = [
        r
        for r in running
        if r["installation_id"] == locked_by_caller
        or not InstallationLock(db.path, r["installation_id"]).is_held_elsewhere()
    ]
    if not dead:
        return 0
    now = utcnow()
    with scope.write() as conn:
        for job in dead:
            conn.execute(
                "UPDATE integration_sync_jobs SET status = 'interrupted', finished_at = ?, "
                "error = coalesce(error, 'the sync process stopped before finishing (killed or crashed)') "
                "WHERE org_id = ? AND job_id = ? AND status = 'running'",
                [now, org, job["job_id"]],
            )
            conn.execute(
                "UPDATE integration_installations SET last_sync_status = 'interrupted' "
                "WHERE org_id = ? AND installation_id = ?",
                [org, job["installation_id"]],
            )
            audit.record(
                conn,
                org,
                Actor("system", "admin"),
                "sync.interrupted",
                target_type="job",
                target_id=job["job_id"],
                outcome="failure",
            )
    return len(dead)


class SyncRunner:
    """Runs sync jobs for one organisation."""

    def __init__(
        self,
        db: Database,
        org: str,
        actor: Actor | None = None,
        *,
        marketplace: Marketplace | None = None,
        sleep: Callable[[float], None] | None = None,
        retry_budget: int = DEFAULT_RETRY_BUDGET,
    ) -> None:
        self.db = db
        self.marketplace = marketplace or Marketplace(db, org, actor)
        self.org = self.marketplace.org
        self.actor = self.marketplace.actor
        self.scope = OrgScope(db, self.org)
        self.sleep = sleep
        self.retry_budget = retry_budget

    def sync(
        self,
        ref: str,
        *,
        full: bool = False,
        trigger: str = "manual",
        on_progress: ProgressCallback | None = None,
        job_id: str | None = None,
    ) -> SyncResult:
        """Run one job now, in this thread. Raises AlreadyRunningError if one is running."""
        require_role(self.actor, "analyst", "run syncs")
        installation = self.marketplace.get(ref)
        if not installation.enabled:
            raise UsageError(f"installation {installation.name!r} is disabled; enable it before syncing")
        lock = InstallationLock(self.db.path, installation.installation_id)
        lock.acquire_or_raise(installation.name)
        try:
            recover_interrupted(self.db, self.org, locked_by_caller=installation.installation_id)
            job_id = job_id or str(uuid.uuid4())
            return self._run(installation, job_id, full=full, trigger=trigger, on_progress=on_progress)
        finally:
            lock.release()

    # -- the job ---------------------------------------------------------------------------
    def _run(
        self,
        installation: Installation,
        job_id: str,
        *,
        full: bool,
        trigger: str,
        on_progress: ProgressCallback | None,
    ) -> SyncResult:
        started = time.monotonic()
        connector = installation.connector
        streams = connector.streams
        stage_root = self.db.path.parent / "staging"
        remove_stale_stages(stage_root, keep=set())
        stage = JobStage(stage_root, job_id)
        now = utcnow()
        self._start_job(installation, job_id, trigger, full, now)
        result = SyncResult(job_id, installation.installation_id, installation.name, "running")
        progress = Progress(job_id, installation.name, None, 0, len(streams), "starting")
        notify = _Notifier(self, job_id, on_progress)
        notify(progress, force=True)
        secrets: tuple[str, ...] = ()
        fatal: str | None = None
        auth_failed = False
        try:
            config = self.marketplace.config_for(installation)
            secrets = tuple(config.secret_values())
            cursors = self._cursors(installation.installation_id)
            context = ConnectorContext(
                allowed=AllowList.from_env(),
                budget=RetryBudget(self.retry_budget),
                secrets=secrets,
                sleep=self.sleep,
                options=installation.options,
            )
            target = ApplyTarget(
                self.org,
                installation.installation_id,
                installation.integration_key,
                job_id,
                float(installation.options.get("max_stale_fraction", 0.30)),
            )
            with connector.session(config, context) as session:
                for index, stream in enumerate(streams):
                    progress.stream, progress.stream_index = stream.name, index
                    counts = StreamCounts()
                    result.streams[stream.name] = counts.as_dict()
                    try:
                        self._sync_stream(
                            session, stream, stage, target, counts, cursors, full, progress, notify, secrets
                        )
                    except (AuthenticationError, RetryBudgetExhausted) as exc:
                        auth_failed = isinstance(exc, AuthenticationError)
                        counts.status, counts.error = "failed", redact_text(str(exc), secrets)
                        fatal = counts.error
                        result.streams[stream.name] = counts.as_dict()
                        break
                    result.streams[stream.name] = counts.as_dict()
                    result.warnings.extend(counts.warnings)
            if fatal is None and any(c["status"] != "failed" for c in result.streams.values()):
                progress.phase, progress.message = "correlating", "linking assets across sources"
                notify(progress, force=True)
                self._post_sync(installation)
        except AriaSyncError as exc:
            auth_failed = isinstance(exc, AuthenticationError)
            fatal = redact_text(str(exc), secrets)
        except Exception as exc:  # a bug must still end the job with a reason, never leave it running
            log.exception("sync %s failed unexpectedly", job_id)
            fatal = redact_text(f"internal error: {type(exc).__name__}: {exc}", secrets)
        except KeyboardInterrupt:
            self._finish(
                installation, result, "cancelled", "cancelled by the user", started, auth_failed=False
            )
            stage.remove()
            raise
        status = _job_status(result, fatal)
        error = fatal or _first_error(result)
        self._finish(installation, result, status, error, started, auth_failed=auth_failed)
        stage.remove()
        progress.phase, progress.message = "done", status
        notify(progress, force=True)
        return result

    def _sync_stream(
        self,
        session: Any,
        stream: Stream,
        stage: JobStage,
        target: ApplyTarget,
        counts: StreamCounts,
        cursors: dict[str, str | None],
        full: bool,
        progress: Progress,
        notify: _Notifier,
        secrets: tuple[str, ...],
    ) -> None:
        stream_stage = stage.stream(stream.name)
        previous = None if full or not stream.incremental else cursors.get(stream.name)
        request = FetchRequest(
            cursor=previous, full_refresh=full or not stream.incremental, state={"cursor": previous}
        )
        complete = True
        progress.phase, progress.records, progress.pages, progress.message = "fetching", 0, 0, ""
        notify(progress, force=True)
        try:
            _stage_pages(read_ahead(stream.fetch(session, request)), stream_stage, progress, notify)
        except (AuthenticationError, RetryBudgetExhausted):
            raise
        except AriaSyncError as exc:
            complete = False
            counts.status, counts.error = "failed", redact_text(str(exc), secrets)
        except Exception as exc:
            log.exception("stream %s failed unexpectedly", stream.name)
            complete = False
            counts.status = "failed"
            counts.error = redact_text(
                f"internal error in {stream.name}: {type(exc).__name__}: {exc}", secrets
            )
        if not complete and stream_stage.records == 0:
            return
        progress.phase, progress.message = "applying", f"{stream_stage.records} records"
        notify(progress, force=True)
        now = utcnow()
        before = dataclasses.replace(counts, warnings=list(counts.warnings))

        def attempt(memory: str | None) -> None:
            # A second attempt starts from the counts the fetch left, not from the failed apply's.
            for name in (f.name for f in dataclasses.fields(StreamCounts)):
                value = getattr(before, name)
                setattr(counts, name, list(value) if isinstance(value, list) else value)
            with self.scope.write(memory=memory) as conn:
                saved = apply_stream(
                    conn,
                    target,
                    stream,
                    stream_stage,
                    counts,
                    complete=complete,
                    previous_cursor=previous if not full else None,
                    now=now,
                )
                if not complete:
                    counts.status = "partial"
                if saved is not None:
                    cursors[stream.name] = saved
                _write_stream_counts(conn, self.org, target.job_id, stream.name, counts)

        try:
            lean_first(attempt, f"applying {stream.name}", lean_memory_for(stream_stage.records))
        except duckdb.Error as exc:
            # The transaction rolled back: nothing of this stream was applied, its cursor did not move.
            first_line = str(exc).splitlines()[0]
            hint = " (raise ARIA_SYNC_MEMORY_LIMIT)" if isinstance(exc, duckdb.OutOfMemoryException) else ""
            raise StoreError(
                f"applying {stream.name} failed, nothing of it was written: {first_line}{hint}"
            ) from None

    def _post_sync(self, installation: Installation) -> None:
        from aria_sync.derive import refresh_org

        refresh_org(self.db, self.org)

    # -- job rows --------------------------------------------------------------------------
    def _start_job(
        self, installation: Installation, job_id: str, trigger: str, full: bool, now: dt.datetime
    ) -> None:
        with self.scope.write() as conn:
            conn.execute(
                """INSERT INTO integration_sync_jobs (org_id, job_id, installation_id, integration_key,
                   installation_name, trigger, status, full_refresh, requested_by, pid, host, created_at, started_at,
                   heartbeat_at, streams, progress)
                   VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, '{}', '{}')""",
                [
                    self.org,
                    job_id,
                    installation.installation_id,
                    installation.integration_key,
                    installation.name,
                    trigger,
                    full,
                    self.actor.name,
                    os.getpid(),
                    socket.gethostname(),
                    now,
                    now,
                    now,
                ],
            )
            audit.record(
                conn,
                self.org,
                self.actor,
                "sync.start",
                target_type="installation",
                target_id=installation.installation_id,
                details={"job_id": job_id, "trigger": trigger, "full": full},
            )

    def _finish(
        self,
        installation: Installation,
        result: SyncResult,
        status: str,
        error: str | None,
        started: float,
        *,
        auth_failed: bool,
    ) -> None:
        result.status, result.error = status, error
        result.duration_seconds = time.monotonic() - started
        now = utcnow()
        succeeded = status in ("succeeded", "partial")
        with self.scope.write() as conn:
            conn.execute(
                """UPDATE integration_sync_jobs SET status = ?, finished_at = ?, duration_seconds = ?, streams = ?,
                   error = ?, warnings = ?, heartbeat_at = ? WHERE org_id = ? AND job_id = ?""",
                [
                    status,
                    now,
                    result.duration_seconds,
                    json.dumps(result.streams),
                    error,
                    json.dumps(result.warnings),
                    now,
                    self.org,
                    result.job_id,
                ],
            )
            credentials_invalid = auth_failed
            conn.execute(
                """UPDATE integration_installations SET last_sync_at = ?, last_sync_status = ?, last_error = ?,
                   last_success_at = CASE WHEN ? THEN ? ELSE last_success_at END,
                   consecutive_failures = CASE WHEN ? THEN 0 ELSE consecutive_failures + 1 END,
                   status = CASE WHEN ? THEN 'credentials_invalid' WHEN status = 'credentials_invalid' AND ?
                                 THEN 'active' ELSE status END,
                   updated_at = ?
                   WHERE org_id = ? AND installation_id = ?""",
                [
                    now,
                    status,
                    error,
                    succeeded,
                    now,
                    succeeded,
                    credentials_invalid,
                    succeeded,
                    now,
                    self.org,
                    installation.installation_id,
                ],
            )
            audit.record(
                conn,
                self.org,
                self.actor,
                "sync.finish",
                target_type="installation",
                target_id=installation.installation_id,
                outcome="success" if status == "succeeded" else status,
                details={
                    "job_id": result.job_id,
                    "status": status,
                    "error": error,
                    "streams": {n: StreamCounts.public(c) for n, c in result.streams.items()},
                },
            )

    def _cursors(self, installation_id: str) -> dict[str, str | None]:
        with self.scope.read() as conn:
            rows = conn.rows(
                "SELECT stream, cursor FROM integration_sync_state WHERE installation_id = ?",
                [installation_id],
            )
        return {r["stream"]: r["cursor"] for r in rows}

    def write_progress(self, job_id: str, progress: Progress) -> None:
        payload = json.dumps(
            {
                "stream": progress.stream,
                "phase": progress.phase,
                "records": progress.records,
                "pages": progress.pages,
                "fraction": round(progress.fraction, 3),
                "stream_index": progress.stream_index,
                "stream_count": progress.stream_count,
                "message": progress.message,
            }
        )
        with self.scope.write() as conn:
            conn.execute(
                "UPDATE integration_sync_jobs SET progress = ?, heartbeat_at = ? WHERE org_id = ? AND job_id = ?",
                [payload, utcnow(), self.org, job_id],
            )


class _Notifier:
    """Forwards progress to the caller at every step, and to the job row every couple of seconds."""

    def __init__(self, runner: SyncRunner, job_id: str, callback: ProgressCallback | None) -> None:
        self.runner, self.job_id, self.callback = runner, job_id, callback
        self._last_write = 0.0

    def __call__(self, progress: Progress, force: bool = False) -> None:
        if self.callback is not None:
            self.callback(dataclasses.replace(progress))  # a snapshot: the runner keeps mutating its own
        now = time.monotonic()
        if force or now - self._last_write >= _PROGRESS_EVERY:
            self._last_write = now
            self.runner.write_progress(self.job_id, progress)


def _stage_pages(pages: Iterator[Any], stage: StreamStage, progress: Progress, notify: _Notifier) -> None:
    """Stage every page, reporting progress. A function of its own so that no page outlives it: the
    last 50,000-row export page would otherwise stay alive through the whole apply."""
    for page in pages:
        stage.write_page(page)
        del page  # before the next is fetched: see read_ahead.LARGE_PAGE_RECORDS
        progress.records, progress.pages = stage.records, stage.pages
        notify(progress)


def _write_stream_counts(
    conn: duckdb.DuckDBPyConnection, org: str, job_id: str, stream: str, counts: StreamCounts
) -> None:
    row = conn.execute(
        "SELECT streams FROM integration_sync_jobs WHERE org_id = ? AND job_id = ?", [org, job_id]
    ).fetchone()
    streams = json.loads(row[0]) if row and row[0] else {}
    streams[stream] = counts.as_dict()
    conn.execute(
        "UPDATE integration_sync_jobs SET streams = ?, heartbeat_at = ? WHERE org_id = ? AND job_id = ?",
        [json.dumps(streams), utcnow(), org, job_id],
    )


def _job_status(result: SyncResult, fatal: str | None) -> str:
    statuses = [c["status"] for c in result.streams.values()]
    if fatal is not None:
        return "partial" if any(s in ("succeeded", "partial") for s in statuses) else "failed"
    if not statuses:
        return "succeeded"
    if all(s == "failed" for s in statuses):
        return "failed"
    if all(s == "succeeded" for s in statuses) and not result.warnings:
        return "succeeded"
    return "partial"


def _first_error(result: SyncResult) -> str | None:
    problems = [f"{name}: {c['error']}" for name, c in result.streams.items() if c.get("error")]
    problems += result.warnings
    return "; ".join(problems) if problems else None


def purge_installation_rows(conn: duckdb.DuckDBPyConnection, org: str, installation: Installation) -> None:
    """Delete every row an installation brought in (uninstall --purge-data)."""
    tables = {s.table for s in installation.connector.streams}
    for table in sorted(tables):
        conn.execute(
            f"DELETE FROM {table} WHERE org_id = ? AND installation_id = ?",
            [org, installation.installation_id],
        )
    for table in (
        "asset_identities",
        "asset_sources",
        "vulnerabilities",
        "detections",
        "incidents",
        "services",
        "service_assets",
        "integration_rejected_records",
    ):
        conn.execute(
            f"DELETE FROM {table} WHERE org_id = ? AND installation_id = ?",
            [org, installation.installation_id],
        )


def job(db: Database, org: str, job_id: str) -> dict[str, Any]:
    with OrgScope(db, org).read() as conn:
        rows = conn.rows("SELECT * FROM integration_sync_jobs WHERE job_id = ?", [job_id])
    if not rows:
        raise NotFoundError(f"no sync job {job_id!r}")
    return rows[0]


__all__ = ["AlreadyRunningError", "Progress", "SyncResult", "SyncRunner", "job", "recover_interrupted"]
