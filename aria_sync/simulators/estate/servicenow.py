"""The ServiceNow view of the estate: CMDB CIs, services, relations, people, catalogue, incidents.

Rows hold raw Table API values (``sysparm_display_value=false``): every value a string, datetimes as
``YYYY-MM-DD HH:MM:SS`` UTC, references as the referenced sys_id or ``""``.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from aria_sync.simulators.estate import catalog
from aria_sync.simulators.estate.fleet import VPN_ADAPTER_MAC, Fleet, Machine
from aria_sync.simulators.estate.support import derived_rng, hex_token, moment_before, moment_in, table_time

DAY = 86400
CI_CLASSES = {
    "laptop": "cmdb_ci_computer",
    "desktop": "cmdb_ci_computer",
    "win_server": "cmdb_ci_win_server",
    "linux_server": "cmdb_ci_linux_server",
}
SERVICENOW_TABLES: tuple[str, ...] = (
    "cmdb_ci_computer", "cmdb_ci_server", "cmdb_ci_win_server", "cmdb_ci_linux_server", "cmdb_ci_service",
    "sc_cat_item", "incident", "sys_user", "sys_audit_delete", "cmdb_rel_ci",
)  # fmt: skip
# A table's rows include those of its child classes.
TABLE_CLASSES = {
    "cmdb_ci_computer": ("cmdb_ci_computer", "cmdb_ci_server", "cmdb_ci_win_server", "cmdb_ci_linux_server"),
    "cmdb_ci_server": ("cmdb_ci_server", "cmdb_ci_win_server", "cmdb_ci_linux_server"),
}
_CI_REFERENCES = {"assigned_to": "sys_user", "owned_by": "sys_user", "managed_by": "sys_user"}
SERVICENOW_REFERENCES: dict[str, dict[str, str]] = {
    "cmdb_ci_computer": dict(_CI_REFERENCES),
    "cmdb_ci_server": dict(_CI_REFERENCES),
    "cmdb_ci_win_server": dict(_CI_REFERENCES),
    "cmdb_ci_linux_server": dict(_CI_REFERENCES),
    "cmdb_ci_service": {"owned_by": "sys_user", "managed_by": "sys_user", "parent": "cmdb_ci_service"},
    "sc_cat_item": {},
    "incident": {
        "caller_id": "sys_user",
        "opened_by": "sys_user",
        "assigned_to": "sys_user",
        "resolved_by": "sys_user",
        "closed_by": "sys_user",
        "cmdb_ci": "cmdb_ci_computer",
        "business_service": "cmdb_ci_service",
    },
    "sys_user": {"manager": "sys_user"},
    "sys_audit_delete": {},
    "cmdb_rel_ci": {"parent": "cmdb_ci_service", "child": "cmdb_ci_computer"},
}
_PRIORITY = {
    (1, 1): 1,
    (1, 2): 2,
    (2, 1): 2,
    (1, 3): 3,
    (2, 2): 3,
    (3, 1): 3,
    (2, 3): 4,
    (3, 2): 4,
    (3, 3): 5,
}
_INCIDENT_TOPICS = (
    ("Laptop flagged by EDR", "security", "malware"), ("VPN connection drops", "network", "vpn"),
    ("Disk almost full", "hardware", "disk"), ("Application slow to respond", "software", "performance"),
    ("Cannot print", "hardware", "printer"), ("Password expired", "inquiry", "account"),
    ("Vulnerability remediation overdue", "security", "vulnerability"), ("Server unreachable", "network", "ping"),
)  # fmt: skip


def _colon_mac(mac: str, upper: bool) -> str:
    text = ":".join(mac[i : i + 2] for i in range(0, 12, 2))
    return text.upper() if upper else text


class ServiceNowView:
    """ServiceNow rows per class (mutable across generations)."""

    def __init__(self, seed: int, fleet: Fleet, anchor: datetime) -> None:
        self.fleet = fleet
        rng = derived_rng(seed, "servicenow")
        self.rows: dict[str, dict[str, dict[str, Any]]] = {
            name: {} for name in (*SERVICENOW_TABLES, "cmdb_ci_server")
        }
        self._ci_machine: dict[str, Machine] = {}
        self._incident_ci_cache: tuple[int, list[dict[str, Any]]] | None = None
        for person in fleet.people:
            self._put("sys_user", self._user(rng, person, anchor))
        for service in fleet.services:
            self._put("cmdb_ci_service", self._service(rng, service, anchor))
        for number, (name, description, price) in enumerate(catalog.CATALOG_ITEMS):
            self._put("sc_cat_item", self._catalog_item(rng, number, name, description, price, anchor))
        cmdb = [m for m in fleet.machines if m.in_cmdb]
        # Nightly discovery rewrote most CIs in one transaction: hundreds share one sys_updated_on.
        bulk = table_time((anchor - timedelta(days=1)).replace(hour=2, minute=0, second=5))
        hand_edited = {m.index for m in rng.sample(cmdb, min(len(cmdb), max(3, len(cmdb) // 100)))}
        for machine in cmdb:
            row = self._ci(rng, machine, anchor)
            if machine.index not in hand_edited:
                row["sys_updated_on"], row["sys_updated_by"] = bulk, "discovery"
            self._put(row["sys_class_name"], row)
            self._ci_machine[row["sys_id"]] = machine
            if machine.service is not None:
                self._put(
                    "cmdb_rel_ci", self._relation(rng, fleet.services[machine.service].sys_id, row, anchor)
                )
        self._next_incident = 10001
        for _ in range(max(10, len(fleet.machines) // 5)):
            self._put("incident", self._incident(rng, moment_before(rng, anchor, 3600, 60 * DAY), anchor))
        for _ in range(2):  # CIs of machines decommissioned before the estate's history starts
            deleted = moment_before(rng, anchor, 2 * DAY, 30 * DAY)
            self._put(
                "sys_audit_delete",
                self._audit_row(
                    rng,
                    rng.choice(("cmdb_ci_computer", "cmdb_ci_win_server")),
                    hex_token(rng, 32),
                    f"OLD-{rng.randint(100, 999)}",
                    deleted,
                ),
            )

    def _ci_rows_for_incidents(self) -> list[dict[str, Any]]:
        # Cached per CI count: incidents are opened in bulk and rebuilding the list each time is quadratic.
        count = sum(len(self.rows[name]) for name in CI_CLASSES.values())
        if self._incident_ci_cache is None or self._incident_ci_cache[0] != count:
            rows = [row for name in dict.fromkeys(CI_CLASSES.values()) for row in self.rows[name].values()]
            self._incident_ci_cache = (count, rows)
        return self._incident_ci_cache[1]

    def _put(self, table: str, row: dict[str, Any]) -> None:
        self.rows[table][row["sys_id"]] = row

    def records(self, table: str) -> list[dict[str, Any]]:
        """Rows of ``table`` and its child classes, sorted by sys_id."""
        classes = TABLE_CLASSES.get(table, (table,))
        rows = [row for name in classes for row in self.rows[name].values()]
        return sorted(rows, key=lambda row: row["sys_id"])

    def ci_sys_ids(self) -> dict[str, Machine]:
        """Every CI sys_id ever issued (including hard-deleted ones) and its machine."""
        return self._ci_machine

    # ---------------------------------------------------------------- builders
    @staticmethod
    def _system_fields(created: datetime, updated: datetime, by: str, mods: int) -> dict[str, str]:
        return {
            "sys_created_on": table_time(created),
            "sys_created_by": by,
            "sys_updated_on": table_time(updated),
            "sys_updated_by": by,
            "sys_mod_count": str(mods),
            "sys_domain": "global",
        }

    def _user(self, rng: random.Random, person: Any, anchor: datetime) -> dict[str, Any]:
        updated = moment_before(rng, anchor, 3 * DAY, 30 * DAY)
        return {
            "sys_id": person.sys_id,
            "sys_class_name": "sys_user",
            "user_name": person.user_name,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "name": person.name,
            "email": person.email,
            "title": f"{person.department} {person.title}",
            "employee_number": f"E{10000 + person.index}",
            "manager": self.fleet.people[person.manager].sys_id if person.manager is not None else "",
            "active": "true",
            "locked_out": "false",
            **self._system_fields(
                person.created, max(person.created, updated), "hr.integration", rng.randint(1, 40)
            ),
        }

    def _service(self, rng: random.Random, service: Any, anchor: datetime) -> dict[str, Any]:
        people = self.fleet.people
        parent = ""
        if service.name == "Mobile Banking":
            parent = next((s.sys_id for s in self.fleet.services if s.name == "Online Banking"), "")
        return {
            "sys_id": service.sys_id,
            "sys_class_name": "cmdb_ci_service",
            "name": service.name,
            "number": service.number,
            "busines_criticality": catalog.CRITICALITY_LABELS[service.criticality],
            "service_classification": "Business Service",
            "operational_status": "1",
            "install_status": "1",
            "used_for": service.used_for,
            "owned_by": people[service.owner].sys_id,
            "managed_by": people[rng.randrange(len(people))].sys_id,
            "parent": parent,
            "short_description": f"{service.name} business service",
            "version": "",
            **self._system_fields(
                service.created, moment_before(rng, anchor, 5 * DAY, 90 * DAY), "admin", rng.randint(2, 30)
            ),
        }

    def _catalog_item(
        self, rng: random.Random, number: int, name: str, description: str, price: str, anchor: datetime
    ) -> dict[str, Any]:
        created = moment_before(rng, anchor, 300 * DAY, 900 * DAY)
        return {
            "sys_id": hex_token(rng, 32),
            "sys_class_name": "sc_cat_item",
            "name": name,
            "short_description": description,
            "description": f"<p>{description}.</p>",
            "sc_catalogs": "e0d57d4fdb3e52008dc05c00cf961900",
            "active": "false" if number == 13 else "true",
            "type": "item",
            "price": price,
            "recurring_price": "0",
            "order": str(100 + 10 * number),
            "availability": "on_desktop",
            "mandatory_attachment": "false",
            "delivery_time": "1970-01-03 00:00:00",
            **self._system_fields(
                created, moment_before(rng, anchor, 10 * DAY, 200 * DAY), "catalog.admin", rng.randint(1, 12)
            ),
        }

    def _ci(self, rng: random.Random, machine: Machine, anchor: datetime) -> dict[str, Any]:
        people = self.fleet.people
        os = catalog.OS_PROFILES[machine.cmdb_os_key or machine.os_key]
        server = machine.kind.endswith("server")
        mac = VPN_ADAPTER_MAC if machine.cmdb_vpn_mac else machine.mac
        owner = people[machine.owner].sys_id
        created = machine.first_seen + timedelta(seconds=rng.randint(300, 7200))
        last_discovered = (
            moment_before(rng, anchor, 60 * DAY, 200 * DAY)
            if machine.retired_in_cmdb
            else ((anchor - timedelta(days=1)).replace(hour=2, minute=0, second=0))
        )
        chassis = {"laptop": "Laptop", "desktop": "Desktop"}.get(machine.kind, "Rack Mount Chassis")
        return {
            "sys_id": machine.sys_id,
            "sys_class_name": CI_CLASSES[machine.kind],
            "name": machine.short_name.upper()[:15],
            "host_name": machine.short_name.lower(),
            "fqdn": "" if machine.cmdb_fqdn_empty else machine.fqdn,
            "dns_domain": "" if machine.cmdb_fqdn_empty else machine.domain,
            "ip_address": machine.ip,
            "mac_address": _colon_mac(mac, machine.cmdb_mac_upper),
            "default_gateway": machine.ip.rsplit(".", 1)[0] + ".1",
            "serial_number": machine.cmdb_serial,
            "asset_tag": f"P{100000 + machine.index}",
            "os": os.servicenow_os,
            "os_version": os.servicenow_os_version,
            "os_service_pack": "",
            "os_domain": machine.workgroup if os.family == "windows" else "",
            "os_address_width": "64",
            "cpu_count": str(rng.choice((1, 2)) if server else 1),
            "cpu_core_count": str(rng.choice((4, 8, 16)) if server else rng.choice((4, 8))),
            "cpu_name": "Intel(R) Xeon(R) Gold 6338" if server else "Intel(R) Core(TM) i7-1365U",
            "ram": str(rng.choice((16384, 32768, 65536)) if server else rng.choice((8192, 16384, 32768))),
            "disk_space": f"{rng.choice((238.47, 476.94, 953.87, 1862.89)):.2f}",
            "model_number": machine.model,
            "virtual": "true" if machine.virtual else "false",
            "chassis_type": "Other" if machine.virtual else chassis,
            "install_status": "7" if machine.retired_in_cmdb else "1",
            "operational_status": "6" if machine.retired_in_cmdb else "1",
            "hardware_status": "retired" if machine.retired_in_cmdb else "installed",
            "environment": "Test" if machine.domain == "lab.example.net" else "Production",
            "used_for": "Test" if machine.domain == "lab.example.net" else "Production",
            "assigned_to": "" if server else owner,
            "owned_by": owner if server else "",
            "managed_by": people[rng.randrange(len(people))].sys_id if server and rng.random() < 0.7 else "",
            "discovery_source": "ServiceNow" if server else "SCCM",
            "first_discovered": table_time(created),
            "last_discovered": table_time(last_discovered),
            "object_id": machine.azure_vm_id or "",
            "correlation_id": "",
            "duplicate_of": "",
            "short_description": f"{machine.model} ({catalog.DEPARTMENT_NAMES[machine.department]})",
            **self._system_fields(
                created,
                max(created, moment_before(rng, anchor, 3 * DAY, 60 * DAY)),
                people[machine.owner].user_name,
                rng.randint(3, 120),
            ),
        }

    def _relation(
        self, rng: random.Random, service_sys_id: str, ci: dict[str, Any], anchor: datetime
    ) -> dict[str, Any]:
        created = datetime.fromisoformat(ci["sys_created_on"] + "+00:00") + timedelta(hours=1)
        created = min(created, anchor - timedelta(seconds=1))
        return {
            "sys_id": hex_token(rng, 32),
            "sys_class_name": "cmdb_rel_ci",
            "parent": service_sys_id,
            "child": ci["sys_id"],
            "type": "Depends on::Used by",
            "connection_strength": "always",
            "port": "",
            "percent_outage": "",
            **self._system_fields(created, created, "service.mapping", 0),
        }

    def _incident(self, rng: random.Random, opened: datetime, anchor: datetime) -> dict[str, Any]:
        people = self.fleet.people
        cis = self._ci_rows_for_incidents()
        title, category, subcategory = rng.choice(_INCIDENT_TOPICS)
        impact, urgency = rng.randint(1, 3), rng.randint(1, 3)
        ci = rng.choice(cis) if cis and rng.random() < 0.8 else None
        service = ""
        if ci is not None and rng.random() < 0.7:
            machine = self._ci_machine[ci["sys_id"]]
            if machine.service is not None:
                service = self.fleet.services[machine.service].sys_id
        elif rng.random() < 0.3:
            service = rng.choice(self.fleet.services).sys_id
        state = rng.choice(("1", "2", "2", "3", "6", "7", "7", "8"))
        caller = rng.choice(people).sys_id
        assignee = rng.choice(people).sys_id if state != "1" else ""
        updated = min(anchor - timedelta(seconds=1), opened + timedelta(seconds=rng.randint(60, 5 * DAY)))
        resolved = table_time(updated) if state in ("6", "7") else ""
        self._next_incident += 1
        return {
            "sys_id": hex_token(rng, 32),
            "sys_class_name": "incident",
            "number": f"INC{self._next_incident:07d}",
            "short_description": title,
            "description": f"{title}. Reported by the service desk.",
            "state": state,
            "incident_state": state,
            "active": "false" if state in ("7", "8") else "true",
            "impact": str(impact),
            "urgency": str(urgency),
            "priority": str(_PRIORITY[(impact, urgency)]),
            "severity": "3",
            "category": category,
            "subcategory": subcategory,
            "caller_id": caller,
            "opened_by": caller,
            "opened_at": table_time(opened),
            "assigned_to": assignee,
            "cmdb_ci": ci["sys_id"] if ci else "",
            "business_service": service,
            "resolved_at": resolved,
            "resolved_by": assignee if resolved else "",
            "closed_at": resolved if state == "7" else "",
            "closed_by": assignee if state == "7" else "",
            "close_code": "Solved (Permanently)" if resolved else "",
            "close_notes": "Fixed by the assignee." if resolved else "",
            "hold_reason": "1" if state == "3" else "",
            "reopen_count": "0",
            "reassignment_count": str(rng.randint(0, 3)),
            "correlation_id": "",
            **self._system_fields(opened, updated, "itil.user", rng.randint(1, 15)),
        }

    def _audit_row(
        self, rng: random.Random, tablename: str, documentkey: str, display: str, deleted: datetime
    ) -> dict[str, Any]:
        return {
            "sys_id": hex_token(rng, 32),
            "sys_class_name": "sys_audit_delete",
            "tablename": tablename,
            "documentkey": documentkey,
            "display_value": display,
            "payload": f'<?xml version="1.0" encoding="UTF-8"?><record_update table="{tablename}"><{tablename}>'
            f"<sys_id>{documentkey}</sys_id><name>{display}</name></{tablename}></record_update>",
            **self._system_fields(deleted, deleted, "cmdb.admin", 0),
        }

    # ---------------------------------------------------------------- advance
    def advance(self, rng: random.Random, old_now: datetime, new_now: datetime) -> None:
        """Hard-delete CIs (with audit rows), edit and retire CIs, move incidents along, open new ones."""
        ci_tables = ("cmdb_ci_computer", "cmdb_ci_win_server", "cmdb_ci_linux_server")
        live = [(table, row) for table in ci_tables for row in self.rows[table].values()]
        live.sort(key=lambda item: item[1]["sys_id"])
        protected = {
            m.sys_id for m in self.fleet.machines if m.index < 2 or (m.retired_in_cmdb and m.in_defender)
        }
        deletable = [item for item in live if item[1]["sys_id"] not in protected]
        relations_of: dict[str, list[str]] = {}
        for relation in self.rows["cmdb_rel_ci"].values():
            relations_of.setdefault(relation["child"], []).append(relation["sys_id"])
        deleted: set[str] = set()
        for table, row in rng.sample(deletable, min(len(deletable), max(1, len(live) // 300))):
            moment = moment_in(rng, old_now, new_now)
            del self.rows[table][row["sys_id"]]
            deleted.add(row["sys_id"])
            self._put("sys_audit_delete", self._audit_row(rng, table, row["sys_id"], row["name"], moment))
            # Deleting a CI cascades to its relations, which the audit log records as well.
            for relation_id in relations_of.get(row["sys_id"], ()):
                del self.rows["cmdb_rel_ci"][relation_id]
                self._put(
                    "sys_audit_delete",
                    self._audit_row(rng, "cmdb_rel_ci", relation_id, "Depends on::Used by", moment),
                )
        live = [item for item in live if item[1]["sys_id"] not in deleted]
        for _, row in rng.sample(live, min(len(live), max(2, len(live) // 100))):
            moment = moment_in(rng, old_now, new_now)
            if row["sys_class_name"] == "cmdb_ci_computer":
                # DHCP moved the laptop: a plausible address in its /24 (never another machine's identity)
                octets = row["ip_address"].split(".")
                octets[-1] = str(rng.randint(2, 254))
                row["ip_address"] = ".".join(octets)
            row["last_discovered"] = table_time(moment)
            self._touch(row, moment, "discovery")
        retirable = [
            row for _, row in live if row["install_status"] != "7" and row["sys_id"] not in protected
        ]
        if retirable:
            row = rng.choice(retirable)
            row.update(install_status="7", operational_status="6", hardware_status="retired")
            self._touch(row, moment_in(rng, old_now, new_now), "cmdb.admin")
        self._advance_incidents(rng, old_now, new_now)

    @staticmethod
    def _touch(row: dict[str, Any], moment: datetime, by: str) -> None:
        row["sys_updated_on"] = table_time(moment)
        row["sys_updated_by"] = by
        row["sys_mod_count"] = str(int(row["sys_mod_count"]) + 1)

    def _advance_incidents(self, rng: random.Random, old_now: datetime, new_now: datetime) -> None:
        people = self.fleet.people
        open_incidents = sorted(
            (r for r in self.rows["incident"].values() if r["state"] in ("1", "2", "3", "6")),
            key=lambda r: r["sys_id"],
        )
        for row in rng.sample(open_incidents, min(len(open_incidents), max(2, len(open_incidents) // 20))):
            moment = moment_in(rng, old_now, new_now)
            stamp = table_time(moment)
            next_state = {"1": "2", "2": "6", "3": "2", "6": "7"}[row["state"]]
            row["state"] = row["incident_state"] = next_state
            if next_state == "2" and not row["assigned_to"]:
                row["assigned_to"] = rng.choice(people).sys_id
            if next_state == "6":
                row.update(
                    resolved_at=stamp,
                    resolved_by=row["assigned_to"],
                    close_code="Solved (Permanently)",
                    close_notes="Fixed by the assignee.",
                    hold_reason="",
                )
            if next_state == "7":
                row.update(closed_at=stamp, closed_by=row["assigned_to"], active="false")
            self._touch(row, moment, "itil.user")
        for _ in range(rng.randint(1, 2)):
            opened = moment_in(rng, old_now, new_now)
            row = self._incident(rng, opened, new_now + timedelta(seconds=1))
            row.update(
                state="1",
                incident_state="1",
                active="true",
                assigned_to="",
                resolved_at="",
                resolved_by="",
                closed_at="",
                closed_by="",
                close_code="",
                close_notes="",
                hold_reason="",
                sys_updated_on=table_time(opened),
                sys_mod_count="0",
            )
            self._put("incident", row)
