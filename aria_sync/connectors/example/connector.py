"""The example connector: two streams, one full refresh and one incremental."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from aria_sync.connectors.base import (
    Capability,
    CapabilityResult,
    Connector,
    ConnectorContext,
    CursorSpec,
    IntegrationConfig,
    Stream,
)
from aria_sync.connectors.example import api, transform
from aria_sync.connectors.example.config import ExampleConfig
from aria_sync.errors import AuthorizationError
from aria_sync.http import VendorHttp


class ExampleConnector(Connector):
    key = "example"
    name = "Example Inventory"
    vendor = "Example"
    category = "Asset inventory"
    auth_type = "Bearer token"
    description = "A small inventory API that shows the connector shape end to end."
    config_model = ExampleConfig
    docs_path = "docs/writing-a-connector.md"
    capabilities = (
        Capability("devices", "Device inventory", "devices:read"),
        Capability("events", "Change events", "events:read"),
    )
    streams = (
        Stream(
            name="devices",
            table="example_devices",
            primary_key="raw->>'$.id'",
            fetch=api.fetch_devices,
            deleted="TRY_CAST(raw->>'$.retired' AS BOOLEAN)",
            checks=(("raw->>'$.name' IS NULL", "device without a name"),),
            derive=(transform.devices_to_identities,),
            targets=("asset_identities", "assets"),
            description="Devices; full refresh, rows missing from a complete fetch are marked deleted",
            capability="devices",
        ),
        Stream(
            name="events",
            table="example_events",
            primary_key="raw->>'$.id'",
            fetch=api.fetch_events,
            cursor=CursorSpec("raw->>'$.updated_at'", "timestamp"),
            description="Change events; incremental on updated_at (inclusive)",
            capability="events",
        ),
    )

    @contextlib.contextmanager
    def session(self, config: IntegrationConfig, context: ConnectorContext) -> Iterator[VendorHttp]:
        assert isinstance(config, ExampleConfig)
        http = VendorHttp(
            config.baseUrl,
            connector="Example",
            field="baseUrl",
            headers={"Authorization": f"Bearer {config.token.get_secret_value()}"},
            allowed=context.allowed,
            budget=context.budget,
            secrets=context.secrets,
            sleep=context.sleep or time.sleep,
        )
        http.page_size = config.pageSize  # type: ignore[attr-defined]
        with http:
            yield http

    def test_connection(self, session: VendorHttp) -> list[CapabilityResult]:
        results = []
        for capability, path in (("devices", "/api/devices"), ("events", "/api/events")):
            try:
                session.get_json(path, params={"per_page": 1}, stream=capability)
                results.append(CapabilityResult(capability, True, "ok"))
            except AuthorizationError:
                results.append(CapabilityResult(capability, False, f"missing permission {capability}:read"))
        return results
