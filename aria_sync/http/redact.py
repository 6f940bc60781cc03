"""Redaction of URLs, headers and free text before they reach a log line or an exception message.

A secret can leak in more than its raw form: basic auth carries it base64-encoded, query strings
carry it URL-encoded, and debug dumps carry it as hex. :func:`redact_text` masks all of these.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit, urlunsplit

MASK = "***"

_SENSITIVE_PARAM_WORDS = ("token", "secret", "key", "password", "signature", "sig", "code", "auth")
_SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-apikeys", "cookie", "set-cookie", "x-sn-apikey"}
)
_SENSITIVE_HEADER_WORDS = ("key", "token", "secret")
# Credentials that are not configured secrets but are minted at run time (OAuth tokens).
_CREDENTIAL_PATTERNS = (
    re.compile(r"(?i)\b(basic|bearer)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),  # JWT
)
# A base64 fragment shorter than this inside a larger blob matches too much unrelated text.
_MIN_EMBEDDED_BASE64 = 8


def _base64_forms(raw: bytes) -> set[str]:
    """The base64 text of ``raw`` alone and as it appears at any alignment inside a longer blob."""
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(encode(raw).decode("ascii"))
        forms.add(encode(raw).decode("ascii").rstrip("="))
        for offset in range(3):
            encoded = encode(b"\0" * offset + raw).decode("ascii").rstrip("=")
            start = -(-offset * 8 // 6)  # first character not touched by the padding bytes
            end = (offset + len(raw)) * 8 // 6  # last character fully made of secret bits
            core = encoded[start:end]
            if len(core) >= _MIN_EMBEDDED_BASE64:
                forms.add(core)
    return forms


def secret_forms(secret: str) -> set[str]:
    """Every textual form of ``secret`` that redaction masks."""
    if not secret:
        return set()
    raw = secret.encode("utf-8")
    forms = {secret, quote(secret, safe=""), quote_plus(secret), raw.hex(), raw.hex().upper()}
    forms |= _base64_forms(raw)
    return {form for form in forms if form}


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask every configured secret (raw, base64, URL-encoded, hex) and any bearer/basic credential."""
    forms: set[str] = set()
    for secret in secrets:
        forms |= secret_forms(secret)
    # Longest first, so a secret's prefix never leaves the rest of it behind.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    for pattern in _CREDENTIAL_PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)} {MASK}" if m.groups() else MASK, text)
    return text


def _is_sensitive_param(name: str) -> bool:
    lowered = unquote_plus(name).lower()
    return any(word in lowered for word in _SENSITIVE_PARAM_WORDS)


def redact_url(url: str, secrets: Iterable[str] = ()) -> str:
    """The URL without userinfo, with sensitive query values and configured secrets masked.

    Other query parameters are kept byte for byte, so the URL stays useful for debugging.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url, secrets)
    netloc = parts.netloc.rpartition("@")[2]
    pieces = []
    for piece in parts.query.split("&") if parts.query else []:
        name, sep, _value = piece.partition("=")
        pieces.append(f"{name}={MASK}" if sep and _is_sensitive_param(name) else piece)
    rebuilt = urlunsplit((parts.scheme, netloc, parts.path, "&".join(pieces), parts.fragment))
    return redact_text(rebuilt, secrets)


def is_sensitive_header(name: str) -> bool:
    """True for headers that carry credentials or session state."""
    lowered = name.lower()
    return lowered in _SENSITIVE_HEADERS or any(word in lowered for word in _SENSITIVE_HEADER_WORDS)


def redact_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """A copy of ``headers`` with credential-carrying values masked."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {name: (MASK if is_sensitive_header(name) else value) for name, value in items}
