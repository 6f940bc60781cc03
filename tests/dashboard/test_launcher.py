"""The launcher's command line and its refusals (the served app itself is covered by test_browser)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aria_sync.dashboard_launcher import APP_PATH, run_dashboard, start_dashboard, streamlit_command
from aria_sync.errors import UsageError
from aria_sync.settings import get_settings


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)

    def error(self, message: str) -> None:
        self.lines.append("error: " + message)


def test_command_is_headless_loopback_without_usage_stats() -> None:
    command = streamlit_command(8600, "127.0.0.1")
    assert command[1:5] == ["-m", "streamlit", "run", str(APP_PATH)]
    options = dict(zip(command[5::2], command[6::2], strict=True))
    assert options == {
        "--server.headless": "true",
        "--server.address": "127.0.0.1",
        "--browser.gatherUsageStats": "false",
        "--client.toolbarMode": "minimal",
        "--server.port": "8600",
    }
    assert APP_PATH.is_file()


def test_other_addresses_are_refused_without_sign_in(dashboard_env: Path) -> None:
    settings = get_settings(db=dashboard_env)
    with pytest.raises(UsageError, match="every visitor is an admin"):
        start_dashboard(settings, port=0, address="0.0.0.0")
    out = Recorder()
    assert run_dashboard(settings, port=0, address="0.0.0.0", out=out) == 2
    assert out.lines and out.lines[0].startswith("error: refusing")


def test_run_dashboard_serves_until_sigterm_and_stops_its_server(dashboard_env: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    from aria_sync.dashboard_launcher import free_port

    port = free_port()
    script = (
        "import sys\n"
        "from aria_sync.dashboard_launcher import run_dashboard\n"
        "from aria_sync.settings import get_settings\n"
        "class Out:\n"
        "    def info(self, m): print(m, flush=True)\n"
        "    def error(self, m): print('error:', m, flush=True)\n"
        f"sys.exit(run_dashboard(get_settings(), port={port}, address='127.0.0.1', out=Out()))\n"
    )
    launcher = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert launcher.stdout is not None
        # The server's own banner shares stdout; read until the launcher's line.
        seen = []
        for line in launcher.stdout:
            seen.append(line)
            if "Dashboard running at" in line:
                break
        assert f"Dashboard running at http://127.0.0.1:{port}" in "".join(seen)
        assert httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=5).text == "ok"
        os.kill(launcher.pid, signal.SIGTERM)
        assert launcher.wait(20) == 0
        time.sleep(0.2)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
    finally:
        if launcher.poll() is None:
            launcher.kill()
