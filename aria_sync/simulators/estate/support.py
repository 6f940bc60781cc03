"""Deterministic randomness, identifiers and vendor timestamp formats shared by the estate builders.

Every random choice in the estate flows from ``random.Random`` instances derived from the estate seed,
never from the global RNG or ``uuid4``, so the same seed always yields byte-identical records.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import datetime, timedelta

SIX_HOURS = timedelta(hours=6)


def derive_seed(*parts: int | str) -> int:
    """A 64-bit seed that depends only on ``parts`` (stable across processes, unlike ``hash()``)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def derived_rng(*parts: int | str) -> random.Random:
    """An independent random stream named by ``parts`` (for example ``(seed, "findings", asset_index)``)."""
    return random.Random(derive_seed(*parts))


def new_uuid(rng: random.Random) -> str:
    """A version-4-shaped UUID string drawn from ``rng``."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def hex_token(rng: random.Random, digits: int) -> str:
    """``digits`` lowercase hex characters drawn from ``rng`` (sys_ids are 32, Defender ids 40)."""
    return format(rng.getrandbits(digits * 4), f"0{digits}x")


def uniform_int(rng: random.Random, low: int, high: int) -> int:
    """An integer in [low, high]; cheaper than ``randint`` on the estate's hot paths."""
    return low + int(rng.random() * (high - low + 1))


def defender_time(moment: datetime) -> str:
    """Defender REST format: ISO-8601 with 7 fractional digits and ``Z``."""
    return moment.isoformat(timespec="microseconds")[:26] + "0Z"


def tenable_time(moment: datetime) -> str:
    """Tenable format: ISO-8601 with milliseconds and ``Z``."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def table_time(moment: datetime) -> str:
    """ServiceNow raw and Defender vulnerability-export format: ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    return moment.isoformat(sep=" ", timespec="seconds")[:19]


def moment_in(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A whole-second moment strictly after ``start`` and at most ``end``.

    Whole seconds keep ServiceNow's 1-second timestamps inside the same window as the others.
    """
    span = max(1, int((end - start).total_seconds()))
    return start + timedelta(seconds=uniform_int(rng, 1, span))


def moment_before(rng: random.Random, end: datetime, min_seconds: int, max_seconds: int) -> datetime:
    """A whole-second moment between ``max_seconds`` and ``min_seconds`` before ``end``."""
    return end - timedelta(seconds=uniform_int(rng, min_seconds, max_seconds))


def with_millis(rng: random.Random, moment: datetime) -> datetime:
    """``moment`` plus a random sub-second part, for vendors that report milliseconds."""
    return moment + timedelta(milliseconds=uniform_int(rng, 0, 999))


def quota_labels(rng: random.Random, total: int, shares: dict[str, float]) -> list[str]:
    """``total`` labels in exact proportions to ``shares`` (largest remainder), shuffled."""
    exact = {label: share * total for label, share in shares.items()}
    counts = {label: int(value) for label, value in exact.items()}
    leftover = total - sum(counts.values())
    by_remainder = sorted(exact, key=lambda label: exact[label] - counts[label], reverse=True)
    for label in by_remainder[:leftover]:
        counts[label] += 1
    labels = [label for label, count in counts.items() for _ in range(count)]
    rng.shuffle(labels)
    return labels
