"""lean_first: the lean budget, then twice it, then the full process budget, each after DuckDB
ran out of memory; nothing else is retried."""

from __future__ import annotations

import duckdb
import pytest

from aria_sync.store import lean_first, lean_memory_for
from aria_sync.store.db import parse_size


def budgets_tried(process_budget: str, lean: str, monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The budgets lean_first tries when every budget but the full one runs out of memory."""
    monkeypatch.setenv("ARIA_SYNC_MEMORY_LIMIT", process_budget)
    tried: list[str | None] = []

    def attempt(memory: str | None) -> str:
        tried.append(memory)
        if memory is not None:
            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")
        return "done"

    assert lean_first(attempt, "test", lean) == "done"
    return tried


def test_budgets_double_once_then_fall_back_to_the_full_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert budgets_tried("1GB", "128MB", monkeypatch) == ["128MB", "256MB", None]


def test_a_budget_at_or_above_the_process_one_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    assert budgets_tried("200MB", "128MB", monkeypatch) == ["128MB", None]


def test_other_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[str | None] = []

    def attempt(memory: str | None) -> None:
        tried.append(memory)
        raise duckdb.ConstraintException("boom")

    with pytest.raises(duckdb.ConstraintException):
        lean_first(attempt, "test")
    assert tried == ["256MB"]


def test_sizes_read_as_duckdb_writes_them() -> None:
    assert parse_size("256MB") == 256 * 10**6
    assert parse_size("953.6 MiB") == int(953.6 * 2**20)
    assert parse_size("1.5 TiB") == int(1.5 * 2**40)


def test_the_apply_budget_grows_with_the_keys() -> None:
    assert lean_memory_for(0) == "128MB"
    assert lean_memory_for(200_000) == "128MB"
    assert lean_memory_for(1_000_000) == "256MB"
