"""Configuration of the ServiceNow integration."""

from __future__ import annotations

from pydantic import Field, SecretStr

from aria_sync.connectors.base import IntegrationConfig, url_field


class ServiceNowConfig(IntegrationConfig):
    instanceUrl: str = url_field(..., "Instance URL, e.g. https://acme.service-now.com")
    username: str = Field(description="Integration user (web service access only, read roles)")
    password: SecretStr = Field(description="Password of the integration user")
    caBundle: str | None = Field(
        default=None, description="Path to a PEM CA bundle for TLS inspection proxies"
    )
