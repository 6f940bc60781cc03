"""aria_sync: the ARIA integration marketplace as a Python toolkit.

Install vendor integrations (Microsoft Defender for Endpoint, ServiceNow, Tenable.io), sync them into
one DuckDB file normalised to the ARIA cyber-risk schema, and analyse the result across sources::

    import aria_sync as aria
    aria.assets(search="web", limit=20)
"""

# Set first, so modules that read the version can import it during package start-up.
__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aria_sync.analysis import (
        activity_log,
        asset_sources,
        assets,
        changes_since_previous_sync,
        contradictions,
        count_activity_log,
        count_assets,
        count_coverage_gaps,
        count_incidents,
        count_rejected_records,
        count_risks,
        count_source_records,
        count_vulnerabilities,
        coverage_gaps,
        coverage_summary,
        data_quality_findings,
        export_frame,
        incidents,
        incidents_by_service,
        inventory_presence,
        rejected_records,
        risks,
        services,
        sla_summary,
        source_records,
        sql,
        sync_health,
        sync_jobs,
        top_risks,
        verify_activity_log,
        vulnerabilities,
        vulnerability_aging,
    )

__all__ = [
    "__version__",
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


def __getattr__(name: str) -> Any:
    """The analysis API loads on first use, so a sync or CLI process never pays for pandas."""
    if name in __all__ and name != "__version__":
        from aria_sync import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module 'aria_sync' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
