"""Hypothesis strategies that turn real-looking vendor records into the records vendors really send.

A mutation picks a place in a seed record (an existing field, or a field the stream's declarations
read, which may be absent) and breaks it: drops it, nulls it, swaps its type, fills it with a huge or
exotic string, an out-of-range number, a malformed timestamp or nested garbage. Pages mix intact
records, mutated ones and JSON values that are not objects at all.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Iterable, Sequence
from typing import Any

from hypothesis import strategies as st

Path = tuple[str | int, ...]
JsonValue = Any

HUGE = 100_000  # characters in a "huge" string

# Integers that JSON allows and a 64-bit reader may not expect. Integers beyond 64 bits are left out
# here on purpose: staging cannot serialise them at all (see test_transform_properties).
EDGE_NUMBERS: tuple[int | float, ...] = (
    0,
    -1,
    -(2**31),
    2**31,
    2**53 + 1,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    1e308,
    -1e308,
    5e-324,
    -0.0,
    0.5,
    1e15,  # an epoch in microseconds, which no field means
    -1e11,
)

MALFORMED_TIMESTAMPS: tuple[str, ...] = (
    "",
    " ",
    "not a date",
    "2026-13-45T25:61:61Z",
    "2026-02-30 12:00:00",
    "0000-00-00 00:00:00",
    "9999-12-31T23:59:59.999999999Z",
    "294277-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "1970-01-01T00:00:00+99:00",
    "2026-01-01T00:00:00Z trailing",
    "2026-01-01T00:00:00Zulu",
    "2026-W01-1",
    "T",
    "00:00:00",
    "1e20",
    "-1",
    "NaN",
    "infinity",
    "١٩٧٠-٠١-٠١",  # noqa: RUF001 (deliberately confusable digits)
    "2026-01-01\u202e00:00:00",
)

# Emoji, right-to-left marks and scripts, combining marks, control characters (no NUL), BOM,
# non-characters and astral planes; lone surrogates are excluded because they are not valid JSON.
_EXOTIC = (
    "😀",
    "👩🏽‍💻",
    "🏳️‍🌈",
    "\u202e",
    "\u200f",
    "\u061c",
    "مرحبا",
    "שלום",
    "e\u0301",
    "\ufeff",
    "\ufffe",
    "\uffff",
    "\U0010fffd",
    "\x01",
    "\x1b[31m",
    "\x7f",
    "\u2028",
    "\t\r\n",
    "'",
    '"',
    "\\",
    "%s",
    "${x}",
    "'); DROP TABLE assets; --",
    "{{",
    "$.id",
    "NULL",
    "null",
)
_TEXT_ALPHABET = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")

unicode_text = st.one_of(
    st.text(_TEXT_ALPHABET, max_size=40),
    st.lists(st.sampled_from(_EXOTIC), min_size=1, max_size=6).map("".join),
)
huge_text = st.one_of(st.sampled_from(("x", "é", "😀", "\u202eab")), unicode_text.filter(bool)).map(
    lambda unit: (unit * (HUGE // len(unit) + 1))[:HUGE]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    unicode_text,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(unicode_text, children, max_size=4),
    ),
    max_leaves=12,
)
# What a record that is not an object can be: a scalar, or an array (possibly of records).
non_objects = st.one_of(scalars, st.lists(json_values, max_size=4))


def swapped_type(value: JsonValue) -> st.SearchStrategy[JsonValue]:
    """The same information in another JSON type: str <-> int <-> list <-> dict <-> bool."""
    options: list[JsonValue] = [str(value), [value], {"value": value, "link": "https://x.invalid"}, True]
    options.append(False)
    options.append(len(value) if isinstance(value, str | list | dict) else 7)
    # Python refuses to convert more than 4,300 digits; such a string stays a string.
    if isinstance(value, str) and value.lstrip("-").isdigit() and len(value) <= 4000:
        options.append(int(value))
    if isinstance(value, list):
        options.append(value[0] if value else None)
        options.append(",".join(str(item) for item in value))
    if isinstance(value, dict):
        options.append(list(value.values()))
    return st.sampled_from(
        [option for option in options if option != value or type(option) is not type(value)]
    )


def paths_of(record: JsonValue, prefix: Path = ()) -> list[Path]:
    """Every field and list element of ``record``, depth first."""
    found: list[Path] = []
    if isinstance(record, dict):
        for key, child in record.items():
            found.append((*prefix, key))
            found.extend(paths_of(child, (*prefix, key)))
    elif isinstance(record, list):
        for index, child in enumerate(record[:3]):  # the first few elements are representative
            found.append((*prefix, index))
            found.extend(paths_of(child, (*prefix, index)))
    return found


_JSON_PATH = re.compile(r"'(\$(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\]|\[\*\])+)'")


def declared_paths(sql_fragments: Iterable[str]) -> list[Path]:
    """The JSON paths (``'$.a.b[0]'``) that a stream's SQL reads, as mutation targets."""
    paths: list[Path] = []
    for fragment in sql_fragments:
        for text in _JSON_PATH.findall(fragment):
            path: list[str | int] = []
            for part in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+|\*)\]", text):
                name, index = part
                path.append(name if name else (0 if index == "*" else int(index)))
            if path and tuple(path) not in paths:
                paths.append(tuple(path))
    return paths


