"""Benchmark: a full Tenable sync of N findings over M assets, against its floor.

    .venv/bin/python benchmarks/bench_tenable.py                          # 200,000 findings, 5,000 assets
    .venv/bin/python benchmarks/bench_tenable.py --findings 1000000 --assets 25000
    .venv/bin/python benchmarks/bench_tenable.py --quick                  # 20,000 findings, 500 assets

The simulator runs in its own process (its CPU and memory are not counted). Its estate is the small
demo estate's Tenable records stretched to exact sizes: asset records are copied with new ids and
each asset gets ``findings / assets`` findings cycled from the small estate's, with new finding ids.
Chunks are released ``--chunks-per-poll`` at a time per status poll.

Measured in the same run:

1. the floor: the same asset and vulnerability exports created, polled without pause, and every
   chunk downloaded with one httpx client and parsed with orjson, keeping nothing;
2. a full sync (install without test, then ``SyncRunner.sync``) into a fresh DuckDB file in a child
   process: wall time and the child's own peak RSS (``VmHWM``, see memory.py).

Targets: sync wall time within 2.5x the floor; peak RSS below 400 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from memory import own_peak_rss_mb  # benchmarks/memory.py

TARGET_RATIO = 2.5
TARGET_RSS_MB = 400.0
STATES = ["OPEN", "REOPENED", "FIXED"]


class ScaledEstate:
    """The small estate's Tenable records stretched to exact sizes, generated lazily and deterministically."""

    def __init__(self, assets: int, findings: int) -> None:
        from aria_sync.simulators.estate import Estate

        base = Estate.generate("small")
        self.seed = base.seed
        self.generation = 0
        self.now = base.now
        self.credentials = base.credentials
        self._scans = base.tenable_scans()
        live = [a for a in base.tenable_assets() if not a.get("deleted_at")]
        by_asset: dict[str, list[dict[str, Any]]] = {}
        for finding in base.tenable_findings():
            by_asset.setdefault(finding["asset"]["uuid"], []).append(finding)
        self._templates = [(a, by_asset[a["id"]]) for a in live if by_asset.get(a["id"])]
        self.asset_count = assets
        self.finding_count = findings
        self._assets = [self._asset(i) for i in range(assets)]

    @staticmethod
    def _id(kind: str, index: int) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-tenable-{kind}-{index}"))

    def _asset(self, index: int) -> dict[str, Any]:
        template, _ = self._templates[index % len(self._templates)]
        host = f"bench-{index:07d}"
        return {
            **template,
            "id": self._id("asset", index),
            "hostnames": [host],
            "fqdns": [f"{host}.corp.example.com"],
            "agent_uuid": uuid.uuid5(uuid.NAMESPACE_DNS, host).hex,
            "bios_uuid": self._id("bios", index),
        }

    def _per_asset(self, index: int) -> int:
        base, extra = divmod(self.finding_count, self.asset_count)
        return base + (1 if index < extra else 0)

    def tenable_assets(self) -> list[dict[str, Any]]:
        return list(self._assets)

    def tenable_findings(self) -> Iterator[dict[str, Any]]:
        for index, asset in enumerate(self._assets):
            _, findings = self._templates[index % len(self._templates)]
            wire_asset = {**findings[0]["asset"], "uuid": asset["id"], "hostname": asset["hostnames"][0]}
            for slot in range(self._per_asset(index)):
                template = findings[slot % len(findings)]
                port = template.get("port") or {}
                yield {
                    **template,
                    "finding_id": self._id("finding", index * 10_000 + slot),
                    "asset": wire_asset,
                    # cycled templates repeat a plugin: a distinct port keeps the legacy key unique too
                    "port": {**port, "port": int(port.get("port") or 0) + slot // len(findings)},
                }

    def tenable_finding_count(self) -> int:
        return self.finding_count

    def tenable_scans(self) -> list[dict[str, Any]]:
        return list(self._scans)


def serve(assets: int, findings: int, chunks_per_poll: int, conn: Any) -> None:
    """Simulator process: serve until the parent closes the pipe."""
    from aria_sync.simulators.tenable import start_tenable

    estate = ScaledEstate(assets, findings)
    server = start_tenable(
        estate,
        chunks_per_poll=chunks_per_poll,
        background_build_threshold=10**12,  # build before answering POST, in both runs alike
        chunk_memory_limit_bytes=4 * 1024**3,
    )
    conn.send({"base_url": server.base_url, **estate.credentials["tenable"]})
    with contextlib.suppress(EOFError):
        conn.recv()
    server.stop()


def floor(info: dict[str, Any], num_assets: int) -> tuple[float, int, int]:
    """Seconds to run both exports and download and parse every chunk, keeping nothing."""
    headers = {"X-ApiKeys": f"accessKey={info['accessKey']};secretKey={info['secretKey']}"}
    started = time.perf_counter()
    counts = {}
    with httpx.Client(base_url=info["base_url"], headers=headers, timeout=600.0, trust_env=False) as client:
        for kind, body in (
            ("assets", {"chunk_size": 1000, "filters": {}}),
            ("vulns", {"num_assets": num_assets, "filters": {"since": 0, "state": STATES}}),
        ):
            job = client.post(f"/{kind}/export", json=body).json()["export_uuid"]
            done: set[int] = set()
            records = 0
            while True:
                status = client.get(f"/{kind}/export/{job}/status").json()
                for chunk in status.get("chunks_available", []):
                    if chunk not in done:
                        done.add(chunk)
                        records += len(
                            orjson.loads(client.get(f"/{kind}/export/{job}/chunks/{chunk}").content)
                        )
                if status["status"] == "FINISHED":
                    break
            counts[kind] = records
    return time.perf_counter() - started, counts["assets"], counts["vulns"]


def sync(info: dict[str, Any], directory: str, num_assets: int, conn: Any) -> None:
    """Sync process: install without a test and run one full sync into a fresh DuckDB file."""
    os.environ["ARIA_SYNC_ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    os.environ["ARIA_SYNC_VAULT"] = "file"
    from cryptography.fernet import Fernet

    os.environ["ARIA_SYNC_MASTER_KEY"] = Fernet.generate_key().decode()
    from aria_sync.audit import Actor
    from aria_sync.marketplace import Marketplace
    from aria_sync.store import Database
    from aria_sync.sync import Progress, SyncRunner

    db = Database(Path(directory) / "aria.duckdb")
    config = {"baseUrl": info["base_url"], "accessKey": info["accessKey"], "secretKey": info["secretKey"]}
    Marketplace(db, "bench", Actor("bench", "admin")).install(
        "tenable", "tenable", config, test=False, options={"vuln_export_num_assets": num_assets}
    )
    phases: dict[str, float] = {}
    rss: dict[str, float] = {}  # peak RSS in MB when each phase ended
    last: list[Any] = [None, 0.0]

    def on_progress(progress: Progress) -> None:
        key = f"{progress.stream or '-'}:{progress.phase}"
        now = time.perf_counter()
        if last[0] is not None and last[0] != key:
            phases[last[0]] = phases.get(last[0], 0.0) + now - last[1]
            rss[last[0]] = own_peak_rss_mb()
            last[1] = now
        if last[0] != key:
            last[0], last[1] = key, now

    started = time.perf_counter()
    result = SyncRunner(db, "bench", Actor("bench", "admin")).sync("tenable", on_progress=on_progress)
    elapsed = time.perf_counter() - started
    conn.send(
        {
            "seconds": elapsed,
            "phases": phases,
            "rss": rss,
            "self_rss_mb": own_peak_rss_mb(),
            "status": result.status,
            "error": result.error,
            "streams": {
                name: (s["fetched"], s["inserted"], s["status"]) for name, s in result.streams.items()
            },
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--findings", type=int, default=200_000)
    parser.add_argument("--assets", type=int, default=5_000)
    parser.add_argument("--num-assets", type=int, default=50, help="assets per vulnerability chunk")
    parser.add_argument(
        "--chunks-per-poll", type=int, default=10, help="chunks the simulator releases per poll"
    )
    parser.add_argument(
        "--memory-limit", help="ARIA_SYNC_MEMORY_LIMIT for the sync process (DuckDB's budget)"
    )
    parser.add_argument("--quick", action="store_true", help="20,000 findings over 500 assets")
    args = parser.parse_args()
    if args.quick:
        args.findings, args.assets = 20_000, 500

    if args.memory_limit:
        os.environ["ARIA_SYNC_MEMORY_LIMIT"] = args.memory_limit  # inherited by the spawned sync process
    spawn = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench-tenable-") as directory:
        parent, child = spawn.Pipe()
        simulator = spawn.Process(
            target=serve, args=(args.assets, args.findings, args.chunks_per_poll, child)
        )
        simulator.start()
        info = parent.recv()
        try:
            floor_seconds, assets, findings = floor(info, args.num_assets)
            results, sender = spawn.Pipe()
            worker = spawn.Process(target=sync, args=(info, directory, args.num_assets, sender))
            worker.start()
            outcome = results.recv()
            worker.join()
            peak_mb = outcome["self_rss_mb"]
        finally:
            parent.send("stop")
            simulator.join(timeout=30)

    ratio = outcome["seconds"] / floor_seconds
    print(f"Tenable benchmark: {assets:,} assets, {findings:,} findings (num_assets {args.num_assets})")
    print(f"  DuckDB memory_limit of the sync: {os.environ.get('ARIA_SYNC_MEMORY_LIMIT', '1GB (default)')}")
    print(f"  floor (httpx + orjson, keep nothing): {floor_seconds:8.2f} s")
    print(f"  full sync (fetch, stage, apply, ARIA): {outcome['seconds']:8.2f} s  status {outcome['status']}")
    for name, (fetched, inserted, status) in outcome["streams"].items():
        print(f"    {name:16s} fetched {fetched:>9,}  inserted {inserted:>9,}  {status}")
    for phase, seconds in sorted(outcome["phases"].items(), key=lambda item: -item[1])[:8]:
        print(
            f"    phase {phase:28s} {seconds:7.2f} s  (peak RSS then {outcome['rss'].get(phase, 0):.0f} MB)"
        )
    print(f"  ratio sync / floor: {ratio:.2f}x (target <= {TARGET_RATIO}x)")
    print(f"  peak RSS of the sync process: {peak_mb:.0f} MB (target < {TARGET_RSS_MB:.0f} MB)")
    if outcome["error"]:
        print(f"  error: {outcome['error']}")
    ok = outcome["status"] == "succeeded" and ratio <= TARGET_RATIO and peak_mb < TARGET_RSS_MB
    print("  PASS" if ok else "  MISS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
