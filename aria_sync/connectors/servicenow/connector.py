"""The ServiceNow connector: catalogue entry, capabilities and streams."""

from __future__ import annotations

from aria_sync.connectors.base import Capability, Connector
from aria_sync.connectors.servicenow.config import ServiceNowConfig


class ServiceNowConnector(Connector):
    key = "servicenow"
    name = "ServiceNow"
    vendor = "ServiceNow"
    category = "ITSM & CMDB"
    auth_type = "Basic auth"
    description = (
        "CMDB configuration items, business services, catalogue items and incidents from ServiceNow."
    )
    config_model = ServiceNowConfig
    docs_path = "docs/integrations/servicenow.md"
    capabilities = (
        Capability("cmdb", "CMDB computers and servers", "read on cmdb_ci_computer (role cmdb_read)"),
        Capability("services", "Business services", "read on cmdb_ci_service (role cmdb_read)"),
        Capability("catalog", "Service catalogue items", "read on sc_cat_item (role catalog)"),
        Capability("incidents", "Incidents", "read on incident (role itil)"),
    )
