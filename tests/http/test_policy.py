"""The URL policy, table-driven (C17): every refusal happens before any socket opens."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from aria_sync.errors import UrlPolicyError
from aria_sync.http.policy import ALLOWED_HOSTS_ENV, AllowList, check_url, forbidden_reason, ip_literal

PUBLIC = "203.0.113.10"  # documentation range, treated as public by a fake resolver only


def fake_resolver(answers: dict[str, Sequence[str]]) -> Callable[..., list[tuple[Any, ...]]]:
    """A getaddrinfo stand-in answering from a table; unknown names fail like NXDOMAIN."""

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        result = []
        for address in answers[host]:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            result.append((family, socket.SOCK_STREAM, 6, "", (address, port)))
        return result

    return resolve


def no_dns(host: str, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
    raise AssertionError(f"the policy resolved {host!r} although it should have refused earlier")


# 93.184.216.34 is public in ipaddress' tables; the fake resolver never touches the network.
DNS = fake_resolver(
    {
        "acme.service-now.com": ["93.184.216.34"],
        "internal.service-now.com": ["10.0.0.5"],
        "localtest.me": ["127.0.0.1"],
        "mixed.service-now.com": ["93.184.216.34", "192.168.1.20"],
        "cgnat.example.com": ["100.64.1.1"],
        "meta.example.com": ["169.254.169.254"],
        "mcast.example.com": ["224.0.0.1"],
        "v6loop.example.com": ["::1"],
        "mapped.example.com": ["::ffff:10.0.0.1"],
        "zero.example.com": ["0.0.0.0"],
        "sim.internal": ["10.1.2.3"],
        "api.tenable.com": ["93.184.216.35", "2606:4700::6810:84e5"],
    }
)

SN = "service-now.com"


@pytest.fixture(autouse=True)
def _no_allowed_hosts_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOWED_HOSTS_ENV, raising=False)


REFUSED: list[tuple[str, str | None, str, Callable[..., Any]]] = [
    # (url, required suffix, words the message must contain, resolver)
    ("http://acme.service-now.com", SN, "https", no_dns),
    ("ftp://acme.service-now.com", SN, "scheme", no_dns),
    ("https://acme.service-now.com:8443", SN, "port 8443", no_dns),
    ("https://acme.service-now.com.evil.com", SN, "not under 'service-now.com'", no_dns),
    ("https://evil.com/acme.service-now.com", SN, "not under", no_dns),
    ("https://acme.service-now.com@evil.com", SN, "user name or password", no_dns),
    ("https://a@evil.com", None, "user name or password", no_dns),
    ("https://user:pw@acme.service-now.com/", SN, "user name or password", no_dns),
    ("https:///path", None, "no host", no_dns),
    ("https://169.254.169.254", None, "IP address", no_dns),
    ("https://2130706433", None, "IP address", no_dns),
    ("https://0x7f.1", None, "IP address", no_dns),
    ("https://0177.0.0.1", None, "not a valid URL", no_dns),  # httpx rejects octal dotted quads
    ("https://127.1", None, "IP address", no_dns),
    ("https://[::1]", None, "IP address", no_dns),
    ("https://[::ffff:10.0.0.1]", None, "IP address", no_dns),
    ("https://8.8.8.8", None, "IP address", no_dns),
    ("https://localtest.me", None, "loopback address 127.0.0.1", DNS),
    ("https://xn--acm-jla.service-now.com", SN, "xn--", no_dns),
    ("https://acmé.service-now.com", SN, "xn--", no_dns),
    ("https://internal.service-now.com", SN, "private address 10.0.0.5", DNS),
    ("https://mixed.service-now.com", SN, "private address 192.168.1.20", DNS),
    ("https://cgnat.example.com", None, "CGNAT", DNS),
    ("https://meta.example.com", None, "cloud-metadata", DNS),
    ("https://mcast.example.com", None, "multicast", DNS),
    ("https://v6loop.example.com", None, "loopback", DNS),
    ("https://mapped.example.com", None, "embedded in IPv6", DNS),
    ("https://zero.example.com", None, "unspecified", DNS),
    ("https://nonexistent.example.com", None, "cannot resolve", DNS),
    ("https://%65vil.com", None, "characters", no_dns),
    ("https://acme.service-now.com.", SN, "dot", no_dns),
    ("not a url at all", None, "scheme", no_dns),
]


@pytest.mark.parametrize(("url", "suffix", "expected", "resolver"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_urls_name_the_field_and_the_problem(
    url: str, suffix: str | None, expected: str, resolver: Callable[..., Any]
) -> None:
    with pytest.raises(UrlPolicyError) as refused:
        check_url(url, field="instanceUrl", allowed=AllowList(), required_suffix=suffix, resolver=resolver)
    message = str(refused.value)
    assert message.startswith("instanceUrl: ")
    assert expected in message
    assert "\n" not in message


def test_userinfo_password_never_reaches_the_message() -> None:
    with pytest.raises(UrlPolicyError) as refused:
        check_url(
            "https://admin:Hunter2Canary@acme.service-now.com", field="instanceUrl", allowed=AllowList()
        )
    assert "Hunter2Canary" not in str(refused.value)


def test_valid_servicenow_instance_is_accepted_with_its_addresses() -> None:
    checked = check_url(
        "https://ACME.service-now.com/api/now/table/cmdb_ci?sysparm_limit=5",
        field="instanceUrl",
        allowed=AllowList(),
        required_suffix=SN,
        resolver=DNS,
    )
    assert checked.scheme == "https"
    assert checked.host == "acme.service-now.com"
    assert checked.port == 443
    assert checked.addresses == ("93.184.216.34",)
    assert checked.url.endswith("/api/now/table/cmdb_ci?sysparm_limit=5")


def test_suffix_itself_and_explicit_default_port_are_accepted() -> None:
    resolver = fake_resolver({"service-now.com": ["93.184.216.34"]})
    checked = check_url(
        "https://service-now.com:443/", field="f", allowed=AllowList(), required_suffix=SN, resolver=resolver
    )
    assert checked.port == 443


def test_dual_stack_host_keeps_every_public_address() -> None:
    checked = check_url("https://api.tenable.com", field="baseUrl", allowed=AllowList(), resolver=DNS)
    assert checked.addresses == ("93.184.216.35", "2606:4700::6810:84e5")


ALLOWED_CASES = [
    # (url, allow-list text, suffix)
    ("http://127.0.0.1:8080/api", "127.0.0.1", None),
    ("http://localhost:8080", "localhost", None),
    ("https://sim.internal:9443", "sim.internal", SN),  # host allowed: suffix, port and private DNS relaxed
    ("https://internal.service-now.com", "10.0.0.0/8", SN),  # only the address is allowed
    ("https://[::1]:8443", "::1", None),
    ("https://[::1]:8443", "[::1]", None),
    ("http://2130706433:8000", "127.0.0.0/8", None),
    ("https://xn--acm-jla.service-now.com", "xn--acm-jla.service-now.com", SN),
]


@pytest.mark.parametrize(
    ("url", "allow", "suffix"), ALLOWED_CASES, ids=[c[0] + " " + c[1] for c in ALLOWED_CASES]
)
def test_allow_list_relaxes_the_rules_for_listed_hosts_and_networks(
    url: str, allow: str, suffix: str | None
) -> None:
    resolver = fake_resolver(
        {"localhost": ["127.0.0.1", "::1"], **{"xn--acm-jla.service-now.com": ["93.184.216.34"]}}
    )

    def both(host: str, *args: Any) -> list[tuple[Any, ...]]:
        try:
            return DNS(host, *args)
        except socket.gaierror:
            return resolver(host, *args)

    checked = check_url(
        url, field="baseUrl", allowed=AllowList.parse(allow), required_suffix=suffix, resolver=both
    )
    assert checked.addresses


def test_allowed_address_does_not_allow_another_private_address() -> None:
    with pytest.raises(UrlPolicyError, match=r"192\.168\.1\.20"):
        check_url(
            "https://mixed.service-now.com",
            field="instanceUrl",
            allowed=AllowList.parse("10.0.0.0/8"),
            required_suffix=SN,
            resolver=DNS,
        )


def test_userinfo_is_refused_even_for_allowed_hosts() -> None:
    with pytest.raises(UrlPolicyError, match="user name"):
        check_url("http://u:p@127.0.0.1:8000", field="baseUrl", allowed=AllowList.parse("127.0.0.1"))


def test_allow_list_is_read_from_the_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UrlPolicyError):
        check_url("http://127.0.0.1:9", field="baseUrl")
    monkeypatch.setenv(ALLOWED_HOSTS_ENV, " localhost , 127.0.0.0/8,  ")
    assert check_url("http://127.0.0.1:9", field="baseUrl").addresses == ("127.0.0.1",)


def test_allow_list_parsing() -> None:
    allow = AllowList.parse(" Sim.Local ,10.0.0.0/8, ::1 ,192.168.5.7 ")
    assert allow.allows_host("sim.local")
    assert allow.allows_host("SIM.LOCAL")
    assert allow.allows_host("10.20.30.40")
    assert allow.allows_host("[::1]")
    assert allow.allows_ip("192.168.5.7")
    assert allow.allows_ip("::ffff:10.0.0.1")
    assert not allow.allows_ip("192.168.5.8")
    assert not allow.allows_host("other.local")
    assert not AllowList.parse("")
    with pytest.raises(UrlPolicyError, match=ALLOWED_HOSTS_ENV):
        AllowList.parse("good.host, bad host/33")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("example.com", None),
        ("deadbeef", None),
    ],
)
def test_ip_literal_recognises_every_notation(text: str, expected: str | None) -> None:
    address = ip_literal(text)
    assert (str(address) if address else None) == expected


def test_public_addresses_have_no_forbidden_reason() -> None:
    import ipaddress

    assert forbidden_reason(ipaddress.ip_address("93.184.216.34")) is None
    assert forbidden_reason(ipaddress.ip_address("2606:4700::6810:84e5")) is None
    assert forbidden_reason(ipaddress.ip_address("100.100.100.200")) == "cloud-metadata"
    assert forbidden_reason(ipaddress.ip_address("fd00:ec2::254")) == "cloud-metadata"
    assert forbidden_reason(ipaddress.ip_address("2002:0a00:0001::1")) is not None  # 6to4 of 10.0.0.1
