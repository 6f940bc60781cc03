"""The declarative correlation policy: who may create assets, who wins each asset field.

The policy is data, not code, so that a reviewer can read in one place why an asset shows the
owner it shows. ``DEFAULT_POLICY`` encodes the rules of docs/correlation.md:

* every source may create an asset (a record that matches nothing becomes its own asset);
* ServiceNow (the CMDB, the system of record for ownership) wins ``name``, ``owner``,
  ``criticality``, ``service_id``, ``asset_type`` and ``status``;
* Defender (the agent on the machine) wins ``os``;
* Tenable is the first fallback for everything, then the remaining sources by founding order;
* ``last_seen`` is the maximum and ``first_seen`` the minimum across sources; IP and MAC
  addresses are the union of every source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# Fields chosen from one record by precedence (the others are aggregated, see module docstring).
PRECEDENCE_FIELDS: tuple[str, ...] = (
    "name",
    "hostname",
    "fqdn",
    "serial_number",
    "os",
    "asset_type",
    "owner",
    "service_id",
    "criticality",
    "status",
)
AGGREGATED_FIELDS: tuple[str, ...] = ("ip_addresses", "mac_addresses", "first_seen", "last_seen")

# The order in which records found assets and break ties; sources not listed come after, by key.
DEFAULT_SOURCE_ORDER: tuple[str, ...] = ("servicenow", "tenable", "ms-defender", "crowdstrike", "qualys")
EDR_SOURCES: tuple[str, ...] = ("ms-defender", "crowdstrike")


@dataclass(frozen=True)
class CorrelationPolicy:
    """How records of different integrations become one asset.

    ``source_order`` ranks integrations for founding an asset and as the last tie-breaker;
    ``field_precedence`` lists, per field, the integrations to prefer, before the fallback
    ``default_precedence`` and then ``source_order``. ``may_create_assets`` maps an integration
    key to False to keep its unmatched records out of the inventory (they join assets only).
    ``shared_identifier_threshold``: a value carried by more records than this within one source
    is treated as junk for that source.
    """

    source_order: tuple[str, ...] = DEFAULT_SOURCE_ORDER
    field_precedence: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType(
            {
                "name": ("servicenow",),
                "owner": ("servicenow",),
                "criticality": ("servicenow",),
                "service_id": ("servicenow",),
                "asset_type": ("servicenow",),
                "status": ("servicenow",),
                "os": ("ms-defender",),
            }
        )
    )
    default_precedence: tuple[str, ...] = ("tenable",)
    may_create_assets: Mapping[str, bool] = field(default_factory=lambda: MappingProxyType({}))
    edr_sources: tuple[str, ...] = EDR_SOURCES
    shared_identifier_threshold: int = 3

    def precedence(self, field_name: str) -> list[str]:
        """Integration keys in the order they win ``field_name`` (unlisted keys rank after these)."""
        ordered: list[str] = []
        for key in (*self.field_precedence.get(field_name, ()), *self.default_precedence, *self.source_order):
            if key not in ordered:
                ordered.append(key)
        return ordered

    def can_create(self, integration_key: str) -> bool:
        """Whether a record of this integration may found an asset of its own."""
        return self.may_create_assets.get(integration_key, True)


DEFAULT_POLICY = CorrelationPolicy()
