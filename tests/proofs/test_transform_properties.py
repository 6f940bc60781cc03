"""Property: whatever JSON a vendor sends, applying a stream never crashes and loses nothing silently.

For a page of records (intact demo-estate records, mutated ones, and values that are not objects),
``apply_stream`` plus every transform of the stream:

- never raises, and counts every record fetched;
- lands each record under its key, or quarantines it in ``integration_rejected_records`` with a
  reason; identical records share one fate;
- keeps, per key, the last copy fetched;
- writes ARIA rows only for records it accepted, exactly one per accepted record where the
  transform maps records one to one.

Each page is applied to an empty database, and again over a database where the stream already
landed some intact records (updates, stale marking and ARIA rebuilds of existing rows).
Set ARIA_SYNC_FUZZ_EXAMPLES (default 25) for a deeper search.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import itertools
import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aria_sync.connectors.base import Stream
from aria_sync.connectors.example.connector import ExampleConnector
from aria_sync.connectors.ms_defender.connector import DefenderConnector
from aria_sync.connectors.servicenow.api import RECONCILE_KIND
from aria_sync.connectors.servicenow.connector import STREAMS as SERVICENOW_STREAMS
from aria_sync.connectors.tenable.streams import STREAMS as TENABLE_STREAMS
from aria_sync.simulators.estate import Estate
from aria_sync.simulators.example import ExampleSimulator
from aria_sync.store import Database
from aria_sync.sync.loader import ApplyTarget, StreamCounts, apply_stream
from aria_sync.sync.staging import StreamStage, encode_record

from .fuzzing import JsonValue, declared_paths, pages
from .fuzzing import Path as JsonPath

ORG = "org-fuzz"
INSTALLATION = "inst-fuzz"
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
SEEDS_PER_STREAM = 40
BACKGROUND_SEEDS = 10  # per background stream: enough for the deletions to find their targets
# ARIA tables that carry the vendor record's key.
ARIA_TABLES = ("asset_identities", "vulnerabilities", "detections", "incidents", "services")

PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("ARIA_SYNC_FUZZ_EXAMPLES", "25")),  # raise it for a deeper search
    deadline=None,
    database=None,
    suppress_health_check=(HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example),
)


@cache
def estate() -> Estate:
    """The demo estate, built once per module: it is deterministic for a fixed anchor."""
    return Estate.generate("small", anchor=dt.datetime(2026, 5, 1, tzinfo=dt.UTC))


def _first(records: Any, count: int = SEEDS_PER_STREAM) -> list[dict[str, Any]]:
    return [dict(record) for record in itertools.islice(records, count)]


def _servicenow(table: str) -> Callable[[], list[dict[str, Any]]]:
    return lambda: _first(estate().servicenow_records(table))


def _deletion_seeds() -> list[dict[str, Any]]:
    """Audit rows, audit rows naming CIs the background sync landed, and one reconcile listing."""
    cis = estate().servicenow_records("cmdb_ci_computer")
    audits = [dict(row) for row in estate().servicenow_records("sys_audit_delete")]
    template = audits[0]
    for index, ci in enumerate(cis[:6]):
        audits.append(
            {
                **template,
                "sys_id": f"audit{index:028d}",
                "documentkey": ci["sys_id"],
                "tablename": ci["sys_class_name"],
                "sys_created_on": "2026-05-30 10:00:00",
            }
        )
    audits.append(
        {
            "sys_id": f"{RECONCILE_KIND}:cmdb_ci_computer",
            "kind": RECONCILE_KIND,
            "tablename": "cmdb_ci_computer",
            "live_sys_ids": [ci["sys_id"] for ci in cis[1:]],
        }
    )
    return audits


def _example(kind: str) -> Callable[[], list[dict[str, Any]]]:
    def seeds() -> list[dict[str, Any]]:
        simulator = ExampleSimulator(devices=SEEDS_PER_STREAM, events=SEEDS_PER_STREAM, tie_count=5)
        records = simulator.devices if kind == "devices" else simulator.events
        return [dict(record) for record in records.values()]

    return seeds


@dataclass(frozen=True)
class Case:
    """One stream, where its seed records come from, and what its transform promises."""

    name: str
    stream: Stream
    seeds: Callable[[], list[dict[str, Any]]]
    # The ARIA table the transform fills one row per accepted record, and which accepted records
    # it maps (SQL over the landing ``raw``); None: no one-to-one promise to check.
    one_to_one: tuple[str, str] | None = None
    # Streams whose transforms read other landing tables get those filled first, from intact seeds.
    background: tuple[str, ...] = ()


def _stream(streams: tuple[Stream, ...], name: str) -> Stream:
    return next(stream for stream in streams if stream.name == name)


def _defender(name: str) -> Stream:
    return _stream(DefenderConnector.streams, name)


CASES: tuple[Case, ...] = (
    Case(
        "tenable.assets",
        _stream(TENABLE_STREAMS, "assets"),
        lambda: _first(estate().tenable_assets()),
        ("asset_identities", "true"),
    ),
    Case(
        "tenable.vulnerabilities",
        _stream(TENABLE_STREAMS, "vulnerabilities"),
        lambda: _first(estate().tenable_findings()),
        ("vulnerabilities", "true"),
    ),
    Case("tenable.scans", _stream(TENABLE_STREAMS, "scans"), lambda: _first(estate().tenable_scans())),
    Case(
        "ms-defender.machines",
        _defender("machines"),
        lambda: _first(estate().defender_machines()),
        ("asset_identities", "true"),
    ),
    Case(
        "ms-defender.alerts",
        _defender("alerts"),
        lambda: _first(estate().defender_alerts()),
        ("detections", "true"),
    ),
    Case(
        "ms-defender.incidents",
        _defender("incidents"),
        lambda: _first(estate().defender_incidents()),
        ("incidents", "true"),
    ),
    Case(
        "ms-defender.vulnerabilities",
        _defender("vulnerabilities"),
        lambda: _first(estate().defender_vulnerabilities()),
        ("vulnerabilities", "nullif(raw->>'$.cveId', '') IS NOT NULL"),
    ),
    Case(
        "servicenow.cmdb_items",
        _stream(SERVICENOW_STREAMS, "cmdb_items"),
        _servicenow("cmdb_ci_computer"),
        ("asset_identities", "true"),
    ),
    Case(
        "servicenow.services",
        _stream(SERVICENOW_STREAMS, "services"),
        _servicenow("cmdb_ci_service"),
        ("services", "true"),
    ),
    Case(
        "servicenow.service_relations",
        _stream(SERVICENOW_STREAMS, "service_relations"),
        _servicenow("cmdb_rel_ci"),
        background=("servicenow.services", "servicenow.cmdb_items"),
    ),
    Case(
        "servicenow.catalog_items",
        _stream(SERVICENOW_STREAMS, "catalog_items"),
        _servicenow("sc_cat_item"),
    ),
    Case(
        "servicenow.incidents",
        _stream(SERVICENOW_STREAMS, "incidents"),
        _servicenow("incident"),
        ("incidents", "true"),
    ),
    Case(
        "servicenow.deletions",
        _stream(SERVICENOW_STREAMS, "deletions"),
        _deletion_seeds,
        background=("servicenow.cmdb_items", "servicenow.services", "servicenow.incidents"),
    ),
    Case(
        "example.devices",
        ExampleConnector().stream("devices"),
        _example("devices"),
        ("asset_identities", "true"),
    ),
    Case("example.events", ExampleConnector().stream("events"), _example("events")),
)
CASES_BY_NAME = {case.name: case for case in CASES}


def test_every_stream_of_every_connector_is_covered() -> None:
    streams = {
        "tenable": TENABLE_STREAMS,
        "ms-defender": DefenderConnector.streams,
        "servicenow": SERVICENOW_STREAMS,
        "example": ExampleConnector.streams,
    }
    declared = {f"{key}.{stream.name}" for key, group in streams.items() for stream in group}
    assert declared == set(CASES_BY_NAME)


@cache
def seeds_of(name: str) -> tuple[dict[str, Any], ...]:
    seeds = tuple(CASES_BY_NAME[name].seeds())
    assert seeds, f"the demo estate has no {name} records"
    return seeds


def focus_paths(stream: Stream) -> list[JsonPath]:
    """The fields a stream's declarations and transforms read: the ones most worth breaking."""
    fragments = [stream.primary_key, stream.deleted or ""]
    fragments += [stream.cursor.expression] if stream.cursor else []
    fragments += [predicate for predicate, _ in stream.checks]
    fragments += [sql for _, sql in stream.columns]
    for derive in stream.derive:
        module = inspect.getmodule(derive)
        if module is not None:
            fragments.append(inspect.getsource(module))
    return declared_paths(fragments)


