"""Okta: in the catalogue, not yet syncable."""

from __future__ import annotations

from pydantic import Field, SecretStr

from aria_sync.connectors.base import ComingSoonConnector, IntegrationConfig, url_field


class OktaConfig(IntegrationConfig):
    orgUrl: str = url_field(..., "Okta org URL, e.g. https://acme.okta.com")
    apiToken: SecretStr = Field(description="Okta API token (read-only admin)")


class OktaConnector(ComingSoonConnector):
    key = "okta"
    name = "Okta"
    vendor = "Okta"
    category = "Identity"
    auth_type = "API token (SSWS)"
    description = "Users, groups and sign-in risk from Okta."
    config_model = OktaConfig
