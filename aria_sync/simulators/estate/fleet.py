"""The ground truth of the demo estate: machines, people and business services.

Vendor records are views of these objects; the identifier quirks (missing sources, stale IPs, junk
serials, re-images) are decided here once so that every vendor view agrees on who is who.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from datetime import datetime

from aria_sync.simulators.estate import catalog
from aria_sync.simulators.estate.support import hex_token, moment_before, new_uuid, quota_labels

SIZES = {"tiny": 30, "small": 300, "large": 100_000}

# Which sources see a machine: C = ServiceNow CMDB, D = Defender, T = Tenable.
COVERAGE_SHARES = {"CDT": 0.70, "C": 0.06, "D": 0.04, "T": 0.04, "CD": 0.06, "CT": 0.06, "DT": 0.04}
KIND_SHARES = {"laptop": 0.45, "desktop": 0.19, "win_server": 0.16, "linux_server": 0.17, "network": 0.03}
VPN_ADAPTER_MAC = "02004c4f4f50"
ZERO_MAC = "000000000000"
JUNK_SERIALS = (
    "To be filled by O.E.M.",
    "To be filled by O.E.M.",
    "To be filled by O.E.M.",
    "Default string",
    "0",
    "System Serial Number",
)
_OUIS = {
    "Dell Inc.": "d481d7",
    "Lenovo": "8cec4b",
    "HP": "3c5282",
    "Apple": "a4bb6d",
    "VMware, Inc.": "005056",
    "Microsoft Corporation": "00155d",
    "Cisco": "00000c",
    "Fortinet": "0009f0",
    "Palo Alto Networks": "001b17",
}
_MODELS = {
    "laptop": [("Dell Inc.", "Latitude 7440"), ("Lenovo", "ThinkPad T14 Gen 4"), ("HP", "EliteBook 840 G10")],
    "desktop": [("Dell Inc.", "OptiPlex 7010"), ("HP", "EliteDesk 800 G9"), ("Lenovo", "ThinkCentre M90q")],
    "server": [("Dell Inc.", "PowerEdge R750"), ("HP", "ProLiant DL380 Gen10")],
    "virtual": [("VMware, Inc.", "VMware Virtual Platform"), ("Microsoft Corporation", "Virtual Machine")],
    "iosxe": [("Cisco", "C8300-1N1S-6T")], "fortios": [("Fortinet", "FortiGate-200F")],
    "panos": [("Palo Alto Networks", "PA-3220")],
}  # fmt: skip


@dataclass
class Person:
    index: int
    sys_id: str
    first_name: str
    last_name: str
    user_name: str
    department: str
    title: str
    manager: int | None
    created: datetime

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def email(self) -> str:
        return f"{self.user_name}@example.com"


@dataclass
class Service:
    index: int
    sys_id: str
    name: str
    number: str
    criticality: int
    used_for: str
    owner: int
    created: datetime


@dataclass
class Machine:
    """One real machine; ``coverage`` says which vendors know it."""

    index: int
    machine_id: str
    kind: str
    os_key: str
    domain: str
    workgroup: str
    short_name: str
    department: str
    coverage: str
    owner: int
    service: int | None
    manufacturer: str
    model: str
    virtual: bool
    serial: str
    bios_uuid: str
    mac: str  # 12 lowercase hex
    ip: str
    external_ip: str
    first_seen: datetime
    tenable_id: str
    defender_id: str
    sys_id: str
    azure_vm_id: str | None = None
    # quirks
    defender_short_name: bool = False
    vpn_adapter: bool = False
    zero_mac_in_tenable: bool = False
    reimaged_at: datetime | None = None
    defender_old_id: str | None = None
    stale_tenable_ip: str | None = None
    cmdb_os_key: str | None = None
    retired_in_cmdb: bool = False
    defender_offboarded: bool = False
    tenable_sysid_link: bool = False
    tenable_agent: bool = False
    tenable_has_results: bool = True
    tenable_serial: bool = False
    cmdb_serial: str = ""
    cmdb_mac_upper: bool = False
    cmdb_fqdn_empty: bool = False
    cmdb_vpn_mac: bool = False
    tenable_fqdn_missing: bool = False
    extra_ips: list[str] = field(default_factory=list)

    @property
    def fqdn(self) -> str:
        return f"{self.short_name}.{self.domain}"

    @property
    def os(self) -> catalog.OsProfile:
        return catalog.OS_PROFILES[self.os_key]

    @property
    def in_cmdb(self) -> bool:
        return "C" in self.coverage

    @property
    def in_defender(self) -> bool:
        return "D" in self.coverage

    @property
    def in_tenable(self) -> bool:
        return "T" in self.coverage


@dataclass
class Fleet:
    machines: list[Machine]
    people: list[Person]
    services: list[Service]


def _weighted(rng: random.Random, options: list[tuple[str, float]]) -> str:
    return rng.choices([name for name, _ in options], weights=[weight for _, weight in options])[0]


def _serial(rng: random.Random, manufacturer: str, virtual: bool) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    if virtual and manufacturer.startswith("VMware"):
        raw = hex_token(rng, 32)
        return (
            "VMware-"
            + " ".join(raw[i : i + 2] for i in range(0, 16, 2))
            + "-"
            + " ".join(raw[i : i + 2] for i in range(16, 32, 2))
        )
    if virtual:
        return "-".join(f"{rng.randint(0, 9999):04d}" for _ in range(7))
    length = {"Dell Inc.": 7, "Lenovo": 8, "HP": 10}.get(manufacturer, 11)
    return "".join(rng.choice(alphabet) for _ in range(length))


def _people(rng: random.Random, count: int, anchor: datetime) -> list[Person]:
    people: list[Person] = []
    seen: dict[str, int] = {}
    for index in range(count):
        first, last = rng.choice(catalog.FIRST_NAMES), rng.choice(catalog.LAST_NAMES)
        base = f"{first}.{last}".lower()
        seen[base] = seen.get(base, 0) + 1
        user_name = base if seen[base] == 1 else f"{base}{seen[base]}"
        people.append(
            Person(
                index=index,
                sys_id=hex_token(rng, 32),
                first_name=first,
                last_name=last,
                user_name=user_name,
                department=catalog.DEPARTMENT_NAMES[rng.choice(catalog.DEPARTMENTS)],
                title=rng.choice(catalog.JOB_TITLES),
                manager=rng.randrange(index) if index >= 5 and rng.random() < 0.9 else None,
                created=moment_before(rng, anchor, 40 * 86400, 1500 * 86400),
            )
        )
    return people


def _services(rng: random.Random, size: str, people: list[Person], anchor: datetime) -> list[Service]:
    count = 6 if size == "tiny" else len(catalog.BUSINESS_SERVICES)
    return [
        Service(
            index=index,
            sys_id=hex_token(rng, 32),
            name=name,
            number=f"BSN{1001 + index:07d}",
            criticality=criticality,
            used_for=used_for,
            owner=rng.randrange(len(people)),
            created=moment_before(rng, anchor, 200 * 86400, 1200 * 86400),
        )
        for index, (name, criticality, used_for) in enumerate(catalog.BUSINESS_SERVICES[:count])
    ]


class _Addresses:
    """Unique IPv4 addresses per domain (a /12 each), so reuse only happens where it is meant to."""

    def __init__(self) -> None:
        self.next_host = {domain: 0 for domain, _, _ in catalog.DOMAINS}
        self.bases = {
            domain: int(ipaddress.IPv4Address(f"10.{16 * i}.0.0"))
            for i, (domain, _, _) in enumerate(catalog.DOMAINS)
        }

    def allocate(self, domain: str) -> str:
        self.next_host[domain] += 1
        host = self.next_host[domain]
        # skip .0 and .255 in each /24
        offset = (host // 254) * 256 + host % 254 + 1
        return str(ipaddress.IPv4Address(self.bases[domain] + offset))


def _name_machine(
    kind: str,
    os_key: str,
    domain: str,
    department: str,
    counters: dict[tuple[str, str], int],
    role: str | None,
) -> str:
    if kind in ("laptop", "desktop"):
        key = (department, kind)
        counters[key] = counters.get(key, 0) + 1
        return f"{department}-{'lt' if kind == 'laptop' else 'ws'}-{counters[key]:04d}"
    assert role is not None
    key = (domain, role)
    counters[key] = counters.get(key, 0) + 1
    return f"{role}{counters[key]:02d}"


def build_fleet(size: str, seed: int, anchor: datetime) -> Fleet:
    """Build every machine, person and service of an estate of ``size``."""
    rng = random.Random(seed)
    total = SIZES[size]
    people = _people(rng, max(12, total // 3), anchor)
    services = _services(rng, size, people, anchor)
    kinds = quota_labels(rng, total, KIND_SHARES)
    # The same short name in two domains: web01.corp.example.com and web01.lab.example.net.
    kinds[0] = kinds[1] = "linux_server"
    network_count = kinds.count("network")
    others = total - network_count
    # Network devices have no CMDB class in scope and no EDR agent, so they fill the Tenable-only share.
    shares = {label: share * total / others for label, share in COVERAGE_SHARES.items()}
    shares["T"] = max(0.0, COVERAGE_SHARES["T"] * total - network_count) / others
    coverage = quota_labels(rng, others, shares)
    for position in (0, 1):  # the two web01 machines are seen by every source
        if coverage[position] != "CDT":
            swap = coverage.index("CDT", 2)
            coverage[position], coverage[swap] = coverage[swap], coverage[position]
    coverage_iter = iter(coverage)
    addresses = _Addresses()
    counters: dict[tuple[str, str], int] = {}
    domain_names = [name for name, _, _ in catalog.DOMAINS]
    domain_weights = [weight for _, weight, _ in catalog.DOMAINS]
    workgroups = {name: workgroup for name, _, workgroup in catalog.DOMAINS}
    machines: list[Machine] = []
    for index, kind in enumerate(kinds):
        os_key = _weighted(rng, catalog.OS_BY_KIND[kind])
        domain = rng.choices(domain_names, weights=domain_weights)[0]
        role: str | None = None
        if index == 0:
            domain, role = "corp.example.com", "web"
        elif index == 1:
            domain, role = "lab.example.net", "web"
        elif kind == "win_server":
            role = rng.choice(catalog.WINDOWS_ROLES)
        elif kind == "linux_server":
            role = rng.choice(catalog.LINUX_ROLES)
        elif kind == "network":
            role = catalog.NETWORK_ROLES[os_key]
        if kind in ("win_server", "linux_server") and index < 2:
            os_key = "ubuntu2204"
        department = rng.choice(catalog.DEPARTMENTS)
        short_name = _name_machine(kind, os_key, domain, department, counters, role)
        virtual = kind in ("win_server", "linux_server") and rng.random() < 0.7
        model_key = "virtual" if virtual else ("server" if kind.endswith("server") else kind)
        if kind == "network":
            model_key = os_key
        if os_key == "macos":
            manufacturer, model = "Apple", "MacBook Pro 14-inch"
        else:
            manufacturer, model = rng.choice(_MODELS[model_key])
        oui = _OUIS[manufacturer]
        mac = oui + format((index * 2654435761 + seed * 40503) & 0xFFFFFF, "06x")
        server = kind.endswith("server")
        machine = Machine(
            index=index,
            machine_id=f"machine-{index + 1:06d}",
            kind=kind,
            os_key=os_key,
            domain=domain,
            workgroup=workgroups[domain],
            short_name=short_name,
            department=department,
            coverage="T" if kind == "network" else next(coverage_iter),
            owner=rng.randrange(len(people)),
            service=rng.randrange(len(services))
            if server or kind == "network" or rng.random() < 0.05
            else None,
            manufacturer=manufacturer,
            model=model,
            virtual=virtual,
            serial=_serial(rng, manufacturer, virtual),
            bios_uuid=new_uuid(rng),
            mac=mac,
            ip=addresses.allocate(domain),
            external_ip=f"203.0.113.{rng.randint(2, 250)}"
            if domain != "eu.example.com"
            else f"198.51.100.{rng.randint(2, 250)}",
            first_seen=moment_before(rng, anchor, 30 * 86400, 900 * 86400),
            tenable_id=new_uuid(rng),
            defender_id=hex_token(rng, 40),
            sys_id=hex_token(rng, 32),
        )
        if virtual and rng.random() < 0.5:
            machine.azure_vm_id = new_uuid(rng)
        machine.defender_short_name = (
            domain == "lab.example.net" and rng.random() < 0.5
        ) or rng.random() < 0.03
        machine.tenable_fqdn_missing = rng.random() < 0.1
        if index < 2:  # the two web01 machines keep full names everywhere, so the name clash is visible
            machine.defender_short_name = machine.tenable_fqdn_missing = False
        machine.vpn_adapter = kind == "laptop" and rng.random() < 0.45
        machine.zero_mac_in_tenable = rng.random() < 0.04
        machine.tenable_agent = (kind in ("laptop", "desktop") and rng.random() < 0.85) or (
            server and rng.random() < 0.4
        )
        machine.tenable_has_results = machine.tenable_agent or kind == "network" or rng.random() < 0.93
        machine.tenable_serial = kind == "network" or rng.random() < 0.3
        machine.cmdb_serial = _cmdb_serial(rng, machine.serial)
        machine.cmdb_mac_upper = rng.random() < 0.4
        machine.cmdb_fqdn_empty = rng.random() < 0.18 and index >= 2
        if server and rng.random() < 0.15:
            machine.extra_ips.append(addresses.allocate(domain))
        machines.append(machine)
    _assign_cross_source_quirks(rng, machines, anchor)
    return Fleet(machines=machines, people=people, services=services)


def _cmdb_serial(rng: random.Random, serial: str) -> str:
    roll = rng.random()
    if roll < 0.10:
        return ""
    if roll < 0.25:
        return rng.choice(JUNK_SERIALS)
    return serial


def _pick(rng: random.Random, candidates: list[Machine], share: float, minimum: int) -> list[Machine]:
    count = min(len(candidates), max(minimum, round(len(candidates) * share)))
    return rng.sample(candidates, count)


def _assign_cross_source_quirks(rng: random.Random, machines: list[Machine], anchor: datetime) -> None:
    endpoints = [m for m in machines if m.kind in ("laptop", "desktop") and m.in_defender and m.index > 1]
    for machine in _pick(rng, endpoints, 0.01, 2):
        machine.reimaged_at = moment_before(rng, anchor, 12 * 86400, 40 * 86400)
        machine.defender_old_id = hex_token(rng, 40)
    # An IP is not an identity: machine A's stale Tenable address is machine B's current one.
    in_tenable = [m for m in machines if m.in_tenable and m.kind != "network" and m.index > 1]
    in_defender = [m for m in machines if m.in_defender and m.index > 1]
    for machine in _pick(rng, in_tenable, 0.01, 2):
        other = rng.choice(in_defender)
        while other is machine:
            other = rng.choice(in_defender)
        machine.stale_tenable_ip = other.ip
    cmdb = [m for m in machines if m.in_cmdb and m.index > 1]
    # The CMDB's OS disagrees with what Defender and Tenable report for a few machines.
    for machine in _pick(
        rng, [m for m in cmdb if m.in_defender and m.os_key in catalog.STALE_CMDB_OS], 0.02, 2
    ):
        machine.cmdb_os_key = catalog.STALE_CMDB_OS[machine.os_key]
    retired = _pick(rng, cmdb, 0.03, 2)
    for machine in retired:
        machine.retired_in_cmdb = True
        # Retired in the CMDB and gone from Defender too, except one that Defender still sees alive.
        machine.defender_offboarded = machine.in_defender and machine.reimaged_at is None
    contradiction = [m for m in retired if m.in_defender]
    if not contradiction:
        candidate = rng.choice([m for m in cmdb if m.in_defender and not m.retired_in_cmdb])
        candidate.retired_in_cmdb = True
        contradiction = [candidate]
    contradiction[0].defender_offboarded = False
    healthy = [m for m in machines if m.in_defender and not m.retired_in_cmdb and m.reimaged_at is None]
    for machine in _pick(rng, healthy, 0.015, 1):
        machine.defender_offboarded = True
    both = [m for m in machines if m.in_tenable and m.in_cmdb]
    for machine in _pick(rng, both, 0.5, 1):
        machine.tenable_sysid_link = True
    # Discovery sometimes reads the VPN adapter instead of the NIC: many CIs share that junk MAC.
    for machine in _pick(rng, [m for m in cmdb if m.vpn_adapter], 0.15, 2):
        machine.cmdb_vpn_mac = True