# -- running one page ------------------------------------------------------------------------------


def _apply(
    conn: duckdb.DuckDBPyConnection, case: Case, records: list[JsonValue], stage_dir: Path
) -> StreamCounts:
    """Stage ``records`` as a fetch of ``case``'s stream and apply them as the sync engine does."""
    stream = case.stream
    stage = StreamStage(stage_dir)
    for start in range(0, len(records), 5):  # several pages, so seqno order spans files
        stage.write_page(records[start : start + 5])
    counts = StreamCounts()
    apply_stream(
        conn,
        ApplyTarget(ORG, INSTALLATION, case.name.split(".")[0], f"job-{stage_dir.name}"),
        stream,
        stage,
        counts,
        complete=True,
        previous_cursor=None,
        now=NOW,
    )
    return counts


@pytest.fixture(scope="module")
def scratch() -> Iterator[duckdb.DuckDBPyConnection]:
    """One write transaction on a fresh database, rolled back after every page.

    A sync applies a stream inside a write transaction; rolling that transaction back gives each
    hypothesis example an empty database for the price of a ROLLBACK instead of a new file.
    """
    with tempfile.TemporaryDirectory(prefix="aria-fuzz-") as directory:
        db = Database(Path(directory) / "aria.duckdb")
        db.ensure_schema()
        with db.write() as conn:
            yield conn


