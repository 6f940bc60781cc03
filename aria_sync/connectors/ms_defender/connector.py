"""The Microsoft Defender for Endpoint connector: catalogue entry, capabilities and streams."""

from __future__ import annotations

from aria_sync.connectors.base import Capability, Connector
from aria_sync.connectors.ms_defender.config import DefenderConfig


class DefenderConnector(Connector):
    key = "ms-defender"
    name = "Microsoft Defender for Endpoint"
    vendor = "Microsoft"
    category = "EDR"
    auth_type = "OAuth2 client credentials (Microsoft Entra ID)"
    description = (
        "Devices, alerts, incidents and software vulnerabilities from Microsoft Defender for Endpoint."
    )
    config_model = DefenderConfig
    docs_path = "docs/integrations/ms-defender.md"
    capabilities = (
        Capability("machines", "Device inventory", "WindowsDefenderATP: Machine.Read.All"),
        Capability("alerts", "Security alerts", "WindowsDefenderATP: Alert.Read.All"),
        Capability(
            "vulnerabilities", "Software vulnerabilities", "WindowsDefenderATP: Vulnerability.Read.All"
        ),
        Capability("incidents", "Incidents", "Microsoft Threat Protection: Incident.Read.All"),
    )
