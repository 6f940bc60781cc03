"""The ServiceNow encoded-query language, as the simulated instance understands it.

An encoded query is ``field<op>value`` terms joined by ``^`` (AND) and ``^OR`` (OR, binding tighter
than AND), with ``^NQ`` starting a new OR-ed query and ``ORDERBY<field>`` / ``ORDERBYDESC<field>``
terms adding sort keys. ``a^b^ORc^NQd`` therefore means ``(a AND (b OR c)) OR d``.

Like a real instance with ``glide.invalid_query.returns_no_rows=false`` (the default), a term that
names an unknown field or cannot be parsed is dropped silently, so a typo widens the result.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]

# Fields whose ordering and range comparisons are numeric on a real instance (integer/decimal/choice
# columns). Everything else compares as text, which is right for the UTC "YYYY-MM-DD HH:MM:SS" datetimes.
NUMERIC_FIELDS = frozenset(
    {
        "priority",
        "impact",
        "urgency",
        "severity",
        "state",
        "incident_state",
        "hold_reason",
        "install_status",
        "operational_status",
        "hardware_status",
        "sys_mod_count",
        "reopen_count",
        "reassignment_count",
        "ram",
        "cpu_count",
        "cpu_core_count",
        "cpu_speed",
        "disk_space",
        "order",
        "price",
        "recurring_price",
    }
)

_OPERATORS = (
    "ISNOTEMPTY",
    "ISEMPTY",
    "NOT IN",
    "NOT LIKE",
    "NOTLIKE",
    "STARTSWITH",
    "ENDSWITH",
    "RELATIVEGT",
    "RELATIVELT",
    "LIKE",
    "IN",
    "!=",
    ">=",
    "<=",
    "=",
    ">",
    "<",
)
_TERM = re.compile(
    r"(?P<field>[a-z0-9_.]+)(?P<op>" + "|".join(re.escape(op) for op in _OPERATORS) + r")(?P<value>.*)\Z",
    re.DOTALL,
)
_RELATIVE = re.compile(r"@(?P<unit>second|minute|hour|day|week|month|year)@(?P<dir>ago|ahead)@(?P<n>\d+)\Z")
_UNIT_SECONDS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
    "year": 365 * 86400,
}
SN_DATETIME = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Condition:
    """One ``field<op>value`` term."""

    field: str
    op: str
    value: str

    def matches(self, row: Row) -> bool:
        actual = row.get(self.field)
        text = "" if actual is None else str(actual)
        op = self.op
        if op == "=":
            return text == self.value
        if op == "!=":
            return text != self.value
        if op == "ISEMPTY":
            return text == ""
        if op == "ISNOTEMPTY":
            return text != ""
        if op == "IN":
            return text in _split_list(self.value)
        if op == "NOT IN":
            return text not in _split_list(self.value)
        if op == "LIKE":
            return self.value.lower() in text.lower()
        if op in ("NOT LIKE", "NOTLIKE"):
            return self.value.lower() not in text.lower()
        if op == "STARTSWITH":
            return text.lower().startswith(self.value.lower())
        if op == "ENDSWITH":
            return text.lower().endswith(self.value.lower())
        # Range operators: an empty cell never satisfies them (NULL semantics of the database).
        if text == "":
            return False
        left, right = _comparable(self.field, text), _comparable(self.field, self.value)
        if type(left) is not type(right):
            left, right = text, self.value
        if op == ">":
            return left > right  # type: ignore[operator]
        if op == ">=":
            return left >= right  # type: ignore[operator]
        if op == "<":
            return left < right  # type: ignore[operator]
        if op == "<=":
            return left <= right  # type: ignore[operator]
        return False


@dataclass
class EncodedQuery:
    """A parsed encoded query: OR-ed groups of AND-ed clauses of OR-ed conditions, plus sort keys."""

    groups: list[list[list[Condition]]] = field(default_factory=list)
    order_by: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    ignored_terms: list[str] = field(default_factory=list)

    @property
    def has_conditions(self) -> bool:
        return any(group for group in self.groups)

    def matches(self, row: Row) -> bool:
        """True when the row satisfies the query (an empty query matches every row)."""
        if not self.has_conditions:
            return True
        return any(
            all(any(cond.matches(row) for cond in clause) for clause in group) for group in self.groups
        )

    def filter(self, rows: Sequence[Row]) -> list[Row]:
        if not self.has_conditions:
            return list(rows)
        return [row for row in rows if self.matches(row)]

    def sort(self, rows: list[Row]) -> list[Row]:
        """Sorts by the ORDERBY keys in order of precedence; Python's stable sort keeps the input order
        (sys_id order from the estate) among ties, as the instance's implicit tie-break does."""
        for name, descending in reversed(self.order_by):
            rows.sort(key=_sort_key(name), reverse=descending)
        return rows


