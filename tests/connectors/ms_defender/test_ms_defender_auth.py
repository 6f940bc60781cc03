"""msal's failure paths against Entra-shaped answers (``responses`` intercepts msal's requests session),
and the page loop's defences against a server that repeats itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

from aria_sync.connectors.base import FetchRequest
from aria_sync.connectors.ms_defender import api
from aria_sync.connectors.ms_defender.auth import (
    MDE_SCOPE,
    TokenSource,
    build_application,
    entra_error,
    token_roles,
    uses_instance_discovery,
)
from aria_sync.errors import AuthenticationError, PaginationLoopError

LOGIN = "https://login.microsoftonline.com"
TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
SECRET = "unit-test-secret-value"


def entra_body(error: str, code: int, text: str) -> dict[str, Any]:
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {text}\r\nTrace ID: 0\r\nCorrelation ID: 0",
        "error_codes": [code],
        "trace_id": "0",
        "correlation_id": "0",
    }


def discovery(tenant: str = TENANT) -> dict[str, Any]:
    base = f"{LOGIN}/{tenant}"
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "issuer": f"{base}/v2.0",
    }


@pytest.fixture
def entra() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{LOGIN}/{TENANT}/v2.0/.well-known/openid-configuration", json=discovery())
        # msal asks the global instance discovery after some failures on Microsoft hosts.
        mock.get(
            f"{LOGIN}/common/discovery/instance",
            json={
                "tenant_discovery_endpoint": f"{LOGIN}/{TENANT}/v2.0/.well-known/openid-configuration",
                "metadata": [
                    {
                        "preferred_network": "login.microsoftonline.com",
                        "preferred_cache": "login.windows.net",
                        "aliases": ["login.microsoftonline.com", "login.windows.net", "sts.windows.net"],
                    }
                ],
            },
        )
        yield mock


def tokens(tenant: str = TENANT) -> TokenSource:
    return TokenSource(
        lambda: build_application(LOGIN, tenant, CLIENT, SECRET, requests.Session()),
        tenant_id=tenant,
        client_id=CLIENT,
    )


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            entra_body("unauthorized_client", 700016, "Application not found."),
            "clientId to the Application",
        ),
        (
            401,
            entra_body("invalid_client", 7000215, "Invalid client secret provided."),
            "paste the secret's Value",
        ),
        (
            401,
            entra_body("invalid_client", 7000222, "The provided client secret keys are expired."),
            "expired",
        ),
        (400, entra_body("invalid_scope", 1002012, "Scope is not valid."), "AADSTS1002012"),
    ],
    ids=["unknown-client", "wrong-secret", "expired-secret", "other"],
)
def test_msal_error_dicts_become_plain_authentication_errors(
    entra: responses.RequestsMock, status: int, body: dict[str, Any], expected: str
) -> None:
    entra.post(f"{LOGIN}/{TENANT}/oauth2/v2.0/token", status=status, json=body)

    with pytest.raises(AuthenticationError) as caught:
        tokens().token(MDE_SCOPE)

    assert expected in caught.value.message and SECRET not in caught.value.message
    assert f"AADSTS{body['error_codes'][0]}" in caught.value.message


def test_an_unknown_tenant_fails_discovery_with_aadsts90002(entra: responses.RequestsMock) -> None:
    other = "99999999-8888-7777-6666-555555555555"
    entra.get(
        f"{LOGIN}/{other}/v2.0/.well-known/openid-configuration",
        status=400,
        json=entra_body("invalid_tenant", 90002, f"Tenant '{other}' not found."),
    )

    with pytest.raises(AuthenticationError) as caught:
        tokens(other).token(MDE_SCOPE)

    assert "AADSTS90002" in caught.value.message and other in caught.value.message


def test_tokens_come_from_msal_cache_and_renewal_asks_again(entra: responses.RequestsMock) -> None:
    answers = iter(["first-token", "second-token"])

    def token_response(request: Any) -> tuple[int, dict[str, str], str]:
        return 200, {}, f'{{"token_type":"Bearer","expires_in":3599,"access_token":"{next(answers)}"}}'

    entra.add_callback("POST", f"{LOGIN}/{TENANT}/oauth2/v2.0/token", callback=token_response)
    source = tokens()

    assert [source.token(MDE_SCOPE), source.token(MDE_SCOPE), source.renew(MDE_SCOPE)] == [
        "first-token",
        "first-token",
        "second-token",
    ]
    assert source.token(MDE_SCOPE) == "second-token"
    assert len([c for c in entra.calls if c.request.method == "POST"]) == 2


def test_helpers_read_hosts_and_roles() -> None:
    assert uses_instance_discovery("https://login.microsoftonline.com")
    assert uses_instance_discovery("https://login.microsoftonline.us/")
    assert not uses_instance_discovery("https://localhost:8443")
    unsigned = "e30.eyJyb2xlcyI6WyJNYWNoaW5lLlJlYWQuQWxsIl19.sig"  # {"roles":["Machine.Read.All"]}
    assert token_roles(unsigned) == ["Machine.Read.All"]
    assert token_roles("e30.e30.sig") is None and token_roles("opaque") is None
    assert "Fix:" in entra_error({"error_codes": [700016]}, tenant_id=TENANT, client_id=CLIENT).message


# -- untrusted pagination ---------------------------------------------------------------------


class _ScriptedSession:
    """Answers each GET with the next scripted body (the shape DefenderSession.get returns)."""

    def __init__(self, bodies: list[dict[str, Any]]) -> None:
        self.bodies = bodies
        self.page_sizes = api.PageSizes(machines=2, export=2)
        self.http = self
        self.calls: list[tuple[str, Any]] = []

    def redact(self, url: str) -> str:
        return url

    def get(self, url: str, *, stream: str, params: Any = None, missing_ok: bool = False) -> dict[str, Any]:
        self.calls.append((url, params))
        return self.bodies[min(len(self.calls), len(self.bodies)) - 1]


def _drain(fetch: Any, session: _ScriptedSession) -> list[list[dict[str, Any]]]:
    return list(fetch(session, FetchRequest(cursor=None, full_refresh=True, state={})))


def test_a_repeated_machines_page_is_a_pagination_loop() -> None:
    same = {"value": [{"id": "a"}, {"id": "b"}]}
    session = _ScriptedSession([same, same])

    with pytest.raises(PaginationLoopError):
        _drain(api.fetch_machines, session)


def test_a_repeated_export_next_link_is_a_pagination_loop() -> None:
    link = (
        "https://api.securitycenter.microsoft.com/api/machines/SoftwareVulnerabilitiesByMachine?$skiptoken=x"
    )
    session = _ScriptedSession(
        [
            {"value": [{"id": "1"}], "@odata.nextLink": link},
            {"value": [{"id": "2"}], "@odata.nextLink": link},
        ]
    )

    with pytest.raises(PaginationLoopError):
        _drain(api.fetch_vulnerabilities, session)


def test_machines_stop_on_a_short_page_and_follow_a_next_link() -> None:
    link = "https://api.securitycenter.microsoft.com/api/machines?$skip=2"
    session = _ScriptedSession(
        [
            {"value": [{"id": "a"}, {"id": "b"}], "@odata.nextLink": link},
            {"value": [{"id": "c"}, {"id": "d"}]},
            {"value": [{"id": "e"}]},
        ]
    )

    pages = _drain(api.fetch_machines, session)

    assert [[r["id"] for r in page] for page in pages] == [["a", "b"], ["c", "d"], ["e"]]
    assert session.calls[1] == (link, None)
    assert session.calls[2][1] == {"$top": 2, "$skip": 4}