def _get(record: JsonValue, path: Path) -> tuple[bool, JsonValue]:
    node = record
    for step in path:
        if isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
            continue
        if isinstance(node, dict) and isinstance(step, str) and step in node:
            node = node[step]
            continue
        return False, None
    return True, node


def _set(record: dict[str, Any], path: Path, value: JsonValue) -> None:
    """Set ``path`` to ``value``, creating (or overwriting with) containers along the way."""
    node: Any = record
    for step, following in itertools.pairwise(path):
        fresh: Any = [] if isinstance(following, int) else {}
        if isinstance(step, int):
            if not isinstance(node, list):
                return
            while len(node) <= step:
                node.append(None)
            if not isinstance(node[step], dict | list):
                node[step] = fresh
            node = node[step]
        else:
            if not isinstance(node.get(step), dict | list):
                node[step] = fresh
            node = node[step]
        if isinstance(following, int) and not isinstance(node, list):
            return
        if isinstance(following, str) and not isinstance(node, dict):
            return
    last = path[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
        node[last] = value
    else:
        node[last] = value


def _drop(record: dict[str, Any], path: Path) -> None:
    present, parent = _get(record, path[:-1])
    if not present:
        return
    last = path[-1]
    if isinstance(parent, dict) and isinstance(last, str):
        parent.pop(last, None)
    elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
        del parent[last]


@st.composite
def mutated(draw: st.DrawFn, seed: dict[str, Any], focus: Sequence[Path]) -> dict[str, Any]:
    """``seed`` (copied) with one to four fields broken."""
    record = copy.deepcopy(seed)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        existing = paths_of(record)
        # Half the time break a field the stream's declarations read: keys, cursors, checks.
        pool = list(focus) if focus and (not existing or draw(st.booleans())) else existing
        if not pool:
            break
        path = draw(st.sampled_from(pool))
        operation = draw(
            st.sampled_from(("drop", "null", "swap", "huge", "unicode", "number", "timestamp", "garbage"))
        )
        if operation == "drop":
            _drop(record, path)
            continue
        _, current = _get(record, path)
        value: JsonValue
        if operation == "null":
            value = None
        elif operation == "swap":
            value = draw(swapped_type(current))
        elif operation == "huge":
            value = draw(huge_text)
        elif operation == "unicode":
            value = draw(unicode_text)
        elif operation == "number":
            value = draw(st.sampled_from(EDGE_NUMBERS))
        elif operation == "timestamp":
            value = draw(st.sampled_from(MALFORMED_TIMESTAMPS))
        else:
            value = draw(json_values)
        _set(record, path, value)
    return record


@st.composite
def pages(draw: st.DrawFn, seeds: Sequence[dict[str, Any]], focus: Sequence[Path]) -> list[JsonValue]:
    """One page: intact seeds, mutated seeds and a few records that are not objects, shuffled."""
    size = draw(st.integers(min_value=1, max_value=12))
    records: list[JsonValue] = []
    for _ in range(size):
        seed = draw(st.sampled_from(seeds))
        kind = draw(st.sampled_from(("intact", "mutated", "mutated", "mutated", "not-object")))
        if kind == "intact":
            records.append(copy.deepcopy(seed))
        elif kind == "mutated":
            records.append(draw(mutated(seed, focus)))
        else:
            records.append(draw(non_objects))
    return records
