"""A real browser: the launcher serves the app, headless Chromium drives it over the DevTools protocol."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from aria_sync.audit import Actor
from aria_sync.dashboard_launcher import DashboardProcess, free_port, start_dashboard
from aria_sync.marketplace import Installation
from aria_sync.settings import get_settings
from aria_sync.simulators.example import TOKEN
from aria_sync.store import Database
from aria_sync.sync.engine import SyncRunner

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed (apt-get install -y chromium)"
)


class DevTools:
    """The few DevTools protocol calls the test needs: navigate, evaluate, screenshot."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError(f"{method} failed: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for_text(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        body = ""
        while time.monotonic() < deadline:
            body = str(self.evaluate("document.body ? document.body.innerText : ''") or "")
            if text in body:
                return body
            time.sleep(0.25)
        raise AssertionError(f"{text!r} never appeared; the page showed:\n{body[:2000]}")

    def click(self, selector: str, text: str) -> None:
        script = (
            f"(() => {{ const el = [...document.querySelectorAll({json.dumps(selector)})]"
            f".find(e => e.innerText.trim().includes({json.dumps(text)}));"
            " if (!el) return false; el.click(); return true; })()"
        )
        assert self.evaluate(script), f"no {selector} with text {text!r}"

    def screenshot(self, path: Path, settle: float = 0.5) -> Path:
        time.sleep(settle)  # let the last websocket delta paint
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[DevTools]:
    port = free_port()
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1400,1000",
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        target = None
        while target is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=1).json()
                target = next((p for p in pages if p.get("type") == "page"), None)
            time.sleep(0.1)
        assert target is not None, "chromium did not open its DevTools port"
        with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as socket:
            tools = DevTools(socket)
            tools.call("Page.enable")
            yield tools
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def served(installed: Installation, dashboard_env: Path) -> Iterator[DashboardProcess]:
    result = SyncRunner(Database(dashboard_env), "acme", Actor("test-admin", "admin")).sync(installed.name)
    assert result.status == "succeeded"
    with start_dashboard(get_settings(db=dashboard_env, org="acme"), port=0) as dashboard:
        yield dashboard


def test_browser_marketplace_to_sync_now(served: DashboardProcess, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    keep = os.environ.get("ARIA_SYNC_KEEP_SCREENSHOTS")  # a folder to copy them to, for a look
    with chromium(tmp_path / "profile") as browser:
        browser.call("Page.navigate", url=served.url)
        page = browser.wait_for_text("Example Inventory")
        assert "Marketplace" in page and "Tenable.io" in page and "Installed" in page
        browser.screenshot(shots / "marketplace.png")

        browser.click("a", "My integrations")
        page = browser.wait_for_text("Sync now")
        assert "Example lab" in page and "healthy" in page
        browser.click("button", "Sync now")
        page = browser.wait_for_text("finished: succeeded")
        assert re.search(r"Sync of Example lab finished: succeeded \(\d+ records\)", page)
        browser.screenshot(shots / "installations.png")

        html = str(browser.evaluate("document.documentElement.outerHTML"))
        assert "Example lab" in html
        assert TOKEN not in html

        browser.click("a", "Integration details")
        browser.wait_for_text("Permissions it needs")
        browser.screenshot(shots / "integration.png", settle=2.0)  # tables draw on a canvas
        assert TOKEN not in str(browser.evaluate("document.documentElement.outerHTML"))

    pngs = sorted(shots.glob("*.png"))
    assert [p.name for p in pngs] == ["installations.png", "integration.png", "marketplace.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 10_000 for p in pngs)
    if keep:
        for png in pngs:
            shutil.copy(png, Path(keep) / png.name)
