"""An ``http_client`` for msal that obeys the same URL policy, pinning, TLS and redaction.

msal accepts any object with ``get``/``post``/``close`` returning responses that have
``status_code``, ``text``, ``headers``, ``json()`` and ``raise_for_status()``. Token endpoints
live on another host than the vendor API, so every origin msal asks for is checked and pinned
on first use. Nothing of the vendor client (base URL, headers, auth) is shared with it.
"""

from __future__ import annotations

import json as jsonlib
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from aria_sync.http.mapping import RequestContext, error_for_response, error_for_transport, redirect_error
from aria_sync.http.pinning import PinnedNetworkBackend, PinnedTransport
from aria_sync.http.policy import AllowList, Resolver, check_url
from aria_sync.http.redact import redact_url


class MsalResponse:
    """The slice of a ``requests.Response`` that msal reads."""

    def __init__(
        self, response: httpx.Response, context: RequestContext, wall_clock: Callable[[], float]
    ) -> None:
        self.status_code = response.status_code
        self.text = response.text
        self.headers: dict[str, str] = dict(response.headers)
        self._response = response
        self._context = context
        self._wall_clock = wall_clock

    def json(self) -> Any:
        return jsonlib.loads(self.text)

    def raise_for_status(self) -> None:
        """Raise the mapped aria_sync error for a 4xx/5xx answer."""
        if self.status_code >= 400:
            error = error_for_response(self._response, self._context, now=self._wall_clock())
            if error is not None:
                raise error

    def __repr__(self) -> str:
        return f"<MsalResponse [{self.status_code}]>"


class MsalHttpClient:
    """Policy-checked, pinned transport for the identity provider's endpoints."""

    def __init__(
        self,
        *,
        connector: str,
        allowed: AllowList,
        resolver: Resolver,
        backend: PinnedNetworkBackend,
        ssl_context: ssl.SSLContext,
        timeout: httpx.Timeout,
        secrets: Sequence[str],
        wall_clock: Callable[[], float],
    ) -> None:
        self._connector = connector
        self._allowed = allowed
        self._resolver = resolver
        self._backend = backend
        self._secrets = secrets  # shared list: secrets added to the vendor client are masked here too
        self._wall_clock = wall_clock
        self._approved: set[tuple[str, str, int | None]] = set()
        self._lock = threading.Lock()
        self._client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            transport=PinnedTransport(ssl_context=ssl_context, backend=backend),
        )

    def _approve(self, url: httpx.URL) -> None:
        origin = (url.scheme, url.raw_host.decode("ascii", "replace").lower(), url.port)
        with self._lock:
            if origin in self._approved:
                return
        checked = check_url(str(url), field="authorityHost", allowed=self._allowed, resolver=self._resolver)
        with self._lock:
            self._backend.pin(checked)
            self._approved.add(origin)

    def _send(self, method: str, url: str, options: Mapping[str, Any]) -> MsalResponse:
        # requests-only options (verify, proxies, allow_redirects, ...) are ignored: TLS, proxies and
        # redirects are governed here, not by the caller.
        request = self._client.build_request(
            method,
            url,
            params=options.get("params"),
            data=options.get("data"),
            json=options.get("json"),
            headers=options.get("headers"),
        )
        timeout = options.get("timeout")
        if isinstance(timeout, int | float):
            request.extensions["timeout"] = httpx.Timeout(float(timeout)).as_dict()
        context = RequestContext(
            self._connector,
            "token",
            request.method,
            redact_url(str(request.url), self._secrets),
            self._secrets,
        )
        self._approve(request.url)
        try:
            response = self._client.send(request)
        except httpx.TransportError as exc:
            raise error_for_transport(exc, context) from None
        if 300 <= response.status_code < 400:
            raise redirect_error(response, context)
        return MsalResponse(response, context, self._wall_clock)

    def get(
        self, url: str, params: Any = None, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> MsalResponse:
        return self._send("GET", url, {**kwargs, "params": params, "headers": headers})

    def post(
        self,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> MsalResponse:
        return self._send("POST", url, {**kwargs, "params": params, "data": data, "headers": headers})

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"MsalHttpClient(connector={self._connector!r})"
