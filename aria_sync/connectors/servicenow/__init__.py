"""ServiceNow: CMDB, business services, catalogue items and incidents."""

from aria_sync.connectors.servicenow.connector import ServiceNowConnector

__all__ = ["ServiceNowConnector"]
