"""The shared HTTP layer: URL policy, pinned and retrying client, rate limits and redaction."""

from aria_sync.http.client import DEFAULT_TIMEOUT, VendorHttp
from aria_sync.http.policy import ALLOWED_HOSTS_ENV, AllowList, CheckedUrl, check_url
from aria_sync.http.redact import redact_headers, redact_text, redact_url
from aria_sync.http.retry import (
    RetryBudget,
    SlidingWindowLimiter,
    backoff_delay,
    clamp_wait,
    parse_rate_limit_reset,
    parse_retry_after,
)

__all__ = [
    "ALLOWED_HOSTS_ENV",
    "DEFAULT_TIMEOUT",
    "AllowList",
    "CheckedUrl",
    "RetryBudget",
    "SlidingWindowLimiter",
    "VendorHttp",
    "backoff_delay",
    "check_url",
    "clamp_wait",
    "parse_rate_limit_reset",
    "parse_retry_after",
    "redact_headers",
    "redact_text",
    "redact_url",
]
