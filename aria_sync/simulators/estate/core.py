"""The deterministic demo estate that every vendor simulator serves from."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

from aria_sync.errors import ConfigurationError
from aria_sync.simulators.estate.defender import DefenderView
from aria_sync.simulators.estate.exposure import machine_exposure
from aria_sync.simulators.estate.fleet import SIZES, build_fleet
from aria_sync.simulators.estate.servicenow import SERVICENOW_REFERENCES, SERVICENOW_TABLES, ServiceNowView
from aria_sync.simulators.estate.support import SIX_HOURS, derived_rng
from aria_sync.simulators.estate.tenable import TenableView

# Demo-only credentials of the simulators; they open nothing outside this process.
DEMO_CREDENTIALS: dict[str, dict[str, str]] = {
    "tenable": {"accessKey": "demo-tenable-access-key", "secretKey": "demo-tenable-secret-key"},
    "ms-defender": {
        "tenantId": "11111111-2222-3333-4444-555555555555",
        "clientId": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
        "clientSecret": "demo-defender-client-secret",
    },
    "servicenow": {"username": "aria.demo", "password": "demo-servicenow-password"},  # nosec B105 # the simulator's published demo login
}


class Estate:
    """One synthetic company estate, already in each vendor's wire shape.

    The same (size, seed, anchor) always yields identical records. Lists returned by the accessors
    are fresh, but the records inside are the estate's own: treat them as read-only (copy before
    changing). Large collections (Tenable findings, Defender vulnerability rows) are generated lazily.
    """

    SERVICENOW_TABLES: ClassVar[tuple[str, ...]] = SERVICENOW_TABLES
    servicenow_references: dict[str, dict[str, str]]
    credentials: dict[str, dict[str, str]]

    def __init__(self, size: str, seed: int, anchor: datetime) -> None:
        if size not in SIZES:
            raise ConfigurationError(f"unknown estate size {size!r}; choose one of {', '.join(SIZES)}")
        if anchor.tzinfo is None or anchor.utcoffset() is None:
            raise ConfigurationError("the estate anchor must be a timezone-aware datetime")
        self.size = size
        self.seed = seed
        self.generation = 0
        self.now = anchor.astimezone(UTC)
        self.credentials = {key: dict(values) for key, values in DEMO_CREDENTIALS.items()}
        self.servicenow_references = {table: dict(fields) for table, fields in SERVICENOW_REFERENCES.items()}
        fleet = build_fleet(size, seed, self.now)
        self._fleet = fleet
        exposures = {
            m.index: machine_exposure(seed, m) for m in fleet.machines if m.in_tenable or m.in_defender
        }
        self._tenable = TenableView(seed, fleet, exposures, self.now)
        self._defender = DefenderView(
            seed, fleet, exposures, self.now, self.credentials["ms-defender"]["tenantId"]
        )
        self._servicenow = ServiceNowView(seed, fleet, self.now)
        self._truth = self._build_truth()

    @classmethod
    def generate(cls, size: str = "small", seed: int = 7, anchor: datetime | None = None) -> Estate:
        """Build the estate of ``size`` ("tiny", "small" or "large"); ``anchor`` defaults to today 00:00 UTC."""
        if anchor is None:
            anchor = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return cls(size, seed, anchor)

    def advance(self) -> None:
        """Move ``now`` on by 6 hours and apply that period's changes in every vendor.

        Every changed record's update timestamp lands in (old now, new now].
        """
        old_now, new_now = self.now, self.now + SIX_HOURS
        self._tenable.advance(
            derived_rng(self.seed, "advance", "tenable", self.generation + 1), old_now, new_now
        )
        self._defender.advance(
            derived_rng(self.seed, "advance", "defender", self.generation + 1), old_now, new_now
        )
        self._servicenow.advance(
            derived_rng(self.seed, "advance", "servicenow", self.generation + 1), old_now, new_now
        )
        self.generation += 1
        self.now = new_now

    # ---------------------------------------------------------------- Tenable
    def tenable_assets(self) -> list[dict[str, Any]]:
        """Asset export (v1) records, including deleted (``deleted_at``) and terminated ones."""
        return list(self._tenable.assets)

    def tenable_findings(self) -> Iterator[dict[str, Any]]:
        """Vuln export records, generated lazily, grouped by asset in ``tenable_assets()`` order.

        Deleted assets have no findings (Tenable drops them with the asset).
        """
        return self._tenable.findings()

    def tenable_finding_count(self) -> int:
        """How many records ``tenable_findings()`` yields, without generating them."""
        return self._tenable.finding_count()

    def tenable_scans(self) -> list[dict[str, Any]]:
        """``GET /scans`` ``scans`` entries."""
        return list(self._tenable.scans)

    # ---------------------------------------------------------------- Defender
    def defender_machines(self) -> list[dict[str, Any]]:
        """``/api/machines`` records, including Inactive ones and both entities of re-imaged devices."""
        return list(self._defender.machines)

    def defender_alerts(self) -> list[dict[str, Any]]:
        """``/api/alerts`` records with ``evidence`` (simulators drop it unless ``$expand=evidence``)."""
        return list(self._defender.alerts)

    def defender_incidents(self) -> list[dict[str, Any]]:
        """``/api/incidents`` records (newest first) with their ``alerts`` sub-objects."""
        return self._defender.incident_records()

    def defender_vulnerabilities(self) -> Iterator[dict[str, Any]]:
        """SoftwareVulnerabilitiesByMachine rows, generated lazily, grouped by machine."""
        return self._defender.vulnerabilities()

    def defender_vulnerability_count(self) -> int:
        """How many rows ``defender_vulnerabilities()`` yields, without generating them."""
        return self._defender.vulnerability_count()

    def defender_vulnerability_changes(self, since: datetime) -> list[dict[str, Any]]:
        """SoftwareVulnerabilityChangesByMachine rows (status New, Fixed or Updated) with eventTimestamp >= since."""
        return self._defender.vulnerability_changes(since)

    # ---------------------------------------------------------------- ServiceNow
    def servicenow_records(self, table: str) -> list[dict[str, Any]]:
        """Raw rows of ``table`` and its child classes, sorted by sys_id."""
        if table not in SERVICENOW_TABLES:
            raise ConfigurationError(f"the estate has no ServiceNow table {table!r}")
        return self._servicenow.records(table)

    # ---------------------------------------------------------------- ground truth
    def _build_truth(self) -> dict[tuple[str, str], str]:
        truth: dict[tuple[str, str], str] = {}
        for machine in self._fleet.machines:
            if machine.in_tenable:
                truth[("tenable", machine.tenable_id)] = machine.machine_id
            if machine.in_defender:
                truth[("ms-defender", machine.defender_id)] = machine.machine_id
                if machine.defender_old_id:
                    truth[("ms-defender", machine.defender_old_id)] = machine.machine_id
            if machine.in_cmdb:
                truth[("servicenow", machine.sys_id)] = machine.machine_id
        return truth

    def truth(self) -> dict[tuple[str, str], str]:
        """(integration key, vendor asset record id) -> machine id for every asset record ever issued.

        Keys: ("tenable", asset id), ("ms-defender", machine id), ("servicenow", CI sys_id); records
        deleted by ``advance()`` stay in the map so synced-then-deleted rows can still be scored.
        """
        return dict(self._truth)
