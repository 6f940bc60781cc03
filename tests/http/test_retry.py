"""Retry arithmetic in fake time: hints (C8), jittered backoff and clamping (C9), budgets, limiters (C12)."""

from __future__ import annotations

import email.utils
import random

import pytest

from aria_sync.errors import RetryBudgetExhausted
from aria_sync.http.retry import (
    RetryBudget,
    SlidingWindowLimiter,
    backoff_delay,
    clamp_wait,
    parse_rate_limit_reset,
    parse_retry_after,
)

NOW = 1_750_000_000.0


class FakeTime:
    """A clock whose sleep advances it instantly."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (None, None),
        ("", None),
        ("abc", None),
        ("-5", None),
        ("nan", None),
        ("inf", None),
        (email.utils.formatdate(NOW - 30, usegmt=True), None),
        ("Mon, 99 Foo 2025 00:00:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (str(int(NOW + 42)), 42.0),  # epoch seconds (ServiceNow X-RateLimit-Reset, CrowdStrike)
        (str(int((NOW + 42) * 1000)), 42.0),  # epoch milliseconds must not mean a wait of centuries
        ("30", 30.0),  # a plain delta
        (str(int(NOW - 10)), None),  # already past
        ("soon", None),
        (None, None),
        ("-1", None),
    ],
)
def test_parse_rate_limit_reset_tells_seconds_from_milliseconds(
    value: str | None, expected: float | None
) -> None:
    result = parse_rate_limit_reset(value, now=NOW)
    assert result == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(("hint", "expected"), [(0.0, 1.0), (0.2, 1.0), (7.0, 7.0), (86400.0, 120.0)])
def test_clamp_wait_bounds_hostile_hints(hint: float, expected: float) -> None:
    assert clamp_wait(hint) == expected
    assert clamp_wait(hint, minimum=2.0, maximum=60.0) == min(max(hint, 2.0), 60.0)


def test_backoff_is_bounded_and_jittered() -> None:
    rng = random.Random(1234)
    for attempt in range(8):
        ceiling = min(30.0, 0.5 * 2**attempt)
        delays = [backoff_delay(attempt, base=0.5, cap=30.0, rng=rng) for _ in range(1000)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 900  # jitter present: not all equal
    assert backoff_delay(10_000, base=1.0, cap=120.0, rng=rng) <= 120.0  # no overflow on huge attempts


def test_retry_budget_is_shared_and_exhausts() -> None:
    budget = RetryBudget(3)
    for _ in range(3):
        budget.spend()
    assert budget.remaining == 0
    with pytest.raises(RetryBudgetExhausted, match="3 retries"):
        budget.spend()


def test_sliding_window_never_starts_more_than_max_calls_per_window() -> None:
    fake = FakeTime()
    limiter = SlidingWindowLimiter(100, 60.0, clock=fake.clock, sleep=fake.sleep)
    starts = []
    for _ in range(350):
        limiter.acquire()
        starts.append(fake.now)
        fake.now += 0.05  # the request itself takes a little time
    for index, start in enumerate(starts):
        in_window = [s for s in starts[index:] if s < start + 60.0]
        assert len(in_window) <= 100
    # It waits only as long as needed: call 301 starts at 180 s, the 49 after it 0.05 s apart.
    assert starts[-1] == pytest.approx(180.0 + 49 * 0.05)


def test_sliding_window_does_not_wait_under_the_limit() -> None:
    fake = FakeTime()
    limiter = SlidingWindowLimiter(5, 1.0, clock=fake.clock, sleep=fake.sleep)
    waits = [limiter.acquire() for _ in range(5)]
    assert waits == [0.0] * 5
    assert fake.slept == []
    assert limiter.acquire() == pytest.approx(1.0)


def test_sliding_window_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        SlidingWindowLimiter(0, 60.0)
