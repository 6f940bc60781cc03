"""The URL policy: which vendor URLs aria_sync may send credentials to.

A vendor URL must be https, name a public DNS host without userinfo, on the scheme's default
port, and every address that host resolves to must be public. Hosts, addresses and networks
listed in ``ARIA_SYNC_ALLOWED_HOSTS`` are exempt (the demo and the tests list their loopback
simulators there); nothing else relaxes the rule.

The same parser that sends the request (httpx) parses the URL here, so the policy and the
connection can never disagree about which host a URL names.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from aria_sync.errors import UrlPolicyError

ALLOWED_HOSTS_ENV = "ARIA_SYNC_ALLOWED_HOSTS"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

_DEFAULT_PORTS = {"https": 443, "http": 80}
_HOST_CHARACTERS = re.compile(r"[a-z0-9._-]+\Z")
# inet_aton also accepts the legacy forms browsers and libc still honour: decimal (2130706433),
# hex (0x7f.1), octal (0177.0.0.1) and shortened (127.1). Any host made only of these characters
# that inet_aton accepts is an address in disguise.
_LEGACY_IPV4_CHARACTERS = re.compile(r"[0-9a-fx.]+\Z")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# Addresses of instance-metadata services that are not already link-local or private.
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)


@dataclass(frozen=True)
class AllowList:
    """Hosts, addresses and networks exempt from the URL policy (``ARIA_SYNC_ALLOWED_HOSTS``)."""

    hosts: frozenset[str] = field(default_factory=frozenset)
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> AllowList:
        """Parse a comma-separated list of hostnames, IPs and CIDRs; whitespace is ignored."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw_entry in (text or "").split(","):
            entry = raw_entry.strip().lower()
            if not entry:
                continue
            bare = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
            try:
                networks.append(ipaddress.ip_network(bare, strict=False))
                continue
            except ValueError:
                pass
            if "/" in bare or not _HOST_CHARACTERS.match(bare.rstrip(".")):
                raise UrlPolicyError(
                    f"{ALLOWED_HOSTS_ENV}: {raw_entry.strip()!r} is not a hostname, IP or CIDR"
                )
            hosts.add(bare.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AllowList:
        """The allow-list configured in ``ARIA_SYNC_ALLOWED_HOSTS`` (empty when unset)."""
        env = os.environ if environ is None else environ
        return cls.parse(env.get(ALLOWED_HOSTS_ENV))

    def allows_host(self, host: str) -> bool:
        """True when ``host`` is listed, or is an IP literal inside a listed address or network."""
        normalised = host.strip().lower().strip("[]").rstrip(".")
        if normalised in self.hosts:
            return True
        address = ip_literal(normalised)
        return address is not None and self.allows_ip(address)

    def allows_ip(self, ip: str | IPAddress) -> bool:
        """True when the address lies inside a listed address or network."""
        try:
            address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        except ValueError:
            return False
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(candidate in network for candidate in candidates for network in self.networks)

    def __bool__(self) -> bool:
        return bool(self.hosts or self.networks)


@dataclass(frozen=True)
class CheckedUrl:
    """A URL the policy approved, with the addresses a connection to it may use."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


def ip_literal(host: str) -> IPAddress | None:
    """The address a host string denotes when it is an IP literal in any notation, else None."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        pass
    if _LEGACY_IPV4_CHARACTERS.match(bare.lower()):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(bare))
        except OSError:
            return None
    return None


def forbidden_reason(address: IPAddress) -> str | None:
    """Why an address is not a public one (``"loopback"``, ``"private"``, ...), or None if it is."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv6 form that embeds an IPv4 address reaches that IPv4 address.
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            reason = forbidden_reason(embedded)
            if reason:
                return f"{reason} (embedded in IPv6)"
    if address in _METADATA_ADDRESSES:
        return "cloud-metadata"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("CGNAT", isinstance(address, ipaddress.IPv4Address) and address in _CGNAT),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-global", not address.is_global),
    )
    return next((name for name, matched in checks if matched), None)


def _refuse(field_name: str, problem: str) -> UrlPolicyError:
    return UrlPolicyError(f"{field_name}: {problem}")


def _hint(host: str) -> str:
    return f"; list {host!r} in {ALLOWED_HOSTS_ENV} to allow it" if host else ""


def _resolve(host: str, port: int, resolver: Resolver, field_name: str) -> tuple[IPAddress, ...]:
    try:
        answers = resolver(host, port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise _refuse(field_name, f"cannot resolve host {host!r} ({exc.__class__.__name__})") from None
    addresses: list[IPAddress] = []
    for answer in answers:
        sockaddr = answer[4]
        try:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        except ValueError:
            continue
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise _refuse(field_name, f"cannot resolve host {host!r} (no addresses)")
    return tuple(addresses)


def check_url(
    url: str,
    *,
    field: str,
    allowed: AllowList | None = None,
    required_suffix: str | None = None,
    resolver: Resolver = socket.getaddrinfo,
) -> CheckedUrl:
    """Approve ``url`` for sending credentials, or raise :class:`UrlPolicyError` naming ``field``.

    ``allowed`` defaults to :meth:`AllowList.from_env`. ``required_suffix`` (e.g.
    ``"service-now.com"``) pins the host to that domain unless the host is allowed. The host is
    resolved once, here; callers connect only to the returned ``addresses`` so that a second DNS
    answer cannot redirect the connection (DNS rebinding).
    """
    allow = AllowList.from_env() if allowed is None else allowed
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError, UnicodeError):
        raise _refuse(field, "is not a valid URL") from None
    scheme = parsed.scheme
    host = parsed.raw_host.decode("ascii", "replace").lower()
    if scheme not in _DEFAULT_PORTS:
        raise _refuse(field, f"scheme must be https, not {scheme or 'missing'!r}")
    if not host:
        raise _refuse(field, "has no host")
    if parsed.userinfo:
        raise _refuse(field, f"must not contain a user name or password before the host (host {host!r})")
    host_allowed = allow.allows_host(host)
    if scheme != "https" and not host_allowed:
        raise _refuse(field, f"must use https, not {scheme} (host {host!r}){_hint(host)}")
    if host.endswith("."):
        raise _refuse(field, f"host {host!r} must not end with a dot")
    literal = ip_literal(host)
    if literal is None and not _HOST_CHARACTERS.match(host):
        raise _refuse(field, f"host {host!r} contains characters a DNS name cannot have")
    if literal is not None and not host_allowed:
        raise _refuse(field, f"host {host!r} is an IP address; a DNS name is required{_hint(host)}")
    if required_suffix and not host_allowed:
        suffix = required_suffix.lower().strip(".")
        if host != suffix and not host.endswith("." + suffix):
            raise _refuse(field, f"host {host!r} is not under {suffix!r}")
        if any(label.startswith("xn--") for label in host.split(".")):
            raise _refuse(
                field, f"host {host!r} has an internationalised (xn--) label, refused as a look-alike"
            )
    port = parsed.port or _DEFAULT_PORTS[scheme]
    if port != _DEFAULT_PORTS[scheme] and not host_allowed:
        raise _refuse(field, f"port {port} is not the default {scheme} port (host {host!r}){_hint(host)}")
    addresses = (literal,) if literal is not None else _resolve(host, port, resolver, field)
    for address in addresses:
        reason = forbidden_reason(address)
        if reason and not (host_allowed or allow.allows_ip(address)):
            raise _refuse(field, f"host {host!r} resolves to {reason} address {address}{_hint(host)}")
    return CheckedUrl(
        url=url,
        scheme=scheme,
        host=host,
        port=port,
        addresses=tuple(str(address) for address in addresses),
    )
