"""Benchmark: a full Defender sync of N machines and M vulnerability export rows, against its floor.

    .venv/bin/python benchmarks/bench_ms_defender.py                       # 100,000 machines, 1,000,000 rows
    .venv/bin/python benchmarks/bench_ms_defender.py --machines 20000 --vulnerabilities 200000
    .venv/bin/python benchmarks/bench_ms_defender.py --quick               # 2,000 machines, 20,000 rows

The simulator runs in its own process (its CPU and memory are not counted), with its rate limits off.
Measured in the same run:

1. the floor: the same machine pages and export pages downloaded with one httpx client and parsed
   with orjson, keeping nothing;
2. a full sync (install without test, then ``SyncRunner.sync``) into a fresh DuckDB file in a child
   process: wall time and the child's own peak RSS (``VmHWM``, see memory.py).

Targets: sync wall time within 2.5x the floor; peak RSS below 500 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import multiprocessing as mp
import os
import ssl
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from memory import own_peak_rss_mb  # benchmarks/memory.py

TARGET_RATIO = 2.5
TARGET_RSS_MB = 500.0


class ScaledEstate:
    """The small estate's Defender records stretched to exact sizes, generated lazily and deterministically."""

    def __init__(self, machines: int, vulnerabilities: int) -> None:
        from aria_sync.simulators.estate import Estate

        base = Estate.generate("small")
        self.generation = 0
        self.now = base.now
        self.credentials = base.credentials
        self._alerts = base.defender_alerts()
        self._incidents = base.defender_incidents()
        self._templates = base.defender_machines()
        by_device: dict[str, list[dict[str, Any]]] = {}
        for row in base.defender_vulnerabilities():
            by_device.setdefault(row["deviceId"], []).append(row)
        self._rows = [rows for rows in by_device.values() if rows]
        self.machine_count = machines
        self.vulnerability_count = vulnerabilities

    @staticmethod
    def machine_id(index: int) -> str:
        return hashlib.sha1(f"bench-machine-{index}".encode()).hexdigest()

    def defender_machines(self) -> list[dict[str, Any]]:
        machines = []
        for index in range(self.machine_count):
            template = self._templates[index % len(self._templates)]
            name = f"bench-{index:06d}.corp.example.com"
            addresses = [
                {**a, "macAddress": f"02{index:010X}" if a.get("macAddress") else None}
                for a in template.get("ipAddresses") or []
            ]
            machines.append(
                {**template, "id": self.machine_id(index), "computerDnsName": name, "ipAddresses": addresses}
            )
        return machines

    def defender_alerts(self) -> list[dict[str, Any]]:
        return self._alerts

    def defender_incidents(self) -> list[dict[str, Any]]:
        return self._incidents

    def defender_vulnerabilities(self) -> Iterator[dict[str, Any]]:
        per, extra = divmod(self.vulnerability_count, self.machine_count)
        for index in range(self.machine_count):
            device = self.machine_id(index)
            template = self._rows[index % len(self._rows)]
            for j in range(per + (1 if index < extra else 0)):
                row = template[j % len(template)]
                yield {
                    **row,
                    "id": f"{device}_{row['softwareName']}_{row['softwareVersion']}_{row['cveId']}_{j}",
                    "deviceId": device,
                    "deviceName": f"bench-{index:06d}.corp.example.com",
                }

    def defender_vulnerability_changes(self, since: Any) -> list[dict[str, Any]]:
        return []


def serve(machines: int, vulnerabilities: int, page_size: int, cert_dir: str, conn: Any) -> None:
    """Simulator process: serve until the parent closes the pipe."""
    from aria_sync.simulators.ms_defender import DEFAULT_RATE_LIMITS, start_ms_defender

    estate = ScaledEstate(machines, vulnerabilities)
    server = start_ms_defender(
        estate,
        cert_dir=Path(cert_dir),
        rate_limits={group: () for group in DEFAULT_RATE_LIMITS},
        export_page_size=page_size,
    )
    server.app.snapshot()  # type: ignore[attr-defined]  # build the machine list before timing starts
    conn.send(
        {"base_url": server.base_url, "ca_file": str(server.ca_file), **estate.credentials["ms-defender"]}
    )
    with contextlib.suppress(EOFError):
        conn.recv()
    server.stop()


