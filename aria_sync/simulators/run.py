"""Run the three vendor simulators together from one estate (``aria-sync simulate``, the demo, tests)."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aria_sync.simulators.estate import Estate
from aria_sync.simulators.framework import SimulatorServer
from aria_sync.simulators.ms_defender import MsDefenderSimulator
from aria_sync.simulators.servicenow import ServiceNowSimulator
from aria_sync.simulators.tenable import TenableSimulator

LOOPBACK_HOSTS = "127.0.0.1,localhost"


@dataclass
class SimulatorSet:
    """The running simulators and the integration configs that reach them."""

    estate: Estate
    tenable: SimulatorServer
    defender: SimulatorServer
    servicenow: SimulatorServer

    def configs(self) -> dict[str, dict[str, Any]]:
        """Install configs per integration key, with the estate's demo credentials."""
        creds = self.estate.credentials
        return {
            "tenable": {**creds["tenable"], "baseUrl": self.tenable.base_url},
            "ms-defender": {
                **creds["ms-defender"],
                "apiBaseUrl": self.defender.base_url,
                "authorityHost": self.defender.base_url,
                "caBundle": str(self.defender.ca_file),
            },
            "servicenow": {**creds["servicenow"], "instanceUrl": self.servicenow.base_url},
        }

    def stop(self) -> None:
        threads = [threading.Thread(target=s.stop) for s in (self.tenable, self.defender, self.servicenow)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)


def start_all(estate: Estate, *, port_base: int = 0, cert_dir: Path | None = None) -> SimulatorSet:
    """Start Tenable (http), Defender (https) and ServiceNow (http) on loopback.

    ``port_base`` 0 picks free ports; otherwise Tenable, Defender and ServiceNow listen on
    port_base, port_base + 1 and port_base + 2, so configs stay valid across restarts.
    """

    def port(offset: int) -> int:
        return port_base + offset if port_base else 0

    tenable = SimulatorServer(TenableSimulator(estate), port=port(0))
    defender_app = MsDefenderSimulator(estate)
    defender = SimulatorServer(defender_app, tls=True, port=port(1), cert_dir=cert_dir)
    defender_app.public_base_url = defender.base_url
    servicenow_app = ServiceNowSimulator(estate)
    servicenow = SimulatorServer(servicenow_app, port=port(2))
    servicenow_app.instance_url = servicenow.base_url
    for server in (tenable, defender, servicenow):
        server.start()
    return SimulatorSet(estate, tenable, defender, servicenow)


def run_simulators(*, size: str, seed: int, port_base: int, out: Any) -> int:
    """`aria-sync simulate`: serve until Ctrl-C, printing base URLs and demo credentials."""
    import json

    estate = Estate.generate(size, seed=seed)
    sims = start_all(estate, port_base=port_base)
    configs = sims.configs()
    if out.json_mode:
        out.emit_json({"allowed_hosts": LOOPBACK_HOSTS, "configs": configs})
    else:
        out.info(f"Vendor simulators serving the {size} estate (seed {seed}); Ctrl-C to stop.")
        out.info(f"Set ARIA_SYNC_ALLOWED_HOSTS={LOOPBACK_HOSTS} so aria-sync may reach them.")
        for key, config in configs.items():
            out.info(f"\n{key} config (demo credentials, they open nothing real):")
            out.info(json.dumps(config, indent=2))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sims.stop()
    return 0
