"""ServiceNow connector benchmark: a full sync of N CMDB items against the fetch+parse floor.

The simulated instance runs in its own process (its CPU and memory are not counted). In the same
run this script measures

1. the floor: every ``cmdb_ci_computer`` page downloaded with one httpx client and parsed with
   orjson, keeping nothing;
2. a full sync (install + ``SyncRunner.sync``) into a fresh DuckDB file in a child process: wall
   time of the job, of the ``cmdb_items`` stream alone, and the child's own peak RSS (``VmHWM``,
   see memory.py; the child is spawned, not forked, so none of this process's memory is counted).

Usage: ``python benchmarks/bench_servicenow.py --items 100000 [--page-size 1000]``
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from memory import own_peak_rss_mb  # benchmarks/memory.py

TARGET_RATIO = 2.5
CI_TABLES = ("cmdb_ci_computer", "cmdb_ci_server", "cmdb_ci_win_server", "cmdb_ci_linux_server")


class ScaledEstate:
    """The tiny estate with its CMDB computers cloned to ``items`` CIs (unique sys_ids, names, addresses)."""

    def __init__(self, items: int) -> None:
        from aria_sync.simulators.estate import Estate

        self._base = Estate.generate("tiny")
        self.generation = 0
        self.now = self._base.now
        self.credentials = self._base.credentials
        self.SERVICENOW_TABLES = self._base.SERVICENOW_TABLES
        self.servicenow_references = self._base.servicenow_references
        templates = self._base.servicenow_records("cmdb_ci_computer")
        clones: list[dict[str, Any]] = []
        for index in range(items):
            row = dict(templates[index % len(templates)])
            sys_id = hashlib.md5(f"bench-ci-{index}".encode()).hexdigest()
            name = f"BENCH{index:07d}"
            row.update(
                sys_id=sys_id,
                name=name,
                host_name=name.lower(),
                fqdn=f"{name.lower()}.corp.example.com",
                ip_address=f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}",
                mac_address=":".join(f"{b:02x}" for b in bytes.fromhex(sys_id[:12])),
                serial_number=f"SN{index:09d}",
            )
            clones.append(row)
        clones.sort(key=lambda row: row["sys_id"])
        self._cis = {table: [r for r in clones if _in_class(r, table)] for table in CI_TABLES}

    def servicenow_records(self, table: str) -> list[dict[str, Any]]:
        if table in self._cis:
            return self._cis[table]
        if table == "cmdb_rel_ci":
            return []  # relations point at the tiny estate's CIs, which the clones replace
        return self._base.servicenow_records(table)


def _in_class(row: dict[str, Any], table: str) -> bool:
    klass = row["sys_class_name"]
    if table == "cmdb_ci_computer":
        return True
    if table == "cmdb_ci_server":
        return klass.endswith("_server")
    return bool(klass == table)


def _serve(items: int, ready: Any, stop: Any) -> None:
    from aria_sync.simulators.servicenow import start_servicenow

    estate = ScaledEstate(items)
    server = start_servicenow(estate)
    ready.put((server.base_url, dict(estate.credentials["servicenow"])))
    stop.wait()
    server.stop()


def measure_floor(base_url: str, credentials: dict[str, str], page_size: int) -> tuple[float, int, int]:
    """Seconds, records and pages to download and parse every CMDB page once."""
    params = {
        "sysparm_query": "ORDERBYsys_updated_on^ORDERBYsys_id",
        "sysparm_display_value": "false",
        "sysparm_exclude_reference_link": "true",
        "sysparm_limit": str(page_size),
    }
    records = pages = 0
    started = time.perf_counter()
    with httpx.Client(base_url=base_url, auth=(credentials["username"], credentials["password"])) as client:
        offset = 0
        while True:
            response = client.get(
                "/api/now/table/cmdb_ci_computer", params={**params, "sysparm_offset": offset}
            )
            rows = orjson.loads(response.content)["result"]
            pages += 1
            records += len(rows)
            offset += len(rows)
            if len(rows) < page_size or offset >= int(response.headers["X-Total-Count"]):
                break
    return time.perf_counter() - started, records, pages


def _sync_child(base_url: str, credentials: dict[str, str], page_size: int, directory: str, out: Any) -> None:
    from cryptography.fernet import Fernet

    os.environ.update(
        ARIA_SYNC_VAULT="file",
        ARIA_SYNC_MASTER_KEY=Fernet.generate_key().decode(),
        ARIA_SYNC_ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    from aria_sync.audit import Actor
    from aria_sync.marketplace import Marketplace
    from aria_sync.store import Database
    from aria_sync.sync import Progress, SyncRunner

    db = Database(Path(directory) / "aria.duckdb")
    config = {"instanceUrl": base_url, **credentials, "pageSize": page_size}
    Marketplace(db, "bench", Actor("bench", "admin")).install("servicenow", "sn", config)
    marks: dict[str, float] = {}

    def on_progress(progress: Progress) -> None:
        key = f"{progress.stream}:{progress.phase}"
        marks.setdefault(key, time.perf_counter())

    started = time.perf_counter()
    result = SyncRunner(db, "bench", sleep=lambda s: None).sync("sn", on_progress=on_progress)
    finished = time.perf_counter()
    cmdb_start = marks.get("cmdb_items:fetching", started)
    cmdb_end = marks.get("services:fetching", finished)
    apply_start = marks.get("cmdb_items:applying", cmdb_end)
    out.put(
        {
            "status": result.status,
            "error": result.error,
            "fetched": result.streams["cmdb_items"]["fetched"],
            "job_seconds": finished - started,
            "peak_rss_mib": own_peak_rss_mb(),
            "cmdb_seconds": cmdb_end - cmdb_start,
            "cmdb_fetch_seconds": apply_start - cmdb_start,
            "cmdb_apply_seconds": cmdb_end - apply_start,
            "correlation_seconds": finished
            - marks.get(":correlating", marks.get("deletions:applying", finished))
            if ":correlating" in marks
            else None,
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="CMDB computers on the instance")
    parser.add_argument("--page-size", type=int, default=1000, help="sysparm_limit")
    args = parser.parse_args(argv)

    context = mp.get_context("fork")
    ready, stop = context.Queue(), context.Event()
    simulator = context.Process(target=_serve, args=(args.items, ready, stop), daemon=True)
    started = time.perf_counter()
    simulator.start()
    base_url, credentials = ready.get(timeout=600)
    print(
        f"simulator with {args.items} CMDB items ready in {time.perf_counter() - started:.1f} s at {base_url}"
    )
    try:
        measure_floor(base_url, credentials, args.page_size)  # warm the instance's query cache
        floor, records, pages = measure_floor(base_url, credentials, args.page_size)
        print(f"floor: {records} records in {pages} pages downloaded and parsed in {floor:.2f} s")
        with tempfile.TemporaryDirectory(prefix="bench-servicenow-") as directory:
            spawn = mp.get_context("spawn")
            out = spawn.Queue()
            child = spawn.Process(
                target=_sync_child, args=(base_url, credentials, args.page_size, directory, out)
            )
            child.start()
            figures = out.get(timeout=3600)
            child.join()
            peak_mib = figures["peak_rss_mib"]
    finally:
        stop.set()
        simulator.join(timeout=10)
    print(
        f"sync: status {figures['status']}, {figures['fetched']} CMDB items, job {figures['job_seconds']:.2f} s"
    )
    print(
        f"  cmdb_items stream {figures['cmdb_seconds']:.2f} s (fetch+stage {figures['cmdb_fetch_seconds']:.2f} s, "
        f"apply {figures['cmdb_apply_seconds']:.2f} s)"
    )
    if figures["correlation_seconds"] is not None:
        print(f"  correlation and risk register {figures['correlation_seconds']:.2f} s")
    print(f"  peak RSS of the sync process {peak_mib:.0f} MiB")
    stream_ratio = figures["cmdb_seconds"] / floor
    job_ratio = figures["job_seconds"] / floor
    print(f"ratio cmdb_items stream / floor = {stream_ratio:.2f} (target <= {TARGET_RATIO})")
    print(f"ratio whole job / floor = {job_ratio:.2f}")
    if figures["error"]:
        print(f"error: {figures['error']}")
    return 0 if figures["status"] == "succeeded" and stream_ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
