"""The ordered connector registry: every integration the catalogue shows, in display order.

Extra connectors (a private integration, or the test suite's) are imported from the modules named
in ``ARIA_SYNC_EXTRA_CONNECTORS`` (comma-separated); each calls :func:`register` on import.
"""

from __future__ import annotations

import importlib
import os

from aria_sync.connectors.base import Connector
from aria_sync.connectors.crowdstrike import CrowdStrikeConnector
from aria_sync.connectors.ms_defender import DefenderConnector
from aria_sync.connectors.okta import OktaConnector
from aria_sync.connectors.qualys import QualysConnector
from aria_sync.connectors.servicenow import ServiceNowConnector
from aria_sync.connectors.splunk import SplunkConnector
from aria_sync.connectors.tenable import TenableConnector
from aria_sync.errors import UnknownIntegrationError

_REGISTRY: dict[str, Connector] = {
    connector.key: connector
    for connector in (
        DefenderConnector(),
        ServiceNowConnector(),
        TenableConnector(),
        CrowdStrikeConnector(),
        QualysConnector(),
        SplunkConnector(),
        OktaConnector(),
    )
}
_extras_loaded: set[str] = set()


def register(connector: Connector) -> None:
    _REGISTRY[connector.key] = connector


def _load_extras() -> None:
    for module in filter(
        None, (m.strip() for m in os.environ.get("ARIA_SYNC_EXTRA_CONNECTORS", "").split(","))
    ):
        if module not in _extras_loaded:
            importlib.import_module(module)
            _extras_loaded.add(module)


def all_connectors() -> list[Connector]:
    _load_extras()
    return list(_REGISTRY.values())


def get_connector(key: str) -> Connector:
    _load_extras()
    try:
        return _REGISTRY[key]
    except KeyError:
        valid = ", ".join(_REGISTRY)
        raise UnknownIntegrationError(f"unknown integration {key!r}; valid keys: {valid}") from None
