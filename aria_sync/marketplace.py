"""Installations: install, test, list, enable/disable, schedule and uninstall integrations.

Secrets go to the vault at install time; the database keeps only the non-secret config and a
reference. Every change is written to the activity log. Roles are enforced here, in the library,
so the CLI, the dashboard and notebooks all get the same rules.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr, ValidationError

from aria_sync import audit
from aria_sync.audit import Actor
from aria_sync.connectors.base import CapabilityResult, Connector, ConnectorContext, IntegrationConfig
from aria_sync.connectors.registry import get_connector
from aria_sync.errors import (
    AriaSyncError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    SourceError,
    UrlPolicyError,
    UsageError,
)
from aria_sync.http import AllowList, RetryBudget, check_url
from aria_sync.http.redact import redact_text
from aria_sync.store import Database, OrgScope, utcnow
from aria_sync.vault import Vault, open_vault

ROLE_RANK = {"viewer": 0, "analyst": 1, "admin": 2}


def require_role(actor: Actor, needed: str, action: str) -> None:
    if ROLE_RANK.get(actor.role, -1) < ROLE_RANK[needed]:
        raise PermissionDeniedError(
            f"{actor.name} ({actor.role}) may not {action}; it needs the {needed} role"
        )


@dataclass(frozen=True)
class Installation:
    installation_id: str
    org: str
    integration_key: str
    name: str
    config: dict[str, Any]
    secret_ref: str
    secret_fields: list[str]
    enabled: bool
    status: str
    options: dict[str, Any] = field(default_factory=dict)
    schedule_kind: str | None = None
    schedule_expr: str | None = None
    next_run_at: dt.datetime | None = None
    consecutive_failures: int = 0
    backoff_until: dt.datetime | None = None
    last_sync_at: dt.datetime | None = None
    last_sync_status: str | None = None
    last_success_at: dt.datetime | None = None
    last_error: str | None = None
    created_at: dt.datetime | None = None
    created_by: str | None = None

    @property
    def connector(self) -> Connector:
        return get_connector(self.integration_key)

    def public_config(self) -> dict[str, Any]:
        """The config as shown to people: secrets masked, never their values."""
        shown = dict(self.config)
        for name in self.secret_fields:
            shown[name] = "********"
        return shown

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Installation:
        return cls(
            installation_id=row["installation_id"],
            org=row["org_id"],
            integration_key=row["integration_key"],
            name=row["name"],
            config=json.loads(row["config"] or "{}"),
            secret_ref=row["secret_ref"],
            secret_fields=list(row["secret_fields"] or []),
            enabled=bool(row["enabled"]),
            status=row["status"],
            options=json.loads(row["options"] or "{}"),
            schedule_kind=row["schedule_kind"],
            schedule_expr=row["schedule_expr"],
            next_run_at=row["next_run_at"],
            consecutive_failures=int(row["consecutive_failures"] or 0),
            backoff_until=row["backoff_until"],
            last_sync_at=row["last_sync_at"],
            last_sync_status=row["last_sync_status"],
            last_success_at=row["last_success_at"],
            last_error=row["last_error"],
            created_at=row["created_at"],
            created_by=row["created_by"],
        )


@dataclass(frozen=True)
class TestReport:
    ok: bool
    results: list[CapabilityResult]
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "error": self.error,
            "capabilities": [
                {"capability": r.capability, "ok": r.ok, "message": r.message} for r in self.results
            ],
        }


def _format_validation_error(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "config"
        kind = error["type"]
        if kind == "missing":
            problems.append(f"missing config key {where!r}")
        elif kind == "extra_forbidden":
            problems.append(f"unknown config key {where!r}")
        else:
            problems.append(f"config key {where!r}: {error['msg'].lower()}")
    return "; ".join(problems)


def parse_config(connector: Connector, raw: Mapping[str, Any]) -> IntegrationConfig:
    if connector.status != "available":
        raise UsageError(f"{connector.name} ({connector.key}) is coming soon and cannot be installed yet")
    if not isinstance(raw, Mapping):
        raise ConfigurationError("config must be a JSON object of config keys")
    try:
        return connector.config_model.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigurationError(f"{connector.key}: {_format_validation_error(exc)}") from None


def _offline_resolver(host: str, *args: Any, **kwargs: Any) -> list[Any]:
    """Stands in for DNS when only the shape of a URL is checked (install --no-test)."""
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))]


def check_config_urls(connector: Connector, config: IntegrationConfig, *, resolve: bool) -> None:
    allowed = AllowList.from_env()
    suffixes: Mapping[str, str] = getattr(connector, "url_suffixes", {})
    for name in config.url_fields():
        value = getattr(config, name)
        if value:
            kwargs: dict[str, Any] = {} if resolve else {"resolver": _offline_resolver}
            check_url(value, field=name, allowed=allowed, required_suffix=suffixes.get(name), **kwargs)


class Marketplace:
    """The installations of one organisation, acted on by one actor."""

    def __init__(
        self, db: Database, org: str, actor: Actor | None = None, vault: Vault | None = None
    ) -> None:
        self.db = db
        self.scope = OrgScope(db, org)
        self.org = self.scope.org
        self.actor = actor or Actor.local()
        self._vault = vault

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            self._vault = open_vault(self.db.path.parent)
        return self._vault

    # -- reading ---------------------------------------------------------------------------
    def installations(self) -> list[Installation]:
        with self.scope.read() as conn:
            rows = conn.rows("SELECT * FROM integration_installations ORDER BY created_at, name")
        return [Installation.from_row(r) for r in rows]

    def get(self, ref: str) -> Installation:
        """An installation by id or unique name."""
        with self.scope.read() as conn:
            rows = conn.rows(
                "SELECT * FROM integration_installations WHERE installation_id = ? OR name = ?", [ref, ref]
            )
        if not rows:
            raise NotFoundError(f"no installation named {ref!r} in organisation {self.org!r}")
        by_id = [r for r in rows if r["installation_id"] == ref]
        return Installation.from_row(by_id[0] if by_id else rows[0])

    def config_for(self, installation: Installation) -> IntegrationConfig:
        """The full config including secrets, for connecting; never for display."""
        secrets = self.vault.get(installation.secret_ref) if installation.secret_fields else {}
        values: dict[str, Any] = dict(installation.config)
        for name in installation.secret_fields:
            secret = secrets.get(name)
            values[name] = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        return installation.connector.config_model.model_validate(values)

    # -- connection tests ------------------------------------------------------------------
    def test_config(self, key: str, raw: Mapping[str, Any]) -> TestReport:
        require_role(self.actor, "analyst", "test connections")
        connector = get_connector(key)
        config = parse_config(connector, raw)
        return self._run_test(connector, config, target=key)

    def test(self, ref: str) -> TestReport:
        require_role(self.actor, "analyst", "test connections")
        installation = self.get(ref)
        config = self.config_for(installation)
        report = self._run_test(installation.connector, config, target=installation.installation_id)
        return report

    def _run_test(self, connector: Connector, config: IntegrationConfig, target: str) -> TestReport:
        secrets = tuple(config.secret_values())
        try:
            check_config_urls(connector, config, resolve=True)
            context = ConnectorContext(allowed=AllowList.from_env(), budget=RetryBudget(10), secrets=secrets)
            with connector.session(config, context) as session:
                results = connector.test_connection(session)
            report = TestReport(ok=all(r.ok for r in results), results=results)
        except (SourceError, UrlPolicyError) as exc:
            message = redact_text(str(exc), secrets)
            report = TestReport(
                ok=False,
                results=[CapabilityResult(c.name, False, message) for c in connector.capabilities],
                error=message,
            )
        with self.scope.write() as conn:
            audit.record(
                conn,
                self.org,
                self.actor,
                "installation.test",
                target_type="installation",
                target_id=target,
                outcome="success" if report.ok else "failure",
                details=report.as_dict(),
                secrets=secrets,
            )
        return report

    # -- changing --------------------------------------------------------------------------
    def install(
        self,
        key: str,
        name: str,
        raw_config: Mapping[str, Any],
        *,
        test: bool = True,
        schedule: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> tuple[Installation, TestReport | None]:
        require_role(self.actor, "admin", "install integrations")
        connector = get_connector(key)
        config = parse_config(connector, raw_config)
        name = name.strip()
        if not name:
            raise UsageError("an installation needs a non-empty --name")
        if any(i.name == name for i in self.installations()):
            raise ConflictError(f"an installation named {name!r} already exists in organisation {self.org!r}")
        check_config_urls(connector, config, resolve=test)
        report = None
        if test:
            report = self._run_test(connector, config, target=key)
            if not report.ok:
                failed = "; ".join(f"{r.capability}: {r.message}" for r in report.results if not r.ok)
                raise ConfigurationError(
                    f"connection test failed, nothing installed ({failed}); fix the config or pass --no-test"
                )
        from aria_sync.schedule import parse_schedule

        schedule_kind, schedule_expr, next_run = parse_schedule(schedule) if schedule else (None, None, None)
        installation_id = str(uuid.uuid4())
        secret_ref = f"{self.org}/{installation_id}"
        secret_names = config.secret_fields()
        public = config.model_dump(mode="json", exclude=set(secret_names))
        secret_values = {
            n: getattr(config, n).get_secret_value() for n in secret_names if getattr(config, n) is not None
        }
        self.vault.put(secret_ref, secret_values)
        now = utcnow()
        try:
            with self.scope.write() as conn:
                conn.execute(
                    """INSERT INTO integration_installations (org_id, installation_id, integration_key, name, config,
                       secret_ref, secret_fields, enabled, status, options, schedule_kind, schedule_expr, next_run_at,
                       consecutive_failures, created_at, created_by, updated_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, true, 'active', ?, ?, ?, ?, 0, ?, ?, ?)""",
                    [
                        self.org,
                        installation_id,
                        key,
                        name,
                        json.dumps(public),
                        secret_ref,
                        secret_names,
                        json.dumps(dict(options or {})),
                        schedule_kind,
                        schedule_expr,
                        next_run,
                        now,
                        self.actor.name,
                        now,
                    ],
                )
                audit.record(
                    conn,
                    self.org,
                    self.actor,
                    "installation.create",
                    target_type="installation",
                    target_id=installation_id,
                    details={
                        "integration": key,
                        "name": name,
                        "config": public,
                        "secret_fields": secret_names,
                        "schedule": schedule,
                    },
                    secrets=tuple(secret_values.values()),
                )
        except BaseException:
            self.vault.delete(secret_ref)  # leave nothing half-written
            raise
        return self.get(installation_id), report

    def set_enabled(self, ref: str, enabled: bool) -> Installation:
        require_role(self.actor, "admin", "enable or disable integrations")
        installation = self.get(ref)
        with self.scope.write() as conn:
            conn.execute(
                "UPDATE integration_installations SET enabled = ?, status = ?, updated_at = ? "
                "WHERE org_id = ? AND installation_id = ?",
                [
                    enabled,
                    "active" if enabled else "disabled",
                    utcnow(),
                    self.org,
                    installation.installation_id,
                ],
            )
            audit.record(
                conn,
                self.org,
                self.actor,
                "installation.enable" if enabled else "installation.disable",
                target_type="installation",
                target_id=installation.installation_id,
            )
        return self.get(installation.installation_id)

    def set_schedule(self, ref: str, schedule: str | None) -> Installation:
        require_role(self.actor, "analyst", "schedule syncs")
        from aria_sync.schedule import parse_schedule

        installation = self.get(ref)
        kind, expr, next_run = parse_schedule(schedule) if schedule else (None, None, None)
        with self.scope.write() as conn:
            conn.execute(
                "UPDATE integration_installations SET schedule_kind = ?, schedule_expr = ?, next_run_at = ?, "
                "updated_at = ? WHERE org_id = ? AND installation_id = ?",
                [kind, expr, next_run, utcnow(), self.org, installation.installation_id],
            )
            audit.record(
                conn,
                self.org,
                self.actor,
                "installation.schedule",
                target_type="installation",
                target_id=installation.installation_id,
                details={"schedule": schedule},
            )
        return self.get(installation.installation_id)

    def uninstall(self, ref: str, *, purge_data: bool = False) -> Installation:
        require_role(self.actor, "admin", "uninstall integrations")
        installation = self.get(ref)
        from aria_sync.sync.engine import purge_installation_rows

        with self.scope.write() as conn:
            conn.execute(
                "DELETE FROM integration_installations WHERE org_id = ? AND installation_id = ?",
                [self.org, installation.installation_id],
            )
            conn.execute(
                "DELETE FROM integration_sync_state WHERE org_id = ? AND installation_id = ?",
                [self.org, installation.installation_id],
            )
            if purge_data:
                purge_installation_rows(conn, self.org, installation)
            audit.record(
                conn,
                self.org,
                self.actor,
                "installation.delete",
                target_type="installation",
                target_id=installation.installation_id,
                details={"name": installation.name, "purge_data": purge_data},
            )
        with contextlib.suppress(AriaSyncError):
            self.vault.delete(installation.secret_ref)
        return installation

    def record_credentials_invalid(self, installation: Installation, error: AuthenticationError) -> None:
        with self.scope.write() as conn:
            conn.execute(
                "UPDATE integration_installations SET status = 'credentials_invalid', updated_at = ? "
                "WHERE org_id = ? AND installation_id = ?",
                [utcnow(), self.org, installation.installation_id],
            )


def iter_orgs(db: Database) -> Iterator[str]:
    """Every organisation that has an installation (for the scheduler)."""
    with db.read() as conn:
        for (org,) in conn.execute(
            "SELECT DISTINCT org_id FROM integration_installations ORDER BY 1"
        ).fetchall():
            yield str(org)
