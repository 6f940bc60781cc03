"""Defender TVM rows (SoftwareVulnerabilitiesByMachine) and their change feed, generated per machine.

Only the changes are stored: fixed row ids, updated fields, rows added after generation 0, and the
change-feed events; everything else is rebuilt on demand from a random stream named by the machine.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from aria_sync.simulators.estate.catalog import DEFENDER_SEVERITY, VulnDefinition, vulnerability_catalog
from aria_sync.simulators.estate.exposure import Exposure
from aria_sync.simulators.estate.fleet import Machine
from aria_sync.simulators.estate.support import derived_rng, moment_before, moment_in, table_time, uniform_int

DAY = 86400
_UNVERSIONED = {
    "windows": ("microsoft", "silverlight", "5.1.50918.0"),
    "macos": ("adobe", "flash_player", "32.0.0.465"),
    "linux": ("python", "python", "2.7.18"),
}


def _exploitability(definition: VulnDefinition) -> str:
    if not definition.exploit_available:
        return "NoExploit"
    return "ExploitIsVerified" if definition.severity_id >= 4 else "ExploitIsPublic"


class TvmRows:
    """The vulnerability half of the Defender view; ``DefenderView`` supplies machines and records."""

    seed: int
    exposures: dict[int, Exposure]
    vuln_machines: list[Machine]
    _by_id: dict[str, dict[str, Any]]
    _base_last_seen: dict[int, datetime]
    removed_rows: set[tuple[int, str]]
    row_updates: dict[tuple[int, str], dict[str, Any]]
    added_rows: dict[int, list[dict[str, Any]]]
    changes: list[tuple[datetime, dict[str, Any]]]
    _row_counts: dict[int, int]

    def _row(
        self,
        machine: Machine,
        record: dict[str, Any],
        vendor: str,
        product: str,
        version: str,
        cve: str | None,
        definition: VulnDefinition | None,
        first_seen: str,
        last_seen: str,
    ) -> dict[str, Any]:
        os = machine.os
        kb = definition.software.fixing_kb if definition and definition.software else None
        path = definition.software.disk_path if definition and definition.software else None
        return {
            "id": f"{record['id']}_{product}_{version}_{cve or ''}_",
            "deviceId": record["id"],
            "deviceName": record["computerDnsName"],
            "rbacGroupName": record["rbacGroupName"],
            "osPlatform": os.defender_platform,
            "osVersion": os.defender_os_version,
            "osArchitecture": "x64",
            "softwareVendor": vendor,
            "softwareName": product,
            "softwareVersion": version,
            "cveId": cve,
            "cvssScore": definition.cvss3 if definition else None,
            "vulnerabilitySeverityLevel": DEFENDER_SEVERITY[definition.severity_id] if definition else None,
            "exploitabilityLevel": _exploitability(definition) if definition else "NoExploit",
            "recommendedSecurityUpdate": f"KB{kb}" if kb else None,
            "recommendedSecurityUpdateId": kb,
            "recommendedSecurityUpdateUrl": f"https://support.microsoft.com/help/{kb}" if kb else None,
            "securityUpdateAvailable": definition is not None,
            "diskPaths": [path] if path else [],
            "registryPaths": [],
            "firstSeenTimestamp": first_seen,
            "lastSeenTimestamp": last_seen,
            "recommendationReference": f"va-_-{vendor}-_-{product}",
        }

    def _base_rows(self, machine: Machine) -> list[dict[str, Any]]:
        exposure = self.exposures[machine.index]
        record = self._by_id[machine.defender_id]
        rng = derived_rng(self.seed, "tvm", machine.index)
        definitions = vulnerability_catalog().definitions
        reported = self._base_last_seen[machine.index]
        last_seen = table_time(reported)
        rows = []
        for definition_index in exposure.defender:
            definition = definitions[definition_index]
            software = definition.software
            assert software is not None
            first_seen = table_time(reported - timedelta(seconds=uniform_int(rng, 15 * DAY, 200 * DAY)))
            for cve in definition.cves or (None,):
                rows.append(
                    self._row(
                        machine,
                        record,
                        software.vendor,
                        software.product,
                        software.version,
                        cve,
                        definition,
                        first_seen,
                        last_seen,
                    )
                )
        if exposure.defender_unversioned and machine.os.family in _UNVERSIONED:
            vendor, product, version = _UNVERSIONED[machine.os.family]
            rows.append(
                self._row(machine, record, vendor, product, version, None, None, last_seen, last_seen)
            )
        return rows

    def _base_row_count(self, machine: Machine) -> int:
        exposure = self.exposures[machine.index]
        definitions = vulnerability_catalog().definitions
        count = sum(len(definitions[index].cves) or 1 for index in exposure.defender)
        return count + int(exposure.defender_unversioned and machine.os.family in _UNVERSIONED)

    def machine_rows(self, machine: Machine) -> list[dict[str, Any]]:
        """The current TVM rows of ``machine``: base rows minus fixed ones, plus updates and new rows."""
        rows = []
        for row in self._base_rows(machine) + [dict(r) for r in self.added_rows.get(machine.index, ())]:
            key = (machine.index, row["id"])
            if key in self.removed_rows:
                continue
            update = self.row_updates.get(key)
            if update:
                row.update(update)
            rows.append(row)
        return rows

    def vulnerabilities(self) -> Iterator[dict[str, Any]]:
        for machine in self.vuln_machines:
            yield from self.machine_rows(machine)

    def vulnerability_count(self) -> int:
        return sum(self._row_counts.values())

    def vulnerability_changes(self, since: datetime) -> list[dict[str, Any]]:
        return [dict(row) for moment, row in self.changes if moment >= since]

    def _record_change(self, moment: datetime, row: dict[str, Any], status: str) -> None:
        event = dict(row)
        event.update(status=status, eventTimestamp=table_time(moment), isOnboarded=True)
        self.changes.append((moment, event))

    def _fix_row(self, machine: Machine, row: dict[str, Any], moment: datetime) -> None:
        self.removed_rows.add((machine.index, row["id"]))
        self._row_counts[machine.index] -= 1
        self._record_change(moment, row, "Fixed")

    def _add_row(self, rng: random.Random, machine: Machine, moment: datetime) -> None:
        record = self._by_id[machine.defender_id]
        # A row id once fixed is never reused, so the change feed and the snapshot stay consistent.
        taken = {r["id"] for r in self.machine_rows(machine)}
        definitions = vulnerability_catalog().definitions

        def row_ids(definition: VulnDefinition) -> list[str]:
            software = definition.software
            assert software is not None
            return [
                f"{record['id']}_{software.product}_{software.version}_{cve or ''}_"
                for cve in definition.cves or (None,)
            ]

        pool = [
            i
            for i in vulnerability_catalog().software_vulns[machine.os_key]
            if all(
                row_id not in taken and (machine.index, row_id) not in self.removed_rows
                for row_id in row_ids(definitions[i])
            )
        ]
        if not pool:
            return
        definition = definitions[rng.choice(pool)]
        software = definition.software
        assert software is not None
        stamp = table_time(moment)
        for cve in definition.cves or (None,):
            row = self._row(
                machine,
                record,
                software.vendor,
                software.product,
                software.version,
                cve,
                definition,
                stamp,
                stamp,
            )
            self.added_rows.setdefault(machine.index, []).append(row)
            self._row_counts[machine.index] += 1
            self._record_change(moment, row, "New")

    def _history(self, rng: random.Random, anchor: datetime) -> None:
        """Change-feed events of the two weeks before the anchor (new and fixed rows)."""
        live = [m for m in self.vuln_machines if not m.defender_offboarded]
        for machine in rng.sample(live, min(len(live), max(2, len(live) // 30))):
            rows = self.machine_rows(machine)
            if rows and rng.random() < 0.6:
                self._fix_row(machine, rng.choice(rows), moment_before(rng, anchor, 3600, 13 * DAY))
            else:
                self._add_row(rng, machine, moment_before(rng, anchor, 3600, 13 * DAY))
        self.changes.sort(key=lambda change: change[0])

    def _advance_vulnerabilities(self, rng: random.Random, old_now: datetime, new_now: datetime) -> None:
        live = [m for m in self.vuln_machines if not m.defender_offboarded]
        if not live:
            return
        changes = max(3, self.vulnerability_count() // 400)
        for number in range(changes):
            machine = rng.choice(live)
            moment = moment_in(rng, old_now, new_now)
            rows = self.machine_rows(machine)
            # The first three are one of each kind, so every period has New, Fixed and Updated rows.
            roll = (0.0, 0.6, 0.9)[number] if number < 3 else rng.random()
            if roll < 0.5 and rows:
                self._fix_row(machine, rng.choice(rows), moment)
            elif roll < 0.8:
                self._add_row(rng, machine, moment)
            elif rows:
                row = rng.choice(rows)
                key = (machine.index, row["id"])
                update = {"lastSeenTimestamp": table_time(moment), "exploitabilityLevel": "ExploitIsVerified"}
                self.row_updates[key] = {**self.row_updates.get(key, {}), **update}
                row.update(update)
                self._record_change(moment, row, "Updated")
        self.changes.sort(key=lambda change: change[0])
