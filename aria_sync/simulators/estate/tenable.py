"""The Tenable view of the estate: asset export records, scans and lazily generated vuln findings.

Findings are never stored: each asset's findings are rebuilt on demand from a random stream named by
(seed, asset), then the small per-generation change sets (``overrides`` and ``added``) are applied.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from aria_sync.simulators.estate.catalog import VulnDefinition, vulnerability_catalog
from aria_sync.simulators.estate.exposure import Exposure
from aria_sync.simulators.estate.fleet import Fleet, Machine
from aria_sync.simulators.estate.support import (
    derived_rng,
    hex_token,
    moment_before,
    moment_in,
    new_uuid,
    tenable_time,
    uniform_int,
    with_millis,
)

DEFAULT_NETWORK = "00000000-0000-0000-0000-000000000000"
DAY = 86400

# (name, policy template, which machines it covers)
_SCANS = (
    ("Workstations - agent scan", "agent_advanced", "agent-endpoint"),
    ("Servers - agent scan", "agent_advanced", "agent-server"),
    ("Datacenter credentialed scan - CORP", "advanced", "corp.example.com"),
    ("EU servers credentialed scan", "advanced", "eu.example.com"),
    ("Lab discovery and vulnerability scan", "basic", "lab.example.net"),
    ("Network devices - monthly", "advanced", "network"),
)


def _colon_mac(mac: str) -> str:
    return ":".join(mac[i : i + 2] for i in range(0, 12, 2))


def _plugin_object(definition: VulnDefinition, anchor: datetime) -> dict[str, Any]:
    published = (anchor - timedelta(days=definition.age_days)).date().isoformat()
    plugin: dict[str, Any] = {
        "id": definition.plugin_id,
        "name": definition.name,
        "family": definition.family,
        "family_id": definition.family_id,
        "type": definition.plugin_type,
        "version": "1.12",
        "synopsis": definition.synopsis,
        "description": definition.synopsis,
        "solution": definition.solution,
        "risk_factor": definition.severity,
        "cve": list(definition.cves),
        "cvss3_base_score": definition.cvss3,
        "cvss_base_score": round(definition.cvss3 - 0.3, 1) if definition.cvss3 else None,
        "vpr": {"score": definition.vpr, "updated": tenable_time(anchor - timedelta(days=2, hours=19))}
        if definition.vpr
        else None,
        "epss_score": definition.epss,
        "exploit_available": definition.exploit_available,
        "has_patch": definition.software is not None,
        "publication_date": f"{published}T00:00:00.000Z",
        "vuln_publication_date": f"{published}T00:00:00.000Z",
    }
    return plugin


class TenableView:
    """Tenable asset records (mutable across generations) and the finding generator."""

    def __init__(self, seed: int, fleet: Fleet, exposures: dict[int, Exposure], anchor: datetime) -> None:
        self.seed = seed
        rng = derived_rng(seed, "tenable")
        catalog = vulnerability_catalog()
        self._plugins = [_plugin_object(definition, anchor) for definition in catalog.definitions]
        self.scans = self._build_scans(rng, anchor)
        self.machines = [machine for machine in fleet.machines if machine.in_tenable]
        self.assets: list[dict[str, Any]] = []
        self._base_scan: dict[int, datetime] = {}
        self._scan_of: dict[int, dict[str, Any]] = {}
        self._exposure: dict[int, tuple[int, ...]] = {}
        for machine in self.machines:
            self.assets.append(self._asset_record(rng, machine, anchor))
            self._exposure[machine.index] = exposures[machine.index].tenable
        self._mark_deleted_and_terminated(rng, anchor)
        self.overrides: dict[tuple[int, int], dict[str, Any]] = {}
        self.added: dict[int, list[dict[str, Any]]] = {}

    # ---------------------------------------------------------------- assets and scans
    def _build_scans(self, rng: random.Random, anchor: datetime) -> list[dict[str, Any]]:
        scans = []
        for number, (name, template, _) in enumerate(_SCANS):
            created = moment_before(rng, anchor, 200 * DAY, 700 * DAY)
            started = moment_before(rng, anchor, 3 * 3600, 20 * 3600)
            scans.append(
                {
                    "id": 11 + number * 3,
                    "uuid": new_uuid(rng),
                    "schedule_uuid": f"template-{hex_token(rng, 8)}-{hex_token(rng, 4)}-{hex_token(rng, 44)}",
                    "name": name,
                    "status": "completed",
                    "enabled": True,
                    "type": "agent" if template.startswith("agent") else "remote",
                    "owner": "vm-admin@example.com",
                    "policy_id": 100 + number,
                    "template_uuid": hex_token(rng, 48),
                    "wizard_uuid": hex_token(rng, 48),
                    "creation_date": int(created.timestamp()),
                    "last_modification_date": int(started.timestamp()) + 1800,
                    "starttime": started.strftime("%Y%m%dT%H%M%S"),
                    "rrules": "FREQ=DAILY;INTERVAL=1" if number < 5 else "FREQ=MONTHLY;INTERVAL=1",
                    "timezone": "Etc/UTC",
                    "progress": 100,
                    "total_targets": 0,
                    "permissions": 128,
                    "user_permissions": 128,
                    "read": True,
                    "shared": False,
                    "control": True,
                    "legacy": False,
                }
            )
        return scans

    def _scan_for(self, machine: Machine) -> dict[str, Any]:
        if machine.kind == "network":
            return self.scans[5]
        if machine.tenable_agent:
            return self.scans[0] if machine.kind in ("laptop", "desktop") else self.scans[1]
        return self.scans[{"corp.example.com": 2, "eu.example.com": 3}.get(machine.domain, 4)]

    def _asset_record(self, rng: random.Random, machine: Machine, anchor: datetime) -> dict[str, Any]:
        scan = self._scan_for(machine)
        self._scan_of[machine.index] = scan
        scan_started = datetime.fromtimestamp(scan["last_modification_date"] - 1800, tz=anchor.tzinfo)
        stale = machine.retired_in_cmdb or machine.defender_offboarded
        if stale:
            last_scan = moment_before(rng, anchor, 31 * DAY, 90 * DAY)
        else:
            last_scan = with_millis(
                rng,
                min(anchor - timedelta(seconds=1), scan_started + timedelta(seconds=rng.randint(60, 1700))),
            )
        self._base_scan[machine.index] = last_scan
        first_seen = with_millis(rng, max(machine.first_seen, last_scan - timedelta(days=700)))
        windows = machine.os.family == "windows"
        macs = [_colon_mac(machine.mac)]
        if machine.vpn_adapter:
            macs.append("02:00:4c:4f:4f:50")
        if machine.zero_mac_in_tenable:
            macs.append("00:00:00:00:00:00")
        ipv4s = [machine.stale_tenable_ip or machine.ip, *machine.extra_ips]
        fqdns = [] if machine.tenable_fqdn_missing and not machine.tenable_agent else [machine.fqdn]
        authenticated = machine.tenable_agent or (machine.kind != "network" and rng.random() < 0.8)
        source_name = "NESSUS_AGENT" if machine.tenable_agent else "NESSUS_SCAN"
        created = with_millis(rng, first_seen + timedelta(seconds=rng.randint(30, 900)))
        updated = max(created, with_millis(rng, last_scan + timedelta(seconds=rng.randint(30, 600))))
        updated = min(updated, anchor - timedelta(milliseconds=1))
        has_results = bool(machine.tenable_has_results)
        record: dict[str, Any] = {
            "id": machine.tenable_id,
            "has_agent": machine.tenable_agent,
            "has_plugin_results": has_results,
            "created_at": tenable_time(created),
            "updated_at": tenable_time(updated),
            "first_seen": tenable_time(first_seen),
            "last_seen": tenable_time(last_scan),
            "first_scan_time": tenable_time(first_seen),
            "last_scan_time": tenable_time(last_scan),
            "last_authenticated_scan_date": tenable_time(last_scan) if authenticated else None,
            "last_licensed_scan_date": tenable_time(last_scan),
            "last_scan_id": scan["uuid"],
            "last_schedule_id": scan["schedule_uuid"],
            "last_scan_target": ipv4s[0],
            "deleted_at": None,
            "deleted_by": None,
            "terminated_at": None,
            "terminated_by": None,
            "agent_uuid": hex_token(rng, 32) if machine.tenable_agent else None,
            "bios_uuid": machine.bios_uuid if machine.tenable_agent else None,
            "serial_number": machine.serial if machine.tenable_serial else None,
            "network_id": DEFAULT_NETWORK,
            "network_name": "Default",
            "agent_names": [machine.short_name] if machine.tenable_agent else [],
            "ipv4s": ipv4s,
            "ipv6s": [],
            "fqdns": fqdns,
            "hostnames": [machine.short_name],
            "mac_addresses": macs,
            "netbios_names": [machine.short_name.upper()[:15]] if windows else [],
            "operating_systems": [machine.os.tenable_os],
            "system_types": [machine.os.system_type],
            "installed_software": [],
            "ssh_fingerprints": [],
            "sources": [
                {
                    "name": source_name,
                    "first_seen": tenable_time(first_seen),
                    "last_seen": tenable_time(last_scan),
                }
            ],
            "tags": [
                {
                    "uuid": new_uuid(rng),
                    "key": "Business Unit",
                    "value": machine.department.upper(),
                    "added_by": "ac2e7ef6-fac9-47bf-9170-617331322885",
                    "added_at": tenable_time(created),
                }
            ],
            "network_interfaces": [
                {
                    "name": "eth0" if not windows else "Ethernet",
                    "mac_addresses": macs[:1],
                    "ipv4s": ipv4s[:1],
                    "ipv6s": [],
                    "fqdns": fqdns,
                }
            ],
            "azure_vm_id": machine.azure_vm_id,
            "azure_resource_id": (
                f"/subscriptions/{DEFAULT_NETWORK[:8]}-demo/resourceGroups/rg-{machine.department}/providers/"
                f"Microsoft.Compute/virtualMachines/{machine.short_name}"
                if machine.azure_vm_id
                else None
            ),
            "servicenow_sysid": machine.sys_id if machine.tenable_sysid_link else None,
            "acr_score": f"{rng.randint(3, 9)}.0",
            "exposure_score": f"{rng.randint(100, 900)}.0",
            "last_authentication_scan_status": "Success" if authenticated else "N/A",
        }
        if len(ipv4s) > 1:
            record["network_interfaces"].append(
                {
                    "name": "eth1" if not windows else "Ethernet 2",
                    "mac_addresses": [],
                    "ipv4s": ipv4s[1:],
                    "ipv6s": [],
                    "fqdns": [],
                }
            )
        record["ratings"] = {
            "acr": {"score": int(float(record["acr_score"]))},
            "aes": {"score": int(float(record["exposure_score"]))},
        }
        return record

    def _mark_deleted_and_terminated(self, rng: random.Random, anchor: datetime) -> None:
        positions = list(range(2, len(self.assets)))
        if not positions:
            return
        for position in rng.sample(positions, max(1, len(positions) // 100)):
            record = self.assets[position]
            deleted = moment_before(rng, anchor, 2 * DAY, 25 * DAY)
            record["deleted_at"] = tenable_time(deleted)
            record["deleted_by"] = "vm-admin@example.com"
            record["updated_at"] = tenable_time(deleted)
        cloud = [p for p in positions if self.assets[p]["azure_vm_id"] and not self.assets[p]["deleted_at"]]
        for position in rng.sample(cloud, min(len(cloud), max(1, len(cloud) // 40))):
            record = self.assets[position]
            terminated = moment_before(rng, anchor, 1 * DAY, 20 * DAY)
            record["terminated_at"] = tenable_time(terminated)
            record["terminated_by"] = "Azure connector"
            record["updated_at"] = tenable_time(terminated)

    # ---------------------------------------------------------------- findings
    def _asset_object(self, record: dict[str, Any], machine: Machine) -> dict[str, Any]:
        return {
            "uuid": record["id"],
            "hostname": machine.short_name,
            "fqdn": record["fqdns"][0] if record["fqdns"] else None,
            "ipv4": record["ipv4s"][0],
            "mac_address": record["mac_addresses"][0],
            "netbios_name": record["netbios_names"][0] if record["netbios_names"] else None,
            "netbios_workgroup": machine.workgroup if record["netbios_names"] else None,
            "operating_system": list(record["operating_systems"]),
            "device_type": record["system_types"][0],
            "bios_uuid": record["bios_uuid"],
            "agent_uuid": record["agent_uuid"],
            "serial_number": record["serial_number"] if machine.kind == "network" else None,
            "network_id": DEFAULT_NETWORK,
            "tracked": True,
            "last_authenticated_results": record["last_authenticated_scan_date"],
        }

    def base_findings(self, position: int) -> list[dict[str, Any]]:
        """The generation-0 findings of the asset at ``position``, with change sets applied."""
        machine = self.machines[position]
        record = self.assets[position]
        exposure = self._exposure[machine.index]
        findings: list[dict[str, Any]] = []
        if exposure:
            rng = derived_rng(self.seed, "findings", machine.index)
            definitions = vulnerability_catalog().definitions
            asset = self._asset_object(record, machine)
            scan = self._scan_of[machine.index]
            last_scan = self._base_scan[machine.index]
            scan_object = {
                "uuid": scan["uuid"],
                "schedule_uuid": scan["schedule_uuid"],
                "started_at": tenable_time(last_scan - timedelta(seconds=120)),
                "last_scan_target": record["last_scan_target"],
            }
            last_found = tenable_time(last_scan)
            indexed = tenable_time(last_scan + timedelta(seconds=uniform_int(rng, 60, 600)))
            source = "AGENT" if machine.tenable_agent else "NESSUS"
            age_limit = max(2, int((last_scan - machine.first_seen).total_seconds() // DAY))
            for slot, definition_index in enumerate(exposure):
                definition = definitions[definition_index]
                first = last_scan - timedelta(seconds=uniform_int(rng, DAY, min(age_limit, 400) * DAY + DAY))
                roll = rng.random()
                finding: dict[str, Any] = {
                    "finding_id": new_uuid(rng),
                    "asset": dict(asset),
                    "plugin": dict(self._plugins[definition_index]),
                    "port": {
                        "port": definition.port,
                        "protocol": definition.protocol,
                        "service": definition.service,
                    },
                    "scan": dict(scan_object),
                    "severity": definition.severity,
                    "severity_id": definition.severity_id,
                    "severity_default_id": definition.severity_id,
                    "severity_modification_type": "NONE",
                    "state": "OPEN",
                    "source": source,
                    "first_found": tenable_time(first),
                    "last_found": last_found,
                    "indexed": indexed,
                    "output": f"{definition.name}\n\nDetected on port {definition.port}/{definition.protocol}.",
                }
                if roll < 0.12 and not definition.informational_baseline:
                    fixed = first + (last_scan - first) * rng.uniform(0.2, 0.95)
                    finding["state"] = "FIXED"
                    finding["last_fixed"] = tenable_time(fixed)
                    finding["last_found"] = tenable_time(fixed - timedelta(days=1))
                    finding["indexed"] = tenable_time(fixed + timedelta(seconds=300))
                elif roll < 0.20 and not definition.informational_baseline:
                    finding["state"] = "REOPENED"
                    finding["resurfaced_date"] = tenable_time(
                        first + (last_scan - first) * rng.uniform(0.5, 0.95)
                    )
                elif roll < 0.21 and definition.severity_id >= 2:
                    finding["severity_modification_type"] = "RECASTED"
                    finding["severity_id"] = definition.severity_id - 1
                    finding["severity"] = ("info", "low", "medium", "high", "critical")[
                        definition.severity_id - 1
                    ]
                    finding["recast_reason"] = "Compensating control in place"
                elif roll < 0.22:
                    finding["severity_modification_type"] = "ACCEPTED"
                override = self.overrides.get((machine.index, slot))
                if override:
                    finding.update(override)
                findings.append(finding)
        for added in self.added.get(machine.index, []):
            finding = dict(added)
            override = self.overrides.get((machine.index, finding.pop("_slot")))
            if override:
                finding.update(override)
            findings.append(finding)
        return findings

    def finding_count_of(self, position: int) -> int:
        machine = self.machines[position]
        return len(self._exposure[machine.index]) + len(self.added.get(machine.index, ()))

    def live_positions(self) -> list[int]:
        return [p for p, record in enumerate(self.assets) if not record["deleted_at"]]

    def findings(self) -> Iterator[dict[str, Any]]:
        """Every finding of every non-deleted asset, grouped by asset in asset order."""
        for position, record in enumerate(self.assets):
            if not record["deleted_at"]:
                yield from self.base_findings(position)

    def finding_count(self) -> int:
        return sum(self.finding_count_of(position) for position in self.live_positions())

    # ---------------------------------------------------------------- advance
    def advance(self, rng: random.Random, old_now: datetime, new_now: datetime) -> None:
        """Fix, reopen and add findings, and delete an asset, all inside (old_now, new_now]."""
        positions = [p for p in self.live_positions() if self._exposure[self.machines[p].index]]
        if not positions:
            return
        total = sum(self.finding_count_of(p) for p in positions)
        to_fix = max(3, round(total * 0.005))
        to_reopen = max(1, to_fix // 4)
        to_add = max(2, to_fix // 3)
        touched: dict[int, datetime] = {}
        changed_now: set[tuple[int, int]] = set()  # a finding changes state at most once per advance

        def scan_time(position: int) -> datetime:
            if position not in touched:
                touched[position] = with_millis(rng, moment_in(rng, old_now, new_now - timedelta(seconds=1)))
            return touched[position]

        def change(position: int, want: tuple[str, ...], limit: int, apply: Any) -> int:
            done = 0
            for slot, finding in enumerate(self.base_findings(position)):
                if done >= limit:
                    break
                key = (self.machines[position].index, slot)
                if finding["state"] in want and finding["severity_default_id"] > 0 and key not in changed_now:
                    changed_now.add(key)
                    self.overrides[key] = {
                        **self.overrides.get(key, {}),
                        **apply(finding, scan_time(position)),
                    }
                    done += 1
            return done

        def fixed(finding: dict[str, Any], moment: datetime) -> dict[str, Any]:
            return {"state": "FIXED", "last_fixed": tenable_time(moment), "indexed": tenable_time(moment)}

        def reopened(finding: dict[str, Any], moment: datetime) -> dict[str, Any]:
            stamp = tenable_time(moment)
            return {"state": "REOPENED", "last_found": stamp, "resurfaced_date": stamp, "indexed": stamp}

        attempts = 0
        while to_fix > 0 and attempts < 20 * len(positions) + 50:
            attempts += 1
            to_fix -= change(rng.choice(positions), ("OPEN", "REOPENED"), rng.randint(1, 3), fixed)
        attempts = 0
        while to_reopen > 0 and attempts < 20 * len(positions) + 50:
            attempts += 1
            to_reopen -= change(rng.choice(positions), ("FIXED",), 1, reopened)
        for _ in range(to_add):
            self._add_finding(rng, rng.choice(positions), scan_time)
        for position, moment in touched.items():
            record = self.assets[position]
            stamp = tenable_time(moment)
            record["last_seen"] = record["last_scan_time"] = record["last_licensed_scan_date"] = stamp
            record["updated_at"] = tenable_time(min(new_now, moment + timedelta(seconds=30)))
            record["sources"][0]["last_seen"] = stamp
        for scan in self.scans[:5]:
            scan["last_modification_date"] = int(moment_in(rng, old_now, new_now).timestamp())
        deletable = [p for p in self.live_positions() if p > 1 and p not in touched]
        if deletable:
            record = self.assets[rng.choice(deletable)]
            deleted = with_millis(rng, moment_in(rng, old_now, new_now - timedelta(seconds=1)))
            record["deleted_at"] = record["updated_at"] = tenable_time(deleted)
            record["deleted_by"] = "vm-admin@example.com"

    def _add_finding(self, rng: random.Random, position: int, scan_time: Any) -> None:
        machine = self.machines[position]
        catalog = vulnerability_catalog()
        present = {f["plugin"]["id"] for f in self.base_findings(position)}
        candidates = [
            i
            for i in catalog.software_vulns[machine.os_key]
            if catalog.definitions[i].plugin_id not in present
        ]
        if not candidates:
            return
        definition_index = rng.choice(candidates)
        definition = catalog.definitions[definition_index]
        moment: datetime = scan_time(position)
        stamp = tenable_time(moment)
        record = self.assets[position]
        scan = self._scan_of[machine.index]
        slot = len(self._exposure[machine.index]) + len(self.added.get(machine.index, ()))
        self.added.setdefault(machine.index, []).append(
            {
                "_slot": slot,
                "finding_id": new_uuid(rng),
                "asset": self._asset_object(record, machine),
                "plugin": dict(self._plugins[definition_index]),
                "port": {
                    "port": definition.port,
                    "protocol": definition.protocol,
                    "service": definition.service,
                },
                "scan": {
                    "uuid": scan["uuid"],
                    "schedule_uuid": scan["schedule_uuid"],
                    "started_at": stamp,
                    "last_scan_target": record["last_scan_target"],
                },
                "severity": definition.severity,
                "severity_id": definition.severity_id,
                "severity_default_id": definition.severity_id,
                "severity_modification_type": "NONE",
                "state": "OPEN",
                "source": "AGENT" if machine.tenable_agent else "NESSUS",
                "first_found": stamp,
                "last_found": stamp,
                "indexed": stamp,
                "output": f"{definition.name}\n\nDetected on port {definition.port}/{definition.protocol}.",
            }
        )
