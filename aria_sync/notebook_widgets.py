"""Notebook front-end: an install form and a "Sync now" button as ipywidgets.

Both drive the same library calls as the dashboard: the form is built from the catalogue
(:func:`aria_sync.catalog.catalog`) and installs through :class:`~aria_sync.marketplace.Marketplace`
(connection test first, secrets to the vault); the button starts a background job in
:mod:`aria_sync.jobs_registry`, so the kernel stays responsive while the progress bar moves.

Each widget is also usable from code, which is how scripts and tests drive it::

    >>> from aria_sync.notebook_widgets import install_form, sync_button
    >>> form = install_form(integration="tenable")  # doctest: +SKIP
    >>> form  # displays the form in Jupyter  # doctest: +SKIP
    >>> button = sync_button("Tenable prod")  # doctest: +SKIP
    >>> button.start(); button.wait().state  # doctest: +SKIP
    'succeeded'

The widgets construct without a front end (plain Python, CI kernels): nothing is drawn until a
Jupyter front end displays them.
"""

from __future__ import annotations

import html
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from aria_sync.audit import Actor
from aria_sync.catalog import CatalogEntry, ConfigField, catalog
from aria_sync.errors import AriaSyncError, UsageError
from aria_sync.http.redact import redact_text
from aria_sync.jobs_registry import JobHandle, JobRegistry, JobStatus, default_registry
from aria_sync.marketplace import Installation, Marketplace, TestReport
from aria_sync.settings import get_settings
from aria_sync.store import Database

DbArg = str | os.PathLike[str] | Path | Database | None

_STATE_STYLES = {"succeeded": "success", "partial": "warning", "failed": "danger", "cancelled": "warning"}
_LABELS = {"description_width": "11em"}


def _wide() -> widgets.Layout:
    return widgets.Layout(width="32em")


def _resolve(db: DbArg, org: str | None) -> tuple[Database, str]:
    """Explicit arguments, else ARIA_SYNC_DB / ARIA_SYNC_ORG, else the defaults (as the analysis API)."""
    if isinstance(db, Database):
        return db, get_settings(None, org).org
    settings = get_settings(db, org)
    return Database(settings.db_path), settings.org


def _message_html(text: str, *, ok: bool) -> str:
    colour = "#1a7f37" if ok else "#b42318"
    return f'<span style="color: {colour}">{html.escape(text)}</span>'


def _report_html(report: TestReport) -> str:
    lines = [_message_html(f"{r.capability}: {'ok' if r.ok else r.message}", ok=r.ok) for r in report.results]
    if report.error and not report.results:
        lines.append(_message_html(report.error, ok=False))
    return "<br>".join(lines)


