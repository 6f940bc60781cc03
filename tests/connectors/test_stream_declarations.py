"""Stream declarations: the names that end up in SQL text are plain identifiers, checked when declared."""

from __future__ import annotations

import pytest

from aria_sync.connectors.base import SQL_IDENTIFIER, Stream
from aria_sync.connectors.registry import all_connectors


def _fetch(session: object, request: object) -> list[list[dict[str, object]]]:
    return []


def test_every_registered_stream_names_plain_identifiers() -> None:
    streams = [stream for connector in all_connectors() for stream in connector.streams]
    assert len(streams) >= 15
    for stream in streams:
        for value in (stream.name, stream.table, *stream.targets):
            assert SQL_IDENTIFIER.fullmatch(value), (stream.name, value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("table", "assets; DROP TABLE audit_log"),
        ("table", 'main."assets"'),
        ("table", "Assets"),
        ("name", "vulns-2"),
        ("targets", ("assets", "risks --")),
    ],
)
def test_a_stream_whose_names_are_not_identifiers_is_refused(field: str, value: object) -> None:
    declaration: dict[str, object] = {
        "name": "devices",
        "table": "example_devices",
        "primary_key": "raw->>'$.id'",
        "fetch": _fetch,
        field: value,
    }
    with pytest.raises(ValueError, match="not a plain lower-case SQL identifier"):
        Stream(**declaration)  # type: ignore[arg-type]
