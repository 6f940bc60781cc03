"""VendorHttp over real HTTP to loopback simulators (C8-C11, C14, C17, C18), in fake time."""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import httpx
import msal
import pytest

from aria_sync.errors import (
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    FatalSourceError,
    MalformedResponseError,
    NetworkError,
    PaginationLoopError,
    RateLimitedError,
    RetryBudgetExhausted,
    ServerError,
    SourceError,
    UnexpectedRedirectError,
    UrlPolicyError,
)
from aria_sync.http import AllowList, RetryBudget, SlidingWindowLimiter, VendorHttp
from aria_sync.simulators.framework import (
    Fault,
    SimRequest,
    SimResponse,
    SimulatorServer,
    VendorApp,
    json_response,
)

ALLOWED = AllowList.parse("127.0.0.1,localhost")
WALL = 1_750_000_000.0  # the fake wall clock used for HTTP-dates and epoch reset headers
CANARY = "Canary-S3cret~Value.42"
ACCESS_CANARY = "AccessKeyCanary0123456789"


class FakeTime:
    """Monotonic clock and sleep in fake time: sleeping advances the clock instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class ItemsApp(VendorApp):
    """A tiny vendor: items, an export POST, an echoing 401 and a redirect."""

    name = "items"

    def __init__(self, fake: FakeTime | None = None) -> None:
        super().__init__()
        self.fake = fake
        self.seen_at: list[float] = []  # fake time at which each request arrived
        self.redirect_to = "https://attacker.test/"
        self.route("GET", r"/api/items", self.items)
        self.route("POST", r"/api/export", lambda r, m: json_response({"export_uuid": "u-1"}))
        self.route("GET", r"/api/echo-401", self.echo_401)
        self.route("GET", r"/api/moved", lambda r, m: SimResponse(302, b"", {"Location": self.redirect_to}))
        self.route("GET", r"/api/not-json", lambda r, m: SimResponse(200, b"<html>oops", {}))

    def items(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        if self.fake is not None:
            self.seen_at.append(self.fake.now)
        return json_response({"items": [1, 2, 3], "page": request.arg("page")})

    def echo_401(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        # Some vendors echo what they were sent; the client must still not leak it.
        return json_response({"error": "invalid key", "received": request.header("x-apikeys")}, 401)


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


# Servers are shared by the module (stopping one costs half a second) and reset for every test.
@pytest.fixture(scope="module")
def _servers() -> Iterator[tuple[SimulatorServer, SimulatorServer]]:
    with SimulatorServer(ItemsApp()) as first, SimulatorServer(ItemsApp()) as second:
        yield first, second


def _reset(server: SimulatorServer, fake: FakeTime | None) -> SimulatorServer:
    server.faults.clear()
    server.request_log.clear()
    server.app = ItemsApp(fake)
    return server


@pytest.fixture
def server(_servers: tuple[SimulatorServer, SimulatorServer], fake: FakeTime) -> SimulatorServer:
    return _reset(_servers[0], fake)


@pytest.fixture
def other_server(_servers: tuple[SimulatorServer, SimulatorServer]) -> SimulatorServer:
    return _reset(_servers[1], None)


def make_client(base_url: str, fake: FakeTime, **kwargs: Any) -> VendorHttp:
    options: dict[str, Any] = {
        "connector": "Tenable",
        "allowed": ALLOWED,
        "sleep": fake.sleep,
        "clock": fake.clock,
        "wall_clock": lambda: WALL,
        "rng": random.Random(7),
    }
    options.update(kwargs)
    return VendorHttp(base_url, **options)


def add_429(server: SimulatorServer, headers: dict[str, str], times: int = 1) -> None:
    server.faults.add(Fault(kind="status", path="/api/items", status=429, headers=headers, times=times))


# -- success, origin, redirects --------------------------------------------------------------


def test_get_json_through_relative_and_same_origin_absolute_urls(
    server: SimulatorServer, fake: FakeTime
) -> None:
    with make_client(server.base_url + "/api", fake) as http:
        assert http.get_json("/items", params={"page": "2"}) == {"items": [1, 2, 3], "page": "2"}
        assert http.get_json(server.base_url + "/api/items")["items"] == [1, 2, 3]
    assert [r.path for r in server.request_log] == ["/api/items", "/api/items"]


def test_off_origin_urls_are_refused_without_a_request(
    server: SimulatorServer, other_server: SimulatorServer, fake: FakeTime
) -> None:
    with make_client(server.base_url, fake) as http:
        for url in (other_server.base_url + "/api/items", "https://attacker.test/api/items"):
            with pytest.raises(PaginationLoopError, match="leaves the configured origin"):
                http.request("GET", url)
        with pytest.raises(PaginationLoopError):
            http.request("GET", server.base_url.replace("http://", "http://u:p@") + "/api/items")
    assert other_server.request_log == []
    assert server.request_log == []


@pytest.mark.parametrize("target", ["other-server", "https://attacker.test/", "http://acme.service-now.com/"])
def test_redirects_are_refused_and_never_followed(
    server: SimulatorServer, other_server: SimulatorServer, fake: FakeTime, target: str
) -> None:
    app = server.app
    assert isinstance(app, ItemsApp)
    app.redirect_to = other_server.base_url + "/api/items" if target == "other-server" else target
    expected_host = "127.0.0.1" if target == "other-server" else httpx.URL(target).host
    http = make_client(server.base_url, fake, headers={"Authorization": "Bearer " + CANARY})
    with http, pytest.raises(UnexpectedRedirectError) as refused:
        http.request("GET", "/api/moved")
    assert expected_host in str(refused.value)
    assert refused.value.status == 302
    assert len(server.request_log) == 1  # not retried either
    assert other_server.request_log == []


def test_invalid_json_is_a_malformed_response(server: SimulatorServer, fake: FakeTime) -> None:
    with (
        make_client(server.base_url, fake) as http,
        pytest.raises(MalformedResponseError, match="invalid JSON"),
    ):
        http.get_json("/api/not-json")


# -- rate-limit hints (C8) and hostile hints (C9) --------------------------------------------


def test_retry_after_seconds_is_honoured(server: SimulatorServer, fake: FakeTime) -> None:
    add_429(server, {"Retry-After": "7"}, times=2)
    with make_client(server.base_url, fake) as http:
        assert http.get_json("/api/items")["items"] == [1, 2, 3]
    assert [r.status for r in server.request_log] == [429, 429, 200]
    assert len(fake.slept) == 2
    assert all(7.0 <= wait <= 7.7 for wait in fake.slept)  # the hint plus at most 10% jitter
    app = server.app
    assert isinstance(app, ItemsApp)
    assert app.seen_at[0] - 1000.0 >= 14.0  # the successful request came after both hinted waits


@pytest.mark.parametrize(
    ("headers", "hint"),
    [
        ({"Retry-After": email.utils.formatdate(WALL + 30, usegmt=True)}, 30.0),
        ({"X-RateLimit-Reset": str(int(WALL + 20))}, 20.0),  # ServiceNow: epoch seconds
        ({"X-RateLimit-RetryAfter": str(int(WALL + 12))}, 12.0),  # CrowdStrike: epoch seconds
        ({"X-RateLimit-Reset": str(int((WALL + 9) * 1000))}, 9.0),  # epoch milliseconds
    ],
    ids=["http-date", "ratelimit-reset", "ratelimit-retryafter", "reset-millis"],
)
def test_other_wait_hints_are_honoured(
    server: SimulatorServer, fake: FakeTime, headers: dict[str, str], hint: float
) -> None:
    add_429(server, headers)
    with make_client(server.base_url, fake) as http:
        http.request("GET", "/api/items")
    assert len(server.request_log) == 2
    assert hint <= fake.slept[0] <= hint * 1.1


@pytest.mark.parametrize(
    ("value", "low", "high"), [("0", 1.0, 1.1), ("-5", 1.0, 2.0), ("abc", 1.0, 2.0), ("86400", 120.0, 132.0)]
)
def test_hostile_retry_after_is_clamped(
    server: SimulatorServer, fake: FakeTime, value: str, low: float, high: float
) -> None:
    add_429(server, {"Retry-After": value})
    with make_client(server.base_url, fake) as http:
        http.request("GET", "/api/items")
    assert len(server.request_log) == 2
    assert low <= fake.slept[0] <= high  # never a tight loop, never a day-long stall


def test_rate_limited_error_carries_the_clamped_hint(server: SimulatorServer, fake: FakeTime) -> None:
    add_429(server, {"Retry-After": "86400"})
    with make_client(server.base_url, fake) as http, pytest.raises(RateLimitedError) as limited:
        http.request("GET", "/api/items", retry=False)
    assert limited.value.retry_after == 120.0
    assert limited.value.status == 429


# -- backoff, attempts, budget (C9, C10) -----------------------------------------------------


def test_503_streak_backs_off_then_gives_up_after_max_attempts(
    server: SimulatorServer, fake: FakeTime
) -> None:
    server.faults.add(Fault(kind="status", path="/api/items", status=503, times=10))
    http = make_client(server.base_url, fake, base_delay=1.0, max_delay=30.0)
    with http, pytest.raises(ServerError) as gave_up:
        http.request("GET", "/api/items", stream="assets")
    assert len(server.request_log) == 5
    assert "gave up after 5 attempts" in str(gave_up.value)
    assert "Tenable answered 503 for GET http://127.0.0.1:" in str(gave_up.value)
    assert gave_up.value.stream == "assets"
    for attempt, wait in enumerate(fake.slept):
        assert 0.0 <= wait <= min(30.0, 1.0 * 2**attempt)


def test_503_streak_that_ends_succeeds(server: SimulatorServer, fake: FakeTime) -> None:
    server.faults.add(Fault(kind="status", path="/api/items", status=503, times=2))
    with make_client(server.base_url, fake) as http:
        assert http.get_json("/api/items")["items"] == [1, 2, 3]
    assert [r.status for r in server.request_log] == [503, 503, 200]


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, FatalSourceError), (401, AuthenticationError), (403, AuthorizationError), (404, FatalSourceError)],
)
def test_non_retriable_statuses_are_sent_exactly_once(
    server: SimulatorServer, fake: FakeTime, status: int, error: type[SourceError]
) -> None:
    server.faults.add(Fault(kind="status", path="/api/items", status=status, times=5))
    with make_client(server.base_url, fake) as http, pytest.raises(error) as failed:
        http.request("GET", "/api/items")
    assert type(failed.value) is error
    assert failed.value.status == status
    assert failed.value.connector == "Tenable"
    assert len(server.request_log) == 1
    assert fake.slept == []


def test_shared_budget_stops_every_client_of_the_job(server: SimulatorServer, fake: FakeTime) -> None:
    server.faults.add(Fault(kind="status", path="/api/items", status=503, times=20))
    budget = RetryBudget(3)
    first = make_client(server.base_url, fake, budget=budget)
    with first, pytest.raises(RetryBudgetExhausted, match="last failure: Tenable answered 503") as exhausted:
        first.request("GET", "/api/items")  # 5 attempts would need 4 retries; the budget has 3
    assert isinstance(exhausted.value.__cause__, ServerError)
    assert len(server.request_log) == 4
    second = make_client(server.base_url, fake, budget=budget)
    with second, pytest.raises(RetryBudgetExhausted):
        second.request("GET", "/api/items")
    assert len(server.request_log) == 5  # the second client got one attempt and no retry


def test_post_is_retried_on_429_but_not_on_503(server: SimulatorServer, fake: FakeTime) -> None:
    server.faults.add(Fault(kind="status", path="/api/export", status=429, headers={"Retry-After": "2"}))
    with make_client(server.base_url, fake) as http:
        assert http.request("POST", "/api/export", json={"chunk_size": 100}).json() == {"export_uuid": "u-1"}
        assert len(server.requests("/api/export")) == 2
        server.faults.add(Fault(kind="status", path="/api/export", status=503))
        with pytest.raises(ServerError):
            http.request("POST", "/api/export", json={"chunk_size": 100})
        assert len(server.requests("/api/export")) == 3  # a duplicate export was never risked
        server.faults.add(Fault(kind="status", path="/api/export", status=503))
        http.request("POST", "/api/export", json={}, idempotent=True)  # a read-only POST opts in
        assert len(server.requests("/api/export")) == 5


# -- client-side rate limits (C12) -----------------------------------------------------------


def test_sliding_window_limiter_spaces_requests(server: SimulatorServer, fake: FakeTime) -> None:
    limiter = SlidingWindowLimiter(3, 60.0, clock=fake.clock, sleep=fake.sleep)
    with make_client(server.base_url, fake, limits={"/api/": limiter}) as http:
        for _ in range(8):
            http.request("GET", "/api/items")
            fake.now += 0.5
    app = server.app
    assert isinstance(app, ItemsApp)
    assert len(app.seen_at) == 8
    for index, start in enumerate(app.seen_at):
        assert len([s for s in app.seen_at[index:] if s < start + 60.0]) <= 3
    assert app.seen_at[-1] - app.seen_at[0] >= 120.0


# -- network faults (C11) --------------------------------------------------------------------


def test_connection_reset_is_a_network_error_then_retried(server: SimulatorServer, fake: FakeTime) -> None:
    server.faults.add(Fault(kind="reset", path="/api/items"))
    with make_client(server.base_url, fake) as http:
        assert http.get_json("/api/items")["items"] == [1, 2, 3]
    assert len(server.request_log) == 2
    server.faults.add(Fault(kind="reset", path="/api/items", times=5))
    with make_client(server.base_url, fake, max_attempts=2) as http, pytest.raises(NetworkError) as failed:
        http.request("GET", "/api/items")
    assert "network error on GET" in str(failed.value)


class _TruncatingHandler(BaseHTTPRequestHandler):
    """Answers the first request with fewer body bytes than its Content-Length, then hangs up."""

    protocol_version = "HTTP/1.1"
    calls = 0
    lock = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        with self.lock:
            type(self).calls += 1
            first = type(self).calls == 1
        body = json.dumps({"items": list(range(50))}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:10] if first else body)
        if first:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


def test_truncated_body_is_a_network_error_then_retried(fake: FakeTime) -> None:
    handler: type[_TruncatingHandler] = type("Handler", (_TruncatingHandler,), {"calls": 0})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        with make_client(f"http://127.0.0.1:{httpd.server_address[1]}", fake) as http:
            assert http.get_json("/data")["items"] == list(range(50))
        assert handler.calls == 2
        assert len(fake.slept) == 1
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_read_timeout_is_a_network_error(server: SimulatorServer, fake: FakeTime) -> None:
    server.faults.add(Fault(kind="delay", path="/api/items", seconds=2.0))
    quick = httpx.Timeout(connect=1.0, read=0.3, write=1.0, pool=1.0)
    with make_client(server.base_url, fake, timeout=quick, max_attempts=1) as http:
        started = time.monotonic()
        with pytest.raises(NetworkError, match="gave up after 1 attempts"):
            http.request("GET", "/api/items")
    assert time.monotonic() - started < 0.3 + 1.0  # aborted within the read timeout plus a second


# -- policy at construction, DNS pinning, TLS (C17) ------------------------------------------


def _refuse_dns(host: str, *args: Any) -> list[Any]:
    raise AssertionError("resolved although the URL was refused before")


def test_base_url_is_checked_before_any_socket_opens(fake: FakeTime) -> None:
    with pytest.raises(UrlPolicyError, match="instanceUrl"):
        make_client(
            "https://acme.service-now.com.evil.com",
            fake,
            field="instanceUrl",
            allowed=AllowList(),
            required_suffix="service-now.com",
            resolver=_refuse_dns,
        )
    with pytest.raises(UrlPolicyError, match="https"):
        make_client("http://127.0.0.1:9/", fake, allowed=AllowList())


def rebinding_resolver(first: str, later: str) -> tuple[Callable[..., list[Any]], list[str]]:
    """Answers ``first`` once, then ``later``: a DNS rebinding attack."""
    calls: list[str] = []

    def resolve(host: str, port: int, *args: Any) -> list[Any]:
        calls.append(host)
        address = first if len(calls) == 1 else later
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    return resolve, calls


def test_connections_are_pinned_to_the_checked_address(fake: FakeTime) -> None:
    approved = SimulatorServer(ItemsApp()).start()
    try:
        rebound = SimulatorServer(ItemsApp(), host="127.0.0.2", port=approved.port).start()
    except OSError:
        approved.stop()
        pytest.skip("127.0.0.2 is not usable on this machine")
    try:
        resolver, _ = rebinding_resolver("127.0.0.1", "127.0.0.2")
        base = f"http://rebind.test:{approved.port}"
        with make_client(base, fake, allowed=AllowList.parse("rebind.test"), resolver=resolver) as http:
            for _ in range(3):
                http.request("GET", "/api/items")
        assert len(approved.request_log) == 3
        assert rebound.request_log == []
        # Control: a fresh check now resolves to the rebound server, so the pin above is what protected us.
        with make_client(base, fake, allowed=AllowList.parse("rebind.test"), resolver=resolver) as fresh:
            fresh.request("GET", "/api/items")
        assert len(rebound.request_log) == 1
    finally:
        approved.stop()
        rebound.stop()


def test_tls_with_ca_bundle_verifies_the_hostname(fake: FakeTime) -> None:
    with SimulatorServer(ItemsApp(), tls=True) as tls_server:
        assert tls_server.ca_file is not None
        with make_client(tls_server.base_url, fake, ca_bundle=str(tls_server.ca_file)) as http:
            assert http.get_json("/api/items")["items"] == [1, 2, 3]
        with make_client(tls_server.base_url, fake) as untrusting, pytest.raises(FatalSourceError) as failed:
            untrusting.request("GET", "/api/items")
        assert not isinstance(failed.value, NetworkError)  # a trust problem is not retried
        assert "caBundle" in str(failed.value)
        assert fake.slept == []
    with pytest.raises(ConfigurationError, match="caBundle"):
        make_client("https://localhost:1", fake, ca_bundle="/nonexistent/ca.pem")


# -- secrets (C14) ---------------------------------------------------------------------------


def _forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [secret, base64.b64encode(raw).decode(), quote(secret, safe=""), raw.hex()]


def test_no_secret_in_any_exception_message_or_log_record(
    server: SimulatorServer, fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aria_sync.http")
    api_keys = f"accessKey={ACCESS_CANARY};secretKey={CANARY}"
    messages: list[str] = []
    server.faults.add(Fault(kind="status", path="/api/items", status=503, times=2))
    server.faults.add(Fault(kind="reset", path="/api/items", times=1, skip=0))
    with make_client(
        server.base_url, fake, headers={"X-ApiKeys": api_keys}, secrets=[CANARY, ACCESS_CANARY]
    ) as http:
        http.request("GET", "/api/items", params={"api_key": CANARY, "q": CANARY})
        for call in (
            lambda: http.request("GET", "/api/echo-401"),
            lambda: http.request("GET", f"/api/moved?token={CANARY}"),
            lambda: http.request("GET", f"https://{quote(CANARY)}.evil.test/x"),
            lambda: http.get_json(f"/api/not-json?password={CANARY}"),
        ):
            with pytest.raises(SourceError) as failed:
                call()
            messages += [str(failed.value), repr(failed.value), str(failed.value.url)]
        messages.append(repr(http))
    messages += [record.getMessage() for record in caplog.records]
    assert any("retry" in m for m in messages)  # retries were logged
    assert any("answered 401" in m for m in messages)
    for text in messages:
        for form in _forms(CANARY) + _forms(ACCESS_CANARY):
            assert form not in text, text
    assert server.request_log[0].headers["x-apikeys"] == api_keys  # the vendor still got the real keys


# -- msal ------------------------------------------------------------------------------------


class IdentityApp(VendorApp):
    """Just enough of an OpenID provider for msal's client-credentials flow."""

    name = "idp"

    def __init__(self) -> None:
        super().__init__()
        self.base = ""
        self.route("GET", r"/(?P<tenant>[^/]+)/v2.0/.well-known/openid-configuration", self.discovery)
        self.route("POST", r"/(?P<tenant>[^/]+)/oauth2/v2.0/token", self.token)

    def discovery(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        root = f"{self.base}/{match['tenant']}"
        return json_response(
            {
                "issuer": f"{root}/v2.0",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "token_endpoint": f"{root}/oauth2/v2.0/token",
            }
        )

    def token(self, request: SimRequest, match: re.Match[str]) -> SimResponse:
        form = dict(item.split("=", 1) for item in request.body.decode().split("&"))
        if form.get("client_secret") != quote(CANARY, safe=""):
            return json_response({"error": "invalid_client", "error_description": "AADSTS7000215"}, 401)
        return json_response({"access_token": "tok-123", "token_type": "Bearer", "expires_in": 3599})


def test_msal_session_goes_through_policy_pinning_and_ca_bundle(fake: FakeTime) -> None:
    app = IdentityApp()
    with SimulatorServer(app, tls=True) as idp:
        app.base = idp.base_url
        with make_client(idp.base_url, fake, ca_bundle=str(idp.ca_file), secrets=[CANARY]) as http:
            session = http.requests_session_for_msal()
            client = msal.ConfidentialClientApplication(
                "client-id",
                client_credential=CANARY,
                authority=f"{idp.base_url}/tenant-1",
                instance_discovery=False,
                http_client=session,
            )
            result = client.acquire_token_for_client(scopes=["https://api.example/.default"])
            assert result["access_token"] == "tok-123"
            wrong = msal.ConfidentialClientApplication(
                "client-id",
                client_credential="wrong",
                authority=f"{idp.base_url}/tenant-1",
                instance_discovery=False,
                http_client=session,
            )
            assert (
                wrong.acquire_token_for_client(scopes=["https://api.example/.default"])["error"]
                == "invalid_client"
            )
            post = session.post  # type: ignore[attr-defined]
            with pytest.raises(UrlPolicyError, match="authorityHost"):
                post("https://10.0.0.1/tenant/oauth2/v2.0/token", data={"a": "b"})
    assert [r.method for r in idp.request_log] == ["GET", "POST", "GET", "POST"]