def parse_encoded_query(
    text: str, known_fields: Collection[str], now: dt.datetime | None = None
) -> EncodedQuery:
    """Parses ``text`` against a table whose columns are ``known_fields``.

    ``now`` anchors ``RELATIVEGT@hour@ago@48``-style terms (UTC); without it they are ignored.
    """
    query = EncodedQuery()
    if not text:
        return query
    for group_text in text.split("^NQ"):
        clauses: list[list[Condition]] = []
        for raw_term in group_text.split("^"):
            term = raw_term.strip()
            if not term or term == "EQ":
                continue
            if term.startswith("ORDERBYDESC"):
                _add_order(query, term[len("ORDERBYDESC") :], True, known_fields)
                continue
            if term.startswith("ORDERBY"):
                _add_order(query, term[len("ORDERBY") :], False, known_fields)
                continue
            is_alternative = term.startswith("OR") and not term.startswith("ORDERBY")
            if is_alternative:
                term = term[2:]
            condition = _parse_condition(term, known_fields, now)
            if condition is None:
                query.ignored_terms.append(raw_term)
                continue
            if is_alternative and clauses:
                clauses[-1].append(condition)
            else:
                clauses.append([condition])
        query.groups.append(clauses)
    return query


def _add_order(query: EncodedQuery, name: str, descending: bool, known_fields: Collection[str]) -> None:
    if name in known_fields:
        query.order_by.append((name, descending))
    else:
        query.ignored_terms.append(("ORDERBYDESC" if descending else "ORDERBY") + name)


def _parse_condition(term: str, known_fields: Collection[str], now: dt.datetime | None) -> Condition | None:
    match = _TERM.match(term)
    if match is None:
        return None
    name, op, value = match.group("field"), match.group("op"), match.group("value")
    if name not in known_fields:
        return None
    if op in ("RELATIVEGT", "RELATIVELT"):
        relative = _RELATIVE.match(value)
        if relative is None or now is None:
            return None
        seconds = _UNIT_SECONDS[relative.group("unit")] * int(relative.group("n"))
        sign = -1 if relative.group("dir") == "ago" else 1
        moment = now.astimezone(dt.UTC) + dt.timedelta(seconds=sign * seconds)
        return Condition(name, ">" if op == "RELATIVEGT" else "<", moment.strftime(SN_DATETIME))
    return Condition(name, op, value)


def _split_list(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(","))


def _comparable(name: str, text: str) -> float | str:
    if name in NUMERIC_FIELDS:
        try:
            return float(text)
        except ValueError:
            return text
    return text


def _sort_key(name: str) -> Callable[[Row], tuple[int, float | str]]:
    numeric = name in NUMERIC_FIELDS

    def key(row: Row) -> tuple[int, float | str]:
        value = row.get(name)
        text = "" if value is None else str(value)
        if text == "":
            return (0, "")  # empty values sort first ascending, as NULLs do on the instance
        if numeric:
            try:
                return (1, float(text))
            except ValueError:
                return (2, text)
        return (2, text)

    return key
