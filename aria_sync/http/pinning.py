"""DNS pinning: connections go only to addresses the URL policy approved.

The policy resolves a host once and checks every answer. If the connection resolved the name
again, a hostile DNS server could answer a public address to the check and ``127.0.0.1`` to the
connection (DNS rebinding). :class:`PinnedNetworkBackend` therefore replaces the host by an
approved address at the TCP layer only; TLS still verifies the certificate against the hostname.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterable

import httpcore
import httpx

from aria_sync.http.policy import CheckedUrl

SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


class PinnedNetworkBackend(httpcore.NetworkBackend):
    """An httpcore network backend that connects a host only to its pinned addresses."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()
        self._pins: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def pin(self, checked: CheckedUrl) -> None:
        """Allow connections to ``checked.host``, to its approved addresses only."""
        with self._lock:
            self._pins[checked.host] = checked.addresses

    def pinned(self, host: str) -> tuple[str, ...]:
        with self._lock:
            return self._pins.get(host.lower().strip("[]"), ())

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.pinned(host)
        if not addresses:
            raise httpcore.ConnectError(f"host {host!r} was not approved by the URL policy")
        options = list(socket_options) if socket_options is not None else None
        last_error: Exception | None = None
        # Try each approved address in turn, as a resolver-driven connect would (e.g. ::1 then 127.0.0.1).
        for address in addresses:
            try:
                return self._inner.connect_tcp(address, port, timeout, local_address, options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[SocketOption] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for vendor APIs")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class PinnedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connection pool dials through a :class:`PinnedNetworkBackend`."""

    def __init__(self, *, ssl_context: ssl.SSLContext, backend: PinnedNetworkBackend) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx offers no parameter for the network backend; its pool is rebuilt with the same settings
        # (httpx 0.28 defaults) plus ours. Proxies are deliberately unsupported: they would resolve the name.
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=backend,
        )


def make_ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """A verifying TLS context; ``ca_bundle`` (a PEM file) replaces the system trust store."""
    return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
