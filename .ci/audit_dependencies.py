"""Audit the installed, pinned dependencies with pip-audit and print one summary.

Fails on any known vulnerability. A package the vulnerability service cannot look up is listed as
not audited (with the count), not silently passed, so a network that answers nothing is visible.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "audit.json"
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip_audit",
                "--skip-editable",
                "--progress-spinner",
                "off",
                "-f",
                "json",
                "-o",
                str(report),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if not report.exists():
            print(completed.stdout, completed.stderr, sep="\n")
            print("pip-audit produced no report")
            return 1
        dependencies = json.loads(report.read_text())["dependencies"]
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
