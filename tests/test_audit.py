"""The activity log: complete entries, secrets redacted, and tampering detected."""

from __future__ import annotations

import random

import pytest

from aria_sync.audit import Actor, record, verify_rows
from aria_sync.store import Database, OrgScope

ORG = "acme"


def write_entries(db: Database, n: int) -> None:
    with OrgScope(db, ORG).write() as conn:
        for i in range(n):
            record(conn, ORG, Actor("os:alice", "admin"), "installation.create", target_type="installation",
                   target_id=f"inst-{i}", details={"name": f"n{i}", "clientSecret": "s3cr3t-value",
                                                   "note": "key is s3cr3t-value"}, secrets=("s3cr3t-value",))
        record(conn, "other-org", Actor("os:bob", "admin"), "installation.create")


def rows(db: Database) -> list[dict]:
    with OrgScope(db, ORG).read() as conn:
        return conn.rows("SELECT * FROM integration_activity_logs ORDER BY seq")


def test_entries_are_complete_and_redacted(db: Database) -> None:
    write_entries(db, 3)
    entries = rows(db)
    assert [e["seq"] for e in entries] == [1, 2, 3]
    first = entries[0]
    assert first["actor"] == "os:alice" and first["action"] == "installation.create"
    assert first["outcome"] == "success" and first["occurred_at"].tzinfo is not None
    assert "s3cr3t-value" not in first["details"]
    assert verify_rows(ORG, entries).ok


@pytest.mark.parametrize("tamper", ["edit", "delete", "insert", "reorder"])
def test_tampering_is_detected_at_the_first_broken_entry(db: Database, tamper: str) -> None:
    write_entries(db, 12)
    rng = random.Random(tamper)
    victim = rng.randint(2, 10)
    with db.write() as conn:
        if tamper == "edit":
            conn.execute("UPDATE integration_activity_logs SET outcome = 'failure' WHERE org_id = ? AND seq = ?",
                         [ORG, victim])
        elif tamper == "delete":
            conn.execute("DELETE FROM integration_activity_logs WHERE org_id = ? AND seq = ?", [ORG, victim])
        elif tamper == "insert":
            conn.execute("UPDATE integration_activity_logs SET seq = seq + 1 WHERE org_id = ? AND seq >= ?",
                         [ORG, victim])
            conn.execute(
                "INSERT INTO integration_activity_logs SELECT org_id, ?, 'forged', occurred_at, actor, actor_role, "
                "'installation.delete', target_type, target_id, outcome, details, prev_hash, hash "
                "FROM integration_activity_logs WHERE org_id = ? AND seq = ?",
                [victim, ORG, victim - 1],
            )
        else:
            conn.execute("UPDATE integration_activity_logs SET seq = -1 WHERE org_id = ? AND seq = ?", [ORG, victim])
            conn.execute("UPDATE integration_activity_logs SET seq = ? WHERE org_id = ? AND seq = ?",
                         [victim, ORG, victim + 1])
            conn.execute("UPDATE integration_activity_logs SET seq = ? WHERE org_id = ? AND seq = -1",
                         [victim + 1, ORG])
    check = verify_rows(ORG, rows(db))
    assert not check.ok
    assert check.first_broken_seq == victim, check


def test_each_organisation_has_its_own_chain(db: Database) -> None:
    write_entries(db, 2)
    with OrgScope(db, "other-org").read() as conn:
        other = conn.rows("SELECT * FROM integration_activity_logs ORDER BY seq")
    assert [e["seq"] for e in other] == [1]
    assert verify_rows("other-org", other).ok
