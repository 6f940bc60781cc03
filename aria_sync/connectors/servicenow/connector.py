"""The ServiceNow connector: catalogue entry, capabilities and streams."""

from __future__ import annotations

import base64
import contextlib
import socket
import time
from collections.abc import Iterator
from typing import ClassVar

from aria_sync.connectors.base import (
    Capability,
    CapabilityResult,
    Connector,
    ConnectorContext,
    CursorSpec,
    IntegrationConfig,
    Stream,
)
from aria_sync.connectors.servicenow import api, transform
from aria_sync.connectors.servicenow.config import ServiceNowConfig
from aria_sync.errors import AuthorizationError, SourceError
from aria_sync.http import VendorHttp
from aria_sync.http.policy import Resolver

INSTANCE_SUFFIX = "service-now.com"
DELETIONS_TABLE = "servicenow_deleted_records"
UPDATED_ON = CursorSpec("raw->>'$.sys_updated_on'", "timestamp")
SYS_ID = "raw->>'$.sys_id'"

# (capability, table, what to grant when its read ACL refuses the integration user)
READ_PROBES: tuple[tuple[str, str, str], ...] = (
    ("cmdb", "cmdb_ci_computer", "the cmdb_read role"),
    ("services", "cmdb_ci_service", "the cmdb_read role"),
    ("services", "cmdb_rel_ci", "the cmdb_read role"),
    ("catalog", "sc_cat_item", "the catalog role (or catalog_admin)"),
    ("incidents", "incident", "the itil role"),
)
AUDIT_ADVICE = "grant a read ACL on sys_audit_delete (by default only admin reads it) so deletions are seen on every sync"

STREAMS: tuple[Stream, ...] = (
    Stream(
        name="cmdb_items",
        table=transform.CMDB_TABLE,
        primary_key=SYS_ID,
        fetch=api.fetch_cmdb_items,
        cursor=UPDATED_ON,
        derive=(transform.cmdb_items_to_identities,),
        targets=("asset_identities", "assets"),
        description=(
            "cmdb_ci_computer with its server classes; incremental on sys_updated_on (inclusive). Retired CIs "
            "(install_status 7) stay as retired assets; hard deletes come from the deletions stream"
        ),
        capability="cmdb",
        columns=(
            ("Name", "raw->>'$.name'"),
            ("Class", "raw->>'$.sys_class_name'"),
            ("FQDN", "raw->>'$.fqdn'"),
            ("IP address", "raw->>'$.ip_address'"),
            ("MAC address", "raw->>'$.mac_address'"),
            ("Serial number", "raw->>'$.serial_number'"),
            ("OS", "concat_ws(' ', nullif(raw->>'$.os', ''), nullif(raw->>'$.os_version', ''))"),
            ("Install status", "raw->>'$.install_status'"),
            ("Updated", "raw->>'$.sys_updated_on'"),
        ),
    ),
    Stream(
        name="services",
        table=transform.SERVICES_TABLE,
        primary_key=SYS_ID,
        fetch=api.fetch_services,
        cursor=UPDATED_ON,
        derive=(transform.services_to_services,),
        targets=("services",),
        description="cmdb_ci_service (business services); incremental on sys_updated_on",
        capability="services",
        columns=(
            ("Name", "raw->>'$.name'"),
            ("Number", "raw->>'$.number'"),
            ("Criticality", "raw->>'$.busines_criticality'"),
            ("Used for", "raw->>'$.used_for'"),
            ("Owner (sys_id)", "raw->>'$.owned_by'"),
            ("Operational status", "raw->>'$.operational_status'"),
            ("Updated", "raw->>'$.sys_updated_on'"),
        ),
    ),
    Stream(
        name="service_relations",
        table=transform.RELATIONS_TABLE,
        primary_key=SYS_ID,
        fetch=api.fetch_service_relations,
        cursor=UPDATED_ON,
        derive=(transform.relations_to_service_assets,),
        targets=("service_assets",),
        description="cmdb_rel_ci rows whose parent is a business service; incremental on sys_updated_on",
        capability="services",
        columns=(
            ("Service (parent)", "raw->>'$.parent'"),
            ("CI (child)", "raw->>'$.child'"),
            ("Type", "raw->>'$.type'"),
            ("Strength", "raw->>'$.connection_strength'"),
            ("Created", "raw->>'$.sys_created_on'"),
            ("Updated", "raw->>'$.sys_updated_on'"),
        ),
    ),
    Stream(
        name="catalog_items",
        table="servicenow_catalog_items",
        primary_key=SYS_ID,
        fetch=api.fetch_catalog_items,
        description="sc_cat_item; full refresh (small), items no longer listed are marked deleted",
        capability="catalog",
        columns=(
            ("Name", "raw->>'$.name'"),
            ("Description", "raw->>'$.short_description'"),
            ("Class", "raw->>'$.sys_class_name'"),
            ("Active", "raw->>'$.active'"),
            ("Price", "raw->>'$.price'"),
            ("Type", "raw->>'$.type'"),
            ("Updated", "raw->>'$.sys_updated_on'"),
        ),
    ),
    Stream(
        name="incidents",
        table=transform.INCIDENTS_TABLE,
        primary_key=SYS_ID,
        fetch=api.fetch_incidents,
        cursor=UPDATED_ON,
        derive=(transform.incidents_to_incidents,),
        targets=("incidents",),
        description="incident; incremental on sys_updated_on. Closed and cancelled incidents keep their state",
        capability="incidents",
        columns=(
            ("Number", "raw->>'$.number'"),
            ("Title", "raw->>'$.short_description'"),
            ("Priority", "raw->>'$.priority'"),
            ("State", "raw->>'$.state'"),
            ("CI (sys_id)", "raw->>'$.cmdb_ci'"),
            ("Service (sys_id)", "raw->>'$.business_service'"),
            ("Opened", "raw->>'$.opened_at'"),
            ("Resolved", "raw->>'$.resolved_at'"),
            ("Updated", "raw->>'$.sys_updated_on'"),
        ),
    ),
    Stream(
        name="deletions",
        table=DELETIONS_TABLE,
        primary_key=SYS_ID,
        fetch=api.fetch_deletions,
        cursor=CursorSpec("raw->>'$.sys_created_on'", "timestamp"),
        derive=(transform.apply_deletions,),
        targets=("asset_identities", "services", "service_assets", "incidents"),
        description=(
            "sys_audit_delete rows of the synced tables since the cursor; the deleted records' landing and ARIA "
            "rows are marked deleted. Without read access to sys_audit_delete, a full sync (--full) reconciles "
            "sys_ids instead"
        ),
        capability="cmdb",
        columns=(
            ("Table", "raw->>'$.tablename'"),
            ("Record (sys_id)", "raw->>'$.documentkey'"),
            ("Display value", "raw->>'$.display_value'"),
            ("Deleted by", "raw->>'$.sys_created_by'"),
            ("Deleted", "raw->>'$.sys_created_on'"),
            ("Kind", "coalesce(raw->>'$.kind', 'audit')"),
        ),
    ),
)