class InstallForm(widgets.VBox):
    """Pick an integration, fill in its config (secrets masked), test the connection, install it.

    ``test_connection()`` and ``install()`` are what the two buttons call; from code they return the
    report and the new installation, and raise :class:`~aria_sync.errors.AriaSyncError` on failure
    (the buttons show the message instead).
    """

    def __init__(
        self,
        db: Database,
        org: str,
        actor: Actor,
        entries: Iterable[CatalogEntry],
        *,
        integration: str | None = None,
    ) -> None:
        self.marketplace = Marketplace(db, org, actor)
        self.entries = {e.key: e for e in entries if e.status == "available"}
        if not self.entries:
            raise UsageError("no installable integration in the catalogue")
        if integration is not None and integration not in self.entries:
            raise UsageError(
                f"{integration!r} is not an installable integration; choose one of {', '.join(self.entries)}"
            )
        first = integration or next(iter(self.entries))
        self.integration = widgets.Dropdown(
            options=[(f"{e.name} ({e.category})", e.key) for e in self.entries.values()],
            value=first,
            description="Integration",
            style=_LABELS,
            layout=_wide(),
        )
        self.name = widgets.Text(description="Installation name", style=_LABELS, layout=_wide())
        self.schedule = widgets.Text(
            description="Schedule", placeholder="optional, e.g. 6h", style=_LABELS, layout=_wide()
        )
        self.fields: dict[str, widgets.Text | widgets.Password] = {}
        self.field_box = widgets.VBox()
        self.test_button = widgets.Button(description="Test connection", icon="plug")
        self.install_button = widgets.Button(description="Install", button_style="primary", icon="download")
        self.status = widgets.HTML()
        self.installed: Installation | None = None
        self.last_report: TestReport | None = None
        self.integration.observe(self._on_integration_change, names="value")
        self.test_button.on_click(lambda _button: self._run(self.test_connection))
        self.install_button.on_click(lambda _button: self._run(self.install))
        self._build_fields(self.entries[first])
        super().__init__(
            [
                self.integration,
                self.name,
                self.field_box,
                self.schedule,
                widgets.HBox([self.test_button, self.install_button]),
                self.status,
            ]
        )

    @property
    def entry(self) -> CatalogEntry:
        """The catalogue entry currently selected."""
        return self.entries[str(self.integration.value)]

    def _build_fields(self, entry: CatalogEntry) -> None:
        self.fields = {f.name: self._field_widget(f) for f in entry.config_fields}
        self.field_box.children = tuple(self.fields.values())
        self.name.value = entry.name
        self.status.value = ""

    @staticmethod
    def _field_widget(field: ConfigField) -> widgets.Text | widgets.Password:
        label = field.name if field.required else f"{field.name} (optional)"
        kind = widgets.Password if field.secret else widgets.Text
        return kind(
            description=label,
            placeholder=field.default or "",
            tooltip=field.description or None,
            style=_LABELS,
            layout=_wide(),
        )

    def _on_integration_change(self, change: dict[str, Any]) -> None:
        self._build_fields(self.entries[str(change["new"])])

    def config_values(self) -> dict[str, str]:
        """The config as typed; empty optional fields are left out so the connector's defaults apply."""
        return {name: str(w.value).strip() for name, w in self.fields.items() if str(w.value).strip()}

    def _secrets(self) -> list[str]:
        return [
            str(self.fields[f.name].value)
            for f in self.entry.config_fields
            if f.secret and self.fields[f.name].value
        ]

    def clear_secrets(self) -> None:
        """Empty every secret field, so no secret stays in the kernel after it reached the vault."""
        for config_field in self.entry.config_fields:
            if config_field.secret:
                self.fields[config_field.name].value = ""

    def test_connection(self) -> TestReport:
        """Test the typed config against the vendor, per capability; nothing is stored but the audit entry."""
        report = self.marketplace.test_config(self.entry.key, self.config_values())
        self.last_report = report
        verdict = "Connection ok" if report.ok else "Connection test failed"
        self.status.value = _message_html(verdict, ok=report.ok) + "<br>" + _report_html(report)
        return report

    def install(self) -> Installation:
        """Test, then install: config to the database, secrets to the vault. Refused if the test fails."""
        schedule = str(self.schedule.value).strip() or None
        installation, report = self.marketplace.install(
            self.entry.key, str(self.name.value), self.config_values(), test=True, schedule=schedule
        )
        self.clear_secrets()
        self.installed = installation
        self.last_report = report
        shown = f"Installed {installation.name} ({installation.installation_id[:8]})"
        self.status.value = _message_html(shown, ok=True) + ("<br>" + _report_html(report) if report else "")
        return installation

    def _run(self, action: Any) -> None:
        secrets = self._secrets()
        try:
            action()
        except AriaSyncError as exc:
            self.status.value = _message_html(redact_text(str(exc), secrets), ok=False)


