"""Fetch the next page while the current one is staged.

A connector's pages come from a generator that waits on the vendor for each one; staging a page
(encoding and writing it) is work the process can do during that wait. ``read_ahead`` runs the
generator in a worker thread and hands its pages over one at a time: the worker fetches the next
page only once the consumer has taken the previous one, so memory holds at most two pages (the
one being staged and the one being fetched), which matters for 50,000-row export pages. Requests stay
strictly sequential (the generator still runs one step at a time), so rate limits, cursors and
request logs see exactly what they would see without it.

An exception from the generator reaches the consumer as it was raised, after every page yielded
before it. When the consumer stops early (its own error, or it stops iterating), the worker is
told to stop and closes the generator after its current step (waited for a few seconds), so no
request is started for a page nobody will stage.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sized
from typing import Generic, TypeVar

T = TypeVar("T")

# How long an early stop waits for the worker's current step (one request) to end.
_STOP_WAIT_SECONDS = 5.0


class _End:
    """The generator finished; ``error`` is what it raised, if anything."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class _Worker(Generic[T]):
    def __init__(self, pages: Iterator[T]) -> None:
        self.pages = pages
        # Never more than one item: the worker fetches a page only on the consumer's leave.
        self.queue: queue.SimpleQueue[T | _End] = queue.SimpleQueue()
        # Released by the consumer each time it takes a page (and once when it stops): the
        # worker's leave to fetch another.
        self.taken = threading.Semaphore(1)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="aria-sync-read-ahead", daemon=True)

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            while self._wait_until_taken():
                try:
                    page = next(self.pages)
                except StopIteration:
                    break
                self.queue.put(page)
                del page  # the consumer holds it now; the worker must not while fetching the next
        except BaseException as exc:  # handed to the consumer, which re-raises it
            error = exc
        finally:
            if self.stopping.is_set():
                close = getattr(self.pages, "close", None)
                if close is not None:
                    close()
        self.queue.put(_End(error))

    def _wait_until_taken(self) -> bool:
        self.taken.acquire()
        return not self.stopping.is_set()


# Pages with more records than this are not read ahead: there are few of them, so overlapping
# gains little, and a second 50,000-row Defender export page costs about 150 MB.
LARGE_PAGE_RECORDS = 10_000


def read_ahead(pages: Iterator[T]) -> Iterator[T]:
    """``pages``, each fetched in a worker thread while the consumer handles the one before
    (after it, for a page of more than LARGE_PAGE_RECORDS records: the consumer must drop its
    reference before asking for the next one, or two large pages are alive anyway)."""
    worker = _Worker(pages)
    worker.thread.start()
    try:
        while True:
            item = worker.queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            large = isinstance(item, Sized) and len(item) > LARGE_PAGE_RECORDS
            if not large:
                worker.taken.release()
            yield item
            del item
            if large:
                worker.taken.release()
    finally:
        worker.stopping.set()
        worker.taken.release()  # wakes a worker waiting for leave, which then sees it must stop
        worker.thread.join(timeout=_STOP_WAIT_SECONDS)
