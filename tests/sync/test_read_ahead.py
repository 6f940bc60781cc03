"""read_ahead: pages arrive in order, errors after the pages before them, and an early stop ends
the producer without asking it for another page."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from aria_sync.errors import AriaSyncError
from aria_sync.sync.read_ahead import LARGE_PAGE_RECORDS, read_ahead


def test_pages_arrive_in_order_and_whole() -> None:
    pages = [[n, n + 1] for n in range(0, 200, 2)]
    assert list(read_ahead(iter(pages))) == pages


def test_error_arrives_after_every_page_before_it_with_its_own_type() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise AriaSyncError("vendor answered 500 on page 3")

    seen: list[int] = []
    with pytest.raises(AriaSyncError, match="page 3"):
        for page in read_ahead(pages()):
            seen.append(page)
    assert seen == [1, 2]


def test_producer_fetches_one_page_ahead_and_no_more() -> None:
    produced: list[int] = []

    def pages() -> Iterator[int]:
        for n in range(10):
            produced.append(n)
            yield n

    iterator = read_ahead(pages())
    assert next(iterator) == 0
    time.sleep(0.3)  # give the worker time to run ahead as far as it may
    # the page handed over and the one fetched while it is handled, never more
    assert produced == [0, 1]
    assert list(iterator) == list(range(1, 10))


def test_early_stop_closes_the_producer_and_asks_for_nothing_more() -> None:
    requested: list[int] = []
    closed = threading.Event()

    def pages() -> Iterator[int]:
        try:
            for n in range(1000):
                requested.append(n)
                yield n
        finally:
            closed.set()

    with pytest.raises(OSError, match="disk full"):
        for page in read_ahead(pages()):
            if page == 3:
                raise OSError("disk full")
    assert closed.wait(5)
    assert len(requested) <= 6


def test_a_large_page_is_not_read_ahead() -> None:
    produced: list[int] = []
    large = LARGE_PAGE_RECORDS + 1

    def pages() -> Iterator[list[int]]:
        for n in range(3):
            produced.append(n)
            yield [n] * large

    iterator = read_ahead(pages())
    first = next(iterator)
    time.sleep(0.3)  # time enough for the worker to fetch ahead, were it allowed to
    assert produced == [0] and first[0] == 0
    assert [page[0] for page in iterator] == [1, 2]
