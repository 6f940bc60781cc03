"""A deterministic synthetic company estate served by the Tenable, Defender and ServiceNow simulators.

``Estate.generate(size, seed)`` builds machines, people and business services once, then renders each
vendor's view of them with the identifier variations real estates have (FQDN versus short name,
case, MAC formats, junk serials, re-imaged devices, reused IPs). ``Estate.truth()`` says which vendor
records are the same machine, for scoring the correlation engine.
"""

from aria_sync.simulators.estate.core import DEMO_CREDENTIALS, Estate
from aria_sync.simulators.estate.servicenow import SERVICENOW_REFERENCES, SERVICENOW_TABLES

__all__ = ["DEMO_CREDENTIALS", "SERVICENOW_REFERENCES", "SERVICENOW_TABLES", "Estate"]
