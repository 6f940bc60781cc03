"""The activity (audit) log: who did what, to what, with which outcome, as a hash chain per organisation.

Each row's ``hash`` is SHA-256 over the previous row's hash and the row's own canonical content;
``seq`` counts 1, 2, 3 ... per organisation. Editing a row breaks its hash, deleting one leaves a
gap in ``seq`` (or breaks the next row's ``prev_hash``), inserting one breaks the chain after it.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from aria_sync.http.redact import redact_text

GENESIS = "0" * 64
_SECRET_KEY_HINTS = ("secret", "password", "token", "key", "credential")


@dataclass(frozen=True)
class Actor:
    """Who acts: an OS user for the CLI and notebooks, a signed-in user for the dashboard."""

    name: str
    role: str = "admin"  # admin | analyst | viewer

    @classmethod
    def local(cls) -> Actor:
        try:
            name = getpass.getuser()
        except Exception:  # no passwd entry in some containers
            name = "local"
        return cls(name=f"os:{name}", role="admin")


def _scrub(details: Mapping[str, Any], secrets: tuple[str, ...]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in details.items():
        if any(hint in key.lower() for hint in _SECRET_KEY_HINTS) and key.lower() not in ("secret_fields",):
            clean[key] = "[redacted]"
        elif isinstance(value, Mapping):
            clean[key] = _scrub(value, secrets)
        elif isinstance(value, str):
            clean[key] = redact_text(value, secrets)
        else:
            clean[key] = value
    return clean


def _row_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    canonical = json.dumps(row, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def _hashed_fields(
    org: str,
    seq: int,
    log_id: str,
    at: str,
    actor: Actor,
    action: str,
    target_type: str | None,
    target_id: str | None,
    outcome: str,
    details_json: str,
) -> dict[str, Any]:
    return {
        "org_id": org,
        "seq": seq,
        "log_id": log_id,
        "occurred_at": at,
        "actor": actor.name,
        "actor_role": actor.role,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "outcome": outcome,
        "details": details_json,
    }


def record(
    conn: duckdb.DuckDBPyConnection,
    org: str,
    actor: Actor,
    action: str,
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    outcome: str = "success",
    details: Mapping[str, Any] | None = None,
    secrets: tuple[str, ...] = (),
) -> None:
    """Append one entry inside the caller's write transaction."""
    last = conn.execute(
        "SELECT seq, hash FROM integration_activity_logs WHERE org_id = ? ORDER BY seq DESC LIMIT 1", [org]
    ).fetchone()
    seq, prev_hash = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
    log_id = str(uuid.uuid4())
    at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    details_json = json.dumps(_scrub(details or {}, secrets), sort_keys=True, default=str)
    fields = _hashed_fields(
        org, seq, log_id, at.isoformat(), actor, action, target_type, target_id, outcome, details_json
    )
    digest = _row_hash(prev_hash, fields)
    conn.execute(
        "INSERT INTO integration_activity_logs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            org,
            seq,
            log_id,
            at,
            actor.name,
            actor.role,
            action,
            target_type,
            target_id,
            outcome,
            details_json,
            prev_hash,
            digest,
        ],
    )


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str | None = None


def verify_rows(org: str, rows: list[dict[str, Any]]) -> ChainCheck:
    """Check the chain of one organisation's rows (ordered by seq)."""
    prev_hash = GENESIS
    expected_seq = 1
    for row in rows:
        seq = int(row["seq"])
        if seq != expected_seq:
            return ChainCheck(
                False,
                expected_seq - 1,
                expected_seq,
                f"entry {expected_seq} is missing (next entry is {seq})",
            )
        if row["prev_hash"] != prev_hash:
            return ChainCheck(False, seq - 1, seq, f"entry {seq} does not follow entry {seq - 1}")
        at = row["occurred_at"]
        at_text = at.astimezone(dt.UTC).isoformat() if isinstance(at, dt.datetime) else str(at)
        actor = Actor(str(row["actor"]), str(row["actor_role"]))
        fields = _hashed_fields(
            org,
            seq,
            str(row["log_id"]),
            at_text,
            actor,
            str(row["action"]),
            row["target_type"],
            row["target_id"],
            str(row["outcome"]),
            str(row["details"]),
        )
        if _row_hash(prev_hash, fields) != row["hash"]:
            return ChainCheck(False, seq - 1, seq, f"entry {seq} was modified after it was written")
        prev_hash = str(row["hash"])
        expected_seq += 1
    return ChainCheck(True, len(rows))
