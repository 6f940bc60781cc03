"""Redaction (C14): no secret survives in raw, base64, URL-encoded or hex form."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

import httpx
import pytest

from aria_sync.http.redact import MASK, redact_headers, redact_text, redact_url, secret_forms

CANARIES = [
    "Canary-Azure~Secret.8Q",  # Azure client secrets contain ~ and .
    "sn p@ss/w0rd+&=?",  # ServiceNow passwords with URL-special characters
    "a1b2c3d4e5f60718293a4b5c6d7e8f90",  # Tenable-style hex key
]


def encoded_forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [
        secret,
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        quote(secret, safe=""),
        quote_plus(secret),
        raw.hex(),
        raw.hex().upper(),
    ]


@pytest.mark.parametrize("secret", CANARIES)
def test_redact_text_masks_every_encoding(secret: str) -> None:
    for form in encoded_forms(secret):
        text = f"error while calling vendor: {form} was rejected"
        redacted = redact_text(text, [secret])
        assert form not in redacted
        assert MASK in redacted
        assert redacted.startswith("error while calling vendor: ")


@pytest.mark.parametrize("user", ["admin", "svc-aria", "x"])
def test_secret_inside_a_basic_auth_blob_is_masked_at_any_alignment(user: str) -> None:
    password = CANARIES[1]
    blob = base64.b64encode(f"{user}:{password}".encode()).decode()
    # Without the "Basic" prefix: only the alignment-aware forms can catch it.
    redacted = redact_text(f"dump {blob} end", [password])
    assert blob not in redacted


def test_bearer_tokens_and_jwts_are_masked_without_configuration() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVl"
    text = f"Authorization: Bearer abc.def-ghi token={jwt} Basic dXNlcjpwYXNz"
    redacted = redact_text(text)
    assert "abc.def-ghi" not in redacted
    assert jwt not in redacted
    assert "dXNlcjpwYXNz" not in redacted
    assert "Bearer ***" in redacted


def test_empty_secret_changes_nothing() -> None:
    assert redact_text("nothing to hide", ["", ""]) == "nothing to hide"
    assert secret_forms("") == set()


def test_redact_url_drops_userinfo_and_masks_sensitive_params() -> None:
    url = (
        "https://user:Pa55@acme.service-now.com/api/now/table/incident"
        "?sysparm_limit=100&api_key=K1&access_token=T2&sig=S3&code=C4&Password=P5"
        "&client_secret=X6&authToken=A7&sysparm_query=active%3Dtrue"
    )
    redacted = redact_url(url)
    assert "user" not in redacted and "Pa55" not in redacted
    for value in ("K1", "T2", "S3", "C4", "P5", "X6", "A7"):
        assert f"={value}" not in redacted
    assert "sysparm_limit=100" in redacted
    assert "sysparm_query=active%3Dtrue" in redacted  # other params kept byte for byte
    assert redacted.startswith("https://acme.service-now.com/api/now/table/incident?")


def test_redact_url_masks_configured_secrets_anywhere() -> None:
    secret = CANARIES[0]
    url = f"https://cloud.tenable.com/assets/{quote(secret, safe='')}?q={quote_plus(secret)}#{secret}"
    redacted = redact_url(url, [secret])
    for form in encoded_forms(secret):
        assert form not in redacted


def test_redact_headers_masks_credential_headers() -> None:
    headers = httpx.Headers(
        {
            "Authorization": "Basic dXNlcjpwYXNz",
            "X-ApiKeys": "accessKey=a1;secretKey=b2",
            "Cookie": "session=c3",
            "Set-Cookie": "session=c3",
            "Proxy-Authorization": "Basic eA==",
            "x-sn-apikey": "d4",
            "X-Custom-Token": "e5",
            "X-Client-Secret": "f6",
            "Ocp-Apim-Subscription-Key": "g7",
            "Accept": "application/json",
            "User-Agent": "aria-sync",
        }
    )
    redacted = redact_headers(headers)
    assert redacted["accept"] == "application/json"
    assert redacted["user-agent"] == "aria-sync"
    masked = {name for name, value in redacted.items() if value == MASK}
    assert len(masked) == 9
    assert redact_headers([("Authorization", "x"), ("Accept", "y")]) == {"Authorization": MASK, "Accept": "y"}
