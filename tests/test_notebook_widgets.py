"""The notebook widgets without a front end: the install form and the Sync-now button, against the
example simulator over real HTTP into a real DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aria_sync.audit import Actor
from aria_sync.catalog import catalog_entry
from aria_sync.errors import NotFoundError, PermissionDeniedError, UsageError
from aria_sync.jobs_registry import JobRegistry
from aria_sync.marketplace import Marketplace
from aria_sync.notebook_widgets import InstallForm, install_form, sync_button
from aria_sync.simulators.example import TOKEN, ExampleSimulator, start_example
from aria_sync.simulators.framework import SimulatorServer
from aria_sync.store import Database, OrgScope

ORG = "default"


@pytest.fixture
def sim() -> Iterator[tuple[ExampleSimulator, SimulatorServer]]:
    app, server = start_example(devices=40, events=10, tie_count=2)
    yield app, server
    server.stop()


def fill_example(
    form: InstallForm, server: SimulatorServer, token: str = TOKEN, name: str = "inventory"
) -> None:
    form.integration.value = "example"
    form.name.value = name
    form.fields["baseUrl"].value = server.base_url
    form.fields["token"].value = token
    form.fields["pageSize"].value = "20"


def installed_example(db: Database, server: SimulatorServer, name: str = "inventory") -> str:
    market = Marketplace(db, ORG, Actor("tester", "admin"))
    installation, _ = market.install("example", name, {"baseUrl": server.base_url, "token": TOKEN})
    return installation.installation_id


def test_form_lists_installable_integrations_with_secret_fields_masked(db: Database) -> None:
    form = install_form(db=db, integration="tenable")
    keys = {value for _label, value in form.integration.options}
    assert {"tenable", "ms-defender", "servicenow", "example"} <= keys
    assert "crowdstrike" not in keys  # coming soon: browsable in the catalogue, not installable
    # One input per config field of the catalogue entry, secrets masked.
    assert list(form.fields) == [f.name for f in catalog_entry("tenable").config_fields]
    assert {"accessKey", "secretKey", "baseUrl"} <= set(form.fields)
    assert type(form.fields["secretKey"]).__name__ == "Password"
    assert type(form.fields["baseUrl"]).__name__ == "Text"
    assert form.name.value == "Tenable.io"

    form.integration.value = "servicenow"
    assert list(form.fields) == [f.name for f in catalog_entry("servicenow").config_fields]
    assert {"instanceUrl", "username", "password"} <= set(form.fields)
    assert type(form.fields["password"]).__name__ == "Password"
    assert form.name.value == "ServiceNow"


def test_form_refuses_an_unknown_or_coming_soon_integration(db: Database) -> None:
    with pytest.raises(UsageError, match="crowdstrike"):
        install_form(db=db, integration="crowdstrike")


def test_install_button_installs_and_clears_the_secret(
    db: Database, sim: tuple[ExampleSimulator, SimulatorServer]
) -> None:
    _app, server = sim
    form = install_form(db=db)
    fill_example(form, server)
    form.install_button.click()

    installations = Marketplace(db, ORG).installations()
    assert [(i.integration_key, i.name) for i in installations] == [("example", "inventory")]
    assert installations[0].config["baseUrl"] == server.base_url
    assert "token" not in installations[0].config  # the secret went to the vault, not the database
    assert form.installed is not None and form.installed.name == "inventory"
    assert form.fields["token"].value == ""
    assert "Installed inventory" in form.status.value
    with OrgScope(db, ORG).read() as conn:
        actions = [
            r["action"] for r in conn.rows("SELECT action FROM integration_activity_logs ORDER BY seq")
        ]
    assert actions == ["installation.test", "installation.create"]


def test_failed_connection_test_shows_the_capability_and_installs_nothing(
    db: Database, sim: tuple[ExampleSimulator, SimulatorServer]
) -> None:
    _app, server = sim
    form = install_form(db=db)
    fill_example(form, server, token="not-the-token-7f3a")
    form.test_button.click()
    assert form.last_report is not None and not form.last_report.ok
    assert "Connection test failed" in form.status.value

    form.install_button.click()
    assert Marketplace(db, ORG).installations() == []
    assert "connection test failed" in form.status.value
    assert "not-the-token-7f3a" not in form.status.value


def test_a_viewer_may_not_install(db: Database, sim: tuple[ExampleSimulator, SimulatorServer]) -> None:
    _app, server = sim
    form = install_form(db=db, actor=Actor("ann", "viewer"))
    fill_example(form, server)
    with pytest.raises(PermissionDeniedError):
        form.install()
    form.install_button.click()
    assert "needs the admin role" in form.status.value
    assert Marketplace(db, ORG).installations() == []


def test_sync_button_runs_the_job_and_reports_its_outcome(
    db: Database, sim: tuple[ExampleSimulator, SimulatorServer]
) -> None:
    _app, server = sim
    installed_example(db, server)
    button = sync_button("inventory", db=db, registry=JobRegistry())
    assert "never synced" in button.status.value

    button.button.click()
    status = button.wait(timeout=30)

    assert status.state == "succeeded"
    assert button.progress.value == 1.0
    assert button.progress.bar_style == "success"
    assert not button.button.disabled
    assert "succeeded, 50 records fetched" in button.status.value
    with OrgScope(db, ORG).read() as conn:
        jobs = conn.rows("SELECT job_id, status, trigger FROM integration_sync_jobs")
        devices = conn.scalar("SELECT count(*) FROM asset_identities WHERE integration_key = 'example'")
    assert jobs == [{"job_id": status.job_id, "status": "succeeded", "trigger": "notebook"}]
    assert devices == 40


def test_sync_button_shows_a_failed_job(db: Database, sim: tuple[ExampleSimulator, SimulatorServer]) -> None:
    _app, server = sim
    installed_example(db, server)
    server.stop()  # the vendor is gone by the time the analyst presses the button
    no_backoff = JobRegistry(runner_options={"sleep": lambda seconds: None})
    button = sync_button("inventory", db=db, registry=no_backoff)
    button.start()
    status = button.wait(timeout=60)
    assert status.state == "failed"
    assert button.progress.bar_style == "danger"
    assert "failed" in button.status.value


def test_sync_button_needs_an_existing_installation(db: Database) -> None:
    with pytest.raises(NotFoundError):
        sync_button("nothing-here", db=db)


def test_wait_before_start_is_a_usage_error(
    db: Database, sim: tuple[ExampleSimulator, SimulatorServer]
) -> None:
    _app, server = sim
    installed_example(db, server)
    with pytest.raises(UsageError):
        sync_button("inventory", db=db).wait()
