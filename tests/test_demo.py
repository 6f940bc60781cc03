"""The one-command demo, run headless the way a newcomer runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

import aria_sync as aria
from aria_sync.dashboard_launcher import free_port


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_demo_serves_the_dashboard_on_filled_tables_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("ARIA_SYNC_ALLOWED_HOSTS",)}
    env["ARIA_SYNC_DEMO_PORT_BASE"] = str(free_port())  # simulators on this port and the next two
    proc = subprocess.Popen(
        [sys.executable, "-m", "aria_sync", "demo", "--port", str(port), "--size", "tiny"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Dashboard running at" in line:
                break
        output = "".join(lines)
        assert "Dashboard running at" in output, output
        assert "Demo Tenable.io: succeeded" in output and "Demo ServiceNow: succeeded" in output
        assert httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=5).text == "ok"
        db = tmp_path / "data" / "demo.duckdb"
        assert len(aria.assets(db=db)) > 20
        assert len(aria.vulnerabilities(db=db, limit=10)) == 10
        assert set(aria.sync_health(db=db)["health"]) == {"healthy"}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert not port_open(port)  # the dashboard process went with it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    again = subprocess.run(
        [sys.executable, "-m", "aria_sync", "demo", "--no-dashboard", "--size", "tiny"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "reusing installation Demo Tenable.io" in again.stdout