class SyncButton(widgets.VBox):
    """A "Sync now" button with a progress bar and the job's outcome for one installation.

    Clicking starts the sync in a background thread of the job registry; a watcher thread moves
    the bar until the job ends. ``start()`` and ``wait()`` do the same from code.
    """

    def __init__(
        self,
        db: Database,
        org: str,
        actor: Actor,
        installation: str,
        *,
        full: bool = False,
        registry: JobRegistry | None = None,
        poll_seconds: float = 0.2,
    ) -> None:
        self.db = db
        self.org = org
        self.actor = actor
        self.target = Marketplace(db, org, actor).get(installation)
        self.full = full
        self.registry = registry or default_registry()
        self.poll_seconds = poll_seconds
        self.handle: JobHandle | None = None
        self.last_status: JobStatus | None = None
        self._watcher: threading.Thread | None = None
        self.button = widgets.Button(description="Sync now", button_style="primary", icon="refresh")
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, description=self.target.name[:20])
        self.status = widgets.HTML(value=html.escape(self._idle_text()))
        self.button.on_click(self._on_click)
        super().__init__([widgets.HBox([self.button, self.progress]), self.status])

    def _idle_text(self) -> str:
        last = self.target.last_sync_status
        return f"{self.target.name}: last sync {last}" if last else f"{self.target.name}: never synced"

    def _on_click(self, _button: widgets.Button) -> None:
        try:
            self.start()
        except AriaSyncError as exc:
            self.status.value = _message_html(str(exc), ok=False)

    def start(self) -> JobHandle:
        """Start the sync in the background (or join the one already running) and watch its progress."""
        handle = self.registry.start_sync(
            self.db, self.org, self.actor, self.target.installation_id, full=self.full, trigger="notebook"
        )
        self.handle = handle
        self.button.disabled = True
        self.progress.bar_style = ""
        self._watcher = threading.Thread(
            target=self._watch, args=(handle,), name="aria-sync-watch", daemon=True
        )
        self._watcher.start()
        return handle

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the running job ends; its final status. UsageError if nothing was started."""
        if self.handle is None:
            raise UsageError("no sync started yet; click Sync now or call start()")
        self.registry.wait(self.handle, timeout)
        if self._watcher is not None:
            self._watcher.join(timeout)
        status = self.registry.status(self.handle)
        self._render(status)
        return status

    def _watch(self, handle: JobHandle) -> None:
        while True:
            status = self.registry.status(handle)
            self._render(status)
            if not status.running:
                return
            time.sleep(self.poll_seconds)

    def _render(self, status: JobStatus) -> None:
        self.last_status = status
        self.progress.value = status.fraction
        if status.running:
            where = f" {status.stream}" if status.stream else ""
            self.status.value = html.escape(
                f"{self.target.name}: {status.phase}{where}, {status.records:,} records"
            )
            return
        self.progress.value = 1.0
        self.progress.bar_style = _STATE_STYLES.get(status.state, "info")
        self.button.disabled = False
        text = f"{self.target.name}: {status.state}, {status.total_records:,} records fetched"
        if status.result is not None:
            text += f" in {status.result.duration_seconds:.1f} s"
        if status.error:
            text += f" ({status.error})"
        self.status.value = _message_html(text, ok=status.state == "succeeded")


def install_form(
    db: DbArg = None,
    org: str | None = None,
    *,
    actor: Actor | None = None,
    integration: str | None = None,
) -> InstallForm:
    """The install form over the catalogue's installable integrations (``integration`` preselects one).

    Installing needs the admin role, testing the analyst role; ``actor`` defaults to the OS user as admin.
    """
    database, org_id = _resolve(db, org)
    return InstallForm(database, org_id, actor or Actor.local(), catalog(), integration=integration)


def sync_button(
    installation: str,
    db: DbArg = None,
    org: str | None = None,
    *,
    actor: Actor | None = None,
    full: bool = False,
    registry: JobRegistry | None = None,
) -> SyncButton:
    """A "Sync now" button for the installation named by id or unique name (NotFoundError if none)."""
    database, org_id = _resolve(db, org)
    return SyncButton(database, org_id, actor or Actor.local(), installation, full=full, registry=registry)