class ServiceNowConnector(Connector):
    key = "servicenow"
    name = "ServiceNow"
    vendor = "ServiceNow"
    category = "ITSM & CMDB"
    auth_type = "Basic auth"
    description = (
        "CMDB configuration items, business services, catalogue items and incidents from ServiceNow."
    )
    config_model = ServiceNowConfig
    docs_path = "docs/integrations/servicenow.md"
    capabilities = (
        Capability("cmdb", "CMDB computers and servers", "read on cmdb_ci_computer (role cmdb_read)"),
        Capability("services", "Business services", "read on cmdb_ci_service (role cmdb_read)"),
        Capability("catalog", "Service catalogue items", "read on sc_cat_item (role catalog)"),
        Capability("incidents", "Incidents", "read on incident (role itil)"),
    )
    url_suffixes: ClassVar[dict[str, str]] = {"instanceUrl": INSTANCE_SUFFIX}
    streams = STREAMS

    def __init__(self, *, resolver: Resolver = socket.getaddrinfo) -> None:
        # DNS is injectable so the URL policy can be proven against hostile answers without a network.
        self.resolver = resolver

    @contextlib.contextmanager
    def session(
        self, config: IntegrationConfig, context: ConnectorContext
    ) -> Iterator[api.ServiceNowSession]:
        """A Basic-auth session on the instance; the URL policy runs before any credential is sent."""
        assert isinstance(config, ServiceNowConfig)
        password = config.password.get_secret_value()
        token = base64.b64encode(f"{config.username}:{password}".encode()).decode("ascii")
        http = VendorHttp(
            config.instanceUrl,
            connector=api.CONNECTOR,
            field="instanceUrl",
            headers={
                "Authorization": f"Basic {token}",
                "Accept": "application/json",
                "User-Agent": "aria-sync (ServiceNow integration)",
            },
            ca_bundle=config.caBundle,
            allowed=context.allowed,
            required_suffix=INSTANCE_SUFFIX,
            budget=context.budget,
            secrets=(*context.secrets, password, token),
            sleep=context.sleep or time.sleep,
            resolver=self.resolver,
        )
        with http:
            yield api.ServiceNowSession(http, page_size=config.pageSize)

    def test_connection(self, session: api.ServiceNowSession) -> list[CapabilityResult]:
        """Read access table by table; a 401 raises (nothing else can be checked), a 403 names the grant."""
        problems: dict[str, list[str]] = {}
        for capability, table, grant in READ_PROBES:
            problem = _probe(session, capability, table, grant)
            problems.setdefault(capability, [])
            if problem:
                problems[capability].append(problem)
        results = [
            CapabilityResult(name, not found, "; ".join(found) if found else "ok")
            for name, found in problems.items()
        ]
        results.append(_audit_result(session))
        return results


def _probe(session: api.ServiceNowSession, capability: str, table: str, grant: str) -> str | None:
    try:
        api.probe(session, table, stream=capability)
    except AuthorizationError:
        return f"cannot read {table} (403 Insufficient rights): grant the integration user {grant}"
    except SourceError as exc:
        if exc.status == 400:
            return f"table {table} does not exist on this instance (400 Invalid table)"
        raise  # outages, redirects and rate limits are not a missing permission
    return None


def _audit_result(session: api.ServiceNowSession) -> CapabilityResult:
    """sys_audit_delete is optional: without it deletions are found by a sys_id reconcile on full syncs."""
    try:
        api.probe(session, "sys_audit_delete", stream="deletions")
    except AuthorizationError:
        return CapabilityResult(
            "deletions",
            True,
            "sys_audit_delete is not readable (403): hard-deleted records are found only by the sys_id "
            f"reconcile of a full sync (aria-sync sync --full); {AUDIT_ADVICE}",
        )
    return CapabilityResult("deletions", True, "ok: deletions are read from sys_audit_delete")
