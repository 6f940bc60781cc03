"""Tenable.io: assets, vulnerabilities and scans."""

from aria_sync.connectors.tenable.connector import TenableConnector

__all__ = ["TenableConnector"]
