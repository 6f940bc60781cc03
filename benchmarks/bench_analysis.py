"""Benchmark: every analysis function on a large synthetic estate (default 100,000 assets, 2,000,000 findings).

    .venv/bin/python benchmarks/bench_analysis.py            # the issue's size
    .venv/bin/python benchmarks/bench_analysis.py --quick    # 10,000 assets, 200,000 findings

Builds the ARIA tables directly in a temporary DuckDB file (with a second organisation, so the
scoped views really filter), then times each call twice and prints the faster run. Target: each
function within 1 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ARIA_SYNC_EXTRA_CONNECTORS", "aria_sync.connectors.example")

import aria_sync as aria
from aria_sync.store import Database


def build(db: Database, n: int) -> None:
    f = n * 20
    with db.write() as c:
        o = "bench"
        c.execute(f"""INSERT INTO assets (asset_id, org_id, name, hostname, ip_addresses, mac_addresses, serial_number, os, criticality, status, sources, last_seen)
          SELECT 'a'||i, '{o}', 'host-'||i, 'host-'||i, ['10.'||(i//65536)||'.'||((i//256)%256)||'.'||(i%256)], [], 'SN'||i,
            CASE i%3 WHEN 0 THEN 'Windows 10' WHEN 1 THEN 'Ubuntu 22.04' ELSE 'macOS' END,
            ['critical','high','medium','low'][i%4+1], CASE WHEN i%50=0 THEN 'retired' ELSE 'active' END,
            list_filter(['servicenow', CASE WHEN i%5<>0 THEN 'ms-defender' END, CASE WHEN i%7<>0 THEN 'tenable' END], x -> x IS NOT NULL), now()
          FROM range({n}) t(i)""")
        for key, table, inst, cond, lag in [
            ("servicenow", "servicenow_cmdb_items", "snow", "true", "1"),
            ("ms-defender", "ms_defender_assets", "mde", "i%5<>0", "i%10"),
            ("tenable", "tenable_assets", "ten", "i%7<>0", "i%60"),
        ]:
            c.execute(f"""INSERT INTO asset_sources (org_id, asset_id, installation_id, integration_key, source_table, source_id, matched_on, last_seen, is_deleted)
              SELECT '{o}', 'a'||i, '{inst}', '{key}', '{table}', '{inst}-'||i, 'serial', now() - to_days(({lag})::INT), false FROM range({n}) t(i) WHERE {cond}""")
            c.execute(f"""INSERT INTO asset_identities (org_id, installation_id, integration_key, source_table, source_id, name, os, status, last_seen, is_deleted)
              SELECT '{o}', '{inst}', '{key}', '{table}', '{inst}-'||i, 'host-'||i,
                CASE WHEN '{key}'='tenable' AND i%97=0 THEN 'Linux' WHEN i%3=0 THEN 'Windows 10' WHEN i%3=1 THEN 'Ubuntu 22.04' ELSE 'macOS' END,
                CASE WHEN '{key}'='servicenow' AND i%50=0 THEN 'retired' ELSE 'active' END, now() - to_days(({lag})::INT), false FROM range({n}) t(i) WHERE {cond}""")
            c.execute(f"""INSERT INTO {table} (org_id, installation_id, source_id, raw, last_seen_at, is_deleted)
              SELECT '{o}', '{inst}', '{inst}-'||i, json_object('id', '{inst}-'||i, 'name', 'host-'||i, 'os', 'Linux'), now(), false FROM range({n}) t(i) WHERE {cond}""")
        c.execute(f"""INSERT INTO vulnerabilities (finding_id, org_id, asset_id, installation_id, integration_key, source_id, cve_ids, title, severity, cvss_score, state, first_found, last_found, is_deleted)
          SELECT 'f'||i, '{o}', 'a'||(i%{n}), 'ten', 'tenable', 'f'||i, ['CVE-2024-'||(i%5000)], 'vuln '||(i%5000),
            ['critical','high','medium','low','info'][i%5+1], (i%100)/10.0, CASE WHEN i%4=0 THEN 'fixed' ELSE 'open' END,
            now() - to_days((i%400)::INT), now(), false FROM range({f}) t(i)""")
        c.execute(f"""INSERT INTO risks (risk_id, org_id, title, score, level, status, score_breakdown, affected_assets)
          SELECT 'r'||i, '{o}', 'risk '||i, (i%250)/10.0, ['critical','high','medium','low'][i%4+1], 'open', json_object('likelihood', i%5, 'impact', i%3), i%100 FROM range(5000) t(i)""")
        c.execute(
            f"""INSERT INTO services (service_id, org_id, installation_id, integration_key, source_id, name) SELECT 's'||i, '{o}', 'snow', 'servicenow', 'ss'||i, 'svc '||i FROM range(200) t(i)"""
        )
        c.execute(
            f"""INSERT INTO service_assets SELECT '{o}', 'snow', 'ss'||(i%200), 'snow-'||i, 'depends' FROM range({n}) t(i)"""
        )
        c.execute(f"""INSERT INTO incidents (incident_id, org_id, installation_id, integration_key, source_id, title, severity, status, opened_at, service_id)
          SELECT 'i'||i, '{o}', 'snow', 'servicenow', 'i'||i, 'inc', 'high', CASE WHEN i%3=0 THEN 'Closed' ELSE 'New' END, now() - to_days((i%100)::INT), 's'||(i%200) FROM range(20000) t(i)""")
        for i, name in [("snow", "SNOW"), ("mde", "MDE"), ("ten", "Tenable")]:
            c.execute(
                f"INSERT INTO integration_installations (org_id, installation_id, integration_key, name) VALUES ('{o}', '{i}', '{dict(snow='servicenow', mde='ms-defender', ten='tenable')[i]}', '{name}')"
            )
        c.execute(
            "INSERT INTO integration_sync_jobs (org_id, job_id, installation_id, installation_name, integration_key, status, started_at, finished_at, streams) SELECT 'bench', 'j'||i, 'ten', 'Tenable', 'tenable', 'succeeded', now() - to_hours(i), now() - to_hours(i), '{\"assets\": {\"fetched\": 5}}' FROM range(5000) t(i)"
        )
        # a second organisation so the views really filter
        c.execute(
            f"INSERT INTO vulnerabilities (finding_id, org_id, installation_id, source_id, severity, state, is_deleted) SELECT 'g'||i, 'other', 'x', 'g'||i, 'high', 'open', false FROM range({f // 10}) t(i)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--assets", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 10_000 if args.quick else args.assets
    directory = Path(tempfile.mkdtemp(prefix="aria-bench-analysis-"))
    db = Database(directory / "large.duckdb")
    started = time.perf_counter()
    build(db, n)
    db.checkpoint()
    print(
        f"analysis benchmark: {n:,} assets, {n * 20:,} findings (built in {time.perf_counter() - started:.1f} s)"
    )
    kw = dict(db=db, org="bench")
    aria.count_assets(**kw)
    calls = {
        "assets(limit=50)": lambda: aria.assets(limit=50, **kw),
        "assets(search)": lambda: aria.assets(search="host-999", limit=50, **kw),
        "count_assets": lambda: aria.count_assets(**kw),
        "assets() all": lambda: aria.assets(**kw),
        "asset_sources(asset)": lambda: aria.asset_sources("a42", **kw),
        "asset_sources(limit)": lambda: aria.asset_sources(limit=50, **kw),
        "inventory_presence(limit=50)": lambda: aria.inventory_presence(limit=50, **kw),
        "vulnerabilities(limit=50)": lambda: aria.vulnerabilities(limit=50, **kw),
        "vulnerabilities(offset=100k)": lambda: aria.vulnerabilities(limit=50, offset=100000, **kw),
        "vulnerabilities(asset)": lambda: aria.vulnerabilities(asset_id="a42", **kw),
        "count_vulnerabilities(crit)": lambda: aria.count_vulnerabilities(
            severity="critical", state="open", **kw
        ),
        "vulnerability_aging(limit=50)": lambda: aria.vulnerability_aging(limit=50, **kw),
        "sla_summary": lambda: aria.sla_summary(**kw),
        "risks(limit=50)": lambda: aria.risks(limit=50, **kw),
        "top_risks": lambda: aria.top_risks(**kw),
        "incidents(limit=50)": lambda: aria.incidents(limit=50, **kw),
        "incidents_by_service": lambda: aria.incidents_by_service(**kw),
        "services": lambda: aria.services(**kw),
        "coverage_gaps(limit=50)": lambda: aria.coverage_gaps(limit=50, **kw),
        "count_coverage_gaps": lambda: aria.count_coverage_gaps(**kw),
        "coverage_summary": lambda: aria.coverage_summary(**kw),
        "contradictions(limit=50)": lambda: aria.contradictions(limit=50, **kw),
        "sync_health": lambda: aria.sync_health(**kw),
        "sync_jobs": lambda: aria.sync_jobs(**kw),
        "changes_since_previous_sync": lambda: aria.changes_since_previous_sync(**kw),
        "activity_log": lambda: aria.activity_log(**kw),
        "verify_activity_log": lambda: aria.verify_activity_log(**kw),
        "rejected_records": lambda: aria.rejected_records(**kw),
        "data_quality_findings": lambda: aria.data_quality_findings(**kw),
        "source_records(tenable assets)": lambda: (
            aria.source_records("tenable", "assets", **kw)
            if any(
                s.name == "assets"
                for s in __import__("aria_sync.connectors.registry", fromlist=["x"])
                .get_connector("tenable")
                .streams
            )
            else None
        ),
        "sql(group by)": lambda: aria.sql("SELECT severity, count(*) FROM vulnerabilities GROUP BY 1", **kw),
    }

    slowest = 0.0
    for name, fn in calls.items():
        timings = []
        for _ in range(2):
            t = time.perf_counter()
            result = fn()
            timings.append(time.perf_counter() - t)
        rows = len(result) if hasattr(result, "__len__") else result
        slowest = max(slowest, min(timings))
        print(f"  {name:35s} {min(timings):6.3f} s  rows={rows}")
    print(f"  slowest function: {slowest:.3f} s (target <= 1 s) {'OK' if slowest <= 1.0 else 'MISS'}")


if __name__ == "__main__":
    main()
