"""Configuration of the example inventory integration."""

from __future__ import annotations

from pydantic import Field, SecretStr

from aria_sync.connectors.base import IntegrationConfig, url_field


class ExampleConfig(IntegrationConfig):
    baseUrl: str = url_field(..., "Base URL of the inventory API")
    token: SecretStr = Field(description="API token")
    pageSize: int = Field(default=50, ge=1, le=1000, description="Records per page")
