"""The Tenable.io connector: catalogue entry, capabilities and streams."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from aria_sync.connectors.base import (
    Capability,
    CapabilityResult,
    Connector,
    ConnectorContext,
    IntegrationConfig,
)
from aria_sync.connectors.tenable.api import TenableSession
from aria_sync.connectors.tenable.config import TenableConfig
from aria_sync.connectors.tenable.export import ExportSettings
from aria_sync.connectors.tenable.streams import STREAMS
from aria_sync.errors import AuthenticationError, AuthorizationError, SourceError
from aria_sync.http import VendorHttp

EXPORT_PERMISSION = (
    "Basic [16] role or the VM export privilege (VM.VM_EXPLORE.VM_EXPLORE.EXPORT) with Can View on the assets"
)

__all__ = ["EXPORT_PERMISSION", "TenableConnector"]


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
    streams = STREAMS

    @contextlib.contextmanager
    def session(self, config: IntegrationConfig, context: ConnectorContext) -> Iterator[TenableSession]:
        assert isinstance(config, TenableConfig)
        access, secret = config.accessKey.get_secret_value(), config.secretKey.get_secret_value()
        http = VendorHttp(
            config.baseUrl,
            connector="Tenable",
            field="baseUrl",
            headers={
                "X-ApiKeys": f"accessKey={access};secretKey={secret}",
                "Accept": "application/json",
                "User-Agent": "aria-sync (Tenable integration)",
            },
            ca_bundle=config.caBundle,
            allowed=context.allowed,
            budget=context.budget,
            secrets=(*context.secrets, access, secret),
            sleep=context.sleep or time.sleep,
        )
        with http:
            yield TenableSession(http, ExportSettings.from_options(context.options))

    def test_connection(self, session: TenableSession) -> list[CapabilityResult]:
        """Keys first (401 raises), then the export permission and the scan list separately."""
        scans = _probe(session, "/scans", "scans", "Can View on scans (or a role that includes it)")
        # A 401 raised above; reaching here means Tenable accepted the keys.
        keys = CapabilityResult("keys", True, "Tenable accepted the API keys")
        exports = _probe(session, "/vulns/export/status", "exports", EXPORT_PERMISSION)
        if exports.ok:
            exports = _probe(session, "/assets/export/status", "exports", EXPORT_PERMISSION)
        return [keys, exports, scans]


def _probe(session: TenableSession, path: str, capability: str, permission: str) -> CapabilityResult:
    try:
        session.get_json(path, stream=capability)
    except AuthenticationError:
        raise  # the keys themselves are rejected: nothing else can be checked
    except AuthorizationError:
        return CapabilityResult(
            capability, False, f"Tenable refused {path} (403): grant the integration user the {permission}"
        )
    except SourceError as exc:
        if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
            return CapabilityResult(capability, False, f"Tenable answered {exc.status} for {path}")
        raise  # outages and rate limits are not a missing permission
    return CapabilityResult(capability, True, "ok")
