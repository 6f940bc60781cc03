"""Background sync jobs for long-running front-ends (the dashboard).

A sync can take minutes, and a Streamlit script run is interrupted by any click, so syncs run in
their own thread. The worker never touches the UI: it only records progress here, behind a lock,
and the UI polls :meth:`JobRegistry.status`. The job id handed out is the id of the
``integration_sync_jobs`` row, so a job outlives the process in the database even though the
thread does not.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from aria_sync.audit import Actor
from aria_sync.errors import AriaSyncError
from aria_sync.marketplace import require_role
from aria_sync.store import Database
from aria_sync.sync.engine import Progress, SyncResult, SyncRunner

RUNNING = "running"


@dataclass(frozen=True)
class JobHandle:
    """An opaque reference to one background job (its id is the sync job id)."""

    job_id: str
    org: str
    installation_ref: str


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of one job, safe to read from any thread."""

    job_id: str
    org: str
    installation_ref: str
    requested_by: str
    state: str  # running, or the job's final status: succeeded | partial | failed | ...
    fraction: float = 0.0
    phase: str = "starting"
    stream: str | None = None
    records: int = 0
    message: str = ""
    error: str | None = None
    result: SyncResult | None = None
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    finished_at: dt.datetime | None = None

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def total_records(self) -> int:
        """Records fetched over all streams once finished, else the progress count so far."""
        if self.result is None:
            return self.records
        return sum(int(counts.get("fetched", 0) or 0) for counts in self.result.streams.values())


class JobRegistry:
    """Thread-safe record of the sync threads started by this process."""

    def __init__(self, runner_options: dict[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, JobStatus] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._runner_options = dict(runner_options or {})

    def start_sync(
        self,
        db: Database,
        org: str,
        actor: Actor,
        installation_ref: str,
        *,
        full: bool = False,
        trigger: str = "dashboard",
    ) -> JobHandle:
        """Start ``SyncRunner.sync`` in a thread; refuses at once if the role may not sync."""
        require_role(actor, "analyst", "run syncs")
        with self._lock:
            for status in self._jobs.values():
                if status.running and status.org == org and status.installation_ref == installation_ref:
                    return JobHandle(status.job_id, org, installation_ref)
            job_id = str(uuid.uuid4())
            self._jobs[job_id] = JobStatus(
                job_id=job_id,
                org=org,
                installation_ref=installation_ref,
                requested_by=actor.name,
                state=RUNNING,
            )
            thread = threading.Thread(
                target=self._work,
                args=(db, org, actor, installation_ref, job_id, full, trigger),
                name=f"aria-sync-{installation_ref}",
                daemon=True,
            )
            self._threads[job_id] = thread
        thread.start()
        return JobHandle(job_id, org, installation_ref)

    def status(self, handle: JobHandle | str) -> JobStatus:
        job_id = handle.job_id if isinstance(handle, JobHandle) else handle
        with self._lock:
            try:
                return self._jobs[job_id]
            except KeyError:
                raise KeyError(f"no background job {job_id!r} in this process") from None

    def jobs(self, org: str) -> list[JobStatus]:
        """This organisation's jobs, newest first."""
        with self._lock:
            found = [s for s in self._jobs.values() if s.org == org]
        return sorted(found, key=lambda s: s.started_at, reverse=True)

    def any_running(self, org: str) -> bool:
        return any(s.running for s in self.jobs(org))

    def wait(self, handle: JobHandle, timeout: float | None = None) -> JobStatus:
        """Block until the job's thread ends (for scripts and tests)."""
        with self._lock:
            thread = self._threads.get(handle.job_id)
        if thread is not None:
            thread.join(timeout)
        return self.status(handle)

    # -- the worker thread ------------------------------------------------------------------
    def _update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            self._jobs[job_id] = replace(self._jobs[job_id], **changes)

    def _work(
        self,
        db: Database,
        org: str,
        actor: Actor,
        installation_ref: str,
        job_id: str,
        full: bool,
        trigger: str,
    ) -> None:
        def on_progress(progress: Progress) -> None:
            self._update(
                job_id,
                fraction=progress.fraction,
                phase=progress.phase,
                stream=progress.stream,
                records=progress.records,
                message=progress.message,
            )

        try:
            runner = SyncRunner(db, org, actor, **self._runner_options)
            result = runner.sync(
                installation_ref, full=full, trigger=trigger, on_progress=on_progress, job_id=job_id
            )
            self._update(
                job_id,
                state=result.status,
                fraction=1.0,
                phase="done",
                error=result.error,
                result=result,
                finished_at=dt.datetime.now(dt.UTC),
            )
        except AriaSyncError as exc:
            self._update(job_id, state="failed", error=str(exc), finished_at=dt.datetime.now(dt.UTC))
        except Exception as exc:  # the thread must always end with a final state the UI can show
            self._update(
                job_id,
                state="failed",
                error=f"unexpected error: {type(exc).__name__}",
                finished_at=dt.datetime.now(dt.UTC),
            )
        finally:
            with self._lock:
                self._threads.pop(job_id, None)


_DEFAULT = JobRegistry()


def start_sync(
    db: Database, org: str, actor: Actor, installation_ref: str, *, full: bool = False
) -> JobHandle:
    """Start a background sync in the process-wide registry."""
    return _DEFAULT.start_sync(db, org, actor, installation_ref, full=full)


def status(handle: JobHandle | str) -> JobStatus:
    """The current snapshot of a job started with :func:`start_sync`."""
    return _DEFAULT.status(handle)


def default_registry() -> JobRegistry:
    return _DEFAULT
