"""Configuration of the ServiceNow integration."""

from __future__ import annotations

import httpx
from pydantic import Field, SecretStr, field_validator

from aria_sync.connectors.base import IntegrationConfig, url_field

DEFAULT_PAGE_SIZE = 1000


class ServiceNowConfig(IntegrationConfig):
    instanceUrl: str = url_field(..., "Instance URL, e.g. https://acme.service-now.com")
    username: str = Field(description="Integration user (web service access only, read roles)")
    password: SecretStr = Field(description="Password of the integration user")
    caBundle: str | None = Field(
        default=None, description="Path to a PEM CA bundle for TLS inspection proxies"
    )
    pageSize: int = Field(
        default=DEFAULT_PAGE_SIZE,
        ge=1,
        le=10_000,
        description="Records per Table API page (sysparm_limit); lower it if pages hit the 60 s quota",
    )

    @field_validator("instanceUrl")
    @classmethod
    def _instance_origin(cls, value: str) -> str:
        """The instance URL is an origin: a path, query or fragment would be silently dropped or abused."""
        text = value.strip()
        if "://" not in text:
            raise ValueError(
                f"{text!r} has no scheme; write it as https://{text or '<instance>.service-now.com'}"
            )
        try:
            url = httpx.URL(text)
        except (httpx.InvalidURL, ValueError, UnicodeError):
            raise ValueError(f"{text!r} is not a valid URL") from None
        if not url.host:
            raise ValueError(f"{text!r} has no host name")
        extra = [
            part
            for part, present in (
                (f"path {url.path!r}", url.path not in ("", "/")),
                ("a query string", bool(url.query)),
                ("a fragment", bool(url.fragment)),
            )
            if present
        ]
        if extra:
            raise ValueError(
                f"{text!r} must be the instance address only, e.g. https://acme.service-now.com "
                f"(remove {' and '.join(extra)})"
            )
        return text.rstrip("/")
