"""The analysis API: organisation-scoped DataFrames for notebooks, scripts and the dashboard.

Every function takes ``db`` (a path or a :class:`~aria_sync.store.Database`; default ARIA_SYNC_DB)
and ``org`` (default ARIA_SYNC_ORG), reads through one short-lived organisation-scoped connection
and closes it again. Listing functions take ``limit`` and ``offset`` and push them, with their
filters, into SQL; the matching ``count_*`` function gives the total for a page count.

Example::

    >>> import aria_sync as aria
    >>> aria.assets(search="web", limit=20, db="data/aria.duckdb", org="default")  # doctest: +SKIP
"""

from aria_sync.analysis.coverage import (
    contradictions,
    count_coverage_gaps,
    coverage_gaps,
    coverage_summary,
)
from aria_sync.analysis.export import export_frame
from aria_sync.analysis.incidents import count_incidents, incidents, incidents_by_service
from aria_sync.analysis.inventory import asset_sources, assets, count_assets, inventory_presence, services
from aria_sync.analysis.ops import (
    activity_log,
    changes_since_previous_sync,
    count_activity_log,
    count_rejected_records,
    data_quality_findings,
    rejected_records,
    sync_health,
    sync_jobs,
    verify_activity_log,
)
from aria_sync.analysis.query import sql
from aria_sync.analysis.records import count_source_records, source_records
from aria_sync.analysis.risks import count_risks, risks, top_risks
from aria_sync.analysis.vulns import count_vulnerabilities, sla_summary, vulnerabilities, vulnerability_aging

__all__ = [
    "activity_log",
    "asset_sources",
    "assets",
    "changes_since_previous_sync",
    "contradictions",
    "count_activity_log",
    "count_assets",
    "count_coverage_gaps",
    "count_incidents",
    "count_rejected_records",
    "count_risks",
    "count_source_records",
    "count_vulnerabilities",
    "coverage_gaps",
    "coverage_summary",
    "data_quality_findings",
    "export_frame",
    "incidents",
    "incidents_by_service",
    "inventory_presence",
    "rejected_records",
    "risks",
    "services",
    "sla_summary",
    "source_records",
    "sql",
    "sync_health",
    "sync_jobs",
    "top_risks",
    "verify_activity_log",
    "vulnerabilities",
    "vulnerability_aging",
]