@contextlib.contextmanager
def rolled_back(conn: duckdb.DuckDBPyConnection) -> Iterator[Path]:
    """A staging folder for one example; the example's writes are undone when it ends."""
    with tempfile.TemporaryDirectory(prefix="aria-fuzz-stage-") as directory:
        try:
            yield Path(directory)
        finally:
            conn.execute("ROLLBACK")
            conn.execute("BEGIN TRANSACTION")


def _canonical(value: JsonValue) -> bytes:
    """A record as staging writes it, with keys sorted: equal documents compare equal."""
    return json.dumps(json.loads(encode_record(value)), sort_keys=True, ensure_ascii=False).encode()


def _keys(conn: duckdb.DuckDBPyConnection, stream: Stream, records: list[JsonValue]) -> list[str | None]:
    """Each record's key as the stream declares it (None for a non-object or an empty key)."""
    rows = conn.execute(
        f"""SELECT CASE WHEN json_type(raw) = 'OBJECT' THEN NULLIF(CAST(({stream.primary_key}) AS VARCHAR), '') END
            FROM (SELECT ordinality, CAST(value AS JSON) AS raw FROM unnest($docs) WITH ORDINALITY AS t(value))
            ORDER BY ordinality""",
        {"docs": [encode_record(record).decode() for record in records]},
    ).fetchall()
    return [row[0] for row in rows]


