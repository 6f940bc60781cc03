"""After-sync derivation for one organisation: cross-source asset correlation, then the risk register."""

from __future__ import annotations

from aria_sync.correlation import correlate
from aria_sync.risk import refresh_risks
from aria_sync.store import Database, OrgScope, lean_first, utcnow


def refresh_org(db: Database, org: str) -> None:
    """Recompute assets, links and risks from what the landing tables now hold; deterministic and idempotent."""
    now = utcnow()

    def attempt(memory: str | None) -> None:
        with OrgScope(db, org).write(memory=memory) as conn:
            correlate(conn, org, now)
            refresh_risks(conn, org, now)

    lean_first(attempt, "correlation and the risk register")
