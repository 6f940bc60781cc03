"""Splunk: in the catalogue, not yet syncable."""

from __future__ import annotations

from pydantic import Field, SecretStr

from aria_sync.connectors.base import ComingSoonConnector, IntegrationConfig, url_field


class SplunkConfig(IntegrationConfig):
    baseUrl: str = url_field(..., "Splunk REST API URL, e.g. https://splunk.example.com:8089")
    token: SecretStr = Field(description="Splunk authentication token")


class SplunkConnector(ComingSoonConnector):
    key = "splunk"
    name = "Splunk"
    vendor = "Splunk"
    category = "SIEM"
    auth_type = "Bearer token"
    description = "Notable events and asset lookups from Splunk."
    config_model = SplunkConfig
