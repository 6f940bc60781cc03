"""Configuration of the Microsoft Defender for Endpoint integration."""

from __future__ import annotations

from pydantic import Field, SecretStr

from aria_sync.connectors.base import IntegrationConfig, url_field


class DefenderConfig(IntegrationConfig):
    tenantId: str = Field(description="Microsoft Entra tenant id (GUID) of the Defender tenant")
    clientId: str = Field(description="Application (client) id of the app registration")
    clientSecret: SecretStr = Field(description="Client secret of the app registration")
    apiBaseUrl: str = url_field("https://api.securitycenter.microsoft.com", "Defender for Endpoint API host")
    authorityHost: str = url_field("https://login.microsoftonline.com", "Microsoft Entra ID login host")
    caBundle: str | None = Field(
        default=None, description="Path to a PEM CA bundle for TLS inspection proxies"
    )
