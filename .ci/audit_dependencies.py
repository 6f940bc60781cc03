"""Audit the installed, pinned dependencies with pip-audit and print one summary.

Fails on any known vulnerability. A package the vulnerability service cannot look up is listed as
not audited (with the count), and a run that could not reach the service says so in a warning,
so a network that answers nothing is visible rather than silently passed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

DEADLINE_SECONDS = 600


def _pip_audit(report: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip_audit", "--skip-editable", "--progress-spinner", "off",
               "--timeout", "10", "-f", "json", "-o", str(report)]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=DEADLINE_SECONDS)


def _dependencies() -> list[dict[str, Any]] | None:
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "audit.json"
        try:
            completed = _pip_audit(report)
        except subprocess.TimeoutExpired:
            print(f"pip-audit: WARNING: no answer within {DEADLINE_SECONDS} s; nothing was checked")
            return None
        if not report.exists():
            # No report: pip-audit itself could not run (typically no route to the service). Shown
            # loudly, but only a known vulnerability fails the build.
            tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
            print("pip-audit: WARNING: could not audit, nothing was checked:", *tail, sep="\n  ")
            return None
        dependencies: list[dict[str, Any]] = json.loads(report.read_text())["dependencies"]
        return dependencies


def main() -> int:
    dependencies = _dependencies()
    if dependencies is None:
        return 0
    audited = [d for d in dependencies if "skip_reason" not in d]
    skipped = Counter(d["skip_reason"].split(":")[0] for d in dependencies if "skip_reason" in d)
    vulnerable = [d for d in audited if d.get("vulns")]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            print(f"VULNERABLE {dependency['name']} {dependency['version']}: {vuln['id']} (fixed in {fixes})")
    print(f"pip-audit: {len(audited)} packages audited, {len(vulnerable)} with known vulnerabilities")
    for reason, count in skipped.most_common():
        print(f"  not audited: {count} packages ({reason})")
    if dependencies and not audited:
        print("  WARNING: the vulnerability service answered for none of the packages; nothing was audited")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
