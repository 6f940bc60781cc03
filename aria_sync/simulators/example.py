"""Simulator of the example inventory API (see :mod:`aria_sync.connectors.example`).

Devices page with ``page``/``per_page`` and a ``next`` link; events filter on ``since`` (inclusive)
and sort by (updated_at, id). Tests mutate ``devices`` and ``events`` between syncs.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from aria_sync.simulators.framework import SimRequest, SimResponse, SimulatorServer, VendorApp, json_response

TOKEN = "example-demo-token"  # nosec B105 # demo token the simulator publishes
DEVICES_ONLY_TOKEN = "example-devices-only-token"  # nosec B105 # demo token the simulator publishes
BASE_TIME = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ExampleSimulator(VendorApp):
    name = "example"

    def __init__(self, devices: int = 120, events: int = 75, tie_count: int = 20) -> None:
        super().__init__()
        self.devices: dict[str, dict[str, Any]] = {}
        for n in range(devices):
            device_id = f"dev-{n:05d}"
            self.devices[device_id] = {
                "id": device_id,
                "name": f"HOST-{n:05d}",
                "fqdn": f"host-{n:05d}.example.test",
                "ip": f"10.1.{n // 250}.{n % 250 + 1}",
                "serial": f"SN{n:07d}",
                "os": "Linux",
                "updated_at": iso(BASE_TIME + dt.timedelta(minutes=n)),
                "retired": False,
            }
        self.events: dict[str, dict[str, Any]] = {}
        for n in range(events):
            # The first `tie_count` events share one timestamp, so ties straddle page boundaries.
            moment = BASE_TIME if n < tie_count else BASE_TIME + dt.timedelta(seconds=n)
            self.add_event(f"evt-{n:05d}", moment)
        self.route("GET", r"/api/devices", self._devices)
        self.route("GET", r"/api/events", self._events)

    def add_event(self, event_id: str, moment: dt.datetime, kind: str = "change") -> None:
        self.events[event_id] = {"id": event_id, "kind": kind, "updated_at": iso(moment)}

    def _auth(self, request: SimRequest, need: str) -> SimResponse | None:
        header = request.header("authorization") or ""
        token = header.removeprefix("Bearer ").strip()
        if token not in (TOKEN, DEVICES_ONLY_TOKEN):
            return json_response({"error": "invalid token"}, 401)
        if need == "events" and token == DEVICES_ONLY_TOKEN:
            return json_response({"error": "missing scope events:read"}, 403)
        return None

    def _page(self, request: SimRequest, items: list[dict[str, Any]], path: str) -> SimResponse:
        per_page = max(1, min(1000, int(request.arg("per_page", "50") or 50)))
        page = max(1, int(request.arg("page", "1") or 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        query = "&".join(f"{k}={v[0]}" for k, v in sorted(request.query.items()) if k not in ("page",) and v)
        nxt = f"{path}?{query}&page={page + 1}" if page * per_page < len(items) else None
        return json_response({"items": chunk, "next": nxt, "total": len(items)})

    def _devices(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        denied = self._auth(request, "devices")
        if denied:
            return denied
        with self.lock:
            items = [self.devices[k] for k in sorted(self.devices)]
        return self._page(request, items, "/api/devices")

    def _events(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        denied = self._auth(request, "events")
        if denied:
            return denied
        since = request.arg("since")
        with self.lock:
            items = sorted(self.events.values(), key=lambda e: (e["updated_at"], e["id"]))
        if since:
            items = [e for e in items if e["updated_at"] >= since]
        return self._page(request, items, "/api/events")


def start_example(**options: Any) -> tuple[ExampleSimulator, SimulatorServer]:
    app = ExampleSimulator(**options)
    return app, SimulatorServer(app).start()
