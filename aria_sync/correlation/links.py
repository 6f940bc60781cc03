"""Manual link and unlink decisions: persisted, audited, reversible, applied last by every correlation run."""

from __future__ import annotations

import uuid

import duckdb

from aria_sync.audit import Actor, record
from aria_sync.errors import NotFoundError
from aria_sync.store import Database, utcnow


def _require_record(
    conn: duckdb.DuckDBPyConnection, org: str, source_table: str, installation_id: str, source_id: str
) -> None:
    row = conn.execute(
        """SELECT count(*) FROM asset_identities WHERE org_id = ? AND source_table = ? AND installation_id = ?
           AND source_id = ?""",
        [org, source_table, installation_id, source_id],
    ).fetchone()
    if not row or not row[0]:
        raise NotFoundError(f"no asset record {source_table}/{source_id} in installation {installation_id}")


def _deactivate(
    conn: duckdb.DuckDBPyConnection, org: str, source_table: str, installation_id: str, source_id: str
) -> None:
    conn.execute(
        """UPDATE asset_link_overrides SET active = false, revoked_at = ?
           WHERE org_id = ? AND source_table = ? AND installation_id = ? AND source_id = ? AND active""",
        [utcnow(), org, source_table, installation_id, source_id],
    )


def _save(
    db: Database,
    org: str,
    actor: Actor,
    action: str,
    source_table: str,
    installation_id: str,
    source_id: str,
    asset_id: str | None,
    reason: str,
) -> str:
    from aria_sync.correlation.engine import correlate
    from aria_sync.marketplace import require_role

    require_role(actor, "analyst", f"{action} an asset record")
    override_id = str(uuid.uuid4())
    with db.write() as conn:
        _require_record(conn, org, source_table, installation_id, source_id)
        if asset_id is not None:
            exists = conn.execute(
                "SELECT count(*) FROM assets WHERE org_id = ? AND asset_id = ?", [org, asset_id]
            ).fetchone()
            if not exists or not exists[0]:
                raise NotFoundError(f"no asset {asset_id}")
        _deactivate(conn, org, source_table, installation_id, source_id)
        conn.execute(
            """INSERT INTO asset_link_overrides (org_id, override_id, action, source_table, source_id,
                   installation_id, target_asset_id, active, actor, reason, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, true, ?, ?, ?)""",
            [
                org,
                override_id,
                action,
                source_table,
                source_id,
                installation_id,
                asset_id,
                actor.name,
                reason,
                utcnow(),
            ],
        )
        record(
            conn, org, actor, f"asset.{action}", target_type="asset_record",
            target_id=f"{installation_id}/{source_table}/{source_id}",
            details={"override_id": override_id, "asset_id": asset_id, "reason": reason},
        )  # fmt: skip
        correlate(conn, org, utcnow())
    return override_id


def link_record(
    db: Database, org: str, actor: Actor, source_table: str, installation_id: str, source_id: str,
    asset_id: str, reason: str,
) -> str:  # fmt: skip
    """Attach one vendor asset record to ``asset_id`` whatever the identifiers say; returns the override id."""
    return _save(db, org, actor, "link", source_table, installation_id, source_id, asset_id, reason)


def unlink_record(
    db: Database, org: str, actor: Actor, source_table: str, installation_id: str, source_id: str, reason: str
) -> str:
    """Force one vendor asset record into an asset of its own; returns the override id."""
    return _save(db, org, actor, "unlink", source_table, installation_id, source_id, None, reason)


def revoke_override(db: Database, org: str, actor: Actor, override_id: str, reason: str = "") -> None:
    """Undo a manual decision: the record goes back to automatic correlation."""
    from aria_sync.correlation.engine import correlate
    from aria_sync.marketplace import require_role

    require_role(actor, "analyst", "revoke an asset link override")
    with db.write() as conn:
        row = conn.execute(
            "SELECT action, source_table, installation_id, source_id FROM asset_link_overrides "
            "WHERE org_id = ? AND override_id = ? AND active",
            [org, override_id],
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no active override {override_id}")
        conn.execute(
            "UPDATE asset_link_overrides SET active = false, revoked_at = ? WHERE org_id = ? AND override_id = ?",
            [utcnow(), org, override_id],
        )
        record(
            conn, org, actor, "asset.override_revoked", target_type="asset_record",
            target_id=f"{row[2]}/{row[1]}/{row[3]}",
            details={"override_id": override_id, "action": row[0], "reason": reason},
        )  # fmt: skip
        correlate(conn, org, utcnow())
