"""Secrets never reach the database file, the WAL, staging, logs, CLI output, job or audit rows."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from aria_sync.audit import Actor
from aria_sync.marketplace import Marketplace
from aria_sync.simulators.example import TOKEN, start_example
from aria_sync.store import Database, OrgScope
from aria_sync.sync import SyncRunner


def forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, base64.b64encode(raw), urllib.parse.quote(secret).encode(), raw.hex().encode(),
            base64.urlsafe_b64encode(raw)]


def leaks(blob: bytes, secret: str) -> list[bytes]:
    return [form for form in forms(secret) if form in blob]


def test_no_secret_anywhere_after_install_sync_and_failures(
    db: Database, db_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, server = start_example(devices=30, events=10)
    try:
        market = Marketplace(db, "acme", Actor("t", "admin"))
        market.install("example", "inv", {"baseUrl": server.base_url, "token": TOKEN})
        SyncRunner(db, "acme").sync("inv")
        # a failing sync with a wrong canary secret: its 401 goes through every error path
        canary = "canary-Zx9-secret-0042"
        installation = market.get("inv")
        market.vault.put(installation.secret_ref, {"token": canary})
        failed = SyncRunner(db, "acme", sleep=lambda s: None).sync("inv")
        assert failed.status == "failed"
        cli = subprocess.run(
            [sys.executable, "-m", "aria_sync", "--db", str(db_path), "sync", "inv"],
            capture_output=True, text=True, env=dict(os.environ), timeout=60,
        )
        cli_json = subprocess.run(
            [sys.executable, "-m", "aria_sync", "--db", str(db_path), "--json", "jobs"],
            capture_output=True, text=True, env=dict(os.environ), timeout=60,
        )
    finally:
        server.stop()

    with OrgScope(db, "acme").read() as conn:
        jobs = json.dumps(conn.rows("SELECT * FROM integration_sync_jobs"), default=str)
        audit_rows = json.dumps(conn.rows("SELECT * FROM integration_activity_logs"), default=str)
        installations = json.dumps(conn.rows("SELECT * FROM integration_installations"), default=str)
    files = b"".join(
        p.read_bytes() for p in db_path.parent.rglob("*") if p.is_file() and not p.name.startswith("vault")
    )
    vault_file = b"".join(p.read_bytes() for p in db_path.parent.glob("vault*"))
    surfaces = {
        "database folder (db, wal, staging, locks)": files,
        "vault file (encrypted)": vault_file,
        "job rows": jobs.encode(),
        "audit rows": audit_rows.encode(),
        "installation rows": installations.encode(),
        "logs": caplog.text.encode(),
        "cli output": (cli.stdout + cli.stderr + cli_json.stdout + cli_json.stderr).encode(),
        "sync error": (failed.error or "").encode(),
    }
    assert "401" in (failed.error or "")
    for secret in (TOKEN, canary):
        found = {name: leaks(blob, secret) for name, blob in surfaces.items() if leaks(blob, secret)}
        assert found == {}, f"{secret} leaked into {found}"
