"""Configuration of the Tenable.io integration."""

from __future__ import annotations

from pydantic import Field, SecretStr

from aria_sync.connectors.base import IntegrationConfig, url_field


class TenableConfig(IntegrationConfig):
    accessKey: SecretStr = Field(description="API access key of the integration user")
    secretKey: SecretStr = Field(description="API secret key of the integration user")
    baseUrl: str = url_field("https://cloud.tenable.com", "Tenable Vulnerability Management host")
    caBundle: str | None = Field(
        default=None, description="Path to a PEM CA bundle for TLS inspection proxies"
    )