def floor(info: dict[str, Any], page_size: int) -> tuple[float, int, int]:
    """Seconds to download and parse the machine and export pages, keeping nothing."""
    context = ssl.create_default_context(cafile=info["ca_file"])
    with httpx.Client(base_url=info["base_url"], verify=context, timeout=300.0, trust_env=False) as client:
        token = client.post(
            f"/{info['tenantId']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": info["clientId"],
                "client_secret": info["clientSecret"],
                "scope": "https://api.securitycenter.microsoft.com/.default",
            },
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        started = time.perf_counter()
        machines = rows = 0
        skip = 0
        while True:
            page = orjson.loads(
                client.get("/api/machines", params={"$top": 10_000, "$skip": skip}, headers=headers).content
            )["value"]
            machines += len(page)
            skip += len(page)
            if len(page) < 10_000:
                break
        url: str | None = "/api/machines/SoftwareVulnerabilitiesByMachine"
        params: dict[str, Any] | None = {"pageSize": page_size}
        while url:
            body = orjson.loads(client.get(url, params=params, headers=headers).content)
            rows += len(body["value"])
            url, params = body.get("@odata.nextLink"), None
        return time.perf_counter() - started, machines, rows


def sync(info: dict[str, Any], directory: str, page_size: int, conn: Any) -> None:
    """Sync process: install without a test and run one full sync into a fresh DuckDB file."""
    os.environ["ARIA_SYNC_ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    os.environ["ARIA_SYNC_VAULT"] = "file"
    from cryptography.fernet import Fernet

    os.environ["ARIA_SYNC_MASTER_KEY"] = Fernet.generate_key().decode()
    from aria_sync.audit import Actor
    from aria_sync.marketplace import Marketplace
    from aria_sync.store import Database
    from aria_sync.sync import SyncRunner

    db = Database(Path(directory) / "aria.duckdb")
    config = {
        "tenantId": info["tenantId"],
        "clientId": info["clientId"],
        "clientSecret": info["clientSecret"],
        "apiBaseUrl": info["base_url"],
        "authorityHost": info["base_url"],
        "caBundle": info["ca_file"],
    }
    Marketplace(db, "bench", Actor("bench", "admin")).install(
        "ms-defender", "defender", config, test=False, options={"export_page_size": page_size}
    )
    started = time.perf_counter()
    result = SyncRunner(db, "bench", Actor("bench", "admin")).sync("defender")
    elapsed = time.perf_counter() - started
    conn.send(
        {
            "seconds": elapsed,
            "self_rss_mb": own_peak_rss_mb(),
            "status": result.status,
            "error": result.error,
            "streams": {
                name: (s["fetched"], s["inserted"], s["status"], s.get("error") or "; ".join(s.get("warnings") or []))
                for name, s in result.streams.items()
            },
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--machines", type=int, default=100_000)
    parser.add_argument("--vulnerabilities", type=int, default=1_000_000)
    parser.add_argument("--page-size", type=int, default=50_000, help="export pageSize")
    parser.add_argument("--quick", action="store_true", help="2,000 machines and 20,000 rows")
    args = parser.parse_args()
    if args.quick:
        args.machines, args.vulnerabilities = 2_000, 20_000

    spawn = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench-mde-") as directory:
        parent, child = spawn.Pipe()
        simulator = spawn.Process(
            target=serve, args=(args.machines, args.vulnerabilities, args.page_size, directory, child)
        )
        simulator.start()
        info = parent.recv()
        try:
            floor_seconds, machines, rows = floor(info, args.page_size)
            results, sender = spawn.Pipe()
            worker = spawn.Process(target=sync, args=(info, directory, args.page_size, sender))
            worker.start()
            outcome = results.recv()
            worker.join()
            peak_mb = outcome["self_rss_mb"]
        finally:
            parent.send("stop")
            simulator.join(timeout=30)

    ratio = outcome["seconds"] / floor_seconds
    print(
        f"Defender benchmark: {machines:,} machines, {rows:,} vulnerability rows (pageSize {args.page_size:,})"
    )
    print(f"  floor (httpx + orjson, keep nothing): {floor_seconds:8.2f} s")
    print(f"  full sync (fetch, stage, apply, ARIA): {outcome['seconds']:8.2f} s  status {outcome['status']}")
    for name, (fetched, inserted, status, problem) in outcome["streams"].items():
        print(f"    {name:16s} fetched {fetched:>9,}  inserted {inserted:>9,}  {status}")
        if problem:
            print(f"      {problem}")
    print(f"  ratio sync / floor: {ratio:.2f}x (target <= {TARGET_RATIO}x)")
    print(f"  peak RSS of the sync process: {peak_mb:.0f} MB (target < {TARGET_RSS_MB:.0f} MB)")
    ok = outcome["status"] == "succeeded" and ratio <= TARGET_RATIO and peak_mb < TARGET_RSS_MB
    if outcome.get("error"):
        print(f"  error: {outcome['error']}")
    print("  PASS" if ok else "  MISS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
