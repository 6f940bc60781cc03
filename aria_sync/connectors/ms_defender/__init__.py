"""Microsoft Defender for Endpoint: machines, alerts, incidents and vulnerabilities."""

from aria_sync.connectors.ms_defender.connector import DefenderConnector

__all__ = ["DefenderConnector"]
