"""Qualys VMDR: in the catalogue, not yet syncable."""

from __future__ import annotations

from pydantic import Field, SecretStr

from aria_sync.connectors.base import ComingSoonConnector, IntegrationConfig, url_field


class QualysConfig(IntegrationConfig):
    platformUrl: str = url_field(..., "Qualys API platform URL, e.g. https://qualysapi.qualys.com")
    username: str = Field(description="API user")
    password: SecretStr = Field(description="Password of the API user")


class QualysConnector(ComingSoonConnector):
    key = "qualys"
    name = "Qualys VMDR"
    vendor = "Qualys"
    category = "Vulnerability Mgmt"
    auth_type = "Basic auth"
    description = "Host assets and vulnerability detections from Qualys VMDR."
    config_model = QualysConfig
