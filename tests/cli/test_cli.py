"""The command line as a user runs it: a real `python -m aria_sync` process per command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aria_sync.simulators.example import TOKEN, start_example
from aria_sync.simulators.framework import SimulatorServer


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    _, srv = start_example(devices=40, events=10)
    yield srv
    srv.stop()


def cli(db_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aria_sync", "--db", str(db_path), *args],
        input=stdin, capture_output=True, text=True, env=dict(os.environ), timeout=120,
    )


def write_config(tmp_path: Path, server: SimulatorServer, token: str = TOKEN) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"baseUrl": server.base_url, "token": token, "pageSize": 10}))
    return path


def test_catalog_lists_seven_integrations(db_path: Path) -> None:
    result = cli(db_path, "--json", "catalog")
    assert result.returncode == 0, result.stderr
    entries = {e["key"]: e for e in json.loads(result.stdout)}
    assert {"ms-defender", "servicenow", "tenable", "crowdstrike", "qualys", "splunk", "okta"} <= set(entries)
    assert entries["tenable"]["status"] == "available" and entries["okta"]["status"] == "coming_soon"
    tenable_fields = {f["name"]: f for f in entries["tenable"]["config_fields"]}
    assert tenable_fields["secretKey"]["secret"] and not tenable_fields["baseUrl"]["required"]
    human = cli(db_path, "catalog")
    assert "Microsoft Defender for Endpoint" in human.stdout and "coming soon" in human.stdout


def test_install_sync_jobs_logs_uninstall(db_path: Path, tmp_path: Path, server: SimulatorServer) -> None:
    config = write_config(tmp_path, server)
    installed = cli(db_path, "--json", "install", "example", "--name", "inv", "--config", str(config))
    assert installed.returncode == 0, installed.stderr
    installation_id = json.loads(installed.stdout)["installation_id"]

    synced = cli(db_path, "--json", "sync", "inv")
    assert synced.returncode == 0, synced.stderr
    payload = json.loads(synced.stdout)  # stdout holds exactly one JSON document
    assert set(payload) >= {"job_id", "installation", "status", "streams", "error"}
    assert payload["status"] == "succeeded"
    assert payload["streams"]["devices"] == {"fetched": 40, "inserted": 40, "updated": 0, "unchanged": 0,
                                             "removed": 0, "rejected": 0}

    again = cli(db_path, "--json", "sync", "--all")
    assert json.loads(again.stdout)["streams"]["devices"]["unchanged"] == 40

    listed = json.loads(cli(db_path, "--json", "installations").stdout)
    assert listed[0]["installation_id"] == installation_id and listed[0]["health"] == "healthy"
    jobs = json.loads(cli(db_path, "--json", "jobs").stdout)
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded"]
    assert cli(db_path, "test", installation_id).returncode == 0

    verify = cli(db_path, "--json", "logs", "--verify")
    assert verify.returncode == 0 and json.loads(verify.stdout)["ok"] is True

    removed = cli(db_path, "uninstall", "inv", "--purge-data")
    assert removed.returncode == 0 and "uninstalled inv" in removed.stdout
    for stream in (installed, synced, again, removed):
        assert TOKEN not in stream.stdout + stream.stderr


def test_config_from_stdin(db_path: Path, server: SimulatorServer) -> None:
    config = json.dumps({"baseUrl": server.base_url, "token": TOKEN})
    result = cli(db_path, "install", "example", "--name", "piped", "--config", "-", stdin=config)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["install", "nope", "--name", "x", "--config", "{cfg}"], "unknown integration 'nope'"),
        (["install", "example", "--name", "x", "--config", "/does/not/exist.json"], "cannot read config file"),
        (["install", "example", "--name", "x", "--config", "{garbage}"], "is not valid JSON"),
        (["install", "example", "--name", "x", "--config", "{missing}"], "missing config key 'token'"),
        (["install", "example", "--name", "x", "--config", "{http}", "--no-test"], "must use https"),
        (["sync", "ghost"], "no installation named 'ghost'"),
        (["sync"], "name at least one installation"),
        (["schedule", "set", "ghost", "--every", "nonsense"], "no installation named 'ghost'"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_with_one_line(db_path: Path, tmp_path: Path, server: SimulatorServer, args: list[str],
                                           message: str) -> None:
    files = {
        "{cfg}": write_config(tmp_path, server),
        "{garbage}": tmp_path / "garbage.json",
        "{missing}": tmp_path / "missing.json",
        "{http}": tmp_path / "http.json",
    }
    files["{garbage}"].write_text("{not json")
    files["{missing}"].write_text(json.dumps({"baseUrl": server.base_url}))
    files["{http}"].write_text(json.dumps({"baseUrl": "http://inventory.example.com", "token": "t"}))
    result = cli(db_path, *[str(files.get(a, a)) for a in args])
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1


def test_duplicate_name_and_newer_database(db_path: Path, tmp_path: Path, server: SimulatorServer) -> None:
    config = write_config(tmp_path, server)
    assert cli(db_path, "install", "example", "--name", "inv", "--config", str(config)).returncode == 0
    dup = cli(db_path, "install", "example", "--name", "inv", "--config", str(config))
    assert dup.returncode == 2 and "already exists" in dup.stderr
    import duckdb

    conn = duckdb.connect(str(db_path))
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', now())")
    conn.close()
    newer = cli(db_path, "installations")
    assert newer.returncode != 0 and "newer than this aria_sync" in newer.stderr


def test_failed_sync_exit_code_and_partial(db_path: Path, tmp_path: Path, server: SimulatorServer) -> None:
    from aria_sync.simulators.example import DEVICES_ONLY_TOKEN

    config = write_config(tmp_path, server, token=DEVICES_ONLY_TOKEN)
    assert cli(db_path, "install", "example", "--name", "lim", "--config", str(config), "--no-test").returncode == 0
    partial = cli(db_path, "--json", "sync", "lim")
    assert partial.returncode == 3 and json.loads(partial.stdout)["status"] == "partial"
    server.stop()
    failed = cli(db_path, "--json", "sync", "lim")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["status"] == "failed"


def test_schedule_set_and_once(db_path: Path, tmp_path: Path, server: SimulatorServer) -> None:
    config = write_config(tmp_path, server)
    assert cli(db_path, "install", "example", "--name", "inv", "--config", str(config), "--schedule", "6h").returncode == 0
    once = cli(db_path, "--json", "schedule", "--once")
    assert once.returncode == 0, once.stderr
    runs = json.loads(once.stdout)
    assert [r["status"] for r in runs] == ["succeeded"]
    assert json.loads(cli(db_path, "--json", "schedule", "--once").stdout) == []  # not due again for 6h
    jobs = json.loads(cli(db_path, "--json", "jobs").stdout)
    assert jobs[0]["trigger"] == "schedule"
    changed = cli(db_path, "--json", "schedule", "set", "inv", "--cron", "0 */2 * * *")
    assert json.loads(changed.stdout)["schedule_kind"] == "cron"


def test_doctor(db_path: Path) -> None:
    result = cli(db_path, "--json", "doctor")
    assert result.returncode == 0, result.stdout
    checks = {c["check"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["vault"]["detail"].startswith("encrypted-file")
    assert "duckdb 1.4.4" in checks["versions"]["detail"]
