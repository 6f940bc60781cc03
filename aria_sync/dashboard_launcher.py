"""Start the Streamlit dashboard on a database, wait until it answers, stop it cleanly.

The app runs in a child process (``python -m streamlit run dashboard/app.py``) with the
database and organisation passed through ``ARIA_SYNC_DB`` / ``ARIA_SYNC_ORG``. It binds to
loopback by default: without a users file every visitor acts as the local admin, so any other
address is refused unless sign-in is switched on.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess  # nosec B404 # argument lists only, never a shell
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import httpx

from aria_sync.errors import UsageError
from aria_sync.settings import Settings
from aria_sync.store import Database
from aria_sync.users import users_path

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_PATH = REPO_ROOT / "dashboard" / "app.py"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


class _Out(Protocol):
    def info(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def auth_enabled(settings: Settings) -> bool:
    """Sign-in is on when a users file exists beside the database or ARIA_SYNC_AUTH=builtin."""
    return os.environ.get("ARIA_SYNC_AUTH", "").lower() == "builtin" or users_path(settings.db_path).is_file()


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _port_in_use(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return True
    return False


class DashboardProcess:
    """A running dashboard server (a child process)."""

    def __init__(self, process: subprocess.Popen[bytes], url: str) -> None:
        self.process = process
        self.url = url

    @property
    def health_url(self) -> str:
        return f"{self.url}/_stcore/health"

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise UsageError(
                    f"the dashboard exited during start-up (exit code {self.process.returncode})"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.health_url, timeout=1.0).text.strip() == "ok":
                    return
            time.sleep(0.2)
        self.stop()
        raise UsageError(f"the dashboard did not answer on {self.url} within {timeout:.0f} s")

    def stop(self) -> int:
        """Ask the server to stop (SIGTERM), then kill it if it does not within 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode or 0)

    def __enter__(self) -> DashboardProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def streamlit_command(port: int, address: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.headless",
        "true",
        "--server.address",
        address,
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--server.port",
        str(port),
    ]


def start_dashboard(
    settings: Settings, port: int = 8501, address: str = "127.0.0.1", *, quiet: bool = True
) -> DashboardProcess:
    """Start the server and return once ``/_stcore/health`` answers ``ok``. ``port=0`` picks a free port."""
    if not _is_loopback(address) and not auth_enabled(settings):
        raise UsageError(
            f"refusing to serve the dashboard on {address}: without sign-in every visitor is an admin; "
            f"create users (users file {users_path(settings.db_path)}) or bind to 127.0.0.1"
        )
    probe_host = "127.0.0.1" if address in ("0.0.0.0", "::") else address  # noqa: S104  # nosec B104 # compared, not bound
    if port == 0:
        port = free_port(probe_host)
    elif _port_in_use(probe_host, port):
        raise UsageError(f"port {port} on {address} is already in use; pass another --port")
    # Create or migrate the schema here so a broken database fails in the terminal, not the browser.
    Database(settings.db_path).ensure_schema()
    env = dict(os.environ)
    env["ARIA_SYNC_DB"] = str(settings.db_path.expanduser().resolve())
    env["ARIA_SYNC_ORG"] = settings.org
    output: Any = subprocess.DEVNULL if quiet else None
    process = subprocess.Popen(  # nosec B603 # our own interpreter and script, no shell
        streamlit_command(port, address),
        cwd=str(REPO_ROOT),
        env=env,
        stdout=output,
        stderr=output,
        start_new_session=True,  # Ctrl-C reaches us, and we stop the child deliberately
    )
    dashboard = DashboardProcess(process, f"http://{probe_host}:{port}")
    dashboard.wait_ready()
    return dashboard


def run_dashboard(
    settings: Settings, port: int = 8501, address: str = "127.0.0.1", out: _Out | None = None
) -> int:
    """Serve the dashboard in the foreground until Ctrl-C or SIGTERM; returns an exit code."""
    try:
        dashboard = start_dashboard(settings, port, address, quiet=False)
    except UsageError as exc:
        if out is not None:
            out.error(str(exc))
        return 2
    if out is not None:
        out.info(f"Dashboard running at {dashboard.url} (organisation {settings.org}); press Ctrl-C to stop")

    stop_requested = threading.Event()
    previous: Any = None
    in_main_thread = threading.current_thread() is threading.main_thread()

    def _on_sigterm(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    if in_main_thread:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        while not stop_requested.is_set() and dashboard.process.poll() is None:
            stop_requested.wait(0.5)
    except KeyboardInterrupt:
        stop_requested.set()
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        exited_by_itself = dashboard.process.poll() is not None
        code = dashboard.stop()
    if out is not None:
        out.info("Dashboard stopped")
    return code if exited_by_itself else 0
