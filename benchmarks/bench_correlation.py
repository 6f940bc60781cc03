"""Correlation benchmark on a demo estate: seconds, peak RSS and pairwise precision/recall.

Usage: ``python benchmarks/bench_correlation.py [large|small] [--quick] [--workdir DIR]``. The estate is
loaded into ``asset_identities`` first; the correlation then runs in a fresh process so that its
peak RSS is its own. With ``--workdir`` the loaded file and the ground truth are kept there
(``loaded-<size>.duckdb``, ``truth-<size>.json``), and later runs start from a copy of them instead of
generating the estate again; ``--reload`` forces a fresh load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from memory import own_peak_rss_mb  # benchmarks/memory.py

ORG = "acme"
HELPERS = Path(__file__).resolve().parent.parent / "tests" / "correlation" / "conftest.py"


def _helpers():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("estate_rows", HELPERS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _correlate_only(path: str) -> None:
    from aria_sync.correlation import correlate
    from aria_sync.store import Database

    db = Database(path)
    started, cpu_started = time.perf_counter(), time.process_time()
    with db.write() as conn:
        correlate(conn, ORG, dt.datetime.now(dt.UTC))
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    rss_mb = own_peak_rss_mb()
    print(
        json.dumps(
            {"seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2), "peak_rss_mb": round(rss_mb)}
        )
    )


def _load(size: str, db_path: Path) -> dict[tuple[str, str], str]:
    """Generate the estate into ``db_path``; the ground truth of its records."""
    from aria_sync.simulators.estate import Estate
    from aria_sync.store import Database

    helpers = _helpers()
    db = Database(db_path)
    started = time.perf_counter()
    estate = Estate.generate(size, seed=7)
    rows = helpers.estate_identities(estate)
    with db.write() as conn:
        conn.execute("DELETE FROM asset_identities WHERE org_id = ?", [ORG])
        helpers.insert_rows(conn, "asset_identities", rows)
        helpers.load_estate_services(conn, estate)
    db.checkpoint()
    print(f"estate {size}: {len(rows)} identity rows loaded in {time.perf_counter() - started:.1f}s")
    return estate.truth()


def _prepared(size: str, workdir: Path, reload: bool) -> tuple[Path, dict[tuple[str, str], str]]:
    """A freshly loaded (never correlated) database and its truth, reusing the kept copy when there is one."""
    db_path = workdir / "bench.duckdb"
    kept, truth_file = workdir / f"loaded-{size}.duckdb", workdir / f"truth-{size}.json"
    if reload or not (kept.exists() and truth_file.exists()):
        db_path.unlink(missing_ok=True)
        truth = _load(size, db_path)
        shutil.copyfile(db_path, kept)
        truth_file.write_text(json.dumps([[k, s, m] for (k, s), m in truth.items()]))
        return db_path, truth
    shutil.copyfile(kept, db_path)
    print(f"estate {size}: reusing {kept}")
    return db_path, {(k, s): m for k, s, m in json.loads(truth_file.read_text())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("size", nargs="?", default="large")
    parser.add_argument("--quick", action="store_true", help="the small estate, to check the script works")
    parser.add_argument("--workdir", help="keep the loaded estate here and reuse it on later runs")
    parser.add_argument("--reload", action="store_true", help="load the estate again even if one is kept")
    parser.add_argument("--correlate-only")
    args = parser.parse_args()
    if args.correlate_only:
        _correlate_only(args.correlate_only)
        return
    size = "small" if args.quick else args.size
    from aria_sync.correlation import pairwise_scores
    from aria_sync.store import Database

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="aria-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db_path, truth = _prepared(size, workdir, args.reload)
    db = Database(db_path)
    result = subprocess.run(
        [sys.executable, __file__, "--correlate-only", str(db.path)],
        check=True,
        capture_output=True,
        text=True,
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    with db.read() as conn:
        mapping = conn.execute("SELECT integration_key, source_id, asset_id FROM asset_sources").fetchall()
    scores = pairwise_scores({(k, s): a for k, s, a in mapping}, truth)
    print(
        f"correlate: {measured['seconds']}s ({measured['cpu_seconds']}s CPU), peak RSS {measured['peak_rss_mb']} MB, "
        f"precision {scores.precision:.4f}, recall {scores.recall:.4f} ({scores.records} records)"
    )
    met = (
        measured["seconds"] <= 30
        and measured["peak_rss_mb"] <= 2048
        and scores.precision >= 0.995
        and scores.recall >= 0.98
    )
    print("targets: <= 30 s, <= 2 GB, precision >= 0.995, recall >= 0.98:", "OK" if met else "MISS")
    if not met:
        sys.exit(1)


if __name__ == "__main__":
    main()
