"""aria_sync: the ARIA integration marketplace as a Python toolkit.

Install vendor integrations (Microsoft Defender for Endpoint, ServiceNow, Tenable.io), sync them into
one DuckDB file normalised to the ARIA cyber-risk schema, and analyse the result across sources.
"""

__version__ = "0.1.0"
