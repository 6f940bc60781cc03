"""CrowdStrike Falcon: in the catalogue, not yet syncable."""

from __future__ import annotations

from pydantic import Field, SecretStr

from aria_sync.connectors.base import ComingSoonConnector, IntegrationConfig, url_field


class CrowdStrikeConfig(IntegrationConfig):
    clientId: str = Field(description="API client id")
    clientSecret: SecretStr = Field(description="API client secret")
    baseUrl: str = url_field("https://api.crowdstrike.com", "Falcon API host (US-1 by default)")


class CrowdStrikeConnector(ComingSoonConnector):
    key = "crowdstrike"
    name = "CrowdStrike Falcon"
    vendor = "CrowdStrike"
    category = "EDR"
    auth_type = "OAuth2 client credentials"
    description = "Detections, hosts and vulnerabilities (Spotlight) from CrowdStrike Falcon."
    config_model = CrowdStrikeConfig
