"""The Microsoft Defender for Endpoint connector: catalogue entry, capabilities and streams."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import httpx
import msal

from aria_sync.connectors.base import (
    Capability,
    CapabilityResult,
    Connector,
    ConnectorContext,
    CursorSpec,
    IntegrationConfig,
    Stream,
)
from aria_sync.connectors.ms_defender import api, transform
from aria_sync.connectors.ms_defender.auth import (
    TokenSource,
    app_key,
    build_application,
    permission_text,
    shared_application,
)
from aria_sync.connectors.ms_defender.config import DefenderConfig
from aria_sync.errors import AuthenticationError, AuthorizationError, SourceError
from aria_sync.http import SlidingWindowLimiter, VendorHttp, check_url

__all__ = ["DefenderConnector", "incidents_base_url"]

# Per-API quotas are per minute (and per hour, which a sync stays far below); keep under them here
# rather than collect 429s. The export path also matches the machines prefix: it then counts against
# both, which only errs on the slow side.
RATE_LIMITS = {
    api.MACHINES_PATH: (100, 60.0),
    api.ALERTS_PATH: (100, 60.0),
    api.INCIDENTS_PATH: (50, 60.0),
    api.EXPORT_PATH: (30, 60.0),
}


def incidents_base_url(api_base_url: str) -> str:
    """Where the Defender XDR incidents API lives for a given MDE API host.

    The legacy ``api[-geo].securitycenter.microsoft.com`` hosts do not serve ``/api/incidents``; their
    ``api[-geo].security.microsoft.com`` twins do. Any other host (already the XDR one, a proxy, the
    simulator) serves both.
    """
    url = httpx.URL(api_base_url)
    host = url.host.lower()
    suffix = ".securitycenter.microsoft.com"
    if host.endswith(suffix) and host.count(".") == 3:
        return str(url.copy_with(host=host[: -len(suffix)] + ".security.microsoft.com")).rstrip("/")
    return api_base_url.rstrip("/")


def _limits(sleep: Callable[[float], None], prefixes: tuple[str, ...]) -> dict[str, SlidingWindowLimiter]:
    return {
        prefix: SlidingWindowLimiter(calls, period, sleep=sleep)
        for prefix, (calls, period) in RATE_LIMITS.items()
        if prefix in prefixes
    }


class DefenderConnector(Connector):
    key = "ms-defender"
    name = "Microsoft Defender for Endpoint"
    vendor = "Microsoft"
    category = "EDR"
    auth_type = "OAuth2 client credentials (Microsoft Entra ID)"
    description = (
        "Devices, alerts, incidents and software vulnerabilities from Microsoft Defender for Endpoint."
    )
    config_model = DefenderConfig
    docs_path = "docs/integrations/ms-defender.md"
    capabilities = (
        Capability("machines", "Device inventory", "WindowsDefenderATP: Machine.Read.All"),
        Capability("alerts", "Security alerts", "WindowsDefenderATP: Alert.Read.All"),
        Capability(
            "vulnerabilities", "Software vulnerabilities", "WindowsDefenderATP: Vulnerability.Read.All"
        ),
        Capability("incidents", "Incidents", "Microsoft Threat Protection: Incident.Read.All"),
    )
    streams = (
        Stream(
            name="machines",
            table="ms_defender_assets",
            primary_key="raw->>'$.id'",
            fetch=api.fetch_machines,
            derive=(transform.machines_to_identities,),
            targets=("asset_identities", "assets"),
            description=(
                "GET /api/machines with $top/$skip; full refresh, machines no longer listed are marked "
                "deleted (Inactive machines stay, with status inactive)"
            ),
            capability="machines",
            columns=(
                ("Computer", "raw->>'$.computerDnsName'"),
                ("OS", "concat_ws(' ', raw->>'$.osPlatform', raw->>'$.version')"),
                ("Health", "raw->>'$.healthStatus'"),
                ("Last IP", "raw->>'$.lastIpAddress'"),
                ("Last seen", "raw->>'$.lastSeen'"),
                ("Risk score", "raw->>'$.riskScore'"),
                ("Exposure", "raw->>'$.exposureLevel'"),
                ("Device group", "raw->>'$.rbacGroupName'"),
                ("Tags", "array_to_string(json_extract_string(raw, '$.machineTags[*]'), ', ')"),
            ),
        ),
        Stream(
            name="alerts",
            table="ms_defender_alerts",
            primary_key="raw->>'$.id'",
            fetch=api.fetch_alerts,
            cursor=CursorSpec("raw->>'$.lastUpdateTime'", "timestamp"),
            checks=(("raw->>'$.lastUpdateTime' IS NULL", "alert without lastUpdateTime"),),
            derive=(transform.alerts_to_detections,),
            targets=("detections", "risks"),
            description="GET /api/alerts?$expand=evidence; incremental on lastUpdateTime (inclusive)",
            capability="alerts",
            columns=(
                ("Title", "raw->>'$.title'"),
                ("Severity", "raw->>'$.severity'"),
                ("Status", "raw->>'$.status'"),
                ("Category", "raw->>'$.category'"),
                ("Computer", "raw->>'$.computerDnsName'"),
                ("Incident", "raw->>'$.incidentId'"),
                ("Created", "raw->>'$.alertCreationTime'"),
                ("Updated", "raw->>'$.lastUpdateTime'"),
                ("Evidence", "json_array_length(raw, '$.evidence')"),
            ),
        ),
        Stream(
            name="incidents",
            table="ms_defender_incidents",
            primary_key="raw->>'$.incidentId'",
            fetch=api.fetch_incidents,
            cursor=CursorSpec("raw->>'$.lastUpdateTime'", "timestamp"),
            checks=(("raw->>'$.lastUpdateTime' IS NULL", "incident without lastUpdateTime"),),
            derive=(transform.incidents_to_incidents,),
            targets=("incidents",),
            description="GET /api/incidents (Defender XDR, $top <= 100); incremental on lastUpdateTime",
            capability="incidents",
            columns=(
                ("Name", "raw->>'$.incidentName'"),
                ("Severity", "raw->>'$.severity'"),
                ("Status", "raw->>'$.status'"),
                ("Assigned to", "raw->>'$.assignedTo'"),
                ("Alerts", "json_array_length(raw, '$.alerts')"),
                ("Created", "raw->>'$.createdTime'"),
                ("Updated", "raw->>'$.lastUpdateTime'"),
                ("Merged into", "raw->>'$.redirectIncidentId'"),
            ),
        ),
        Stream(
            name="vulnerabilities",
            table="ms_defender_vulnerabilities",
            primary_key="raw->>'$.id'",
            fetch=api.fetch_vulnerabilities,
            checks=(("raw->>'$.deviceId' IS NULL", "export row without deviceId"),),
            derive=(transform.vulnerabilities_to_findings,),
            targets=("vulnerabilities", "risks"),
            description=(
                "SoftwareVulnerabilitiesByMachine full export via @odata.nextLink; full refresh, rows no "
                "longer exported are marked deleted and their findings fixed"
            ),
            capability="vulnerabilities",
            columns=(
                ("Device", "raw->>'$.deviceName'"),
                ("CVE", "raw->>'$.cveId'"),
                ("Severity", "raw->>'$.vulnerabilitySeverityLevel'"),
                ("CVSS", "raw->>'$.cvssScore'"),
                ("Exploitability", "raw->>'$.exploitabilityLevel'"),
                (
                    "Software",
                    "concat_ws(' ', raw->>'$.softwareVendor', raw->>'$.softwareName', raw->>'$.softwareVersion')",
                ),
                ("Update", "raw->>'$.recommendedSecurityUpdate'"),
                ("Last seen", "raw->>'$.lastSeenTimestamp'"),
            ),
        ),
    )

    @contextlib.contextmanager
    def session(self, config: IntegrationConfig, context: ConnectorContext) -> Iterator[api.DefenderSession]:
        """Clients for the API host(s) and a token source; no request is sent until a token is needed."""
        assert isinstance(config, DefenderConfig)
        secret = config.clientSecret.get_secret_value()
        sleep = context.sleep or time.sleep
        secrets = (*context.secrets, secret)

        def client(base_url: str, field: str, prefixes: tuple[str, ...]) -> VendorHttp:
            # VendorHttp checks the URL policy here, before any socket opens.
            return VendorHttp(
                base_url,
                connector="Microsoft Defender",
                field=field,
                headers={"Accept": "application/json", "User-Agent": "aria-sync (Defender integration)"},
                ca_bundle=config.caBundle,
                allowed=context.allowed,
                budget=context.budget,
                secrets=secrets,
                sleep=sleep,
                limits=_limits(sleep, prefixes),
            )

        # The authority is checked on every session, even when a cached application will serve it.
        check_url(config.authorityHost, field="authorityHost", allowed=context.allowed)
        incidents_url = incidents_base_url(config.apiBaseUrl)
        separate = incidents_url != config.apiBaseUrl.rstrip("/")
        all_paths = tuple(RATE_LIMITS)
        http = client(
            config.apiBaseUrl,
            "apiBaseUrl",
            tuple(p for p in all_paths if p != api.INCIDENTS_PATH) if separate else all_paths,
        )
        incidents_http = client(incidents_url, "apiBaseUrl", (api.INCIDENTS_PATH,)) if separate else None
        authority = f"{config.authorityHost.rstrip('/')}/{config.tenantId}"
        key = app_key(authority, config.clientId, secret, config.caBundle)

        def build() -> tuple[msal.ConfidentialClientApplication, object]:
            # The application outlives this session (its token cache is the point), so its HTTP
            # client has its own lifetime: a policy-checked client for the login host.
            login = VendorHttp(
                config.authorityHost,
                connector="Microsoft Entra ID",
                field="authorityHost",
                ca_bundle=config.caBundle,
                allowed=context.allowed,
                secrets=(secret,),
            )
            app = build_application(
                config.authorityHost,
                config.tenantId,
                config.clientId,
                secret,
                login.requests_session_for_msal(),
            )
            return app, login

        tokens = TokenSource(
            lambda: shared_application(key, build),
            tenant_id=config.tenantId,
            client_id=config.clientId,
            on_token=http.add_secret if incidents_http is None else _both(http, incidents_http),
        )
        try:
            yield api.DefenderSession(
                http,
                tokens,
                incidents_http=incidents_http,
                page_sizes=api.PageSizes.from_options(context.options),
            )
        finally:
            http.close()
            if incidents_http is not None:
                incidents_http.close()

    def test_connection(self, session: api.DefenderSession) -> list[CapabilityResult]:
        """One small read per capability; a 403 names the permission to grant, a 401 raises."""
        probes = (
            ("machines", api.MACHINES_PATH, {"$top": 1}),
            ("alerts", api.ALERTS_PATH, {"$top": 1}),
            ("vulnerabilities", api.EXPORT_PATH, {"$top": 1}),
            ("incidents", api.INCIDENTS_PATH, {"$top": 1}),
        )
        results = []
        for capability, path, params in probes:
            scope, role = api.ROLES[capability]
            try:
                body = session.get(
                    path, stream=capability, params=params, missing_ok=capability == "machines"
                )
            except AuthenticationError:
                raise  # credentials rejected outright: nothing else can be checked
            except AuthorizationError as exc:
                results.append(
                    CapabilityResult(capability, False, f"missing {permission_text(scope, role)}: {exc}")
                )
                continue
            except SourceError as exc:
                if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                    results.append(
                        CapabilityResult(capability, False, f"Defender answered {exc.status} for {path}")
                    )
                    continue
                raise  # outages and rate limits are not a missing permission
            message = "ok" if body is not None else "ok (no machines onboarded yet)"
            results.append(CapabilityResult(capability, True, message))
        return results


def _both(first: VendorHttp, second: VendorHttp) -> Callable[[str], None]:
    def add(token: str) -> None:
        first.add_secret(token)
        second.add_secret(token)

    return add
