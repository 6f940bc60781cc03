"""Static reference data of the demo estate: operating systems, the vulnerability catalogue, names.

The vulnerability catalogue is the same for every estate seed (real vendors ship one plugin feed to
every customer); it is built once from a fixed seed so plugin ids and CVE lists never drift.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache


@dataclass(frozen=True)
class OsProfile:
    """How one operating system is spelled by each vendor."""

    key: str
    family: str  # windows | macos | linux | network
    defender_platform: str | None
    defender_version: str | None
    defender_build: int | None
    defender_os_version: str
    servicenow_os: str
    servicenow_os_version: str
    tenable_os: str
    system_type: str = "general-purpose"


OS_PROFILES: dict[str, OsProfile] = {
    profile.key: profile
    for profile in (
        OsProfile("win11", "windows", "Windows11", "23H2", 22631, "10.0.22631.3527",
                  "Windows 11 Enterprise", "10.0.22631", "Microsoft Windows 11 Enterprise Build 22631"),
        OsProfile("win10", "windows", "Windows10", "22H2", 19045, "10.0.19045.4291",
                  "Windows 10 Enterprise", "10.0.19045", "Microsoft Windows 10 Enterprise Build 19045"),
        OsProfile("macos", "macos", "macOS", "14.4", None, "14.4.1",
                  "Mac OS/X", "14.4.1", "Mac OS X 14.4.1"),
        OsProfile("ws2016", "windows", "WindowsServer2016", "1607", 14393, "10.0.14393.6897",
                  "Windows 2016 Standard", "10.0.14393", "Microsoft Windows Server 2016 Standard Build 14393"),
        OsProfile("ws2019", "windows", "WindowsServer2019", "1809", 17763, "10.0.17763.5696",
                  "Windows 2019 Datacenter", "10.0.17763", "Microsoft Windows Server 2019 Datacenter Build 17763"),
        OsProfile("ws2022", "windows", "WindowsServer2022", "21H2", 20348, "10.0.20348.2402",
                  "Windows 2022 Standard", "10.0.20348", "Microsoft Windows Server 2022 Standard Build 20348"),
        OsProfile("ubuntu2204", "linux", "Linux", "22.04", None, "22.04", "Linux Ubuntu", "22.04",
                  "Linux Kernel 5.15.0-105-generic on Ubuntu 22.04"),
        OsProfile("ubuntu2004", "linux", "Linux", "20.04", None, "20.04", "Linux Ubuntu", "20.04",
                  "Linux Kernel 5.4.0-176-generic on Ubuntu 20.04"),
        OsProfile("rhel8", "linux", "Linux", "8.9", None, "8.9", "Linux Red Hat", "8.9",
                  "Linux Kernel 4.18.0-513.24.1.el8_9.x86_64 on Red Hat Enterprise Linux 8.9"),
        OsProfile("rhel9", "linux", "Linux", "9.3", None, "9.3", "Linux Red Hat", "9.3",
                  "Linux Kernel 5.14.0-362.24.1.el9_3.x86_64 on Red Hat Enterprise Linux 9.3"),
        OsProfile("iosxe", "network", None, None, None, "17.9.4a", "Cisco IOS XE", "17.9.4a",
                  "Cisco IOS XE 17.9.4a", "router"),
        OsProfile("fortios", "network", None, None, None, "7.2.8", "FortiOS", "7.2.8",
                  "Fortinet FortiOS 7.2.8", "firewall"),
        OsProfile("panos", "network", None, None, None, "10.2.9", "PAN-OS", "10.2.9",
                  "Palo Alto Networks PAN-OS 10.2.9", "firewall"),
    )
}  # fmt: skip

# The OS the CMDB wrongly records for a machine whose CI was never refreshed after an upgrade.
STALE_CMDB_OS = {
    "win11": "win10", "win10": "win11", "ws2019": "ws2016", "ws2022": "ws2019",
    "ubuntu2204": "ubuntu2004", "rhel9": "rhel8", "rhel8": "rhel9",
}  # fmt: skip

OS_BY_KIND: dict[str, list[tuple[str, float]]] = {
    "laptop": [("win11", 0.62), ("win10", 0.26), ("macos", 0.12)],
    "desktop": [("win11", 0.55), ("win10", 0.45)],
    "win_server": [("ws2019", 0.5), ("ws2022", 0.4), ("ws2016", 0.1)],
    "linux_server": [("ubuntu2204", 0.45), ("ubuntu2004", 0.1), ("rhel8", 0.3), ("rhel9", 0.15)],
    "network": [("iosxe", 0.5), ("fortios", 0.3), ("panos", 0.2)],
}


@dataclass(frozen=True)
class Software:
    """The installed product a vulnerability definition is about, as Defender names it."""

    vendor: str
    product: str
    version: str
    fixing_kb: str | None = None
    disk_path: str | None = None


@dataclass(frozen=True)
class VulnDefinition:
    """One Tenable plugin; when it has ``software`` and CVEs, Defender reports the same CVEs."""

    plugin_id: int
    name: str
    family: str
    family_id: int
    plugin_type: str
    severity_id: int
    cvss3: float | None
    vpr: float | None
    epss: float | None
    exploit_available: bool
    cves: tuple[str, ...]
    targets: frozenset[str]
    port: int
    protocol: str
    service: str
    age_days: int  # days between publication and the estate's anchor
    synopsis: str
    solution: str
    software: Software | None = None
    tenable_only: bool = False
    informational_baseline: bool = field(default=False, compare=False)

    @property
    def severity(self) -> str:
        return SEVERITY_NAMES[self.severity_id]


SEVERITY_NAMES = ("info", "low", "medium", "high", "critical")
DEFENDER_SEVERITY = ("Low", "Low", "Medium", "High", "Critical")
WINDOWS_DESKTOPS = frozenset({"win10", "win11"})
WINDOWS_SERVERS = frozenset({"ws2016", "ws2019", "ws2022"})
WINDOWS_ALL = WINDOWS_DESKTOPS | WINDOWS_SERVERS
UBUNTU = frozenset({"ubuntu2204", "ubuntu2004"})
RHEL = frozenset({"rhel8", "rhel9"})
LINUX = UBUNTU | RHEL
ENDPOINTS_ALL = WINDOWS_ALL | LINUX | {"macos"}
NETWORK = frozenset({"iosxe", "fortios", "panos"})
EVERYTHING = ENDPOINTS_ALL | NETWORK
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def severity_from_cvss(score: float | None) -> int:
    if score is None or score == 0:
        return 0
    if score >= 9.0:
        return 4
    if score >= 7.0:
        return 3
    if score >= 4.0:
        return 2
    return 1


# (plugin id, name, family, family id, severity, port, service, targets, synopsis)
_INFORMATIONAL: tuple[tuple[int, str, str, int, int, int, str, frozenset[str], str], ...] = (
    (19506, "Nessus Scan Information", "Settings", 33, 0, 0, "general", EVERYTHING,
     "This plugin displays information about the Nessus scan."),
    (11936, "OS Identification", "General", 30, 0, 0, "general", EVERYTHING,
     "It is possible to guess the remote operating system."),
    (54615, "Device Type", "General", 30, 0, 0, "general", EVERYTHING,
     "It is possible to guess the remote device type."),
    (45590, "Common Platform Enumeration (CPE)", "General", 30, 0, 0, "general", EVERYTHING,
     "It was possible to enumerate CPE names that matched on the remote system."),
    (12053, "Host Fully Qualified Domain Name (FQDN) Resolution", "General", 30, 0, 0, "general", EVERYTHING,
     "It was possible to resolve the name of the remote host."),
    (22964, "Service Detection", "Service detection", 31, 0, 443, "www", EVERYTHING,
     "The remote service could be identified."),
    (10287, "Traceroute Information", "General", 30, 0, 0, "general", EVERYTHING,
     "It was possible to obtain traceroute information."),
    (110095, "Target Credential Issues by Authentication Protocol - No Issues Found", "Settings", 33, 0, 0,
     "general", ENDPOINTS_ALL, "Nessus was able to log in to the remote host with no reported issues."),
)  # fmt: skip

# Findings without CVEs that network scans raise on most hosts.
_MISCONFIGURATIONS: tuple[tuple[int, str, str, int, float, int, str, frozenset[str], str, tuple[str, ...]], ...] = (
    (51192, "SSL Certificate Cannot Be Trusted", "General", 30, 6.5, 443, "www", EVERYTHING,
     "The SSL certificate for this service cannot be trusted.", ()),
    (57582, "SSL Self-Signed Certificate", "General", 30, 6.5, 443, "www", EVERYTHING,
     "The SSL certificate chain for this service ends in an unrecognized self-signed certificate.", ()),
    (57608, "SMB Signing not required", "Misc.", 29, 5.3, 445, "cifs", WINDOWS_ALL,
     "Signing is not required on the remote SMB server.", ()),
    (104743, "TLS Version 1.0 Protocol Detection", "Service detection", 31, 6.5, 443, "www", EVERYTHING,
     "The remote service encrypts traffic using an older version of TLS.", ()),
    (157288, "TLS Version 1.1 Deprecated Protocol", "Service detection", 31, 6.5, 443, "www", EVERYTHING,
     "The remote service encrypts traffic using an older version of TLS.", ()),
    (90317, "SSH Weak Algorithms Supported", "Misc.", 29, 4.3, 22, "ssh", LINUX | NETWORK,
     "The remote SSH server is configured to allow weak encryption algorithms or no algorithm at all.", ()),
    (187315, "SSH Terrapin Prefix Truncation Weakness (CVE-2023-48795)", "Misc.", 29, 5.9, 22, "ssh",
     LINUX | NETWORK, "The remote SSH server is vulnerable to a mitm prefix truncation attack.",
     ("CVE-2023-48795",)),
    (42873, "SSL Medium Strength Cipher Suites Supported (SWEET32)", "General", 30, 7.5, 443, "www",
     EVERYTHING, "The remote service supports the use of medium strength SSL ciphers.",
     ("CVE-2016-2183",)),
)  # fmt: skip

# Famous vulnerabilities written out by hand: (plugin id, name, family, family id, cvss3, vpr, targets,
# port, service, cves, software)
_NOTABLE: tuple[tuple[int, str, str, int, float, float, frozenset[str], int, str, tuple[str, ...], Software], ...] = (
    (156014, "Apache Log4j < 2.15.0 Remote Code Execution (Log4Shell)", "Misc.", 29, 10.0, 10.0,
     LINUX | WINDOWS_SERVERS, 0, "general", ("CVE-2021-44228",),
     Software("apache", "log4j", "2.14.1", None, "/opt/app/lib/log4j-core-2.14.1.jar")),
    (97833, "MS17-010: Security Update for Microsoft Windows SMB Server (ETERNALBLUE)", "Windows", 20, 8.1, 9.8,
     frozenset({"ws2016"}), 445, "cifs", ("CVE-2017-0143", "CVE-2017-0144", "CVE-2017-0145"),
     Software("microsoft", "windows_server_2016", "10.0.14393.6897", "4013429")),
    (140657, "Netlogon Elevation of Privilege (Zerologon)", "Windows", 20, 10.0, 9.9,
     frozenset({"ws2019", "ws2016"}), 445, "cifs", ("CVE-2020-1472",),
     Software("microsoft", "windows_server_2019", "10.0.17763.5696", "4565349")),
    (201194, "OpenSSH < 9.8 RCE (regreSSHion)", "Misc.", 29, 8.1, 9.0, LINUX, 22, "ssh", ("CVE-2024-6387",),
     Software("openbsd", "openssh", "8.9p1", None, "/usr/sbin/sshd")),
    (182840, "Cisco IOS XE Software Web UI Privilege Escalation (cisco-sa-iosxe-webui-privesc-j22SaA4z)",
     "CISCO", 4, 10.0, 10.0, frozenset({"iosxe"}), 443, "www", ("CVE-2023-20198", "CVE-2023-20273"),
     Software("cisco", "ios_xe", "17.9.4a")),
    (190856, "Fortinet FortiOS Out-of-Bounds Write in SSL-VPN (FG-IR-24-015)", "Firewalls", 5, 9.8, 9.6,
     frozenset({"fortios"}), 443, "www", ("CVE-2024-21762",), Software("fortinet", "fortios", "7.2.8")),
    (193220, "Palo Alto Networks PAN-OS GlobalProtect Command Injection (CVE-2024-3400)", "Palo Alto Local "
     "Security Checks", 6, 10.0, 10.0, frozenset({"panos"}), 443, "www", ("CVE-2024-3400",),
     Software("paloaltonetworks", "pan-os", "10.2.9")),
)  # fmt: skip


@dataclass(frozen=True)
class _Series:
    """A product whose advisories recur: one definition per release, each with fresh CVEs."""

    name_template: str
    family: str
    family_id: int
    targets: frozenset[str]
    software: tuple[str, str]  # (vendor, product) as Defender spells them
    releases: int
    version_template: str
    disk_path: str | None = None
    kb_base: int | None = None
    port: int = 0
    service: str = "general"


_SERIES: tuple[_Series, ...] = (
    _Series("KB{kb}: Windows 11 version 22H2 / 23H2 Security Update ({month} 2024)", "Windows : Microsoft "
            "Bulletins", 22, frozenset({"win11"}), ("microsoft", "windows_11"), 12, "10.0.22631.{n}",
            kb_base=5034123),
    _Series("KB{kb}: Windows 10 version 21H2 / 22H2 Security Update ({month} 2024)", "Windows : Microsoft "
            "Bulletins", 22, frozenset({"win10"}), ("microsoft", "windows_10"), 12, "10.0.19045.{n}",
            kb_base=5034122),
    _Series("KB{kb}: Windows Server 2016 Security Update ({month} 2024)", "Windows : Microsoft Bulletins", 22,
            frozenset({"ws2016"}), ("microsoft", "windows_server_2016"), 12, "10.0.14393.{n}", kb_base=5034119),
    _Series("KB{kb}: Windows Server 2019 Security Update ({month} 2024)", "Windows : Microsoft Bulletins", 22,
            frozenset({"ws2019"}), ("microsoft", "windows_server_2019"), 12, "10.0.17763.{n}", kb_base=5034127),
    _Series("KB{kb}: Windows Server 2022 / Azure Stack HCI Security Update ({month} 2024)", "Windows : "
            "Microsoft Bulletins", 22, frozenset({"ws2022"}), ("microsoft", "windows_server_2022"), 12,
            "10.0.20348.{n}", kb_base=5034129),
    _Series("Google Chrome < {version} Multiple Vulnerabilities", "Windows", 20, WINDOWS_DESKTOPS,
            ("google", "chrome"), 10, "12{r}.0.6{n}.{p}", r"C:\Program Files\Google\Chrome\Application\chrome.exe"),
    _Series("Google Chrome < {version} Multiple Vulnerabilities", "MacOS X Local Security Checks", 16,
            frozenset({"macos"}), ("google", "chrome"), 6, "12{r}.0.6{n}.{p}",
            "/Applications/Google Chrome.app"),
    _Series("Mozilla Firefox < {version}", "Windows", 20, WINDOWS_DESKTOPS, ("mozilla", "firefox"), 6,
            "12{r}.0.{p}", r"C:\Program Files\Mozilla Firefox\firefox.exe"),
    _Series("Mozilla Firefox < {version}", "MacOS X Local Security Checks", 16, frozenset({"macos"}),
            ("mozilla", "firefox"), 4, "12{r}.0.{p}", "/Applications/Firefox.app"),
    _Series("Microsoft Edge (Chromium) < {version} Multiple Vulnerabilities", "Windows", 20, WINDOWS_DESKTOPS,
            ("microsoft", "edge_chromium"), 6, "12{r}.0.2{n}.{p}",
            r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe"),
    _Series("Security Updates for Microsoft Office Products ({month} 2024)", "Windows : Microsoft Bulletins",
            22, WINDOWS_DESKTOPS, ("microsoft", "office"), 6, "16.0.17{n}.{p}", kb_base=5002540),
    _Series("Adobe Acrobat Reader < {version} Multiple Vulnerabilities (APSB24-{p})", "Windows", 20,
            WINDOWS_DESKTOPS, ("adobe", "acrobat_reader_dc"), 5, "24.00{r}.2{n}",
            r"C:\Program Files\Adobe\Acrobat DC\Acrobat\Acrobat.exe"),
    _Series("Zoom Client for Meetings < {version} Multiple Vulnerabilities (ZSB-24{p})", "Windows", 20,
            WINDOWS_DESKTOPS | {"macos"}, ("zoom", "zoom"), 4, "5.1{r}.{p}"),
    _Series("7-Zip < {version} Multiple Vulnerabilities", "Windows", 20, WINDOWS_ALL, ("7-zip", "7-zip"), 2,
            "2{r}.0{p}", r"C:\Program Files\7-Zip\7z.exe"),
    _Series("Oracle Java SE Multiple Vulnerabilities ({month} 2024 CPU)", "Misc.", 29,
            WINDOWS_ALL | LINUX, ("oracle", "jre"), 4, "1.8.0.{n}"),
    _Series("Security Updates for Microsoft .NET Core ({month} 2024)", "Windows", 20, WINDOWS_ALL,
            ("microsoft", ".net"), 5, "8.0.{r}"),
    _Series("Security Updates for Microsoft SQL Server ({month} 2024)", "Windows : Microsoft Bulletins", 22,
            WINDOWS_SERVERS, ("microsoft", "sql_server_2019"), 4, "15.0.4{n}.{p}", kb_base=5035434, port=1433,
            service="mssql"),
    _Series("macOS 14.x < {version} Multiple Vulnerabilities (HT2144{p})", "MacOS X Local Security Checks", 16,
            frozenset({"macos"}), ("apple", "macos"), 6, "14.{r}.{p}"),
    _Series("OpenSSL 3.0.x < {version} Multiple Vulnerabilities", "Web Servers", 19, LINUX | WINDOWS_SERVERS,
            ("openssl", "openssl"), 5, "3.0.1{r}", "/usr/lib/x86_64-linux-gnu/libssl.so.3"),
    _Series("Ubuntu 20.04 LTS / 22.04 LTS : Linux kernel vulnerabilities (USN-6{n}-1)", "Ubuntu Local Security "
            "Checks", 39, UBUNTU, ("linux", "linux_kernel"), 10, "5.15.0-{p}"),
    _Series("RHEL 8 / 9 : kernel (RHSA-2024:{n})", "Red Hat Local Security Checks", 40, RHEL,
            ("linux", "linux_kernel"), 10, "4.18.0-{n}"),
    _Series("OpenSSH < {version} Multiple Vulnerabilities", "Misc.", 29, LINUX, ("openbsd", "openssh"), 3,
            "8.{r}p1", "/usr/sbin/sshd", port=22, service="ssh"),
    _Series("Ubuntu 20.04 LTS / 22.04 LTS : sudo vulnerabilities (USN-6{n}-1)", "Ubuntu Local Security Checks",
            39, UBUNTU, ("sudo_project", "sudo"), 2, "1.9.{r}p{p}"),
    _Series("RHEL 8 / 9 : glibc (RHSA-2024:{n})", "Red Hat Local Security Checks", 40, RHEL,
            ("gnu", "glibc"), 4, "2.28-{p}"),
    _Series("curl < {version} Multiple Vulnerabilities", "Misc.", 29, LINUX | {"macos"}, ("haxx", "curl"), 4,
            "8.{r}.{p}", "/usr/bin/curl"),
    _Series("Apache 2.4.x < {version} Multiple Vulnerabilities", "Web Servers", 19, LINUX, ("apache", "httpd"),
            4, "2.4.5{r}", "/usr/sbin/apache2", port=443, service="www"),
    _Series("nginx 1.2x.x < {version} Multiple Vulnerabilities", "Web Servers", 19, LINUX, ("nginx", "nginx"),
            3, "1.2{r}.{p}", "/usr/sbin/nginx", port=443, service="www"),
    _Series("Python Unsupported Version Detection / Multiple Vulnerabilities ({version})", "Misc.", 29,
            LINUX, ("python", "python"), 3, "3.{r}.{p}", "/usr/bin/python3"),
    _Series("Cisco IOS XE Software Multiple Vulnerabilities (cisco-sa-iosxe-{n})", "CISCO", 4,
            frozenset({"iosxe"}), ("cisco", "ios_xe"), 4, "17.9.4a"),
    _Series("Fortinet FortiOS Multiple Vulnerabilities (FG-IR-24-{n})", "Firewalls", 5, frozenset({"fortios"}),
            ("fortinet", "fortios"), 4, "7.2.8"),
    _Series("Palo Alto Networks PAN-OS {version} Vulnerability (PAN-SA-2024-{n})", "Palo Alto Local Security "
            "Checks", 6, frozenset({"panos"}), ("paloaltonetworks", "pan-os"), 3, "10.2.9"),
)  # fmt: skip

_CVSS_CHOICES = (9.8, 9.8, 9.6, 8.8, 8.8, 8.1, 7.8, 7.8, 7.5, 7.5, 7.3, 6.5, 6.1, 5.5, 5.3, 4.3, 3.7)
_CATALOG_SEED = 20240501


@dataclass(frozen=True)
class Catalog:
    """Every vulnerability definition, indexed for fast per-machine selection."""

    definitions: tuple[VulnDefinition, ...]
    informational: dict[str, tuple[int, ...]]  # os key -> definition indexes always raised
    misconfigurations: dict[str, tuple[int, ...]]
    software_vulns: dict[str, tuple[int, ...]]  # os key -> definitions with software (and usually CVEs)


def _series_definitions(rng: random.Random, next_id: int) -> list[VulnDefinition]:
    definitions = []
    used_cves: set[str] = set()
    for series in _SERIES:
        for release in range(series.releases):
            values = {
                "r": release + 1,
                "n": 100 + release * 37 + rng.randint(0, 30),
                "p": rng.randint(10, 99),
            }
            version = series.version_template.format(**values)
            kb = str(series.kb_base + release * 113) if series.kb_base else None
            name = series.name_template.format(
                kb=kb, month=MONTHS[release % 12], version=version, n=values["n"], p=values["p"]
            )
            cves = []
            for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
                cve = f"CVE-{rng.choice((2023, 2024, 2024))}-{rng.randint(20000, 49999)}"
                if cve not in used_cves:
                    used_cves.add(cve)
                    cves.append(cve)
            cvss3 = rng.choice(_CVSS_CHOICES)
            severity_id = severity_from_cvss(cvss3)
            age_days = (series.releases - release) * 30 + rng.randint(3, 20)
            definitions.append(
                VulnDefinition(
                    plugin_id=next_id,
                    name=name,
                    family=series.family,
                    family_id=series.family_id,
                    plugin_type="local",
                    severity_id=severity_id,
                    cvss3=cvss3,
                    vpr=round(min(9.9, max(0.1, cvss3 - rng.uniform(0.5, 4.5))), 1),
                    epss=round(rng.uniform(0.04, 60.0 if severity_id >= 3 else 5.0), 2),
                    exploit_available=rng.random() < (0.45 if severity_id >= 3 else 0.1),
                    cves=tuple(cves),
                    targets=series.targets,
                    port=series.port,
                    protocol="TCP",
                    service=series.service,
                    age_days=age_days,
                    synopsis=f"The remote host is affected by {'a vulnerability' if len(cves) == 1 else 'multiple vulnerabilities'}.",
                    solution=f"Upgrade {series.software[1]} to a version later than {version} or apply the vendor update.",
                    software=Software(series.software[0], series.software[1], version, kb, series.disk_path),
                )
            )
            next_id += rng.randint(3, 250)
    return definitions


@cache
def vulnerability_catalog() -> Catalog:
    """The shared vulnerability catalogue (built once per process)."""
    rng = random.Random(_CATALOG_SEED)
    definitions: list[VulnDefinition] = []
    for plugin_id, name, family, family_id, severity_id, port, service, targets, synopsis in _INFORMATIONAL:
        definitions.append(
            VulnDefinition(
                plugin_id,
                name,
                family,
                family_id,
                "remote" if port else "summary",
                severity_id,
                None,
                None,
                None,
                False,
                (),
                targets,
                port,
                "TCP",
                service,
                6840,
                synopsis,
                "n/a",
                tenable_only=True,
                informational_baseline=True,
            )
        )
    for (
        plugin_id,
        name,
        family,
        family_id,
        cvss3,
        port,
        service,
        targets,
        synopsis,
        cves,
    ) in _MISCONFIGURATIONS:
        definitions.append(
            VulnDefinition(
                plugin_id,
                name,
                family,
                family_id,
                "remote",
                severity_from_cvss(cvss3),
                cvss3,
                round(cvss3 * 0.6, 1) if cves else None,
                1.2 if cves else None,
                bool(cves),
                cves,
                targets,
                port,
                "TCP",
                service,
                4500,
                synopsis,
                "Reconfigure the affected service.",
                tenable_only=True,
            )
        )
    for plugin_id, name, family, family_id, cvss3, vpr, targets, port, service, cves, software in _NOTABLE:
        definitions.append(
            VulnDefinition(
                plugin_id,
                name,
                family,
                family_id,
                "combined",
                severity_from_cvss(cvss3),
                cvss3,
                vpr,
                94.5,
                True,
                cves,
                targets,
                port,
                "TCP",
                service,
                900,
                "The remote host is affected by a remote code execution vulnerability.",
                "Apply the vendor patch.",
                software=software,
            )
        )
    definitions.extend(_series_definitions(rng, 183000))

    def index(predicate: Callable[[VulnDefinition], bool]) -> dict[str, tuple[int, ...]]:
        return {
            os_key: tuple(i for i, d in enumerate(definitions) if os_key in d.targets and predicate(d))
            for os_key in OS_PROFILES
        }

    return Catalog(
        definitions=tuple(definitions),
        informational=index(lambda d: d.informational_baseline),
        misconfigurations=index(lambda d: d.tenable_only and not d.informational_baseline),
        software_vulns=index(lambda d: d.software is not None),
    )


DOMAINS = (
    ("corp.example.com", 0.6, "CORP"),
    ("eu.example.com", 0.25, "EU"),
    ("lab.example.net", 0.15, "LAB"),
)
DEPARTMENTS = ("fin", "hr", "eng", "sales", "ops", "mkt", "legal")
DEPARTMENT_NAMES = {
    "fin": "Finance", "hr": "Human Resources", "eng": "Engineering", "sales": "Sales", "ops": "IT Operations",
    "mkt": "Marketing", "legal": "Legal",
}  # fmt: skip
WINDOWS_ROLES = ("app", "sql", "dc", "file", "iis", "rds", "print")
LINUX_ROLES = ("web", "db", "k8s", "mq", "log", "ci", "nfs")
NETWORK_ROLES = {"iosxe": "core-rtr", "fortios": "fw", "panos": "edge-fw"}

FIRST_NAMES = (
    "Priya", "James", "Maria", "Chen", "Fatima", "Lukas", "Sofia", "Oliver", "Aisha", "Mateo", "Hannah", "Kenji",
    "Amara", "Noah", "Elena", "Tomasz", "Grace", "Omar", "Ingrid", "Rahul", "Chloe", "Diego", "Yuki", "Samuel",
)  # fmt: skip
LAST_NAMES = (
    "Shah", "Miller", "Garcia", "Wei", "Khan", "Schmidt", "Rossi", "Brown", "Okafor", "Lopez", "Novak", "Sato",
    "Dubois", "Johnson", "Petrov", "Kowalski", "Murphy", "Haddad", "Larsen", "Gupta", "Martin", "Silva",
    "Tanaka", "Andersen",
)  # fmt: skip
JOB_TITLES = ("Analyst", "Engineer", "Manager", "Specialist", "Consultant", "Director", "Administrator")

# (name, criticality 1..4, used_for)
BUSINESS_SERVICES = (
    ("Payroll", 1, "Production"), ("Online Banking", 1, "Production"), ("Card Payments", 1, "Production"),
    ("Customer Portal", 2, "Production"), ("Email", 2, "Production"), ("Identity and Access", 1, "Production"),
    ("HR Self-Service", 3, "Production"), ("Data Warehouse", 2, "Production"), ("CRM", 2, "Production"),
    ("Document Management", 3, "Production"), ("Mobile Banking", 1, "Production"), ("Treasury", 2, "Production"),
    ("Internal Wiki", 4, "Production"), ("CI/CD Pipeline", 3, "Development"), ("QA Test Lab", 4, "Test"),
)  # fmt: skip
CRITICALITY_LABELS = {
    1: "1 - most critical",
    2: "2 - somewhat critical",
    3: "3 - less critical",
    4: "4 - not critical",
}

CATALOG_ITEMS = (
    ("Standard laptop", "Request a standard corporate laptop", "1200.00"),
    ("Developer workstation", "High-memory workstation for engineering", "2400.00"),
    ("Monitor 27 inch", "Additional 27 inch monitor", "320.00"),
    ("VPN access", "Remote access through the corporate VPN", "0.00"),
    ("New server (Windows)", "Provision a Windows Server virtual machine", "0.00"),
    ("New server (Linux)", "Provision a Linux virtual machine", "0.00"),
    ("Software install", "Install licensed software on a managed device", "0.00"),
    ("Mobile phone", "Corporate smartphone with MDM enrolment", "650.00"),
    ("Shared mailbox", "Create a shared mailbox", "0.00"),
    ("Firewall rule change", "Request a change to a perimeter firewall rule", "0.00"),
    ("Privileged access", "Temporary administrative rights on a server", "0.00"),
    ("Password reset", "Reset a directory password", "0.00"),
    ("Data restore", "Restore files from backup", "0.00"),
    ("Headset", "USB headset for calls", "85.00"),
    ("Security exception", "Request an exception to a security policy", "0.00"),
)

# (title, category, severity, mitre techniques, detection source)
ALERT_TEMPLATES: tuple[tuple[str, str, str, list[str], str], ...] = (
    ("Suspicious access to LSASS service", "CredentialAccess", "High", ["T1003.001"], "WindowsDefenderAtp"),
    ("Suspicious PowerShell command line", "Execution", "Medium", ["T1059.001"], "WindowsDefenderAtp"),
    ("Ransomware behavior detected in the file system", "Ransomware", "High", ["T1486"], "WindowsDefenderAv"),
    ("Possible lateral movement using RDP", "LateralMovement", "Medium", ["T1021.001"], "WindowsDefenderAtp"),
    ("'Mimikatz' credential theft tool", "CredentialAccess", "High", ["T1003"], "WindowsDefenderAv"),
    ("Suspicious scheduled task registration", "Persistence", "Low", ["T1053.005"], "WindowsDefenderAtp"),
    ("Unwanted software 'BrowserHelper' was detected", "UnwantedSoftware", "Informational", [],
     "WindowsDefenderAv"),
    ("Suspicious connection to a known malicious IP", "CommandAndControl", "Medium", ["T1071"],
     "WindowsDefenderAtp"),
    ("Anomalous account lookups", "Discovery", "Low", ["T1087", "T1069"], "WindowsDefenderAtp"),
    ("Reverse shell on Linux host", "Execution", "High", ["T1059.004"], "WindowsDefenderAtp"),
)  # fmt: skip
