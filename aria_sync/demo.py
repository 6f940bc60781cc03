"""`aria-sync demo`: simulators + demo database + installs + first sync + the dashboard, in one command.

Everything goes through the product's normal paths (the install path with its connection test and
the vault, the sync engine, the dashboard launcher); only the vendors are simulated. Running it again
reuses the demo database, advances the simulated estate by one step and syncs incrementally.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from aria_sync.audit import Actor
from aria_sync.errors import AlreadyRunningError, NotFoundError
from aria_sync.marketplace import Marketplace
from aria_sync.settings import Settings
from aria_sync.simulators.estate import Estate
from aria_sync.simulators.run import LOOPBACK_HOSTS, SimulatorSet, start_all
from aria_sync.store import Database
from aria_sync.sync.engine import Progress, SyncResult, SyncRunner

DEMO_DB = Path("data") / "demo.duckdb"
DEMO_PORT_BASE = 18601  # Tenable 18601, Defender 18602, ServiceNow 18603: stable, so configs stay valid
DEMO_INSTALLATIONS = {
    "tenable": "Demo Tenable.io",
    "ms-defender": "Demo Microsoft Defender",
    "servicenow": "Demo ServiceNow",
}
MAX_ADVANCES = 8


def demo_settings(settings: Settings) -> Settings:
    """The demo keeps to its own file unless --db / ARIA_SYNC_DB names one."""
    explicit = os.environ.get("ARIA_SYNC_DB")
    return settings if explicit or settings.db_path != Path("data") / "aria.duckdb" else replace(settings, db_path=DEMO_DB)


def allow_loopback() -> None:
    """The simulators listen on loopback, which the URL policy refuses unless listed."""
    current = [h.strip() for h in os.environ.get("ARIA_SYNC_ALLOWED_HOSTS", "").split(",") if h.strip()]
    for host in LOOPBACK_HOSTS.split(","):
        if host not in current:
            current.append(host)
    os.environ["ARIA_SYNC_ALLOWED_HOSTS"] = ",".join(current)


def _runs_file(db_path: Path) -> Path:
    return db_path.parent / f"{db_path.stem}.demo-runs"


def prepare_estate(db_path: Path, size: str) -> Estate:
    """The same deterministic estate, advanced once per earlier demo run so re-runs show changes."""
    runs_file = _runs_file(db_path)
    runs = int(runs_file.read_text().strip() or 0) if runs_file.exists() else 0
    estate = Estate.generate(size)
    for _ in range(min(runs, MAX_ADVANCES)):
        estate.advance()
    runs_file.parent.mkdir(parents=True, exist_ok=True)
    runs_file.write_text(str(runs + 1))
    return estate


def ensure_installations(market: Marketplace, sims: SimulatorSet, out: Any) -> list[str]:
    names = []
    for key, config in sims.configs().items():
        name = DEMO_INSTALLATIONS[key]
        try:
            market.get(name)
            out.info(f"reusing installation {name}")
        except NotFoundError:
            installation, report = market.install(key, name, config)
            assert report is not None
            checks = ", ".join(f"{r.capability} {'ok' if r.ok else 'FAILED'}" for r in report.results)
            out.info(f"installed {name} ({installation.installation_id[:8]}): {checks}")
        names.append(name)
    return names


def sync_all(db: Database, org: str, names: list[str], out: Any) -> list[SyncResult]:
    runner = SyncRunner(db, org, Actor("demo", "admin"))
    results = []
    for name in names:
        with out.progress(name) as update:

            def on_progress(p: Progress, update: Any = update) -> None:
                if update:
                    update(p.fraction, f"{p.stream or ''} {p.phase} {p.records} records".strip())

            try:
                result = runner.sync(name, on_progress=on_progress)
            except AlreadyRunningError as exc:
                out.info(f"{name}: {exc}")
                continue
        counts = ", ".join(
            f"{stream} +{c['inserted']} ~{c['updated']} -{c['removed']}" for stream, c in result.as_json()["streams"].items()
        )
        out.info(f"{name}: {result.status} in {result.duration_seconds:.1f}s ({counts})")
        if result.error:
            out.info(f"  {result.error}")
        results.append(result)
    return results


def run_demo(settings: Settings, *, port: int, dashboard: bool, size: str, out: Any) -> int:
    settings = demo_settings(settings)
    allow_loopback()
    db = Database(settings.db_path)
    estate = prepare_estate(db.path, size)
    out.info(f"demo database: {db.path}")
    port_base = int(os.environ.get("ARIA_SYNC_DEMO_PORT_BASE", DEMO_PORT_BASE))
    sims = start_all(estate, port_base=port_base, cert_dir=db.path.parent / "demo-tls")
    try:
        market = Marketplace(db, settings.org, Actor("demo", "admin"))
        names = ensure_installations(market, sims, out)
        results = sync_all(db, settings.org, names, out)
        if not dashboard:
            return 0 if all(r.status in ("succeeded", "partial") for r in results) else 1
        from aria_sync.dashboard_launcher import run_dashboard

        return run_dashboard(settings, port=port, address="127.0.0.1", out=out)
    finally:
        sims.stop()


class _Quiet:
    """Output sink for library use of the demo steps (notebooks, tests)."""

    json_mode = True

    def info(self, message: str) -> None:
        pass

    def progress(self, label: str) -> Any:
        import contextlib

        return contextlib.nullcontext(None)


def build_demo_database(db_path: Path, *, size: str = "small", org: str = "default", advances: int = 0) -> Path:
    """Create (or refresh) a demo database: start the simulators, install the three integrations through
    the normal install path, sync them, stop the simulators. Used by the notebooks' CI run and tests."""
    allow_loopback()
    db = Database(db_path)
    estate = Estate.generate(size)
    for _ in range(advances):
        estate.advance()
    sims = start_all(estate, cert_dir=db.path.parent / "demo-tls")
    try:
        market = Marketplace(db, org, Actor("demo", "admin"))
        for key, config in sims.configs().items():
            name = DEMO_INSTALLATIONS[key]
            try:
                market.get(name)
            except NotFoundError:
                market.install(key, name, config)
        # Free ports differ per call: point existing installations at this run's simulators.
        _repoint(market, sims)
        sync_all(db, org, list(DEMO_INSTALLATIONS.values()), _Quiet())
    finally:
        sims.stop()
    return db.path


def _repoint(market: Marketplace, sims: SimulatorSet) -> None:
    import json

    from aria_sync.store import OrgScope

    for key, config in sims.configs().items():
        installation = market.get(DEMO_INSTALLATIONS[key])
        public = {k: v for k, v in config.items() if k not in installation.secret_fields}
        merged = {**installation.config, **public}
        with OrgScope(market.db, market.org).write() as conn:
            conn.execute(
                "UPDATE integration_installations SET config = ? WHERE org_id = ? AND installation_id = ?",
                [json.dumps(merged), market.org, installation.installation_id],
            )
