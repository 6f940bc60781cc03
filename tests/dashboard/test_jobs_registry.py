"""The background job registry: progress from the worker thread, final states, role checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from aria_sync.audit import Actor
from aria_sync.errors import PermissionDeniedError
from aria_sync.jobs_registry import JobRegistry
from aria_sync.marketplace import Installation, Marketplace
from aria_sync.store import Database
from aria_sync.sync.engine import job


def test_a_background_sync_completes_and_matches_its_job_row(
    installed: Installation, dashboard_env: Path
) -> None:
    db = Database(dashboard_env)
    registry = JobRegistry()
    handle = registry.start_sync(db, "acme", Actor("t", "analyst"), installed.installation_id)
    final = registry.wait(handle, timeout=15)
    assert final.state == "succeeded" and final.fraction == 1.0 and not final.running
    assert final.result is not None and final.total_records == 50
    assert job(db, "acme", handle.job_id)["status"] == "succeeded"
    assert [s.job_id for s in registry.jobs("acme")] == [handle.job_id]
    assert registry.jobs("other-org") == []


def test_a_disabled_installation_fails_with_the_reason(installed: Installation, dashboard_env: Path) -> None:
    db = Database(dashboard_env)
    Marketplace(db, "acme", Actor("t", "admin")).set_enabled(installed.installation_id, False)
    registry = JobRegistry()
    final = registry.wait(registry.start_sync(db, "acme", Actor("t", "admin"), installed.name), timeout=10)
    assert final.state == "failed"
    assert final.error is not None and "disabled" in final.error


def test_a_viewer_is_refused_before_any_thread_starts(installed: Installation, dashboard_env: Path) -> None:
    registry = JobRegistry()
    with pytest.raises(PermissionDeniedError):
        registry.start_sync(Database(dashboard_env), "acme", Actor("v", "viewer"), installed.name)
    assert registry.jobs("acme") == []


def test_unknown_handles_are_reported() -> None:
    with pytest.raises(KeyError):
        JobRegistry().status("no-such-job")
