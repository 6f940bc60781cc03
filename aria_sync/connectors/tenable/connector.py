"""The Tenable.io connector: catalogue entry, capabilities and streams."""

from __future__ import annotations

from aria_sync.connectors.base import Capability, Connector
from aria_sync.connectors.tenable.config import TenableConfig


class TenableConnector(Connector):
    key = "tenable"
    name = "Tenable.io"
    vendor = "Tenable"
    category = "Vulnerability Mgmt"
    auth_type = "API keys (X-ApiKeys)"
    description = "Assets, vulnerability findings and scans from Tenable Vulnerability Management."
    config_model = TenableConfig
    docs_path = "docs/integrations/tenable.md"
    capabilities = (
        Capability("keys", "API keys accepted", "a valid access/secret key pair"),
        Capability("exports", "Asset and vulnerability exports", "Basic [16] role or VM export privilege"),
        Capability("scans", "Scan list", "Can View on scans"),
    )
