"""Tenable's asynchronous exports as an iterator of chunks, with a deadline.

An export is a job: create it, poll its status, download every chunk id it lists (as soon as it is
listed, because chunks expire), until the job is ``FINISHED``. Chunks finish out of order and ids
have gaps, so the iterator tracks which ids it has taken instead of assuming ``1..total``. Chunks
are downloaded by a small thread pool and yielded one at a time in the order they arrive, so
memory holds at most a few chunks whatever the size of the export.

Failures are reported after everything that did arrive was yielded: the engine keeps those rows
(upsert only), records the stream as partial, moves no cursor and marks nothing stale.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson

from aria_sync.errors import ExportJobError, ExportJobTimeout, FatalSourceError, SourceError

if TYPE_CHECKING:
    from aria_sync.connectors.tenable.api import TenableSession

ExportKind = Literal["vulns", "assets"]
Page = list[Any]

_LABELS = {"vulns": "vulnerability", "assets": "asset"}
_ACTIVE = frozenset({"QUEUED", "PROCESSING"})
_ACTIVE_JOB_ID = re.compile(r'"active_job_id"\s*:\s*"([0-9A-Fa-f-]{36})"')


@dataclass(frozen=True)
class ExportSettings:
    """How exports are polled and downloaded; installation options override the defaults.

    Option names (``aria-sync`` installation options): ``export_poll_initial_seconds``,
    ``export_poll_max_seconds``, ``export_deadline_seconds``, ``export_download_workers``,
    ``export_chunk_attempts``, ``vuln_export_num_assets``, ``asset_export_chunk_size``.
    """

    poll_initial_seconds: float = 0.5
    poll_max_seconds: float = 30.0
    deadline_seconds: float = 4 * 3600.0
    download_workers: int = 3  # Tenable advises against heavy parallelism; 3 stays within its limits
    chunk_attempts: int = 4  # the first download plus three re-downloads of a broken body
    vuln_num_assets: int = 50  # assets per vulnerability chunk (Tenable's minimum): ~1-2k findings, a few MB
    asset_chunk_size: int = 1000

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ExportSettings:
        """Settings from installation options; unknown or malformed values keep the default."""
        names = {
            "export_poll_initial_seconds": ("poll_initial_seconds", float, 0.0, 600.0),
            "export_poll_max_seconds": ("poll_max_seconds", float, 0.0, 600.0),
            "export_deadline_seconds": ("deadline_seconds", float, 0.01, 86400.0),
            "export_download_workers": ("download_workers", int, 1, 3),
            "export_chunk_attempts": ("chunk_attempts", int, 1, 10),
            "vuln_export_num_assets": ("vuln_num_assets", int, 50, 5000),
            "asset_export_chunk_size": ("asset_chunk_size", int, 100, 10_000),
        }
        changes: dict[str, Any] = {}
        for option, (attribute, kind, low, high) in names.items():
            if option not in options:
                continue
            try:
                value = kind(options[option])
            except (TypeError, ValueError):
                continue
            changes[attribute] = min(max(value, low), high)
        return dataclasses.replace(cls(), **changes)


@dataclass
class _Chunk:
    chunk_id: int
    records: Page | None = None
    problem: str | None = None  # set when the body never decoded


class ExportIterator:
    """Iterate the chunks (pages of raw records) of one Tenable export job.

    ``body`` is the JSON sent to ``POST /{kind}/export``. Iterating creates the job (reusing the
    running one on 409), then yields each chunk's records. Raises :class:`ExportJobTimeout` (after
    cancelling the job) when it is not finished within the deadline, and :class:`ExportJobError`
    for an ``ERROR``/``CANCELLED`` job, an expired chunk, or failed chunks (after yielding the rest).
    """

    def __init__(
        self,
        session: TenableSession,
        kind: ExportKind,
        body: dict[str, Any],
        *,
        stream: str,
        settings: ExportSettings,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.kind = kind
        self.body = body
        self.stream = stream
        self.settings = settings
        self._sleep = sleep
        self._clock = clock
        self.label = f"Tenable {_LABELS[kind]} export"
        self.uuid: str | None = None
        self.chunks_yielded = 0
        self.records_yielded = 0
        self._job_over = False  # the job reached a terminal state (or was cancelled by us)

    # -- the job --------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Page]:
        started = self._clock()
        self.uuid = self._create()
        deadline = started + self.settings.deadline_seconds
        pending: deque[int] = deque()
        taken: set[int] = set()
        broken: list[_Chunk] = []
        status: dict[str, Any] = {}
        finished = False
        interval = self.settings.poll_initial_seconds
        next_poll = self._clock()
        flowing = False  # the last poll listed new chunks
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.settings.download_workers, thread_name_prefix=f"tenable-{self.kind}-chunk"
        )
        inflight: dict[concurrent.futures.Future[_Chunk], int] = {}
        completed = False
        try:
            while True:
                for future in [f for f in inflight if f.done()]:
                    del inflight[future]
                    chunk = future.result()  # an aria error from a download ends the export here
                    if chunk.problem is not None:
                        broken.append(chunk)
                    elif chunk.records:
                        self.chunks_yielded += 1
                        self.records_yielded += len(chunk.records)
                        yield chunk.records
                while pending and len(inflight) < self.settings.download_workers:
                    chunk_id = pending.popleft()
                    inflight[pool.submit(self._download, chunk_id)] = chunk_id
                if finished:
                    if not inflight:
                        break
                    concurrent.futures.wait(inflight, return_when=concurrent.futures.FIRST_COMPLETED)
                    continue
                now = self._clock()
                if now >= deadline:
                    self._cancel()
                    raise ExportJobTimeout(
                        f"{self.label} {self.uuid} did not finish within {self.settings.deadline_seconds:g} s "
                        f"(waited {now - started:.1f} s, last status {status.get('status', 'unknown')}, "
                        f"{len(taken)} chunks listed); the export was cancelled"
                    )
                if now >= next_poll:
                    status = self._status()
                    fresh = [c for c in _chunk_ids(status.get("chunks_available")) if c not in taken]
                    taken.update(fresh)
                    pending.extend(sorted(fresh))
                    interval = (
                        self.settings.poll_initial_seconds
                        if fresh
                        else min(max(interval * 2, 0.01), self.settings.poll_max_seconds)
                    )
                    next_poll = self._clock() + interval
                    flowing = bool(fresh)
                    finished = self._settle(status)
                    continue  # start the new downloads before waiting
                if flowing and not pending and len(inflight) < self.settings.download_workers:
                    # Every chunk listed is taken and a download slot is free while chunks were still
                    # appearing: ask again now, as pyTenable does; a poll that lists nothing new falls
                    # back to the backoff.
                    flowing = False
                    next_poll = self._clock()
                    continue
                wait = max(0.0, min(next_poll, deadline) - self._clock())
                if inflight:
                    concurrent.futures.wait(
                        inflight, timeout=wait, return_when=concurrent.futures.FIRST_COMPLETED
                    )
                else:
                    self._sleep(wait)
            completed = True
        finally:
            for future in inflight:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            if not completed and not finished and not self._job_over:
                self._cancel()  # an abandoned job would hold one of Tenable's few export slots
        self._raise_for_failures(status, broken)

    def _settle(self, status: dict[str, Any]) -> bool:
        """True once the job is FINISHED; raises for the terminal states that mean no data."""
        state = str(status.get("status") or "").upper()
        if state == "FINISHED":
            return True
        if state in _ACTIVE:
            return False
        self._job_over = True
        reason = status.get("reason") or "no reason given"
        if state == "ERROR":
            raise ExportJobError(
                f"{self.label} {self.uuid} ended in ERROR ({reason}); Tenable advises retrying the export"
            )
        if state == "CANCELLED":
            raise ExportJobError(f"{self.label} {self.uuid} was cancelled on the Tenable side ({reason})")
        raise ExportJobError(f"{self.label} {self.uuid} reported an unknown status {state or '(none)'!r}")

    def _raise_for_failures(self, status: dict[str, Any], broken: list[_Chunk]) -> None:
        failed_upstream = _chunk_ids(status.get("chunks_failed"))
        if not failed_upstream and not broken:
            return
        listed = len(set(_chunk_ids(status.get("chunks_available"))) | set(failed_upstream))
        total = max(int(status.get("total_chunks") or 0), listed)
        parts = []
        if failed_upstream:
            reason = status.get("reason") or "failed to process on the Tenable side"
            parts.append(f"chunks {_id_list(failed_upstream)} failed on the Tenable side ({reason})")
        for chunk in broken:
            parts.append(f"chunk {chunk.chunk_id} {chunk.problem}")
        count = len(failed_upstream) + len(broken)
        raise ExportJobError(
            f"{count} of {total} chunks failed: {'; '.join(parts)} ({self.label} {self.uuid}); "
            f"the {self.records_yielded} records that arrived were kept, run the sync again for the rest"
        )

    # -- HTTP -----------------------------------------------------------------------------------

    def _create(self) -> str:
        try:
            response = self.session.request(
                "POST", f"/{self.kind}/export", stream=self.stream, json=self.body
            )
        except FatalSourceError as exc:
            if exc.status != 409:
                raise
            return self._running_duplicate(exc)
        payload = _decode(response.content)
        uuid = payload.get("export_uuid") if isinstance(payload, dict) else None
        if not isinstance(uuid, str) or not uuid:
            raise ExportJobError(f"{self.label} was not created: Tenable answered without an export_uuid")
        return uuid

    def _running_duplicate(self, conflict: SourceError) -> str:
        """The job Tenable says is already running with the same filters (409)."""
        match = _ACTIVE_JOB_ID.search(conflict.message)
        if match:
            return match.group(1)
        listing = self.session.get_json(f"/{self.kind}/export/status", stream=self.stream)
        wanted = _normalised_filters(self.body.get("filters") or {})
        for job in (listing or {}).get("exports") or []:
            if (
                isinstance(job, dict)
                and str(job.get("status", "")).upper() in _ACTIVE
                and _normalised_filters(job.get("filters") or {}) == wanted
            ):
                return str(job["uuid"])
        raise ExportJobError(
            f"{self.label}: Tenable refused a duplicate export (409) and no running export with the same "
            "filters was found; wait for the running export to end, then run the sync again"
        )

    def _status(self) -> dict[str, Any]:
        payload = self.session.get_json(f"/{self.kind}/export/{self.uuid}/status", stream=self.stream)
        if not isinstance(payload, dict):
            raise ExportJobError(f"{self.label} {self.uuid}: the status answer is not a JSON object")
        return payload

    def _cancel(self) -> None:
        if self.uuid is None or self._job_over:
            return
        self._job_over = True
        # best effort: a job we cannot cancel ages out on the Tenable side anyway
        with contextlib.suppress(SourceError):
            self.session.request(
                "POST", f"/{self.kind}/export/{self.uuid}/cancel", stream=self.stream, retry=False
            )

    def _download(self, chunk_id: int) -> _Chunk:
        path = f"/{self.kind}/export/{self.uuid}/chunks/{chunk_id}"
        problem = "was never valid JSON"
        for _ in range(self.settings.chunk_attempts):
            try:
                response = self.session.request("GET", path, stream=self.stream)
            except FatalSourceError as exc:
                if exc.status == 404:
                    raise ExportJobError(
                        f"chunk {chunk_id} of {self.label} {self.uuid} expired or vanished (404) before it "
                        "was downloaded; run the sync again"
                    ) from None
                raise
            try:
                records = orjson.loads(response.content)
            except orjson.JSONDecodeError as exc:
                problem = (
                    f"was not valid JSON after {self.settings.chunk_attempts} downloads "
                    f"(last: {len(response.content)} bytes, error at byte {exc.pos})"
                )
                continue  # a truncated body is usually whole on the next try
            if not isinstance(records, list):
                problem = f"was a JSON {type(records).__name__}, not an array of records"
                continue
            return _Chunk(chunk_id, records)
        return _Chunk(chunk_id, problem=problem)


def _chunk_ids(value: Any) -> list[int]:
    if not isinstance(value, list):
        return []
    ids = []
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool):
            ids.append(item)
        elif isinstance(item, str) and item.isdigit():
            ids.append(int(item))
    return ids


def _id_list(ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in sorted(ids)[:10])
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def _decode(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _normalised_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    normal = dict(filters)
    if isinstance(normal.get("state"), list):
        normal["state"] = sorted(str(s).upper() for s in normal["state"])
    return normal
