"""``VendorHttp``: the one HTTP client every connector uses.

It owns the URL policy, DNS pinning, TLS settings, status mapping, retries with backoff and
rate-limit hints, client-side rate limits, the per-job retry budget and redaction. Connectors
call :meth:`VendorHttp.request` / :meth:`VendorHttp.get_json` and never retry by themselves.
"""

from __future__ import annotations

import json as jsonlib
import logging
import random
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from aria_sync.errors import (
    ConfigurationError,
    MalformedResponseError,
    PaginationLoopError,
    RateLimitedError,
    RetriableSourceError,
    RetryBudgetExhausted,
    SourceError,
)
from aria_sync.http.mapping import RequestContext, error_for_response, error_for_transport
from aria_sync.http.pinning import PinnedNetworkBackend, PinnedTransport, make_ssl_context
from aria_sync.http.policy import AllowList, CheckedUrl, Resolver, check_url
from aria_sync.http.redact import is_sensitive_header, redact_url
from aria_sync.http.retry import RetryBudget, SlidingWindowLimiter, backoff_delay, clamp_wait

logger = logging.getLogger("aria_sync.http")

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=10.0)
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Requests that certainly did not reach the vendor's application; safe to resend even for POST.
_NOT_DELIVERED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


class VendorHttp:
    """A policy-checked, pinned, retrying HTTP client for one vendor installation.

    ``base_url`` is checked with :func:`check_url` here, before any socket opens. Request URLs are
    paths relative to it or absolute URLs on the same origin. ``limits`` maps path prefixes to
    limiters; every matching limiter is acquired before each attempt. ``secrets`` are masked
    wherever a URL, header or body snippet reaches a log record or an exception message.
    """

    def __init__(
        self,
        base_url: str,
        *,
        connector: str,
        field: str = "baseUrl",
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        ca_bundle: str | None = None,
        allowed: AllowList | None = None,
        required_suffix: str | None = None,
        timeout: httpx.Timeout | None = None,
        max_attempts: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 120.0,
        budget: RetryBudget | None = None,
        limits: Mapping[str, SlidingWindowLimiter] | None = None,
        secrets: Sequence[str] = (),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        resolver: Resolver = socket.getaddrinfo,
        transport: httpx.BaseTransport | None = None,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.connector = connector
        self._allowed = AllowList.from_env() if allowed is None else allowed
        self._resolver = resolver
        self.checked: CheckedUrl = check_url(
            base_url, field=field, allowed=self._allowed, required_suffix=required_suffix, resolver=resolver
        )
        self._secrets: list[str] = [s for s in secrets if s]
        self._secrets += [
            value for name, value in (headers or {}).items() if is_sensitive_header(name) and value
        ]
        self.max_attempts = max(1, max_attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.budget = budget
        self._limits = dict(limits or {})
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()
        try:
            self._ssl_context = make_ssl_context(ca_bundle)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or exc.__class__.__name__
            raise ConfigurationError(f"caBundle: cannot load CA bundle {ca_bundle!r} ({reason})") from None
        self._backend = PinnedNetworkBackend()
        self._backend.pin(self.checked)
        self._timeout = timeout or DEFAULT_TIMEOUT
        self._client = httpx.Client(
            base_url=base_url,
            headers=dict(headers or {}),
            auth=auth,
            timeout=self._timeout,
            follow_redirects=False,
            trust_env=False,
            transport=transport or PinnedTransport(ssl_context=self._ssl_context, backend=self._backend),
        )

    # -- public API -------------------------------------------------------------------------

    def add_secret(self, value: str) -> None:
        """Mask ``value`` from now on (e.g. an access token minted during the sync)."""
        if value and value not in self._secrets:
            self._secrets.append(value)

    def redact(self, url: str) -> str:
        """``url`` as it may appear in logs and messages."""
        return redact_url(url, self._secrets)

    def request(
        self,
        method: str,
        url: str,
        *,
        stream: str | None = None,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send a request and return its 2xx response, or raise the mapped aria_sync error.

        Retriable failures (429, 500/502/503/504, network) are retried up to ``max_attempts``
        times, each retry spending the shared budget. ``idempotent`` defaults by method; a
        non-idempotent request is resent only when the vendor cannot have acted on it (429 or a
        failed connect). When attempts run out the last retriable error is raised.
        """
        request = self._client.build_request(
            method, url, params=params, json=json, data=data, headers=headers
        )
        context = RequestContext(
            self.connector, stream, request.method, self.redact(str(request.url)), self._secrets
        )
        self._check_origin(request, context)
        resend_any = request.method in _IDEMPOTENT_METHODS if idempotent is None else idempotent
        attempt = 0
        while True:
            attempt += 1
            error, response, delivered = self._attempt(request, context)
            if error is None and response is not None:
                return response
            assert error is not None
            if not retry or not isinstance(error, RetriableSourceError):
                raise error
            if not resend_any and delivered and not isinstance(error, RateLimitedError):
                raise error
            if attempt >= self.max_attempts:
                error.message = f"{error.message} (gave up after {attempt} attempts)"
                error.args = (error.message,)
                raise error
            wait = self._wait_before_retry(error, attempt)
            self._spend_budget(error, context)
            logger.warning("%s; retry %d/%d in %.1fs", error.message, attempt, self.max_attempts - 1, wait)
            self._sleep(wait)

    def get_json(self, url: str, **kw: Any) -> Any:
        """GET ``url`` and decode its JSON body (:class:`MalformedResponseError` if it is not JSON)."""
        response = self.request("GET", url, **kw)
        try:
            return jsonlib.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedResponseError(
                f"{self.connector} answered invalid JSON for GET {self.redact(str(response.request.url))} "
                f"({exc.__class__.__name__} at byte {getattr(exc, 'pos', '?')} of {len(response.content)})",
                connector=self.connector,
                stream=kw.get("stream"),
                url=self.redact(str(response.request.url)),
                status=response.status_code,
            ) from None

    def requests_session_for_msal(self) -> object:
        """An ``http_client`` for msal that goes through the same policy, pinning, TLS and redaction."""
        from aria_sync.http.msal_session import MsalHttpClient

        return MsalHttpClient(
            connector=self.connector,
            allowed=self._allowed,
            resolver=self._resolver,
            backend=self._backend,
            ssl_context=self._ssl_context,
            timeout=self._timeout,
            secrets=self._secrets,
            wall_clock=self._wall_clock,
        )

    def close(self) -> None:
        """Close pooled connections."""
        self._client.close()

    def __enter__(self) -> VendorHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VendorHttp(connector={self.connector!r}, base_url={self.redact(self.checked.url)!r})"

    # -- internals --------------------------------------------------------------------------

    def _check_origin(self, request: httpx.Request, context: RequestContext) -> None:
        target = request.url
        origin = (target.scheme, target.raw_host.decode("ascii", "replace").lower(), target.port)
        expected = self.checked.origin
        same = origin[:2] == expected[:2] and (origin[2] or _default_port(origin[0])) == expected[2]
        if not same or target.userinfo:
            raise context.error(
                PaginationLoopError,
                f"{self.connector}: refused {context.method} {context.url}: it leaves the configured origin "
                f"{expected[0]}://{expected[1]}:{expected[2]}",
            )

    def _attempt(
        self, request: httpx.Request, context: RequestContext
    ) -> tuple[SourceError | None, httpx.Response | None, bool]:
        """One try: (error or None, response or None, whether the request may have reached the vendor)."""
        for prefix, limiter in self._limits.items():
            if request.url.path.startswith(prefix):
                limiter.acquire()
        started = self._clock()
        try:
            response = self._client.send(request)
        except httpx.TransportError as exc:
            logger.debug("%s %s failed: %s", context.method, context.url, exc.__class__.__name__)
            return error_for_transport(exc, context), None, not isinstance(exc, _NOT_DELIVERED)
        logger.debug(
            "%s %s -> %d in %.2fs", context.method, context.url, response.status_code, self._clock() - started
        )
        error = error_for_response(response, context, now=self._wall_clock(), max_wait=self.max_delay)
        return error, (response if error is None else None), True

    def _wait_before_retry(self, error: SourceError, attempt: int) -> float:
        hint = error.retry_after if isinstance(error, RateLimitedError) else None
        if hint is not None:
            # Never before the hinted time; a little jitter so parallel workers do not return together.
            return hint + self._rng.uniform(0.0, 0.1 * hint)
        delay = backoff_delay(attempt - 1, base=self.base_delay, cap=self.max_delay, rng=self._rng)
        if isinstance(error, RateLimitedError):
            delay = clamp_wait(delay, maximum=self.max_delay)  # no tight loop after a 429
        return delay

    def _spend_budget(self, error: SourceError, context: RequestContext) -> None:
        if self.budget is None:
            return
        try:
            self.budget.spend()
        except RetryBudgetExhausted as exhausted:
            raise context.error(
                RetryBudgetExhausted, f"{exhausted.message}; last failure: {error.message}", error.status
            ) from error
