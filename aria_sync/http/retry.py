"""Retry arithmetic: rate-limit hints, jittered backoff, the per-job budget, client-side rate limits.

Everything here takes its clock, sleep and random source as arguments so tests run in fake time.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections import deque
from collections.abc import Callable

from aria_sync.errors import RetryBudgetExhausted

DEFAULT_MAX_WAIT = 120.0
# Reset headers carry either an absolute epoch or a delta; nothing after 2001-09-09 is below this.
_EPOCH_FLOOR = 1_000_000_000
# Epoch milliseconds are above this for any date after 1973; epoch seconds stay below it until 5138.
_EPOCH_MILLIS_FLOOR = 100_000_000_000


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or HTTP-date).

    ``now`` is the wall-clock epoch time used for HTTP-dates. Missing, unparsable, negative or
    already-past values give None, so the caller falls back to its own backoff.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now
    if seconds != seconds or seconds < 0 or seconds == float("inf"):  # NaN, negative, infinite
        return None
    return seconds


def parse_rate_limit_reset(value: str | None, *, now: float) -> float | None:
    """Seconds until a reset given as epoch seconds, epoch milliseconds or a plain delta.

    ServiceNow's ``X-RateLimit-Reset`` and CrowdStrike's ``X-RateLimit-RetryAfter`` send epochs;
    some vendors send milliseconds, which read as seconds would mean a wait of centuries.
    """
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if number != number or number < 0 or number == float("inf"):
        return None
    if number >= _EPOCH_MILLIS_FLOOR:
        number /= 1000.0
    if number >= _EPOCH_FLOOR:
        number -= now
    return number if number >= 0 else None


def clamp_wait(seconds: float, *, minimum: float = 1.0, maximum: float = DEFAULT_MAX_WAIT) -> float:
    """Bound a vendor's wait hint: never a tight loop, never an hour-long stall."""
    return min(max(seconds, minimum), maximum)


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff: uniform in ``[0, min(cap, base * 2**attempt)]``."""
    source = rng or random
    ceiling = min(cap, base * (2 ** min(attempt, 62)))
    return source.uniform(0.0, ceiling)


class RetryBudget:
    """Retries shared by every request of one sync job, so a sick vendor cannot stall a job forever."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._spent = 0
        self._lock = threading.Lock()

    @property
    def remaining(self) -> int:
        with self._lock:
            return self.total - self._spent

    def spend(self) -> None:
        """Take one retry from the budget, or raise :class:`RetryBudgetExhausted` when none is left."""
        with self._lock:
            if self._spent >= self.total:
                raise RetryBudgetExhausted(
                    f"the retry budget of {self.total} retries for this sync job is used up"
                )
            self._spent += 1

    def __repr__(self) -> str:
        return f"RetryBudget(total={self.total}, remaining={self.remaining})"


class SlidingWindowLimiter:
    """At most ``max_calls`` starts in any window of ``period_seconds`` (e.g. Defender 100/min)."""

    def __init__(
        self,
        max_calls: int,
        period_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_calls < 1 or period_seconds <= 0:
            raise ValueError("max_calls must be >= 1 and period_seconds > 0")
        self.max_calls = max_calls
        self.period_seconds = period_seconds
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque()
        # Held while waiting: callers queue in order instead of all waking at the same instant.
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait until a call may start, record it, and return the seconds waited."""
        waited = 0.0
        with self._lock:
            while True:
                now = self._clock()
                while self._starts and self._starts[0] + self.period_seconds <= now:
                    self._starts.popleft()
                if len(self._starts) < self.max_calls:
                    self._starts.append(now)
                    return waited
                pause = self._starts[0] + self.period_seconds - now
                self._sleep(pause)
                waited += pause
