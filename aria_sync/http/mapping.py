"""The one place where HTTP statuses and transport failures become aria_sync errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import httpx

from aria_sync.errors import (
    AuthenticationError,
    AuthorizationError,
    FatalSourceError,
    NetworkError,
    RateLimitedError,
    ServerError,
    SourceError,
    UnexpectedRedirectError,
)
from aria_sync.http.redact import redact_text, redact_url
from aria_sync.http.retry import DEFAULT_MAX_WAIT, clamp_wait, parse_rate_limit_reset, parse_retry_after

E = TypeVar("E", bound=SourceError)

RETRIABLE_SERVER_STATUSES = frozenset({500, 502, 503, 504})
_DETAIL_CHARS = 200


@dataclass(frozen=True)
class RequestContext:
    """What an error message says about the request, already redacted."""

    connector: str
    stream: str | None
    method: str
    url: str  # redacted
    secrets: Sequence[str] = ()

    def error(self, cls: type[E], message: str, status: int | None = None) -> E:
        """An error of class ``cls`` carrying this request's context."""
        return cls(message, connector=self.connector, stream=self.stream, url=self.url, status=status)


def wait_hint(headers: httpx.Headers, *, now: float, maximum: float = DEFAULT_MAX_WAIT) -> float | None:
    """The vendor's clamped wait hint in seconds (Retry-After or X-RateLimit-*), if it sent one."""
    hint = parse_retry_after(headers.get("retry-after"), now=now)
    if hint is None:
        hint = parse_rate_limit_reset(headers.get("x-ratelimit-retryafter"), now=now)
    if hint is None:
        hint = parse_rate_limit_reset(headers.get("x-ratelimit-reset"), now=now)
    return None if hint is None else clamp_wait(hint, maximum=maximum)


def _detail(response: httpx.Response, secrets: Sequence[str]) -> str:
    try:
        text = " ".join(response.text.split())
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        return ""
    if not text:
        return ""
    snippet = redact_text(text[:_DETAIL_CHARS], secrets)
    return f": {snippet}{'...' if len(text) > _DETAIL_CHARS else ''}"


def error_for_response(
    response: httpx.Response, context: RequestContext, *, now: float, max_wait: float = DEFAULT_MAX_WAIT
) -> SourceError | None:
    """The error a non-success response stands for, or None for a 1xx/2xx answer."""
    status = response.status_code
    if status < 300:
        return None
    if status < 400:
        return redirect_error(response, context)
    message = f"{context.connector} answered {status} for {context.method} {context.url}"
    message += _detail(response, context.secrets)
    if status == 401:
        return context.error(AuthenticationError, message, status)
    if status == 403:
        return context.error(AuthorizationError, message, status)
    if status == 429:
        error = context.error(RateLimitedError, message, status)
        error.retry_after = wait_hint(response.headers, now=now, maximum=max_wait)
        return error
    if status in RETRIABLE_SERVER_STATUSES:
        return context.error(ServerError, message, status)
    return context.error(FatalSourceError, message, status)


def redirect_error(response: httpx.Response, context: RequestContext) -> UnexpectedRedirectError:
    """A refusal naming where the vendor tried to send us (never followed with credentials)."""
    location = response.headers.get("location")
    if location:
        target = response.request.url.join(location)
        where = f"{target.scheme}://{target.host}" + (f":{target.port}" if target.port else "")
    else:
        where = "no Location"
    message = (
        f"{context.connector} answered {response.status_code} redirect for {context.method} {context.url} "
        f"to {redact_url(where, context.secrets)}; redirects are not followed with credentials"
    )
    return context.error(UnexpectedRedirectError, message, response.status_code)


def error_for_transport(exc: httpx.TransportError, context: RequestContext) -> SourceError:
    """A connect error, timeout, reset or truncated body as a (retriable) NetworkError.

    A failed certificate check is fatal instead: retrying cannot fix a trust problem.
    """
    reason = redact_text(str(exc) or exc.__class__.__name__, context.secrets)
    if "CERTIFICATE_VERIFY_FAILED" in reason:
        return context.error(
            FatalSourceError,
            f"{context.connector}: TLS certificate of {context.url} is not trusted ({reason}); "
            "set caBundle to the PEM file of its certificate authority",
        )
    message = f"{context.connector}: network error on {context.method} {context.url}: {reason}"
    return context.error(NetworkError, message)
