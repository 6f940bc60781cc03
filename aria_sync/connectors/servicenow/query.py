"""Encoded queries (``sysparm_query``) and field lists built only from field names this connector knows.

An instance silently ignores a query term that names an unknown field, so a typo such as
``sys_updated_no>=...`` widens an incremental read to the whole table. Every name sent to the
instance therefore comes from the per-table allow-list below; anything else raises
:class:`ConfigurationError` before a request is made.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aria_sync.errors import ConfigurationError

_SYSTEM_FIELDS = (
    "sys_id",
    "sys_class_name",
    "sys_created_on",
    "sys_created_by",
    "sys_updated_on",
    "sys_updated_by",
    "sys_mod_count",
    "sys_domain",
)
_CI_FIELDS = (
    *_SYSTEM_FIELDS,
    "name",
    "install_status",
    "operational_status",
    "owned_by",
    "managed_by",
    "assigned_to",
    "short_description",
    "used_for",
    "environment",
)
_COMPUTER_FIELDS = (
    *_CI_FIELDS,
    "host_name",
    "fqdn",
    "dns_domain",
    "ip_address",
    "mac_address",
    "serial_number",
    "asset_tag",
    "os",
    "os_version",
    "hardware_status",
    "discovery_source",
    "first_discovered",
    "last_discovered",
    "object_id",
    "correlation_id",
    "virtual",
)

# Field names per table, as the instance's dictionary defines them (busines_criticality is spelled so).
TABLE_FIELDS: Mapping[str, frozenset[str]] = {
    "cmdb_ci_computer": frozenset(_COMPUTER_FIELDS),
    "cmdb_ci_service": frozenset(
        (*_CI_FIELDS, "number", "busines_criticality", "service_classification", "service_status", "parent")
    ),
    # Dot-walked names are listed explicitly: they are fields of the referenced record.
    "cmdb_rel_ci": frozenset(
        (*_SYSTEM_FIELDS, "parent", "child", "type", "parent.sys_class_name", "child.sys_class_name")
    ),
    "sc_cat_item": frozenset((*_SYSTEM_FIELDS, "name", "active", "category", "sc_catalogs", "type", "price")),
    "incident": frozenset(
        (
            *_SYSTEM_FIELDS,
            "number",
            "state",
            "incident_state",
            "active",
            "priority",
            "impact",
            "urgency",
            "opened_at",
            "resolved_at",
            "closed_at",
            "cmdb_ci",
            "business_service",
            "assigned_to",
            "assignment_group",
            "caller_id",
        )
    ),
    "sys_audit_delete": frozenset((*_SYSTEM_FIELDS, "tablename", "documentkey", "display_value")),
}

OPERATORS = frozenset(
    {"=", "!=", ">", ">=", "<", "<=", "IN", "NOT IN", "STARTSWITH", "ENDSWITH", "ISEMPTY", "ISNOTEMPTY"}
)
_UNARY = frozenset({"ISEMPTY", "ISNOTEMPTY"})
_LIST = frozenset({"IN", "NOT IN"})
# '^' starts a new term and a line break ends the query on some releases: neither may hide in a value.
_FORBIDDEN_IN_VALUE = re.compile(r"[\^\r\n]")
_INSTANCE_DATETIME = "%Y-%m-%d %H:%M:%S"
_INSTANCE_DATETIME_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\Z")


def known_field(table: str, name: str) -> str:
    """``name`` if it is a known field of ``table``; ConfigurationError otherwise."""
    fields = TABLE_FIELDS.get(table)
    if fields is None:
        raise ConfigurationError(f"ServiceNow: no field list is known for table {table!r}")
    if name not in fields:
        raise ConfigurationError(
            f"ServiceNow: {name!r} is not a known field of {table}; the instance would silently ignore it"
        )
    return name


def field_list(table: str, names: Iterable[str]) -> str:
    """A ``sysparm_fields`` value of known fields of ``table``."""
    checked = [known_field(table, name) for name in names]
    if not checked:
        raise ConfigurationError("ServiceNow: an empty field list selects every column")
    return ",".join(checked)


def instance_datetime(value: str | dt.datetime) -> str:
    """A UTC datetime as a query literal (``YYYY-MM-DD HH:MM:SS``, read as UTC by the instance).

    Accepts the instance's own format or an ISO-8601 string/datetime with an offset.
    """
    if isinstance(value, str):
        text = value.strip()
        if _INSTANCE_DATETIME_SHAPE.match(text):
            return text
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ConfigurationError(f"ServiceNow: {value!r} is not a date and time") from None
    else:
        moment = value
    if moment.tzinfo is None:
        raise ConfigurationError(f"ServiceNow: {value!r} has no time zone; a UTC time is required")
    return moment.astimezone(dt.UTC).strftime(_INSTANCE_DATETIME)


@dataclass(frozen=True)
class EncodedQuery:
    """An immutable encoded query over one table; each method returns a longer query.

    >>> str(EncodedQuery("incident").where("sys_updated_on", ">=", "2024-05-20 06:00:00").order_by("sys_id"))
    'sys_updated_on>=2024-05-20 06:00:00^ORDERBYsys_id'
    """

    table: str
    terms: tuple[str, ...] = ()

    def where(self, name: str, op: str, value: str | Iterable[str] = "") -> EncodedQuery:
        """AND a condition ``name<op>value``; ``value`` is a list of strings for IN / NOT IN."""
        known_field(self.table, name)
        if op not in OPERATORS:
            raise ConfigurationError(f"ServiceNow: unsupported query operator {op!r}")
        if op in _UNARY:
            text = ""
        elif op in _LIST:
            items = [value] if isinstance(value, str) else list(value)
            if not items:
                raise ConfigurationError(f"ServiceNow: {name}{op} needs at least one value")
            for item in items:
                if "," in item:
                    raise ConfigurationError(f"ServiceNow: list value {item!r} must not contain a comma")
            text = ",".join(_checked_value(name, item) for item in items)
        else:
            if not isinstance(value, str):
                raise ConfigurationError(f"ServiceNow: {name}{op} takes one value")
            text = _checked_value(name, value)
        return EncodedQuery(self.table, (*self.terms, f"{name}{op}{text}"))

    def order_by(self, name: str, *, descending: bool = False) -> EncodedQuery:
        """Add a sort key (several keys sort in the order they were added)."""
        known_field(self.table, name)
        return EncodedQuery(self.table, (*self.terms, f"ORDERBY{'DESC' if descending else ''}{name}"))

    def encode(self) -> str:
        return "^".join(self.terms)

    def __str__(self) -> str:
        return self.encode()


def _checked_value(name: str, value: str) -> str:
    if _FORBIDDEN_IN_VALUE.search(value):
        raise ConfigurationError(f"ServiceNow: the value for {name} contains '^' or a line break")
    return value


def updated_since(query: EncodedQuery, cursor: str | None, *, field: str = "sys_updated_on") -> EncodedQuery:
    """``query`` narrowed to ``field>=cursor`` (inclusive: ties are re-read), in a total order.

    The ``sys_id`` tie-breaker makes offset paging deterministic among the many records that share
    one second (a discovery run rewrites hundreds of CIs in one transaction).
    """
    if cursor:
        query = query.where(field, ">=", instance_datetime(cursor))
    return query.order_by(field).order_by("sys_id")
