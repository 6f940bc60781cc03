"""The integration catalogue, derived from the connector registry and each connector's config model."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import duckdb
from pydantic import SecretStr
from pydantic_core import PydanticUndefined

from aria_sync.connectors.base import Connector
from aria_sync.connectors.registry import all_connectors, get_connector

DOCS_BASE = "docs/integrations"


@dataclass(frozen=True)
class ConfigField:
    name: str
    required: bool
    secret: bool
    description: str
    default: str | None
    is_url: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "required": self.required,
            "secret": self.secret,
            "description": self.description,
            "default": self.default,
            "url": self.is_url,
        }


@dataclass(frozen=True)
class CatalogEntry:
    key: str
    name: str
    vendor: str
    category: str
    auth_type: str
    description: str
    status: str
    capabilities: list[dict[str, str]]
    config_fields: list[ConfigField]
    streams: list[dict[str, Any]]
    docs_url: str

    @property
    def required_permissions(self) -> list[str]:
        return [c["permission"] for c in self.capabilities]

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "vendor": self.vendor,
            "category": self.category,
            "auth_type": self.auth_type,
            "description": self.description,
            "status": self.status,
            "capabilities": self.capabilities,
            "required_permissions": self.required_permissions,
            "config_fields": [f.as_dict() for f in self.config_fields],
            "streams": self.streams,
            "docs_url": self.docs_url,
        }


def config_fields(connector: Connector) -> list[ConfigField]:
    fields = []
    for name, info in connector.config_model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        default = None if info.default in (PydanticUndefined, None) else str(info.default)
        fields.append(
            ConfigField(
                name=name,
                required=info.is_required(),
                secret=info.annotation in (SecretStr, SecretStr | None),
                description=info.description or "",
                default=default,
                is_url=bool(extra.get("url")),
            )
        )
    return fields


def entry(connector: Connector) -> CatalogEntry:
    return CatalogEntry(
        key=connector.key,
        name=connector.name,
        vendor=connector.vendor,
        category=connector.category,
        auth_type=connector.auth_type,
        description=connector.description,
        status=connector.status,
        capabilities=[
            {"name": c.name, "description": c.description, "permission": c.permission}
            for c in connector.capabilities
        ],
        config_fields=config_fields(connector),
        streams=[
            {
                "name": s.name,
                "table": s.table,
                "mode": "incremental" if s.incremental else "full refresh",
                "targets": list(s.targets),
                "description": s.description,
            }
            for s in connector.streams
        ],
        docs_url=connector.docs_path or f"{DOCS_BASE}/{connector.key}.md",
    )


def catalog() -> list[CatalogEntry]:
    return [entry(c) for c in all_connectors()]


def catalog_entry(key: str) -> CatalogEntry:
    return entry(get_connector(key))


def catalog_fingerprint() -> str:
    payload = json.dumps([e.as_dict() for e in catalog()], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def refresh_catalog(conn: duckdb.DuckDBPyConnection) -> None:
    """Rewrite integration_catalog and integration_data_mappings from the registry (inside a migration)."""
    now = dt.datetime.now(dt.UTC)
    conn.execute("DELETE FROM integration_catalog WHERE org_id = '*'")
    conn.execute("DELETE FROM integration_data_mappings WHERE org_id = '*'")
    for item in catalog():
        conn.execute(
            "INSERT INTO integration_catalog VALUES ('*', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                item.key,
                item.name,
                item.vendor,
                item.category,
                item.auth_type,
                item.description,
                item.status,
                [c["name"] for c in item.capabilities],
                item.required_permissions,
                json.dumps([f.as_dict() for f in item.config_fields]),
                json.dumps(item.streams),
                item.docs_url,
                now,
            ],
        )
        for stream in item.streams:
            conn.execute(
                "INSERT INTO integration_data_mappings VALUES ('*', ?, ?, ?, ?, ?)",
                [item.key, stream["name"], stream["table"], stream["targets"], stream["description"]],
            )
    conn.execute("DELETE FROM schema_meta WHERE key = 'catalog_fingerprint'")
    conn.execute("INSERT INTO schema_meta VALUES ('catalog_fingerprint', ?)", [catalog_fingerprint()])
