"""The ServiceNow simulator over real loopback HTTP: auth, ACLs, encoded queries, paging, rendering,
stats, rate limiting, OAuth and the transaction quota."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from aria_sync.simulators.framework import Fault
from aria_sync.simulators.servicenow import (
    ITIL_ONLY_USER,
    OAUTH_CLIENT,
    RATE_LIMIT_RULE_SYS_ID,
    start_servicenow,
)
from aria_sync.simulators.servicenow_query import parse_encoded_query

BULK_DISCOVERY_TIME = "2026-12-06 02:00:00"
ANCHOR = dt.datetime(2026, 12, 7, 0, 0, tzinfo=dt.UTC)
SN = "%Y-%m-%d %H:%M:%S"


def _sys_id(kind: str, number: int) -> str:
    return hashlib.md5(f"{kind}-{number}".encode()).hexdigest()


class FakeEstate:
    """Just the estate surface the ServiceNow simulator reads, with records in the wire shape (every value a
    string, references as sys_id or "")."""

    SERVICENOW_TABLES: tuple[str, ...] = (
        "cmdb_ci_computer",
        "cmdb_ci_server",
        "cmdb_ci_win_server",
        "cmdb_ci_linux_server",
        "cmdb_ci_service",
        "sc_cat_item",
        "incident",
        "sys_user",
        "sys_audit_delete",
        "cmdb_rel_ci",
    )
    PARENTS = {
        "cmdb_ci_server": "cmdb_ci_computer",
        "cmdb_ci_win_server": "cmdb_ci_server",
        "cmdb_ci_linux_server": "cmdb_ci_server",
    }

    def __init__(self) -> None:
        self.generation = 0
        self.now = ANCHOR
        self.credentials = {
            "servicenow": {"username": "aria.integration", "password": "demo-servicenow-password"},
        }
        self.servicenow_references = {
            table: {"assigned_to": "sys_user", "manufacturer": "core_company"}
            for table in ("cmdb_ci_computer", "cmdb_ci_server", "cmdb_ci_win_server", "cmdb_ci_linux_server")
        }
        self.servicenow_references["cmdb_ci_service"] = {"owned_by": "sys_user", "parent": "cmdb_ci_service"}
        self.servicenow_references["incident"] = {
            "cmdb_ci": "cmdb_ci",
            "business_service": "cmdb_ci_service",
            "caller_id": "sys_user",
            "assigned_to": "sys_user",
        }
        self.servicenow_references["cmdb_rel_ci"] = {"parent": "cmdb_ci", "child": "cmdb_ci"}
        self.rows: dict[str, dict[str, dict[str, str]]] = {t: {} for t in self.SERVICENOW_TABLES}
        self._deleted = 0
        users = [("Jane Doe", "jane.doe"), ("Priya Shah", "priya.shah"), ("Ola Berg", "ola.berg")]
        for number, (name, user_name) in enumerate(users):
            self._put(
                "sys_user",
                {
                    "sys_id": _sys_id("user", number),
                    "sys_class_name": "sys_user",
                    "name": name,
                    "user_name": user_name,
                    "email": f"{user_name}@example.com",
                    "sys_updated_on": "2026-01-01 00:00:00",
                },
            )
        for number in range(320):
            cls = (
                "cmdb_ci_computer"
                if number < 180
                else "cmdb_ci_win_server"
                if number < 260
                else "cmdb_ci_linux_server"
            )
            retired = number % 50 == 7
            row = {
                "sys_id": _sys_id("ci", number),
                "sys_class_name": cls,
                "name": f"HOST-{number:04d}",
                "host_name": f"host-{number:04d}",
                "install_status": "7" if retired else "1",
                "operational_status": "6" if retired else "1",
                "assigned_to": _sys_id("user", number % 3) if number % 4 else "",
                "manufacturer": _sys_id("company", 1),
                "sys_mod_count": str(number % 13),
                "sys_created_on": "2025-03-01 10:00:00",
                # 270 records of one bulk discovery run share a timestamp: the paging tie-break case.
                "sys_updated_on": BULK_DISCOVERY_TIME
                if number < 270
                else f"2026-12-05 {number % 24:02d}:15:00",
            }
            if cls != "cmdb_ci_computer":
                row["classification"] = "Production"  # a server-only column
            self._put(cls, row)
        for number, (name, owner) in enumerate([("Payroll", 1), ("Online Banking", 0), ("Intranet", 2)]):
            self._put(
                "cmdb_ci_service",
                {
                    "sys_id": _sys_id("service", number),
                    "sys_class_name": "cmdb_ci_service",
                    "name": name,
                    "number": f"BSN00010{number}",
                    "busines_criticality": f"{number + 1} - most critical"
                    if number == 0
                    else f"{number + 1} - less critical",
                    "owned_by": _sys_id("user", owner),
                    "parent": "",
                    "install_status": "1",
                    "operational_status": "1",
                    "sys_updated_on": "2026-11-01 08:00:05",
                },
            )
        for number in range(6):
            self._put(
                "incident",
                {
                    "sys_id": _sys_id("incident", number),
                    "sys_class_name": "incident",
                    "number": f"INC00102{number:02d}",
                    "short_description": f"Laptop flagged by EDR {number}",
                    "state": ["1", "2", "2", "6", "7", "8"][number],
                    "priority": str(number % 5 + 1),
                    "impact": str(number % 3 + 1),
                    "urgency": "1",
                    "active": "true" if number < 3 else "false",
                    "cmdb_ci": _sys_id("ci", number) if number != 2 else "",
                    "business_service": _sys_id("service", 0) if number < 4 else "",
                    "caller_id": _sys_id("user", 0),
                    "assigned_to": "",
                    "opened_at": "2026-12-06 07:12:44",
                    "sys_updated_on": f"2026-12-06 08:0{number}:10",
                },
            )
        for number in range(3):
            self._put(
                "sc_cat_item",
                {
                    "sys_id": _sys_id("item", number),
                    "sys_class_name": "sc_cat_item",
                    "name": f"Catalogue item {number}",
                    "active": "true",
                    "price": "1200.00",
                    "sys_updated_on": "2026-03-02 10:00:00",
                },
            )
        for number in range(2):
            self._audit_delete("cmdb_ci_computer", _sys_id("gone", number), "2026-11-20 03:00:00")

    def _put(self, table: str, row: dict[str, str]) -> None:
        self.rows[table][row["sys_id"]] = row

    def _audit_delete(self, table: str, sys_id: str, when: str) -> None:
        self._deleted += 1
        self._put(
            "sys_audit_delete",
            {
                "sys_id": _sys_id("audit", self._deleted),
                "tablename": table,
                "documentkey": sys_id,
                "display_value": "",
                "payload": "<xml/>",
                "sys_created_on": when,
                "sys_updated_on": when,
            },
        )

    def _classes(self, table: str) -> set[str]:
        classes = {table}
        while True:
            grown = classes | {child for child, parent in self.PARENTS.items() if parent in classes}
            if grown == classes:
                return classes
            classes = grown

    def servicenow_records(self, table: str) -> list[dict[str, str]]:
        rows = [row for cls in self._classes(table) for row in self.rows.get(cls, {}).values()]
        return sorted(rows, key=lambda row: row["sys_id"])

    def advance(self) -> None:
        old = self.now
        self.generation += 1
        self.now = old + dt.timedelta(hours=6)
        stamp = (old + dt.timedelta(hours=1)).strftime(SN)
        for number in (3, 150, 200):
            cls = next(
                c
                for c in ("cmdb_ci_computer", "cmdb_ci_win_server", "cmdb_ci_linux_server")
                if _sys_id("ci", number) in self.rows[c]
            )
            row = dict(self.rows[cls][_sys_id("ci", number)])
            row["sys_updated_on"] = stamp
            row["sys_mod_count"] = str(int(row["sys_mod_count"]) + 1)
            self._put(cls, row)
        victim = _sys_id("ci", 250)
        del self.rows["cmdb_ci_win_server"][victim]
        self._audit_delete("cmdb_ci_win_server", victim, (old + dt.timedelta(hours=2)).strftime(SN))
        incident = dict(self.rows["incident"][_sys_id("incident", 1)])
        incident["state"] = "6"
        incident["sys_updated_on"] = (old + dt.timedelta(hours=3)).strftime(SN)
        self._put("incident", incident)


@pytest.fixture(scope="module")
def shared_instance() -> Iterator[tuple[FakeEstate, Any]]:
    """One instance for the tests that only read (each server stop costs half a second)."""
    shared_estate = FakeEstate()
    srv = start_servicenow(shared_estate)
    yield shared_estate, srv
    srv.stop()


@pytest.fixture
def estate(shared_instance: tuple[FakeEstate, Any]) -> FakeEstate:
    return shared_instance[0]


@pytest.fixture
def server(shared_instance: tuple[FakeEstate, Any]) -> Any:
    srv = shared_instance[1]
    srv.faults.clear()
    srv.request_log.clear()
    return srv


@pytest.fixture
def mutable_instance() -> Iterator[tuple[FakeEstate, httpx.Client]]:
    """A private estate and instance for the tests that advance the estate."""
    own_estate = FakeEstate()
    srv = start_servicenow(own_estate)
    try:
        with _client(srv, own_estate) as http:
            yield own_estate, http
    finally:
        srv.stop()


def _client(server: Any, estate: Any, user: dict[str, str] | None = None) -> httpx.Client:
    creds = user or estate.credentials["servicenow"]
    return httpx.Client(
        base_url=server.base_url,
        auth=(creds["username"], creds["password"]),
        headers={"Accept": "application/json"},
        timeout=10,
    )


@pytest.fixture
def client(server: Any, estate: FakeEstate) -> Iterator[httpx.Client]:
    with _client(server, estate) as http:
        yield http


def _links(header: str) -> dict[str, str]:
    return {rel: url for url, rel in re.findall(r'<([^>]+)>;rel="(\w+)"', header)}


# ---------------------------------------------------------------------------- auth and ACLs


def test_bad_or_missing_credentials_get_the_exact_401_envelope(server: Any) -> None:
    expected = {
        "error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"},
        "status": "failure",
    }
    for auth in (("aria.integration", "wrong"), ("nobody", "x"), None):
        response = httpx.get(f"{server.base_url}/api/now/table/incident", auth=auth)
        assert response.status_code == 401
        assert response.json() == expected
        assert response.headers["content-type"] == "application/json;charset=UTF-8"
    assert [entry.status for entry in server.requests("/api/now/table/incident")] == [401, 401, 401]


def test_itil_only_user_reads_itsm_tables_but_not_the_cmdb_computers(server: Any, estate: FakeEstate) -> None:
    with _client(server, estate, ITIL_ONLY_USER) as http:
        for table in ("incident", "sc_cat_item", "cmdb_ci_service"):
            assert http.get(f"/api/now/table/{table}").status_code == 200
        for table in ("cmdb_ci_computer", "cmdb_ci_win_server", "sys_audit_delete"):
            response = http.get(f"/api/now/table/{table}", params={"sysparm_limit": 1})
            assert response.status_code == 403
            body = response.json()
            assert body["status"] == "failure"
            assert body["error"]["message"] == "Insufficient rights to query records"
            assert table in body["error"]["detail"]
        assert (
            http.get("/api/now/stats/cmdb_ci_computer", params={"sysparm_count": "true"}).status_code == 403
        )
        # A single record hidden by the ACL looks like a missing one.
        assert http.get(f"/api/now/table/cmdb_ci_computer/{_sys_id('ci', 1)}").status_code == 404


def test_unknown_table_and_unknown_sys_id_envelopes(client: httpx.Client) -> None:
    response = client.get("/api/now/table/cmdb_ci_computr")
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "Invalid table cmdb_ci_computr",
            "detail": "Table cmdb_ci_computr does not exist",
        },
        "status": "failure",
    }
    response = client.get("/api/now/table/incident/00000000000000000000000000000000")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "message": "No Record found",
        "detail": "Record doesn't exist or ACL restricts the record retrieval",
    }


def test_versioned_aliases_and_single_record(client: httpx.Client) -> None:
    sys_id = _sys_id("incident", 0)
    for prefix in ("/api/now", "/api/now/v1", "/api/now/v2"):
        response = client.get(
            f"{prefix}/table/incident/{sys_id}", params={"sysparm_exclude_reference_link": "true"}
        )
        assert response.status_code == 200
        assert response.json()["result"]["number"] == "INC0010200"
        assert response.json()["result"]["caller_id"] == _sys_id("user", 0)


def test_write_methods_are_refused(client: httpx.Client) -> None:
    assert client.post("/api/now/table/incident", json={"short_description": "x"}).status_code == 405


# ---------------------------------------------------------------------------- paging


def test_paging_walks_every_record_once_across_timestamp_ties(
    server: Any, client: httpx.Client, estate: FakeEstate
) -> None:
    params = {
        "sysparm_query": "ORDERBYsys_updated_on^ORDERBYsys_id",
        "sysparm_limit": "100",
        "sysparm_fields": "sys_id,sys_updated_on",
    }
    url: str | None = f"{server.base_url}/api/now/table/cmdb_ci_computer"
    seen: list[str] = []
    rel_sets: list[set[str]] = []
    request_params: dict[str, str] | None = params
    while url:
        response = client.get(url, params=request_params)
        assert response.status_code == 200
        assert response.headers["X-Total-Count"] == "320"
        link = response.headers["Link"]
        assert ", " not in link and " " not in link
        links = _links(link)
        rel_sets.append(set(links))
        seen.extend(row["sys_id"] for row in response.json()["result"])
        url, request_params = links.get("next"), None
    assert len(seen) == len(set(seen)) == 320
    assert set(seen) == {row["sys_id"] for row in estate.servicenow_records("cmdb_ci_computer")}
    assert rel_sets == [
        {"first", "next", "last"},
        {"first", "prev", "next", "last"},
        {"first", "prev", "next", "last"},
        {"first", "prev", "last"},
    ]
    offsets = [
        int(entry.query.get("sysparm_offset", ["0"])[0]) for entry in server.requests("cmdb_ci_computer")
    ]
    assert offsets == [0, 100, 200, 300]
    # The later pages kept the caller's query and field list.
    last = server.requests("cmdb_ci_computer")[-1]
    assert last.query["sysparm_query"] == ["ORDERBYsys_updated_on^ORDERBYsys_id"]
    assert last.query["sysparm_limit"] == ["100"]


def test_bulk_discovery_tie_really_spans_page_boundaries(client: httpx.Client) -> None:
    response = client.get(
        "/api/now/table/cmdb_ci_computer",
        params={
            "sysparm_query": f"sys_updated_on={BULK_DISCOVERY_TIME}",
            "sysparm_no_count": "false",
            "sysparm_limit": 1,
        },
    )
    assert int(response.headers["X-Total-Count"]) >= 250


def test_link_last_and_prev_offsets(client: httpx.Client) -> None:
    response = client.get(
        "/api/now/table/cmdb_ci_computer", params={"sysparm_limit": "100", "sysparm_offset": "150"}
    )
    links = _links(response.headers["Link"])
    assert "sysparm_offset=0" in links["first"]
    assert "sysparm_offset=50" in links["prev"]
    assert "sysparm_offset=250" in links["next"]
    assert "sysparm_offset=300" in links["last"]
    assert links["first"].startswith(str(client.base_url).rstrip("/") + "/api/now/table/cmdb_ci_computer?")


def test_single_page_has_no_link_header_and_defaults(client: httpx.Client) -> None:
    response = client.get("/api/now/table/incident")
    assert "Link" not in response.headers
    assert response.headers["X-Total-Count"] == "6"
    assert len(response.json()["result"]) == 6
    # No sysparm_limit: the 10 000 row default serves all 320 CIs in one page.
    response = client.get("/api/now/table/cmdb_ci_computer")
    assert len(response.json()["result"]) == 320
    assert "Link" not in response.headers


def test_offset_past_end_no_count_and_suppressed_links(client: httpx.Client) -> None:
    response = client.get("/api/now/table/incident", params={"sysparm_offset": "50"})
    assert response.status_code == 200
    assert response.json() == {"result": []}
    response = client.get(
        "/api/now/table/cmdb_ci_computer",
        params={
            "sysparm_limit": "100",
            "sysparm_no_count": "true",
            "sysparm_suppress_pagination_header": "true",
        },
    )
    assert "X-Total-Count" not in response.headers
    assert "Link" not in response.headers
    assert len(response.json()["result"]) == 100


# ---------------------------------------------------------------------------- incremental and removals


def test_watermark_query_after_advance_returns_only_changed_records(
    mutable_instance: tuple[FakeEstate, httpx.Client],
) -> None:
    estate, client = mutable_instance
    watermark = estate.now.strftime(SN)
    query = f"sys_updated_on>={watermark}^ORDERBYsys_updated_on^ORDERBYsys_id"
    assert client.get("/api/now/table/cmdb_ci_computer", params={"sysparm_query": query}).json() == {
        "result": []
    }
    estate.advance()
    rows = client.get("/api/now/table/cmdb_ci_computer", params={"sysparm_query": query}).json()["result"]
    assert sorted(row["sys_id"] for row in rows) == sorted(_sys_id("ci", n) for n in (3, 150, 200))
    assert all(row["sys_updated_on"] >= watermark for row in rows)
    incidents = client.get("/api/now/table/incident", params={"sysparm_query": query}).json()["result"]
    assert [row["number"] for row in incidents] == ["INC0010201"]


def test_hard_delete_shows_up_in_sys_audit_delete_only(
    mutable_instance: tuple[FakeEstate, httpx.Client],
) -> None:
    estate, client = mutable_instance
    victim = _sys_id("ci", 250)
    assert client.get(f"/api/now/table/cmdb_ci_computer/{victim}").status_code == 200
    watermark = estate.now.strftime(SN)
    estate.advance()
    assert client.get(f"/api/now/table/cmdb_ci_computer/{victim}").status_code == 404
    ids = client.get("/api/now/table/cmdb_ci_computer", params={"sysparm_fields": "sys_id"}).json()["result"]
    assert victim not in {row["sys_id"] for row in ids}
    audit = client.get(
        "/api/now/table/sys_audit_delete",
        params={"sysparm_query": f"sys_created_on>={watermark}^tablenameSTARTSWITHcmdb_ci"},
    ).json()["result"]
    assert [(row["tablename"], row["documentkey"]) for row in audit] == [("cmdb_ci_win_server", victim)]
    everything = client.get("/api/now/table/sys_audit_delete").json()["result"]
    assert len(everything) == 3


def test_retired_cis_are_present(client: httpx.Client) -> None:
    rows = client.get(
        "/api/now/table/cmdb_ci_computer", params={"sysparm_query": "install_status=7^operational_status=6"}
    ).json()["result"]
    assert len(rows) == 7
    assert {row["install_status"] for row in rows} == {"7"}


# ---------------------------------------------------------------------------- encoded queries


def test_unknown_field_in_a_condition_is_ignored(client: httpx.Client) -> None:
    exact = client.get("/api/now/table/cmdb_ci_computer", params={"sysparm_query": "name=HOST-0001"})
    assert len(exact.json()["result"]) == 1
    typo = client.get("/api/now/table/cmdb_ci_computer", params={"sysparm_query": "nmae=HOST-0001"})
    assert typo.headers["X-Total-Count"] == "320"


def test_in_not_equal_and_orderbydesc(client: httpx.Client) -> None:
    wanted = [_sys_id("incident", n) for n in (0, 3, 5)]
    rows = client.get(
        "/api/now/table/incident",
        params={"sysparm_query": f"sys_idIN{','.join(wanted)}^ORDERBYDESCnumber"},
    ).json()["result"]
    assert [row["number"] for row in rows] == ["INC0010205", "INC0010203", "INC0010200"]
    rows = client.get("/api/now/table/incident", params={"sysparm_query": "state!=2^ORDERBYnumber"}).json()[
        "result"
    ]
    assert [row["state"] for row in rows] == ["1", "6", "7", "8"]
    rows = client.get(
        "/api/now/table/incident",
        params={"sysparm_query": "active=true^priority=1^ORpriority=3^ORDERBYpriority^ORDERBYDESCnumber"},
    ).json()["result"]
    assert [(row["priority"], row["number"]) for row in rows] == [("1", "INC0010200"), ("3", "INC0010202")]


def test_like_startswith_empty_and_range_operators(client: httpx.Client) -> None:
    def count(query: str, table: str = "incident") -> int:
        response = client.get(f"/api/now/table/{table}", params={"sysparm_query": query})
        return int(response.headers["X-Total-Count"])

    assert count("short_descriptionLIKEflagged by edr") == 6
    assert count("numberSTARTSWITHINC001020") == 6
    assert count("cmdb_ciISEMPTY") == 1
    assert count("business_serviceISNOTEMPTY") == 4
    assert count("priority>=3") == 3
    assert count("priority<2") == 2
    assert count("sys_updated_on>2026-12-06 08:03:10") == 2
    assert count("sys_updated_on<=2026-12-06 08:03:10") == 4
    assert count("sys_mod_count>9", "cmdb_ci_computer") == sum(1 for n in range(320) if n % 13 > 9)


def test_query_parser_or_and_new_query_groups() -> None:
    fields = {"a", "b", "c"}
    query = parse_encoded_query("a=1^b=2^ORc=3^NQa=9^ORDERBYb^ORDERBYDESCc^ORDERBYzzz", fields)
    rows = [
        {"a": "1", "b": "2", "c": "0"},
        {"a": "1", "b": "0", "c": "3"},
        {"a": "1", "b": "0", "c": "0"},
        {"a": "9", "b": "5", "c": "5"},
    ]
    assert [query.matches(row) for row in rows] == [True, True, False, True]
    assert query.order_by == [("b", False), ("c", True)]
    assert query.ignored_terms == ["ORDERBYzzz"]
    relative = parse_encoded_query("aRELATIVEGT@hour@ago@48", fields, now=ANCHOR)
    assert relative.groups[0][0][0].value == "2026-12-05 00:00:00"


# ---------------------------------------------------------------------------- rendering


def test_raw_values_are_strings_and_references_carry_links(server: Any, client: httpx.Client) -> None:
    rows = client.get("/api/now/table/incident", params={"sysparm_query": "ORDERBYnumber"}).json()["result"]
    for row in rows:
        for column, value in row.items():
            assert isinstance(value, str | dict), column
    first = rows[0]
    assert first["business_service"] == {
        "link": f"{server.base_url}/api/now/table/cmdb_ci_service/{_sys_id('service', 0)}",
        "value": _sys_id("service", 0),
    }
    assert first["assigned_to"] == ""  # empty reference
    assert rows[2]["cmdb_ci"] == ""
    assert first["opened_at"] == "2026-12-06 07:12:44"
    plain = client.get(
        f"/api/now/table/incident/{_sys_id('incident', 0)}", params={"sysparm_exclude_reference_link": "true"}
    ).json()["result"]
    assert plain["business_service"] == _sys_id("service", 0)
    assert plain["assigned_to"] == ""


def test_display_value_true_renders_names_labels_and_local_time(server: Any, client: httpx.Client) -> None:
    row = client.get(
        f"/api/now/table/incident/{_sys_id('incident', 1)}", params={"sysparm_display_value": "true"}
    ).json()["result"]
    assert row["business_service"] == {
        "display_value": "Payroll",
        "link": f"{server.base_url}/api/now/table/cmdb_ci_service/{_sys_id('service', 0)}",
    }
    assert row["caller_id"]["display_value"] == "Jane Doe"
    assert row["cmdb_ci"]["display_value"] == "HOST-0001"
    assert row["state"] == "In Progress"
    assert row["priority"] == "2 - High"
    assert row["impact"] == "2 - Medium"
    assert row["urgency"] == "1 - High"
    assert row["opened_at"] == "12/05/2026 23:12:44"  # America/Los_Angeles, PST
    assert row["assigned_to"] == ""
    assert row["sys_class_name"] == "Incident"
    row = client.get(
        "/api/now/table/cmdb_ci_service",
        params={
            "sysparm_display_value": "true",
            "sysparm_exclude_reference_link": "true",
            "sysparm_query": "name=Payroll",
        },
    ).json()["result"][0]
    assert row["owned_by"] == "Priya Shah"
    assert row["install_status"] == "Installed"
    assert row["operational_status"] == "Operational"
    assert row["sys_class_name"] == "Business Service"


def test_display_value_all_makes_every_field_an_object(server: Any, client: httpx.Client) -> None:
    row = client.get(
        f"/api/now/table/incident/{_sys_id('incident', 1)}",
        params={"sysparm_display_value": "all", "sysparm_exclude_reference_link": "true"},
    ).json()["result"]
    assert all(isinstance(value, dict) for value in row.values())
    assert row["state"] == {"display_value": "In Progress", "value": "2"}
    assert row["number"] == {"display_value": "INC0010201", "value": "INC0010201"}
    assert row["business_service"] == {"display_value": "Payroll", "value": _sys_id("service", 0)}
    assert row["opened_at"] == {"display_value": "12/05/2026 23:12:44", "value": "2026-12-06 07:12:44"}
    assert row["assigned_to"] == {"display_value": "", "value": ""}
    linked = client.get(
        f"/api/now/table/incident/{_sys_id('incident', 1)}", params={"sysparm_display_value": "all"}
    ).json()["result"]
    assert linked["caller_id"] == {
        "display_value": "Jane Doe",
        "value": _sys_id("user", 0),
        "link": f"{server.base_url}/api/now/table/sys_user/{_sys_id('user', 0)}",
    }


def test_display_time_zone_and_format_are_configurable(estate: FakeEstate) -> None:
    srv = start_servicenow(
        estate, display_timezone="Europe/Berlin", display_datetime_format="%d.%m.%Y %H:%M:%S"
    )
    try:
        with _client(srv, estate) as http:
            row = http.get(
                f"/api/now/table/incident/{_sys_id('incident', 0)}", params={"sysparm_display_value": "true"}
            ).json()["result"]
        assert row["opened_at"] == "06.12.2026 08:12:44"
    finally:
        srv.stop()


def test_fields_selection_and_dot_walking(client: httpx.Client) -> None:
    row = client.get(
        f"/api/now/table/incident/{_sys_id('incident', 0)}",
        params={"sysparm_fields": "number,caller_id.email,no_such_column,state"},
    ).json()["result"]
    assert row == {"number": "INC0010200", "caller_id.email": "jane.doe@example.com", "state": "1"}


# ---------------------------------------------------------------------------- inheritance


def test_parent_tables_include_child_classes_with_parent_columns_only(client: httpx.Client) -> None:
    computers = client.get("/api/now/table/cmdb_ci_computer").json()["result"]
    classes = {row["sys_class_name"] for row in computers}
    assert classes == {"cmdb_ci_computer", "cmdb_ci_win_server", "cmdb_ci_linux_server"}
    assert all("classification" not in row for row in computers)
    servers = client.get("/api/now/table/cmdb_ci_server").json()["result"]
    assert {row["sys_class_name"] for row in servers} == {"cmdb_ci_win_server", "cmdb_ci_linux_server"}
    assert len(servers) == 140
    assert all(row["classification"] == "Production" for row in servers)
    linux = client.get("/api/now/table/cmdb_ci_linux_server").json()["result"]
    assert len(linux) == 60
    everything = client.get("/api/now/stats/cmdb_ci", params={"sysparm_count": "true"}).json()
    assert everything == {"result": {"stats": {"count": "323"}}}


# ---------------------------------------------------------------------------- stats


def test_stats_count_group_by_and_aggregates(client: httpx.Client) -> None:
    response = client.get(
        "/api/now/stats/incident", params={"sysparm_count": "true", "sysparm_query": "active=true"}
    )
    assert response.json() == {"result": {"stats": {"count": "3"}}}
    grouped = client.get(
        "/api/now/stats/cmdb_ci_computer",
        params={"sysparm_count": "true", "sysparm_group_by": "install_status"},
    ).json()["result"]
    assert grouped == [
        {"stats": {"count": "313"}, "groupby_fields": [{"field": "install_status", "value": "1"}]},
        {"stats": {"count": "7"}, "groupby_fields": [{"field": "install_status", "value": "7"}]},
    ]
    labelled = client.get(
        "/api/now/stats/incident",
        params={"sysparm_count": "true", "sysparm_group_by": "state", "sysparm_display_value": "true"},
    ).json()["result"]
    assert {item["groupby_fields"][0]["value"]: item["stats"]["count"] for item in labelled} == {
        "New": "1",
        "In Progress": "2",
        "Resolved": "1",
        "Closed": "1",
        "Canceled": "1",
    }
    sums = client.get(
        "/api/now/stats/sc_cat_item", params={"sysparm_sum_fields": "price", "sysparm_max_fields": "name"}
    ).json()
    assert sums == {"result": {"stats": {"sum": {"price": "3600"}, "max": {"name": "Catalogue item 2"}}}}


# ---------------------------------------------------------------------------- rate limit, OAuth, quota


def test_hourly_rate_limit_rule_answers_429_with_headers(estate: FakeEstate) -> None:
    srv = start_servicenow(estate, hourly_limit=3, rate_limit_window_seconds=1.0)
    try:
        with _client(srv, estate) as http:
            statuses = []
            for _ in range(4):
                response = http.get("/api/now/table/incident", params={"sysparm_limit": 1})
                statuses.append(response.status_code)
                assert response.headers["X-RateLimit-Limit"] == "3"
                assert response.headers["X-RateLimit-Rule"] == RATE_LIMIT_RULE_SYS_ID
                assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())
            assert statuses == [200, 200, 200, 429]
            assert int(response.headers["Retry-After"]) >= 1
            body = response.json()
            assert body["status"] == "failure" and body["error"]["message"] == "Rate limit exceeded"
            # Another user has their own budget.
            with _client(srv, estate, ITIL_ONLY_USER) as other:
                assert other.get("/api/now/table/incident").status_code == 200
            time.sleep(1.05)
            assert http.get("/api/now/table/incident").status_code == 200
    finally:
        srv.stop()
    assert [entry.status for entry in srv.request_log][:4] == [200, 200, 200, 429]


def test_oauth_password_grant_refresh_and_bearer_access(server: Any, estate: FakeEstate) -> None:
    creds = estate.credentials["servicenow"]
    form = {
        "grant_type": "password",
        **OAUTH_CLIENT,
        "username": creds["username"],
        "password": creds["password"],
    }
    token = httpx.post(f"{server.base_url}/oauth_token.do", data=form).json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 1799
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert httpx.get(f"{server.base_url}/api/now/table/incident", headers=bearer).status_code == 200
    refreshed = httpx.post(
        f"{server.base_url}/oauth_token.do",
        data={"grant_type": "refresh_token", **OAUTH_CLIENT, "refresh_token": token["refresh_token"]},
    )
    assert refreshed.status_code == 200
    wrong = httpx.post(f"{server.base_url}/oauth_token.do", data={**form, "password": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error_description"] == "access_denied"
    assert (
        httpx.get(
            f"{server.base_url}/api/now/table/incident", headers={"Authorization": "Bearer junk"}
        ).status_code
        == 401
    )


def test_basic_auth_policy_rejects_valid_users(estate: FakeEstate) -> None:
    srv = start_servicenow(estate, reject_basic_auth=True)
    try:
        with _client(srv, estate) as http:
            response = http.get("/api/now/table/incident")
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "User Not Authenticated"
    finally:
        srv.stop()


def test_slow_large_pages_hit_the_transaction_quota(estate: FakeEstate) -> None:
    srv = start_servicenow(
        estate, slow_query_seconds=5.0, slow_query_min_limit=1000, transaction_timeout_seconds=0.2
    )
    try:
        with _client(srv, estate) as http:
            started = time.monotonic()
            response = http.get("/api/now/table/cmdb_ci_computer", params={"sysparm_limit": "1000"})
            assert response.status_code == 500
            assert "maximum execution time exceeded" in response.json()["error"]["message"]
            assert 0.2 <= time.monotonic() - started < 3
            assert (
                http.get("/api/now/table/cmdb_ci_computer", params={"sysparm_limit": "100"}).status_code
                == 200
            )
    finally:
        srv.stop()


def test_basic_auth_header_without_colon_is_rejected(server: Any) -> None:
    token = base64.b64encode(b"no-colon-here").decode()
    response = httpx.get(
        f"{server.base_url}/api/now/table/incident", headers={"Authorization": f"Basic {token}"}
    )
    assert response.status_code == 401


def test_xml_only_accept_is_not_acceptable(client: httpx.Client) -> None:
    assert client.get("/api/now/table/incident", headers={"Accept": "application/xml"}).status_code == 406


# ---------------------------------------------------------------------------- the real estate


def test_serves_the_generated_tiny_estate() -> None:
    estate_module = pytest.importorskip("aria_sync.simulators.estate")
    estate_class = getattr(estate_module, "Estate", None)
    if estate_class is None:
        pytest.skip("the estate package does not export Estate yet")
    estate = estate_class.generate("tiny")
    srv = start_servicenow(estate)
    try:
        with _client(srv, estate) as http:
            total = 0
            for table in estate.SERVICENOW_TABLES:
                response = http.get(f"/api/now/table/{table}", params={"sysparm_limit": 5})
                assert response.status_code == 200, table
                total += int(response.headers["X-Total-Count"])
                for row in response.json()["result"]:
                    assert all(isinstance(value, str | dict) for value in row.values())
            assert total > 0
            computers = http.get(
                "/api/now/table/cmdb_ci_computer",
                params={"sysparm_query": "ORDERBYsys_updated_on^ORDERBYsys_id"},
            ).json()["result"]
            assert len(computers) == len(estate.servicenow_records("cmdb_ci_computer"))
    finally:
        srv.stop()


def test_describe_and_framework_faults_on_instance_routes(server: Any, client: httpx.Client) -> None:
    described = server.app.describe()
    assert described["instanceUrl"] == server.base_url
    assert described["username"] == "aria.integration"
    server.faults.add(Fault(kind="status", path="/api/now/table/incident", status=503, times=1))
    assert client.get("/api/now/table/incident").status_code == 503
    response = client.get("/api/now/table/incident")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json;charset=UTF-8"
    assert [entry.status for entry in server.requests("/api/now/table/incident")] == [503, 200]


def _real_estate(size: str) -> Any:
    estate_module = pytest.importorskip("aria_sync.simulators.estate")
    estate_class = getattr(estate_module, "Estate", None)
    if estate_class is None:
        pytest.skip("the estate package does not export Estate yet")
    return estate_class.generate(size)


def _walk(http: httpx.Client, table: str, query: str, limit: int = 100) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    url: str | None = f"/api/now/table/{table}"
    params: dict[str, Any] | None = {"sysparm_query": query, "sysparm_limit": limit}
    while url:
        response = http.get(url, params=params)
        assert response.status_code == 200
        rows.extend(response.json()["result"])
        url, params = _links(response.headers.get("Link", "")).get("next"), None
    return rows


def test_small_estate_paging_incremental_sync_and_deletes() -> None:
    estate = _real_estate("small")
    srv = start_servicenow(estate)
    order = "ORDERBYsys_updated_on^ORDERBYsys_id"
    try:
        with _client(srv, estate) as http:
            expected = {row["sys_id"] for row in estate.servicenow_records("cmdb_ci_computer")}
            ties = max(
                sum(
                    1
                    for row in estate.servicenow_records("cmdb_ci_computer")
                    if row["sys_updated_on"] == stamp
                )
                for stamp in {row["sys_updated_on"] for row in estate.servicenow_records("cmdb_ci_computer")}
            )
            assert ties >= 250
            walked = [row["sys_id"] for row in _walk(http, "cmdb_ci_computer", order)]
            assert len(walked) == len(set(walked)) == len(expected)
            assert set(walked) == expected
            retired = http.get(
                "/api/now/table/cmdb_ci_computer",
                params={"sysparm_query": "install_status=7", "sysparm_limit": 1},
            )
            assert int(retired.headers["X-Total-Count"]) >= 1

            watermark = estate.now.strftime(SN)
            estate.advance()
            changed = _walk(http, "cmdb_ci_computer", f"sys_updated_on>={watermark}^{order}")
            assert changed, "advance() modifies some CIs"
            assert all(watermark <= row["sys_updated_on"] <= estate.now.strftime(SN) for row in changed)
            assert len(changed) < len(expected)
            deleted = _walk(
                http, "sys_audit_delete", f"sys_created_on>={watermark}^tablenameSTARTSWITHcmdb_ci"
            )
            assert deleted
            still_there = {row["sys_id"] for row in _walk(http, "cmdb_ci_computer", order)}
            assert all(row["documentkey"] not in still_there for row in deleted)
            assert all(row["documentkey"] in expected for row in deleted)

            # Display rendering works on every real incident and resolves the caller's name.
            incidents = http.get(
                "/api/now/table/incident",
                params={"sysparm_display_value": "all", "sysparm_exclude_reference_link": "true"},
            ).json()["result"]
            users = {row["sys_id"]: row["name"] for row in estate.servicenow_records("sys_user")}
            for incident in incidents:
                assert all(isinstance(cell, dict) for cell in incident.values())
                caller = incident["caller_id"]
                if caller["value"]:
                    assert caller["display_value"] == users[caller["value"]]
            count = http.get("/api/now/stats/incident", params={"sysparm_count": "true"}).json()
            assert count == {"result": {"stats": {"count": str(len(estate.servicenow_records("incident")))}}}
    finally:
        srv.stop()
