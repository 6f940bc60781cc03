"""Access tokens for Defender from Microsoft Entra ID, through msal (client credentials).

One ``msal.ConfidentialClientApplication`` per installation lives for the whole process, so its
in-memory token cache serves every stream of a sync and every later sync: one token request per
scope per hour, not per call. msal answers failures as dicts; :func:`entra_error` turns them into
one plain message per cause (wrong tenant, unknown client, wrong secret), each naming the AADSTS
code and the fix.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msal

from aria_sync.errors import AuthenticationError, AuthorizationError

MDE_SCOPE = "https://api.securitycenter.microsoft.com/.default"
"""WindowsDefenderATP: machines, alerts and vulnerabilities."""
XDR_SCOPE = "https://api.security.microsoft.com/.default"
"""Microsoft Threat Protection: the Defender XDR incidents API."""

CONNECTOR = "Microsoft Defender"

# Entra login hosts msal knows; anything else (a sovereign proxy, the simulator) skips instance discovery,
# which would otherwise call login.microsoftonline.com from a machine that may not reach it.
MICROSOFT_LOGIN_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
    }
)

_PERMISSIONS = {
    MDE_SCOPE: "WindowsDefenderATP",
    XDR_SCOPE: "Microsoft Threat Protection",
}


def uses_instance_discovery(authority_host: str) -> bool:
    """Whether msal may run Entra instance discovery for this login host (only for Microsoft's own)."""
    host = authority_host.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower().rstrip(".")
    return host in MICROSOFT_LOGIN_HOSTS


# -- error mapping ------------------------------------------------------------------------------


def wrong_tenant_error(tenant_id: str) -> AuthenticationError:
    return AuthenticationError(
        f"Microsoft Entra ID does not know tenant '{tenant_id}' (AADSTS90002: tenant not found). "
        "Fix: set tenantId to the Directory (tenant) ID shown on the app registration's Overview page, "
        "and make sure authorityHost is the login host of your cloud.",
        connector=CONNECTOR,
        stream="token",
    )


def entra_error(result: Mapping[str, Any], *, tenant_id: str, client_id: str) -> AuthenticationError:
    """The plain error for an msal failure dict (``error``, ``error_description``, ``error_codes``)."""
    codes = {int(c) for c in result.get("error_codes") or () if isinstance(c, int | str) and str(c).isdigit()}
    error = str(result.get("error") or "error")
    if 90002 in codes:
        return wrong_tenant_error(tenant_id)
    if 700016 in codes:
        message = (
            f"No application with client id '{client_id}' exists in tenant '{tenant_id}' "
            "(AADSTS700016: application not found in the directory). Fix: set clientId to the Application "
            "(client) ID of the app registration, created in this same tenant."
        )
    elif 7000215 in codes:
        message = (
            f"Microsoft Entra ID rejected the client secret of application '{client_id}' "
            "(AADSTS7000215: invalid client secret). Fix: paste the secret's Value (not its Secret ID) from "
            "Certificates & secrets of the app registration, or create a new secret."
        )
    elif 7000222 in codes:
        message = (
            f"The client secret of application '{client_id}' has expired (AADSTS7000222). Fix: create a new "
            "secret under Certificates & secrets and update clientSecret."
        )
    else:
        code = f"AADSTS{min(codes)}" if codes else error
        first_line = str(result.get("error_description") or "").splitlines()[0:1]
        detail = first_line[0] if first_line else error
        # Entra's description never echoes the secret, but cut it short: it carries trace ids.
        message = f"Microsoft Entra ID refused the token request ({code}): {detail[:200]}"
    return AuthenticationError(message, connector=CONNECTOR, stream="token")


def token_roles(access_token: str) -> list[str] | None:
    """The ``roles`` claim of a JWT access token (None when it cannot be read or has no roles)."""
    parts = access_token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    roles = claims.get("roles") if isinstance(claims, dict) else None
    return [str(r) for r in roles] if isinstance(roles, list) and roles else None


def permission_text(scope: str, role: str) -> str:
    """How the docs and messages name one application permission, e.g. for alerts."""
    return f"{_PERMISSIONS.get(scope, 'WindowsDefenderATP')} {role} (application permission) + admin consent"


def permission_error(
    scope: str, role: str, *, client_id: str, roles: list[str] | None, stream: str | None
) -> AuthorizationError:
    """A 403 from the API, explained: no consent at all, or this one permission missing."""
    if roles is None:
        message = (
            f"Application '{client_id}' has no admin-consented permissions on "
            f"{_PERMISSIONS.get(scope, 'WindowsDefenderATP')}: Entra issued a token without roles "
            "(AADSTS65001: consent_required), so Defender answered 403. Fix: in Entra ID > App registrations > "
            "API permissions, press 'Grant admin consent' for the tenant."
        )
    else:
        message = (
            f"Application '{client_id}' lacks {permission_text(scope, role)}; Defender answered 403. "
            f"Fix: add it under API permissions > APIs my organization uses > "
            f"{_PERMISSIONS.get(scope, 'WindowsDefenderATP')}, then grant admin consent."
        )
    return AuthorizationError(message, connector=CONNECTOR, stream=stream, status=403)


# -- applications and tokens --------------------------------------------------------------------


@dataclass(frozen=True)
class AppKey:
    """What makes two installations share one msal application (and so one token cache)."""

    authority: str
    client_id: str
    secret_fingerprint: str  # a rotated secret must not reuse an app built with the old one
    ca_bundle: str | None


def app_key(authority: str, client_id: str, secret: str, ca_bundle: str | None) -> AppKey:
    fingerprint = hashlib.sha256(f"{client_id}\0{secret}".encode()).hexdigest()
    return AppKey(authority.rstrip("/").lower(), client_id, fingerprint, ca_bundle)


class _Registry:
    """Process-wide msal applications, with whatever keeps their HTTP client alive."""

    def __init__(self) -> None:
        self._apps: dict[AppKey, tuple[msal.ConfidentialClientApplication, object]] = {}
        self._lock = threading.Lock()

    def get(
        self,
        key: AppKey,
        build: Callable[[], tuple[msal.ConfidentialClientApplication, object]],
    ) -> msal.ConfidentialClientApplication:
        with self._lock:
            entry = self._apps.get(key)
            if entry is None:
                entry = build()  # discovery runs here, once; a failure caches nothing
                self._apps[key] = entry
            return entry[0]

    def clear(self) -> None:
        with self._lock:
            entries, self._apps = list(self._apps.values()), {}
        for _, keepalive in entries:
            close = getattr(keepalive, "close", None)
            if callable(close):
                close()


_REGISTRY = _Registry()


def forget_applications() -> None:
    """Drop every cached msal application and token (e.g. between tests, or after a tenant move)."""
    _REGISTRY.clear()


def build_application(
    authority_host: str,
    tenant_id: str,
    client_id: str,
    secret: str,
    http_client: object,
) -> msal.ConfidentialClientApplication:
    """A confidential client for ``{authorityHost}/{tenantId}``; an unknown tenant raises AADSTS90002."""
    try:
        return msal.ConfidentialClientApplication(
            client_id,
            client_credential=secret,
            authority=f"{authority_host.rstrip('/')}/{tenant_id}",
            instance_discovery=uses_instance_discovery(authority_host),
            http_client=http_client,
        )
    except ValueError:
        # msal's own text says only that discovery failed; a 4xx there is Entra's unknown tenant.
        raise wrong_tenant_error(tenant_id) from None


def shared_application(
    key: AppKey, build: Callable[[], tuple[msal.ConfidentialClientApplication, object]]
) -> msal.ConfidentialClientApplication:
    """The process-wide application for ``key``, built on first use."""
    return _REGISTRY.get(key, build)


class TokenSource:
    """Access tokens per scope from one msal application, renewed on demand after a 401."""

    def __init__(
        self,
        application: Callable[[], msal.ConfidentialClientApplication],
        *,
        tenant_id: str,
        client_id: str,
        on_token: Callable[[str], None] = lambda token: None,
    ) -> None:
        self._application = application
        self._app: msal.ConfidentialClientApplication | None = None
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._on_token = on_token
        self._lock = threading.Lock()

    @property
    def app(self) -> msal.ConfidentialClientApplication:
        with self._lock:
            if self._app is None:
                self._app = self._application()
            return self._app

    def token(self, scope: str) -> str:
        """A valid token for ``scope``: msal's cached one, or a new one when it nears expiry."""
        result = self.app.acquire_token_for_client(scopes=[scope])
        if not isinstance(result, dict) or "access_token" not in result:
            raise entra_error(result or {}, tenant_id=self.tenant_id, client_id=self.client_id)
        token = str(result["access_token"])
        self._on_token(token)
        return token

    def renew(self, scope: str) -> str:
        """Forget the cached token of ``scope`` (the API refused it) and ask Entra for a new one."""
        app = self.app
        for entry in list(
            app.token_cache.search(
                msal.TokenCache.CredentialType.ACCESS_TOKEN,
                target=[scope],
                query={"client_id": self.client_id},
            )
        ):
            app.token_cache.remove_at(entry)
        return self.token(scope)
