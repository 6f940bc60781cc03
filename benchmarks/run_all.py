"""Run every benchmark in one command and write a Markdown report with the machine description.

    .venv/bin/python benchmarks/run_all.py            # the sizes the issues ask for
    .venv/bin/python benchmarks/run_all.py --quick    # small sizes, to check the scripts work

Each benchmark measures its own baseline in the same run and prints its figures and ratios; this
runner only collects their output. The report goes to benchmarks/REPORT.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (script, arguments for the full run, arguments for --quick)
BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    ("bench_tenable.py", [], ["--quick"]),
    ("bench_ms_defender.py", [], ["--quick"]),
    ("bench_servicenow.py", [], ["--items", "10000"]),
    ("bench_correlation.py", [], ["--quick"]),
    ("bench_analysis.py", [], ["--quick"]),
    ("bench_dashboard.py", [], ["--quick"]),
]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    import duckdb

    return (f"{os.cpu_count()} cores ({cpu}){mem}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}; DuckDB {duckdb.__version__}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--only", nargs="*", help="run only these scripts")
    parser.add_argument("--report", default=str(HERE / "REPORT.md"))
    args = parser.parse_args()
    sections = []
    failures = 0
    for script, full, quick in BENCHMARKS:
        if args.only and script not in args.only:
            continue
        path = HERE / script
        if not path.exists():
            sections.append(f"## {script}\n\nnot present\n")
            continue
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(path), *(quick if args.quick else full)],
                              capture_output=True, text=True)
        took = time.monotonic() - started
        # The benchmarks exit 1 when a figure misses its target and 2 or more when they could not run.
        status = {0: "targets met", 1: "target missed"}.get(proc.returncode, f"FAILED (exit {proc.returncode})")
        failures += proc.returncode > 1
        body = proc.stdout.strip() or "(no output)"
        if proc.returncode != 0:
            body += "\n" + proc.stderr.strip()[-3000:]
        sections.append(f"## {script}: {status}, {took:.0f} s\n\n```\n{body}\n```\n")
        print(f"{script}: {status} in {took:.0f}s", flush=True)
    command = "python benchmarks/run_all.py" + (" --quick" if args.quick else "")
    report = (
        f"# aria_sync benchmark report\n\nRun {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `{command}`.\n\n"
        f"Machine: {machine()}.\n\nEvery ratio compares against a baseline measured in the same run.\n\n"
        + "\n".join(sections)
    )
    Path(args.report).write_text(report)
    print(f"report written to {args.report}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
