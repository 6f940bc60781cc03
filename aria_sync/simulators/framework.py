"""Shared machinery of the vendor simulators: a loopback HTTP(S) server, routing, faults, a request log.

A vendor simulator is a :class:`VendorApp` subclass that registers routes with :meth:`VendorApp.route`
and answers :class:`SimRequest` objects with :class:`SimResponse` objects. :class:`SimulatorServer`
serves it on ``127.0.0.1`` on a free port, over HTTPS when asked (a self-signed certificate for
``localhost``/``127.0.0.1`` is generated; clients trust it through ``server.ca_file``).

Faults are switchable per request: ``server.faults.add(Fault(...))`` makes the next matching
requests answer a status (429 with Retry-After, 500, 503), wait, drop the connection, or truncate the
body. Every request is recorded in ``server.request_log`` so tests assert what the vendor saw.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import re
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

Handler = Callable[["SimRequest", re.Match[str]], "SimResponse"]


@dataclass
class SimRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # keys lower-cased
    body: bytes
    raw_query: str = ""
    # time.time() when the server took the request, the moment the request log records: a vendor
    # rule that counts requests by time counts from it, so the log and the rule agree.
    received_at: float = 0.0

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class SimResponse:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> SimResponse:
    body = json.dumps(obj, separators=(",", ":")).encode()
    all_headers = {"Content-Type": "application/json; charset=utf-8"}
    all_headers.update(headers or {})
    return SimResponse(status, body, all_headers)


def raw_json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> SimResponse:
    all_headers = {"Content-Type": "application/json; charset=utf-8"}
    all_headers.update(headers or {})
    return SimResponse(status, body, all_headers)


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int
    started: float  # time.monotonic()
    wall_time: float  # time.time()


@dataclass
class Fault:
    """A scripted misbehaviour applied to the next ``times`` requests matching ``path`` (a regex).

    kind: ``status`` (answer ``status`` with ``headers``/``body``), ``delay`` (sleep ``seconds`` then
    answer normally), ``reset`` (close the connection without answering), ``truncate`` (answer
    normally but cut the body to ``keep`` bytes while keeping its Content-Length honest, i.e. a short
    but complete garbage body), ``hang`` (sleep ``seconds`` and close).
    ``skip`` lets that many matching requests pass before the fault starts.
    """

    kind: str = "status"
    path: str = ".*"
    method: str | None = None
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    keep: int = 10
    times: int = 1
    skip: int = 0


class FaultInjector:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method and fault.method.upper() != method.upper():
                    continue
                if not re.search(fault.path, path):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    return None
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None


class VendorApp:
    """Base of a vendor simulator: routes plus shared fault handling and credentials."""

    name = "vendor"

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.lock = threading.RLock()

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method.upper(), re.compile(pattern + r"\Z"), handler))

    def handle(self, request: SimRequest) -> SimResponse:
        for method, pattern, handler in self._routes:
            if method != request.method:
                continue
            match = pattern.match(request.path)
            if match:
                return handler(request, match)
        return self.not_found(request)

    def not_found(self, request: SimRequest) -> SimResponse:
        return json_response({"error": "Not Found", "path": request.path}, 404)

    def describe(self) -> dict[str, Any]:
        """Credentials and config a client needs, shown by ``aria-sync simulate``."""
        return {}


def _make_handler(server: SimulatorServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes; with Nagle on, the body waits ~40 ms for the client's ACK.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            started = time.monotonic()
            wall = time.time()
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            request = SimRequest(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers=headers,
                body=body,
                raw_query=split.query,
                received_at=wall,
            )
            fault = server.faults.take(self.command, split.path)
            response: SimResponse | None = None
            if fault is not None and fault.kind in ("reset", "hang"):
                if fault.kind == "hang":
                    time.sleep(fault.seconds)
                server.log(request, 0, started, wall)
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault is not None and fault.kind == "delay":
                time.sleep(fault.seconds)
            if fault is not None and fault.kind == "status":
                response = SimResponse(fault.status, fault.body, dict(fault.headers))
            if response is None:
                try:
                    response = server.app.handle(request)
                except Exception as exc:  # a simulator bug must show up as a 500, not a hung client
                    response = json_response({"error": "simulator error", "detail": repr(exc)}, 500)
            body = response.body
            if fault is not None and fault.kind == "truncate":
                body = body[: fault.keep]
            server.log(request, response.status, started, wall)
            self.send_response(response.status)
            for name, value in response.headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

        do_GET = _serve
        do_POST = _serve
        do_PUT = _serve
        do_PATCH = _serve
        do_DELETE = _serve
        do_HEAD = _serve

    return _Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class SimulatorServer:
    """Runs one :class:`VendorApp` on loopback in a background thread."""

    def __init__(
        self,
        app: VendorApp,
        *,
        tls: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        cert_dir: Path | None = None,
    ) -> None:
        self.app = app
        self.tls = tls
        self.faults = FaultInjector()
        self.request_log: list[LoggedRequest] = []
        self._log_lock = threading.Lock()
        self._httpd = _Server((host, port), _make_handler(self))
        self.ca_file: Path | None = None
        if tls:
            directory = cert_dir or Path(tempfile.mkdtemp(prefix="aria-sim-tls-"))
            cert, key = make_self_signed_cert(directory)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            self.ca_file = cert
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = "localhost" if self.tls else "127.0.0.1"
        return f"{scheme}://{host}:{self.port}"

    def log(self, request: SimRequest, status: int, started: float, wall: float) -> None:
        entry = LoggedRequest(
            request.method, request.path, request.query, request.headers, request.body, status, started, wall
        )
        with self._log_lock:
            self.request_log.append(entry)

    def requests(self, path_regex: str = ".*", method: str | None = None) -> list[LoggedRequest]:
        with self._log_lock:
            return [
                r
                for r in self.request_log
                if re.search(path_regex, r.path) and (method is None or r.method == method.upper())
            ]

    def start(self) -> SimulatorServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sim-{self.app.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        # serve_forever polls for shutdown every 0.5 s by default; see start().
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate valid for ``localhost`` and ``127.0.0.1``; it is its own CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "sim-cert.pem", directory / "sim-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aria-sync simulator")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
