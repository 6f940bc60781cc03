"""lean_first: the lean budget, then twice it, then the full process budget, each after DuckDB
ran out of memory; nothing else is retried."""

from __future__ import annotations

import duckdb
import pytest

from aria_sync.store import lean_first, lean_memory_for


def test_budgets_double_once_then_fall_back_to_the_full_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARIA_SYNC_MEMORY_LIMIT", "1GB")
    tried: list[str | None] = []

    def attempt(memory: str | None) -> str:
        tried.append(memory)
        if memory is not None:
            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")
        return "done"

    assert lean_first(attempt, "test", "128MB") == "done"
    assert tried == ["128MB", "256MB", None]


def test_a_budget_at_or_above_the_process_one_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARIA_SYNC_MEMORY_LIMIT", "200MB")
    tried: list[str | None] = []

    def attempt(memory: str | None) -> None:
        tried.append(memory)
        if memory is not None:
            raise duckdb.OutOfMemoryException("Out of Memory Error")

    lean_first(attempt, "test", "128MB")
    assert tried == ["128MB", None]


def test_other_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[str | None] = []

    def attempt(memory: str | None) -> None:
        tried.append(memory)
        raise duckdb.ConstraintException("boom")

    with pytest.raises(duckdb.ConstraintException):
        lean_first(attempt, "test")
    assert tried == ["256MB"]


def test_the_apply_budget_grows_with_the_keys() -> None:
    assert lean_memory_for(0) == "128MB"
    assert lean_memory_for(200_000) == "128MB"
    assert lean_memory_for(1_000_000) == "256MB"
