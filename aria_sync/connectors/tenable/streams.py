"""Stream declarations: where each Tenable collection lands, how it is keyed and fetched."""

from __future__ import annotations

from aria_sync.connectors.base import CursorSpec, Stream
from aria_sync.connectors.tenable import api, transform

# Findings without a finding_id (older exports) are keyed like Tenable's legacy composite key.
FINDING_KEY = (
    "coalesce(raw->>'$.finding_id', (raw->>'$.asset.uuid') || ':' || (raw->>'$.plugin.id') || ':' || "
    "coalesce(raw->>'$.port.port', '0') || ':' || coalesce(upper(raw->>'$.port.protocol'), ''))"
)
# Epoch seconds: the export filters speak epoch seconds, and numbers compare without time zones.
ASSET_CURSOR = "epoch(TRY_CAST(raw->>'$.updated_at' AS TIMESTAMPTZ))"
FINDING_CURSOR = "epoch(greatest(TRY_CAST(raw->>'$.last_found' AS TIMESTAMPTZ), TRY_CAST(raw->>'$.last_fixed' AS TIMESTAMPTZ)))"

ASSETS = Stream(
    name="assets",
    table="tenable_assets",
    primary_key="raw->>'$.id'",
    fetch=api.fetch_assets,
    cursor=CursorSpec(ASSET_CURSOR, "number"),
    # An export returns changed assets, not the live set: absence never means removal.
    marks_stale=False,
    deleted="(raw->>'$.deleted_at') IS NOT NULL OR (raw->>'$.terminated_at') IS NOT NULL",
    derive=(transform.assets_to_identities,),
    targets=("asset_identities", "assets"),
    description=(
        "Asset export (v1); incremental on updated_at. Deleted and terminated assets are marked deleted, "
        "with their findings"
    ),
    capability="exports",
    columns=(
        ("Hostname", "raw->>'$.hostnames[0]'"),
        ("FQDN", "raw->>'$.fqdns[0]'"),
        ("IPv4", "raw->>'$.ipv4s[0]'"),
        ("Operating system", "raw->>'$.operating_systems[0]'"),
        ("Agent", "raw->>'$.has_agent'"),
        ("Last seen", "raw->>'$.last_seen'"),
        ("ServiceNow sys_id", "raw->>'$.servicenow_sysid'"),
        ("Exposure score", "raw->>'$.exposure_score'"),
        ("Deleted at", "coalesce(raw->>'$.deleted_at', raw->>'$.terminated_at')"),
    ),
)

VULNERABILITIES = Stream(
    name="vulnerabilities",
    table="tenable_vulnerabilities",
    primary_key=FINDING_KEY,
    fetch=api.fetch_vulnerabilities,
    cursor=CursorSpec(FINDING_CURSOR, "number"),
    # Removal is a state: Tenable reports FIXED findings, and the export is never a full listing.
    marks_stale=False,
    checks=(("(raw->>'$.asset.uuid') IS NULL", "finding without asset.uuid"),),
    derive=(transform.vulnerabilities_to_findings,),
    targets=("vulnerabilities", "risks"),
    description=(
        "Vulnerability export of every state (OPEN, REOPENED, FIXED); incremental with since = the latest "
        "last_found/last_fixed seen"
    ),
    capability="exports",
    columns=(
        ("Plugin", "raw->>'$.plugin.id'"),
        ("Name", "raw->>'$.plugin.name'"),
        ("Severity", "raw->>'$.severity'"),
        ("State", "raw->>'$.state'"),
        ("Host", "coalesce(raw->>'$.asset.hostname', raw->>'$.asset.fqdn', raw->>'$.asset.ipv4')"),
        ("Port", "(raw->>'$.port.port') || '/' || coalesce(raw->>'$.port.protocol', '')"),
        ("CVEs", "array_to_string(json_extract_string(raw, '$.plugin.cve[*]'), ', ')"),
        ("VPR", "raw->>'$.plugin.vpr.score'"),
        ("Last found", "raw->>'$.last_found'"),
        ("Fixed", "raw->>'$.last_fixed'"),
    ),
)

SCANS = Stream(
    name="scans",
    table="tenable_scans",
    primary_key="raw->>'$.id'",
    fetch=api.fetch_scans,
    description="GET /scans; full refresh, scans no longer listed are marked deleted",
    capability="scans",
    columns=(
        ("Name", "raw->>'$.name'"),
        ("Status", "raw->>'$.status'"),
        ("Type", "raw->>'$.type'"),
        ("Enabled", "raw->>'$.enabled'"),
        ("Owner", "raw->>'$.owner'"),
        ("Targets", "raw->>'$.total_targets'"),
        ("Last modified", "to_timestamp(TRY_CAST(raw->>'$.last_modification_date' AS DOUBLE))"),
        ("Schedule", "raw->>'$.rrules'"),
    ),
)

STREAMS = (ASSETS, VULNERABILITIES, SCANS)
