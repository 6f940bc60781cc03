"""The Defender for Endpoint view of the estate: machines, alerts and incidents (TVM rows in defender_tvm)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from aria_sync.simulators.estate import catalog
from aria_sync.simulators.estate.defender_tvm import TvmRows
from aria_sync.simulators.estate.exposure import Exposure
from aria_sync.simulators.estate.fleet import Fleet, Machine
from aria_sync.simulators.estate.support import (
    defender_time,
    derived_rng,
    hex_token,
    moment_before,
    moment_in,
    new_uuid,
    uniform_int,
)

DAY = 86400


def _precise(rng: random.Random, moment: datetime) -> datetime:
    """Defender reports sub-second times; keep them strictly inside the window they were drawn from."""
    return moment - timedelta(microseconds=uniform_int(rng, 0, 999_999))


class DefenderView(TvmRows):
    """Defender machines, alerts and incidents (mutable across generations) plus their TVM rows."""

    def __init__(
        self, seed: int, fleet: Fleet, exposures: dict[int, Exposure], anchor: datetime, tenant_id: str
    ) -> None:
        self.seed = seed
        self.tenant_id = tenant_id
        self.fleet = fleet
        self.exposures = exposures
        rng = derived_rng(seed, "defender")
        self.vuln_machines = [m for m in fleet.machines if m.in_defender]
        self.machines: list[dict[str, Any]] = []
        self._group_ids: dict[str, int] = {}
        for machine in self.vuln_machines:
            self.machines.extend(self._machine_records(rng, machine, anchor))
        self._by_id = {record["id"]: record for record in self.machines}
        # Vulnerability rows keep the times of the report they came from, even after later daily reports.
        self._base_last_seen = {
            m.index: datetime.fromisoformat(self._by_id[m.defender_id]["lastSeen"][:19] + "+00:00")
            for m in self.vuln_machines
        }
        self.alerts: list[dict[str, Any]] = []
        self.incidents: list[dict[str, Any]] = []
        self._next_incident = 4000 + rng.randint(0, 500)
        self._build_alerts(rng, anchor)
        self.removed_rows: set[tuple[int, str]] = set()
        self.row_updates: dict[tuple[int, str], dict[str, Any]] = {}
        self.added_rows: dict[int, list[dict[str, Any]]] = {}
        self.changes: list[tuple[datetime, dict[str, Any]]] = []
        self._row_counts = {m.index: self._base_row_count(m) for m in self.vuln_machines}
        self._history(rng, anchor)

    # ---------------------------------------------------------------- machines
    def _rbac_group(self, machine: Machine) -> tuple[int, str]:
        if machine.kind in ("laptop", "desktop"):
            name = f"{catalog.DEPARTMENT_NAMES[machine.department]} {'laptops' if machine.kind == 'laptop' else 'desktops'}"
        else:
            name = "Windows servers" if machine.kind == "win_server" else "Linux servers"
        group_id = self._group_ids.setdefault(name, len(self._group_ids) + 11)
        return group_id, name

    def _machine_records(
        self, rng: random.Random, machine: Machine, anchor: datetime
    ) -> list[dict[str, Any]]:
        os = machine.os
        group_id, group_name = self._rbac_group(machine)
        dns_name = machine.short_name if machine.defender_short_name else machine.fqdn.lower()
        if machine.defender_offboarded:
            last_seen = moment_before(rng, anchor, 8 * DAY, 60 * DAY)
        else:
            last_seen = moment_before(rng, anchor, 60, DAY - 60)
        first_seen = machine.reimaged_at or machine.first_seen
        windows_endpoint = os.family == "windows" and machine.kind in ("laptop", "desktop")
        addresses: list[dict[str, Any]] = [
            {
                "ipAddress": machine.ip,
                "macAddress": machine.mac.upper(),
                "type": "Ethernet",
                "operationalStatus": "Up",
            }
        ]
        addresses += [
            {
                "ipAddress": ip,
                "macAddress": machine.mac.upper(),
                "type": "Ethernet",
                "operationalStatus": "Up",
            }
            for ip in machine.extra_ips
        ]
        if machine.vpn_adapter:
            addresses.append(
                {
                    "ipAddress": f"10.255.{rng.randint(0, 255)}.{rng.randint(2, 254)}",
                    "macAddress": "02004C4F4F50",
                    "type": "Ppp",
                    "operationalStatus": "Up",
                }
            )
        addresses.append(
            {
                "ipAddress": "127.0.0.1",
                "macAddress": None,
                "type": "SoftwareLoopback",
                "operationalStatus": "Up",
            }
        )
        record: dict[str, Any] = {
            "id": machine.defender_id,
            "computerDnsName": dns_name,
            "firstSeen": defender_time(_precise(rng, first_seen + timedelta(seconds=rng.randint(60, 3600)))),
            "lastSeen": defender_time(_precise(rng, last_seen)),
            "osPlatform": os.defender_platform,
            "version": os.defender_version,
            "osProcessor": "x64",
            "osArchitecture": "64-bit",
            "osBuild": os.defender_build,
            "lastIpAddress": machine.ip,
            "lastExternalIpAddress": machine.external_ip,
            "agentVersion": f"10.8760.{os.defender_build or 0}.{rng.randint(1000, 3999)}",
            "healthStatus": "Inactive" if machine.defender_offboarded else "Active",
            "defenderAvStatus": "Updated" if rng.random() < 0.9 else "NotUpdated",
            "onboardingStatus": "Onboarded",
            "deviceValue": "High"
            if machine.service is not None and machine.kind.endswith("server")
            else "Normal",
            "rbacGroupId": group_id,
            "rbacGroupName": group_name,
            "riskScore": rng.choice(("None", "Informational", "Low", "Medium", "High")),
            "exposureLevel": rng.choice(("Low", "Medium", "Medium", "High")),
            "isAadJoined": windows_endpoint,
            "aadDeviceId": new_uuid(rng) if windows_endpoint else None,
            "machineTags": [machine.department] + (["server"] if machine.kind.endswith("server") else []),
            "managedBy": "Intune" if windows_endpoint else "MicrosoftDefenderForEndpoint",
            "managedByStatus": "Success",
            "ipAddresses": addresses,
            "vmMetadata": (
                {
                    "vmId": machine.azure_vm_id,
                    "cloudProvider": "Azure",
                    "resourceId": None,
                    "subscriptionId": None,
                }
                if machine.azure_vm_id
                else None
            ),
        }
        records = [record]
        if machine.reimaged_at and machine.defender_old_id:
            # The old entity of a re-imaged device lingers as Inactive with the same name.
            old = dict(record)
            old["id"] = machine.defender_old_id
            old["firstSeen"] = defender_time(_precise(rng, machine.first_seen + timedelta(seconds=600)))
            old["lastSeen"] = defender_time(
                _precise(rng, machine.reimaged_at - timedelta(hours=rng.randint(2, 30)))
            )
            old["healthStatus"] = "Inactive"
            old["aadDeviceId"] = new_uuid(rng) if windows_endpoint else None
            old["ipAddresses"] = [dict(address) for address in addresses]
            if machine.os_key == "win11":
                old["osPlatform"], old["version"], old["osBuild"] = "Windows10", "22H2", 19045
            records.append(old)
        return records

    # ---------------------------------------------------------------- alerts and incidents
    def _alert(self, rng: random.Random, machine: Machine, created: datetime) -> dict[str, Any]:
        linux = machine.os.family == "linux"
        templates = [t for t in catalog.ALERT_TEMPLATES if ("Linux" in t[0]) == linux] or list(
            catalog.ALERT_TEMPLATES
        )
        title, category, severity, techniques, source = rng.choice(templates)
        person = self.fleet.people[machine.owner]
        first_event = created - timedelta(seconds=rng.randint(30, 900))
        user = person.user_name.split(".")[0]
        record = self._by_id[machine.defender_id]
        return {
            "id": f"da{rng.randint(10**17, 10**18 - 1)}_{-rng.randint(10**9, 2 * 10**9)}",
            "incidentId": None,
            "investigationId": rng.randint(1000, 99999) if rng.random() < 0.5 else None,
            "assignedTo": None,
            "severity": severity,
            "status": "New",
            "classification": None,
            "determination": None,
            "investigationState": "Queued",
            "detectionSource": source,
            "detectorId": new_uuid(rng),
            "category": category,
            "threatFamilyName": "Mimikatz" if "Mimikatz" in title else None,
            "title": title,
            "description": f"{title} on {record['computerDnsName']}.",
            "alertCreationTime": defender_time(_precise(rng, created)),
            "firstEventTime": defender_time(_precise(rng, first_event)),
            "lastEventTime": defender_time(_precise(rng, created - timedelta(seconds=rng.randint(1, 25)))),
            "lastUpdateTime": defender_time(_precise(rng, created + timedelta(seconds=rng.randint(1, 20)))),
            "resolvedTime": None,
            "machineId": machine.defender_id,
            "computerDnsName": record["computerDnsName"],
            "rbacGroupName": record["rbacGroupName"],
            "aadTenantId": self.tenant_id,
            "threatName": None,
            "mitreTechniques": list(techniques),
            "relatedUser": {"userName": user, "domainName": machine.workgroup},
            "comments": [],
            "evidence": [
                {
                    "entityType": "User",
                    "evidenceCreationTime": defender_time(created),
                    "accountName": user,
                    "domainName": machine.workgroup,
                    "userSid": f"S-1-5-21-{rng.randint(10**9, 4 * 10**9)}-{1000 + person.index}",
                    "aadUserId": new_uuid(rng),
                    "userPrincipalName": person.email,
                    "detectionStatus": None,
                },
                {
                    "entityType": "Process",
                    "evidenceCreationTime": defender_time(created),
                    "sha1": hex_token(rng, 40),
                    "sha256": hex_token(rng, 64),
                    "fileName": "powershell.exe" if not linux else "bash",
                    "filePath": r"C:\Windows\System32\WindowsPowerShell\v1.0" if not linux else "/usr/bin",
                    "processId": rng.randint(1000, 60000),
                    "processCommandLine": "powershell.exe -enc SQBFAFgA" if not linux else "bash -i",
                    "detectionStatus": "Detected",
                },
                {
                    "entityType": "Ip",
                    "evidenceCreationTime": defender_time(created),
                    "ipAddress": f"185.220.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                    "detectionStatus": None,
                },
            ],
        }

    def _new_incident(self, rng: random.Random, first_alert: dict[str, Any]) -> dict[str, Any]:
        self._next_incident += rng.randint(1, 7)
        return {
            "incidentId": self._next_incident,
            "redirectIncidentId": None,
            "incidentName": f"{first_alert['title']} on one endpoint",
            "createdTime": first_alert["alertCreationTime"],
            "lastUpdateTime": first_alert["lastUpdateTime"],
            "assignedTo": None,
            "classification": "Unknown",
            "determination": "NotAvailable",
            "detectionSource": first_alert["detectionSource"],
            "status": "Active",
            "severity": first_alert["severity"],
            "tags": [],
            "comments": [],
        }

    def _build_alerts(self, rng: random.Random, anchor: datetime) -> None:
        candidates = [m for m in self.vuln_machines if not m.defender_offboarded]
        count = max(3, len(self.vuln_machines) // 10)
        created_times = sorted(moment_before(rng, anchor, 3600, 20 * DAY) for _ in range(count))
        incident: dict[str, Any] | None = None
        for created in created_times:
            alert = self._alert(rng, rng.choice(candidates), created)
            roll = rng.random()
            if roll < 0.3:
                alert["status"], alert["assignedTo"] = "InProgress", "secops@example.com"
            elif roll < 0.6:
                resolved = min(anchor - timedelta(seconds=1), created + timedelta(hours=rng.randint(1, 72)))
                alert["status"], alert["assignedTo"] = "Resolved", "secops@example.com"
                alert["classification"] = rng.choice(("TruePositive", "FalsePositive"))
                alert["determination"] = "Malware" if alert["classification"] == "TruePositive" else "Clean"
                alert["investigationState"] = "SuccessfullyRemediated"
                alert["resolvedTime"] = alert["lastUpdateTime"] = defender_time(_precise(rng, resolved))
            if incident is None or rng.random() < 0.6:
                incident = self._new_incident(rng, alert)
                self.incidents.append(incident)
            alert["incidentId"] = incident["incidentId"]
            incident["lastUpdateTime"] = max(incident["lastUpdateTime"], alert["lastUpdateTime"])
            self.alerts.append(alert)
        # A bulk triage touched several alerts in the same instant.
        shared = rng.sample(self.alerts, min(len(self.alerts), max(3, len(self.alerts) // 20)))
        stamp = max(a["lastUpdateTime"] for a in shared)
        for alert in shared:
            alert["lastUpdateTime"] = stamp
            incident_of = self._incident(alert["incidentId"])
            incident_of["lastUpdateTime"] = max(incident_of["lastUpdateTime"], stamp)
        if len(self.incidents) >= 2:
            merged, target = rng.sample(self.incidents, 2)
            merged["status"], merged["redirectIncidentId"] = "Redirected", target["incidentId"]
            for alert in self.alerts:
                if alert["incidentId"] == merged["incidentId"]:
                    alert["incidentId"] = target["incidentId"]
            target["lastUpdateTime"] = max(target["lastUpdateTime"], merged["lastUpdateTime"])
        self._refresh_incident_status()

    def _incident(self, incident_id: int) -> dict[str, Any]:
        return next(i for i in self.incidents if i["incidentId"] == incident_id)

    def _refresh_incident_status(self) -> list[dict[str, Any]]:
        """Derive incident status and severity from their alerts; returns the incidents that changed."""
        by_incident: dict[int, list[dict[str, Any]]] = {}
        for alert in self.alerts:
            by_incident.setdefault(alert["incidentId"], []).append(alert)
        order = ("UnSpecified", "Informational", "Low", "Medium", "High")
        changed = []
        for incident in self.incidents:
            alerts = by_incident.get(incident["incidentId"], [])
            if incident["status"] == "Redirected" or not alerts:
                continue
            derived = {
                "status": "Resolved" if all(a["status"] == "Resolved" for a in alerts) else "Active",
                "severity": max((a["severity"] for a in alerts), key=order.index),
            }
            if any(incident[key] != value for key, value in derived.items()):
                incident.update(derived)
                changed.append(incident)
        return changed

    def incident_records(self) -> list[dict[str, Any]]:
        """Incidents with their ``alerts`` sub-objects composed from the current alerts, newest first."""
        by_incident: dict[int, list[dict[str, Any]]] = {}
        for alert in self.alerts:
            by_incident.setdefault(alert["incidentId"], []).append(alert)
        records = []
        for incident in sorted(self.incidents, key=lambda i: i["createdTime"], reverse=True):
            record = dict(incident)
            record["alerts"] = [
                self._incident_alert(alert) for alert in by_incident.get(incident["incidentId"], [])
            ]
            records.append(record)
        return records

    def _incident_alert(self, alert: dict[str, Any]) -> dict[str, Any]:
        machine = self._by_id[alert["machineId"]]
        return {
            "alertId": alert["id"],
            "incidentId": alert["incidentId"],
            "serviceSource": "MicrosoftDefenderForEndpoint",
            "creationTime": alert["alertCreationTime"],
            "lastUpdatedTime": alert["lastUpdateTime"],
            "resolvedTime": alert["resolvedTime"],
            "firstActivity": alert["firstEventTime"],
            "lastActivity": alert["lastEventTime"],
            "title": alert["title"],
            "description": alert["description"],
            "category": alert["category"],
            "status": "Active" if alert["status"] == "InProgress" else alert["status"],
            "severity": alert["severity"],
            "investigationId": alert["investigationId"],
            "investigationState": alert["investigationState"],
            "classification": alert["classification"],
            "determination": alert["determination"],
            "detectionSource": alert["detectionSource"],
            "assignedTo": alert["assignedTo"],
            "actorName": None,
            "threatFamilyName": alert["threatFamilyName"],
            "mitreTechniques": list(alert["mitreTechniques"]),
            "devices": [
                {
                    "deviceId": machine["id"],
                    "aadDeviceId": machine["aadDeviceId"],
                    "deviceDnsName": machine["computerDnsName"],
                    "osPlatform": machine["osPlatform"],
                    "osBuild": machine["osBuild"],
                    "rbacGroupName": machine["rbacGroupName"],
                    "firstSeen": machine["firstSeen"],
                    "healthStatus": machine["healthStatus"],
                    "riskScore": machine["riskScore"],
                }
            ],
            "entities": [
                {
                    "entityType": "User",
                    "accountName": alert["relatedUser"]["userName"],
                    "domainName": alert["relatedUser"]["domainName"],
                }
            ],
        }

    # ---------------------------------------------------------------- advance
    def advance(self, rng: random.Random, old_now: datetime, new_now: datetime) -> None:
        """Daily reports, an offboarded machine, resolved and new alerts, vulnerability changes."""

        def moment() -> datetime:
            return _precise(rng, moment_in(rng, old_now, new_now))

        current_ids = {m.defender_id for m in self.vuln_machines}
        active = [r for r in self.machines if r["id"] in current_ids and r["healthStatus"] == "Active"]
        for record in rng.sample(active, len(active) // 4):
            record["lastSeen"] = defender_time(moment())
        protected = self._protected_id()
        ordinary = [r for r in active if r["id"] != protected]
        if ordinary:
            rng.choice(ordinary)["healthStatus"] = "Inactive"
        open_alerts = [a for a in self.alerts if a["status"] != "Resolved"]
        touched_incidents: dict[int, str] = {}
        for alert in rng.sample(open_alerts, min(len(open_alerts), max(1, len(open_alerts) // 20))):
            stamp = defender_time(moment())
            alert.update(
                status="Resolved",
                resolvedTime=stamp,
                lastUpdateTime=stamp,
                assignedTo="secops@example.com",
                classification="TruePositive",
                determination="Malware",
                investigationState="SuccessfullyRemediated",
            )
            touched_incidents[alert["incidentId"]] = max(
                touched_incidents.get(alert["incidentId"], ""), stamp
            )
        live = [m for m in self.vuln_machines if self._by_id[m.defender_id]["healthStatus"] == "Active"]
        if live:
            created = moment()
            alert = self._alert(rng, rng.choice(live), created - timedelta(seconds=30))
            alert["alertCreationTime"] = alert["lastUpdateTime"] = defender_time(created)
            incident = self._new_incident(rng, alert)
            alert["incidentId"] = incident["incidentId"]
            self.alerts.append(alert)
            self.incidents.append(incident)
        active_incidents = [i for i in self.incidents if i["status"] == "Active"]
        if active_incidents:
            incident = rng.choice(active_incidents)
            incident["assignedTo"] = "secops@example.com"
            touched_incidents[incident["incidentId"]] = max(
                touched_incidents.get(incident["incidentId"], ""), defender_time(moment())
            )
        for incident_id, stamp in touched_incidents.items():
            incident = self._incident(incident_id)
            incident["lastUpdateTime"] = max(incident["lastUpdateTime"], stamp)
        for incident in self._refresh_incident_status():
            incident["lastUpdateTime"] = max(incident["lastUpdateTime"], defender_time(moment()))
        self._advance_vulnerabilities(rng, old_now, new_now)

    def _protected_id(self) -> str:
        """The machine whose CI is retired but which Defender must keep seeing as Active."""
        for machine in self.vuln_machines:
            if machine.retired_in_cmdb and not machine.defender_offboarded:
                return machine.defender_id
        return ""