def check_page(
    conn: duckdb.DuckDBPyConnection, case: Case, records: list[JsonValue], *, resync: bool = False
) -> StreamCounts:
    """Apply ``records`` as one fetch of ``case``'s stream and check every promise of the module docstring.

    With ``resync`` the stream first lands some intact seeds, so the page updates rows (and their
    ARIA rows) that exist, and a full refresh may mark the ones it does not repeat as stale.
    """
    stream = case.stream
    background_streams = (*case.background, case.name) if resync else case.background
    with rolled_back(conn) as directory:
        for index, name in enumerate(background_streams):
            background = CASES_BY_NAME[name]
            records_before = list(seeds_of(name)[:BACKGROUND_SEEDS])
            _apply(conn, background, records_before, directory / f"background{index}")
        known_before = {
            row[0]
            for row in conn.execute(
                f"SELECT source_id FROM {stream.table} WHERE installation_id = ?", [INSTALLATION]
            ).fetchall()
        }
        counts = _apply(conn, case, records, directory / "page")
        keys = _keys(conn, stream, records)
        rejected = conn.execute(
            "SELECT CAST(raw AS VARCHAR), source_id, reason FROM integration_rejected_records "
            "WHERE installation_id = ? AND stream = ? AND job_id = 'job-page'",
            [INSTALLATION, stream.name],
        ).fetchall()
        landing = dict(
            conn.execute(
                f"SELECT source_id, CAST(raw AS VARCHAR) FROM {stream.table} "
                "WHERE installation_id = ? AND job_id = 'job-page'",
                [INSTALLATION],
            ).fetchall()
        )
        aria = {
            table: Counter(
                row[0]
                for row in conn.execute(
                    f"SELECT source_id FROM {table} WHERE installation_id = ?", [INSTALLATION]
                ).fetchall()
            )
            for table in ARIA_TABLES
        }
        mapped: set[str] = set()
        if case.one_to_one:
            _, predicate = case.one_to_one
            mapped = {
                row[0]
                for row in conn.execute(
                    f"SELECT source_id FROM {stream.table} WHERE installation_id = ? AND ({predicate})",
                    [INSTALLATION],
                ).fetchall()
            }

    assert counts.fetched == len(records)
    assert counts.rejected == len(rejected)
    assert all(isinstance(reason, str) and reason.strip() for _, _, reason in rejected), rejected

    canonical = [_canonical(record) for record in records]
    rejected_docs = Counter(_canonical(json.loads(raw)) for raw, _, _ in rejected)
    fetched_docs = Counter(canonical)
    for document, times in rejected_docs.items():
        # A quarantined record is one that was fetched, and identical copies share one fate.
        assert fetched_docs[document] == times, document[:300]

    accepted = [
        (key, document)
        for key, document in zip(keys, canonical, strict=True)
        if document not in rejected_docs
    ]
    last_copy = {key: document for key, document in accepted}
    # Rows of this job that the page does not name were marked stale by a full refresh.
    landing = {key: raw for key, raw in landing.items() if key in keys}
    for key, document in accepted:
        assert key is not None, f"accepted a record without a key: {document[:300]!r}"
        assert key in landing, f"accepted record {key!r} is not in {stream.table}"
    assert set(landing) == set(last_copy)
    for key, document in last_copy.items():
        assert _canonical(json.loads(landing[key])) == document, f"{key!r}: not the last copy fetched"

    # A quarantined record's key may still have the ARIA rows of the copy an earlier sync accepted.
    rejected_only = {source_id for _, source_id, _ in rejected if source_id is not None}
    rejected_only -= set(last_copy) | known_before
    for table, written in aria.items():
        leaked = rejected_only & set(written)
        assert not leaked, f"{table} has rows of quarantined records {sorted(leaked)[:5]}"
        if not background_streams:
            assert set(written) <= set(last_copy), f"{table} has rows no accepted record explains"
    if case.one_to_one:
        table, _ = case.one_to_one
        assert set(aria[table]) == mapped, f"{table} rows differ from the accepted {stream.table} records"
        assert all(times == 1 for times in aria[table].values()), f"{table} has duplicate rows"
    return counts


@pytest.mark.parametrize("name", [case.name for case in CASES])
@PROPERTY_SETTINGS
@given(data=st.data())
def test_mutated_pages_never_crash_and_every_record_is_landed_or_quarantined(
    scratch: duckdb.DuckDBPyConnection, name: str, data: st.DataObject
) -> None:
    case = CASES_BY_NAME[name]
    records = data.draw(pages(seeds_of(name), focus_paths(case.stream)), label="records")
    check_page(scratch, case, records)


