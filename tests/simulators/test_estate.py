"""The demo estate: determinism, identifier quirks, advance() semantics and ground truth."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aria_sync.errors import ConfigurationError
from aria_sync.simulators.estate import Estate

ANCHOR = datetime(2024, 5, 20, tzinfo=UTC)
JUNK_SERIALS = {"To be filled by O.E.M.", "Default string", "0", "System Serial Number"}
CI_TABLE = "cmdb_ci_computer"
DEFENDER_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")
TENABLE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TABLE_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


@pytest.fixture(scope="module")
def small() -> Estate:
    return Estate.generate("small", seed=7, anchor=ANCHOR)


@pytest.fixture(scope="module")
def advanced() -> tuple[dict[str, Any], Estate]:
    """A small estate snapshotted at generation 0, then advanced once."""
    estate = Estate.generate("small", seed=11, anchor=ANCHOR)
    before = _snapshot(estate)
    estate.advance()
    return before, estate


def _snapshot(estate: Estate) -> dict[str, Any]:
    return {
        "now": estate.now,
        "tenable_assets": {a["id"]: dict(a) for a in estate.tenable_assets()},
        "findings": {f["finding_id"]: f for f in estate.tenable_findings()},
        "machines": {m["id"]: dict(m) for m in estate.defender_machines()},
        "alerts": {a["id"]: dict(a) for a in estate.defender_alerts()},
        "incidents": {
            i["incidentId"]: {k: v for k, v in i.items() if k != "alerts"}
            for i in estate.defender_incidents()
        },
        "vulns": {v["id"] for v in estate.defender_vulnerabilities()},
        "servicenow": {
            t: {r["sys_id"]: dict(r) for r in estate.servicenow_records(t)} for t in estate.SERVICENOW_TABLES
        },
    }


def _parse(value: str) -> datetime:
    if value.endswith("Z"):
        return datetime.fromisoformat(value[:26].rstrip("Z") + "+00:00")
    return datetime.fromisoformat(value + "+00:00")


def _timestamps(value: Any) -> list[datetime]:
    if isinstance(value, dict):
        return [t for item in value.values() for t in _timestamps(item)]
    if isinstance(value, list):
        return [t for item in value for t in _timestamps(item)]
    if isinstance(value, str) and (
        DEFENDER_TIME.match(value) or TENABLE_TIME.match(value) or TABLE_TIME.match(value)
    ):
        return [_parse(value)]
    return []


def _everything(estate: Estate) -> list[Any]:
    return [
        estate.tenable_assets(),
        list(estate.tenable_findings()),
        estate.tenable_scans(),
        estate.defender_machines(),
        estate.defender_alerts(),
        estate.defender_incidents(),
        list(estate.defender_vulnerabilities()),
        estate.defender_vulnerability_changes(estate.now - timedelta(days=14)),
        {table: estate.servicenow_records(table) for table in estate.SERVICENOW_TABLES},
        sorted(estate.truth().items()),
    ]


def _by_machine(
    estate: Estate, key: str, records: list[dict[str, Any]], id_field: str
) -> dict[str, list[dict]]:
    truth = estate.truth()
    grouped: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        grouped[truth[(key, record[id_field])]].append(record)
    return grouped


def _in_window(value: str, start: datetime, end: datetime) -> bool:
    return start < _parse(value) <= end


# ---------------------------------------------------------------- determinism and sizes
def test_same_inputs_give_identical_records_even_after_advance() -> None:
    first, second = (Estate.generate("tiny", seed=3, anchor=ANCHOR) for _ in range(2))
    assert _everything(first) == _everything(second)
    first.advance()
    second.advance()
    assert _everything(first) == _everything(second)


def test_different_seed_gives_different_estate() -> None:
    first = Estate.generate("tiny", seed=3, anchor=ANCHOR)
    other = Estate.generate("tiny", seed=4, anchor=ANCHOR)
    assert {a["id"] for a in first.tenable_assets()}.isdisjoint({a["id"] for a in other.tenable_assets()})
    assert _everything(first) != _everything(other)


def test_sizes_and_generation_zero_state(small: Estate) -> None:
    assert len(set(small.truth().values())) == 300
    assert len(set(Estate.generate("tiny", anchor=ANCHOR).truth().values())) == 30
    assert (small.size, small.seed, small.generation, small.now) == ("small", 7, 0, ANCHOR)


def test_default_anchor_is_today_midnight_utc() -> None:
    estate = Estate.generate("tiny")
    assert estate.now == datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def test_unknown_size_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        Estate.generate("huge")


def test_every_timestamp_is_at_or_before_now(small: Estate) -> None:
    stamps = _timestamps(_everything(small))
    assert len(stamps) > 10_000
    assert max(stamps) <= small.now


def test_credentials_for_every_vendor(small: Estate) -> None:
    assert set(small.credentials["tenable"]) == {"accessKey", "secretKey"}
    assert set(small.credentials["ms-defender"]) == {"tenantId", "clientId", "clientSecret"}
    assert set(small.credentials["servicenow"]) == {"username", "password"}


# ---------------------------------------------------------------- coverage and truth
def test_coverage_is_mostly_all_three_with_every_other_combination(small: Estate) -> None:
    sources: dict[str, set[str]] = defaultdict(set)
    for (key, _), machine in small.truth().items():
        sources[machine].add(key)
    combos = Counter(frozenset(keys) for keys in sources.values())
    everywhere = combos[frozenset({"tenable", "ms-defender", "servicenow"})] / len(sources)
    assert 0.65 <= everywhere <= 0.75
    assert len(combos) == 7  # every non-empty combination of the three sources occurs


def test_truth_covers_every_vendor_asset_record(small: Estate) -> None:
    truth = small.truth()
    records = (
        [("tenable", a["id"]) for a in small.tenable_assets()]
        + [("ms-defender", m["id"]) for m in small.defender_machines()]
        + [("servicenow", c["sys_id"]) for c in small.servicenow_records(CI_TABLE)]
    )
    assert records and all(record in truth for record in records)
    assert len(truth) == len(set(records))


# ---------------------------------------------------------------- identifier quirks
def test_defender_names_and_mac_format(small: Estate) -> None:
    machines = small.defender_machines()
    names = [m["computerDnsName"] for m in machines]
    assert all(name == name.lower() for name in names)
    assert any("." not in name for name in names) and any(name.endswith(".example.com") for name in names)
    macs = [a["macAddress"] for m in machines for a in m["ipAddresses"] if a["macAddress"] is not None]
    assert all(re.fullmatch(r"[0-9A-F]{12}", mac) for mac in macs)
    assert all(DEFENDER_TIME.match(m["lastSeen"]) for m in machines)


def test_servicenow_names_fqdns_and_mac_case(small: Estate) -> None:
    cis = small.servicenow_records(CI_TABLE)
    assert all(ci["name"] == ci["name"].upper() and ci["host_name"] == ci["host_name"].lower() for ci in cis)
    assert any(ci["fqdn"] == "" for ci in cis) and any(ci["fqdn"] for ci in cis)
    macs = [ci["mac_address"] for ci in cis]
    assert all(re.fullmatch(r"([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}", mac) for mac in macs)
    assert any(mac != mac.lower() for mac in macs) and any(mac != mac.upper() for mac in macs)


def test_tenable_identifiers(small: Estate) -> None:
    assets = small.tenable_assets()
    macs = [mac for a in assets for mac in a["mac_addresses"]]
    assert all(re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac) for mac in macs)
    assert Counter(macs)["02:00:4c:4f:4f:50"] >= 5
    assert Counter(macs)["00:00:00:00:00:00"] >= 2
    assert all(bool(a["bios_uuid"]) == a["has_agent"] for a in assets)
    assert any(a["netbios_names"] for a in assets) and all(a["hostnames"] for a in assets)
    assert any(a["deleted_at"] for a in assets) and any(a["terminated_at"] for a in assets)


def test_junk_serials_are_shared_and_tenable_serials_are_true(small: Estate) -> None:
    cis = small.servicenow_records(CI_TABLE)
    serials = Counter(ci["serial_number"] for ci in cis)
    assert max(serials[junk] for junk in JUNK_SERIALS) >= 5
    assert serials[""] >= 5
    tenable = _by_machine(small, "tenable", small.tenable_assets(), "id")
    compared = 0
    for ci in cis:
        machine = small.truth()[("servicenow", ci["sys_id"])]
        for asset in tenable.get(machine, []):
            if asset["serial_number"] and ci["serial_number"] and ci["serial_number"] not in JUNK_SERIALS:
                assert asset["serial_number"] == ci["serial_number"]
                compared += 1
    assert compared >= 10


def test_reimaged_machine_has_two_defender_ids(small: Estate) -> None:
    grouped = _by_machine(small, "ms-defender", small.defender_machines(), "id")
    twins = [records for records in grouped.values() if len(records) == 2]
    assert twins
    for records in twins:
        old, new = sorted(records, key=lambda r: r["lastSeen"])
        assert (old["healthStatus"], new["healthStatus"]) == ("Inactive", "Active")
        assert old["computerDnsName"] == new["computerDnsName"] and old["id"] != new["id"]


def test_an_ip_is_shared_by_two_different_machines(small: Estate) -> None:
    truth = small.truth()
    defender_ips = {m["lastIpAddress"]: truth[("ms-defender", m["id"])] for m in small.defender_machines()}
    reused = [
        asset
        for asset in small.tenable_assets()
        for ip in asset["ipv4s"]
        if ip in defender_ips and defender_ips[ip] != truth[("tenable", asset["id"])]
    ]
    assert reused


def test_same_short_name_in_two_domains_are_two_machines(small: Estate) -> None:
    truth = small.truth()
    by_fqdn = {fqdn: truth[("tenable", a["id"])] for a in small.tenable_assets() for fqdn in a["fqdns"]}
    corp, lab = by_fqdn["web01.corp.example.com"], by_fqdn["web01.lab.example.net"]
    assert corp != lab
    names = {ci["name"]: [] for ci in small.servicenow_records(CI_TABLE)}
    for ci in small.servicenow_records(CI_TABLE):
        names[ci["name"]].append(truth[("servicenow", ci["sys_id"])])
    assert {corp, lab} <= set(names["WEB01"])


def test_tenable_servicenow_sysid_points_at_the_same_machine(small: Estate) -> None:
    truth = small.truth()
    ci_ids = {ci["sys_id"] for ci in small.servicenow_records(CI_TABLE)}
    linked = [a for a in small.tenable_assets() if a["servicenow_sysid"]]
    for asset in linked:
        assert asset["servicenow_sysid"] in ci_ids
        assert truth[("servicenow", asset["servicenow_sysid"])] == truth[("tenable", asset["id"])]
    machines_in_both = {m for (k, _), m in truth.items() if k == "tenable"} & {
        m for (k, _), m in truth.items() if k == "servicenow"
    }
    assert 0.4 <= len(linked) / len(machines_in_both) <= 0.6


def test_retired_ci_still_active_in_defender(small: Estate) -> None:
    defender = _by_machine(small, "ms-defender", small.defender_machines(), "id")
    retired = [ci for ci in small.servicenow_records(CI_TABLE) if ci["install_status"] == "7"]
    assert len(retired) >= 2 and all(ci["operational_status"] == "6" for ci in retired)
    alive = [
        record
        for ci in retired
        for record in defender.get(small.truth()[("servicenow", ci["sys_id"])], [])
        if record["healthStatus"] == "Active" and small.now - _parse(record["lastSeen"]) < timedelta(days=1)
    ]
    assert alive


def test_os_disagrees_between_cmdb_and_defender_for_a_few(small: Estate) -> None:
    defender = _by_machine(small, "ms-defender", small.defender_machines(), "id")
    disagreements = 0
    for ci in small.servicenow_records(CI_TABLE):
        for record in defender.get(small.truth()[("servicenow", ci["sys_id"])], []):
            if record["healthStatus"] != "Active":
                continue
            reported = str(record["osBuild"]) if record["osBuild"] else record["version"]
            disagreements += reported not in ci["os_version"]
    assert 2 <= disagreements <= 15


# ---------------------------------------------------------------- ServiceNow content
def test_servicenow_values_are_strings_and_references_resolve(small: Estate) -> None:
    ids = {table: {r["sys_id"] for r in small.servicenow_records(table)} for table in small.SERVICENOW_TABLES}
    for table in small.SERVICENOW_TABLES:
        rows = small.servicenow_records(table)
        assert rows == sorted(rows, key=lambda r: r["sys_id"])
        for row in rows:
            assert all(isinstance(value, str) for value in row.values()), (table, row)
            for field, target in small.servicenow_references[table].items():
                assert row.get(field, "") == "" or row[field] in ids[target], (table, field)


def test_servicenow_tables_content(small: Estate) -> None:
    computers = small.servicenow_records("cmdb_ci_computer")
    classes = Counter(ci["sys_class_name"] for ci in computers)
    assert set(classes) == {"cmdb_ci_computer", "cmdb_ci_win_server", "cmdb_ci_linux_server"}
    servers = small.servicenow_records("cmdb_ci_server")
    assert len(servers) == classes["cmdb_ci_win_server"] + classes["cmdb_ci_linux_server"]
    assert max(Counter(ci["sys_updated_on"] for ci in computers).values()) >= 250
    services = small.servicenow_records("cmdb_ci_service")
    assert {"Payroll", "Online Banking"} <= {s["name"] for s in services}
    assert {s["busines_criticality"] for s in services} >= {"1 - most critical", "4 - not critical"}
    relations = small.servicenow_records("cmdb_rel_ci")
    assert relations and {r["type"] for r in relations} == {"Depends on::Used by"}
    assert 12 <= len(small.servicenow_records("sc_cat_item")) <= 20
    incidents = small.servicenow_records("incident")
    assert any(i["cmdb_ci"] == "" for i in incidents) and any(i["business_service"] == "" for i in incidents)
    assert {i["priority"] for i in incidents} <= {"1", "2", "3", "4", "5"}
    audit = small.servicenow_records("sys_audit_delete")
    assert len(audit) == 2 and all(TABLE_TIME.match(a["sys_created_on"]) for a in audit)
    assert len(small.servicenow_records("sys_user")) >= 50


# ---------------------------------------------------------------- Tenable findings and Defender content
def test_tenable_findings_shape_and_count(small: Estate) -> None:
    findings = list(small.tenable_findings())
    assert len(findings) == small.tenable_finding_count()
    assert len({f["finding_id"] for f in findings}) == len(findings)
    assert {f["state"] for f in findings} == {"OPEN", "REOPENED", "FIXED"}
    assert all(f["last_fixed"] for f in findings if f["state"] == "FIXED")
    assert all(TENABLE_TIME.match(f["first_found"]) and TENABLE_TIME.match(f["last_found"]) for f in findings)
    assert {f["severity"] for f in findings} == {"info", "low", "medium", "high", "critical"}
    assert all(f["severity_default_id"] == ("info", "low", "medium", "high", "critical").index(f["plugin"]["risk_factor"])
               for f in findings)  # fmt: skip
    assert any(not f["plugin"]["cve"] for f in findings)
    assert all(re.fullmatch(r"CVE-\d{4}-\d{4,}", cve) for f in findings for cve in f["plugin"]["cve"])
    live = [a["id"] for a in small.tenable_assets() if not a["deleted_at"] and a["has_plugin_results"]]
    order = list(dict.fromkeys(f["asset"]["uuid"] for f in findings))
    assert order == [asset for asset in live if asset in set(order)]
    assert 15 <= len(findings) / len(order) <= 30


def test_defender_and_tenable_share_cves_for_the_same_machine(small: Estate) -> None:
    truth = small.truth()
    tenable_cves: dict[str, set[str]] = defaultdict(set)
    for finding in small.tenable_findings():
        tenable_cves[truth[("tenable", finding["asset"]["uuid"])]].update(finding["plugin"]["cve"])
    defender_cves: dict[str, set[str]] = defaultdict(set)
    rows = list(small.defender_vulnerabilities())
    assert len(rows) == small.defender_vulnerability_count()
    assert all(TABLE_TIME.match(r["firstSeenTimestamp"]) for r in rows)
    for row in rows:
        if row["cveId"]:
            defender_cves[truth[("ms-defender", row["deviceId"])]].add(row["cveId"])
    shared = [m for m in defender_cves if m in tenable_cves]
    overlapping = [m for m in shared if defender_cves[m] & tenable_cves[m]]
    assert len(overlapping) >= 0.9 * len(shared) > 100


def test_defender_alerts_and_incidents(small: Estate) -> None:
    alerts = small.defender_alerts()
    machines = {m["id"] for m in small.defender_machines()}
    assert 0.07 <= len(alerts) / len(machines) <= 0.13
    assert all(
        a["machineId"] in machines and a["evidence"] and a["mitreTechniques"] is not None for a in alerts
    )
    assert max(Counter(a["lastUpdateTime"] for a in alerts).values()) >= 3
    incidents = {i["incidentId"]: i for i in small.defender_incidents()}
    assert all(a["incidentId"] in incidents for a in alerts)
    merged = [i for i in incidents.values() if i["redirectIncidentId"]]
    assert len(merged) == 1 and merged[0]["redirectIncidentId"] in incidents and not merged[0]["alerts"]
    assert sum(len(i["alerts"]) for i in incidents.values()) == len(alerts)


def test_defender_change_feed_history(small: Estate) -> None:
    changes = small.defender_vulnerability_changes(small.now - timedelta(days=14))
    assert changes and {c["status"] for c in changes} <= {"New", "Fixed", "Updated"}
    assert all(TABLE_TIME.match(c["eventTimestamp"]) for c in changes)
    assert small.defender_vulnerability_changes(small.now + timedelta(seconds=1)) == []


# ---------------------------------------------------------------- advance
def test_advance_moves_time_and_generation(advanced: tuple[dict[str, Any], Estate]) -> None:
    before, estate = advanced
    assert estate.generation == 1 and estate.now == before["now"] + timedelta(hours=6)


def test_advance_fixes_reopens_and_adds_findings(advanced: tuple[dict[str, Any], Estate]) -> None:
    before, estate = advanced
    start, end = before["now"], estate.now
    findings = {f["finding_id"]: f for f in estate.tenable_findings()}
    assert len(findings) == estate.tenable_finding_count()
    changed = [f for fid, f in findings.items() if fid in before["findings"] and f != before["findings"][fid]]
    fixed = [f for f in changed if f["state"] == "FIXED"]
    reopened = [f for f in changed if f["state"] == "REOPENED"]
    assert fixed and all(_in_window(f["last_fixed"], start, end) for f in fixed)
    assert reopened and all(_in_window(f["last_found"], start, end) for f in reopened)
    assert all(before["findings"][f["finding_id"]]["state"] == "FIXED" for f in reopened)
    assert all(_in_window(f["indexed"], start, end) for f in changed)
    new = [f for fid, f in findings.items() if fid not in before["findings"]]
    assert new and all(f["state"] == "OPEN" and _in_window(f["first_found"], start, end) for f in new)


def test_advance_changed_records_carry_timestamps_in_the_window(
    advanced: tuple[dict[str, Any], Estate],
) -> None:
    before, estate = advanced
    start, end = before["now"], estate.now
    assets = {a["id"]: a for a in estate.tenable_assets()}
    changed_assets = [a for i, a in assets.items() if a != before["tenable_assets"][i]]
    assert changed_assets and all(_in_window(a["updated_at"], start, end) for a in changed_assets)
    newly_deleted = [
        a for i, a in assets.items() if a["deleted_at"] and not before["tenable_assets"][i]["deleted_at"]
    ]
    assert len(newly_deleted) == 1 and _in_window(newly_deleted[0]["deleted_at"], start, end)
    for table in estate.SERVICENOW_TABLES:
        for row in estate.servicenow_records(table):
            old = before["servicenow"][table].get(row["sys_id"])
            if old != row:
                assert _in_window(row["sys_updated_on"], start, end), (table, row["sys_id"])
    alerts = [a for a in estate.defender_alerts() if before["alerts"].get(a["id"]) != a]
    assert alerts and all(_in_window(a["lastUpdateTime"], start, end) for a in alerts)
    resolved = [a for a in alerts if a["id"] in before["alerts"] and a["status"] == "Resolved"]
    assert resolved and all(_in_window(a["resolvedTime"], start, end) for a in resolved)
    incidents = [{k: v for k, v in i.items() if k != "alerts"} for i in estate.defender_incidents()]
    updated = [i for i in incidents if before["incidents"].get(i["incidentId"]) != i]
    assert updated and all(_in_window(i["lastUpdateTime"], start, end) for i in updated)
    assert max(_timestamps(_everything(estate))) <= end


def test_advance_hard_deletes_a_ci_with_an_audit_row(advanced: tuple[dict[str, Any], Estate]) -> None:
    before, estate = advanced
    current = {ci["sys_id"] for ci in estate.servicenow_records(CI_TABLE)}
    gone = set(before["servicenow"][CI_TABLE]) - current
    assert gone
    audit = {a["documentkey"]: a for a in estate.servicenow_records("sys_audit_delete")}
    for sys_id in gone:
        row = audit[sys_id]
        assert row["tablename"] == before["servicenow"][CI_TABLE][sys_id]["sys_class_name"]
        assert _in_window(row["sys_created_on"], before["now"], estate.now)
        assert ("servicenow", sys_id) in estate.truth()
    children = {r["child"] for r in estate.servicenow_records("cmdb_rel_ci")}
    assert not children & gone


def test_advance_defender_machine_goes_inactive_and_vulns_change(
    advanced: tuple[dict[str, Any], Estate],
) -> None:
    before, estate = advanced
    machines = {m["id"]: m for m in estate.defender_machines()}
    went_inactive = [
        i
        for i, m in machines.items()
        if m["healthStatus"] == "Inactive" and before["machines"][i]["healthStatus"] == "Active"
    ]
    assert len(went_inactive) == 1
    refreshed = [m for i, m in machines.items() if m["lastSeen"] != before["machines"][i]["lastSeen"]]
    assert refreshed and all(_in_window(m["lastSeen"], before["now"], estate.now) for m in refreshed)
    changes = estate.defender_vulnerability_changes(before["now"] + timedelta(seconds=1))
    assert {c["status"] for c in changes} == {"New", "Fixed", "Updated"}
    assert all(_in_window(c["eventTimestamp"], before["now"], estate.now) for c in changes)
    current = {v["id"] for v in estate.defender_vulnerabilities()}
    assert len(current) == estate.defender_vulnerability_count()
    fixed = {c["id"] for c in changes if c["status"] == "Fixed"}
    added = {c["id"] for c in changes if c["status"] == "New"}
    assert fixed <= before["vulns"] and not fixed & current
    assert added and added <= current and not added & before["vulns"]