@pytest.mark.parametrize("name", [case.name for case in CASES])
@settings(PROPERTY_SETTINGS, max_examples=max(1, PROPERTY_SETTINGS.max_examples // 3))
@given(data=st.data())
def test_mutated_pages_over_synced_records_never_crash_and_keep_every_record(
    scratch: duckdb.DuckDBPyConnection, name: str, data: st.DataObject
) -> None:
    case = CASES_BY_NAME[name]
    records = data.draw(pages(seeds_of(name), focus_paths(case.stream)), label="records")
    check_page(scratch, case, records, resync=True)


@pytest.mark.parametrize("name", [case.name for case in CASES])
def test_intact_demo_records_are_all_accepted(scratch: duckdb.DuckDBPyConnection, name: str) -> None:
    """The seeds themselves are clean: the property's mutations, not the estate, cause rejections."""
    case = CASES_BY_NAME[name]
    counts = check_page(scratch, case, list(seeds_of(name)))
    assert counts.rejected == 0


def test_a_retired_flag_that_is_not_a_boolean_is_read_as_not_deleted(
    scratch: duckdb.DuckDBPyConnection,
) -> None:
    """Found by the property: a CAST of the vendor's flag once aborted the whole devices stream."""
    case = CASES_BY_NAME["example.devices"]
    seed = seeds_of(case.name)[0]
    records = [{**seed, "retired": [False]}, {**seed, "id": "dev-other", "retired": "n/a"}]
    with rolled_back(scratch) as directory:
        counts = _apply(scratch, case, records, directory / "page")
        landed = scratch.execute(
            "SELECT source_id, is_deleted FROM example_devices WHERE installation_id = ? ORDER BY 1",
            [INSTALLATION],
        ).fetchall()
    assert (counts.fetched, counts.rejected, counts.removed) == (2, 0, 0)
    assert landed == [("dev-00000", False), ("dev-other", False)]


def _with_nul(value: JsonValue) -> JsonValue:
    if isinstance(value, str):
        return value + "\x00after"
    if isinstance(value, list):
        return [_with_nul(item) for item in value]
    if isinstance(value, dict):
        return {key: _with_nul(item) for key, item in value.items()}
    return value


@pytest.mark.parametrize("name", [case.name for case in CASES])
def test_nul_characters_in_every_string_never_crash(scratch: duckdb.DuckDBPyConnection, name: str) -> None:
    """JSON allows \\u0000 in strings; DuckDB keeps it in VARCHAR, so it must pass through or quarantine."""
    case = CASES_BY_NAME[name]
    check_page(scratch, case, [_with_nul(record) for record in seeds_of(name)[:5]])


def test_integers_beyond_64_bits_are_quarantined_not_fatal(scratch: duckdb.DuckDBPyConnection) -> None:
    """The shared HTTP client decodes with the json module, which keeps 2**70 as an int; orjson refuses
    integers beyond 64 bits, so staging falls back to the json module for such a record."""
    case = CASES_BY_NAME["servicenow.incidents"]
    seed = seeds_of(case.name)[0]
    check_page(scratch, case, [{**seed, "priority": 2**70}, {**seed, "sys_id": 2**70}])


def test_records_longer_than_a_default_line_and_full_of_tabs_land_whole(
    scratch: duckdb.DuckDBPyConnection,
) -> None:
    """A staged line is ``seq TAB json``: a 3 MB field (past DuckDB's 2 MiB default line) and tabs,
    newlines and carriage returns inside strings must neither split a record nor fail the stream."""
    case = CASES_BY_NAME["tenable.vulnerabilities"]
    seed = seeds_of(case.name)[0]
    long_text = "\t\n\r x" * 750_000
    records: list[JsonValue] = [
        {**seed, "finding_id": "long-output", "output": long_text},
        {**seed, "finding_id": "tabbed\tkey", "plugin": {"name": "a\tb\nc\r\nd"}},
        {**seed, "finding_id": "long-output", "output": long_text + "the last copy"},
    ]
    counts = check_page(scratch, case, records)
    assert (counts.fetched, counts.rejected) == (3, 0)
