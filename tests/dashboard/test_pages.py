"""AppTest of every dashboard page: navigation, install form, Sync now, roles and sign-in."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from aria_sync.audit import Actor
from aria_sync.errors import PermissionDeniedError
from aria_sync.health import installation_health
from aria_sync.jobs_registry import JobRegistry
from aria_sync.marketplace import Installation, Marketplace
from aria_sync.simulators.example import TOKEN
from aria_sync.store import Database
from aria_sync.users import add_user, users_path

from .conftest import goto, new_app, texts

PAGES = [
    "app_pages/marketplace.py",
    "app_pages/integration.py",
    "app_pages/installations.py",
    "app_pages/data_views.py",
    "app_pages/analysis.py",
    "app_pages/admin.py",
]


def button_labels(at: Any) -> list[str]:
    return [b.label for b in at.button]


def test_every_page_renders_without_exception(dashboard_env: Path) -> None:
    at = new_app()
    assert not at.exception
    assert "Marketplace" in texts(at)
    for page in PAGES:
        goto(at, page)
        assert not at.exception, page
    assert "Organisation: acme" in texts(at)


def test_marketplace_search_and_category_filter(dashboard_env: Path) -> None:
    at = new_app()
    names = [s.value for s in at.subheader]
    assert "Example Inventory" in names and "Tenable.io" in names
    at.text_input(key="marketplace_search").input("tenable").run()
    assert [s.value for s in at.subheader] == ["Tenable.io"]
    at.text_input(key="marketplace_search").input("").run()
    at.selectbox(key="marketplace_category").set_value("EDR").run()
    shown = {s.value for s in at.subheader}
    assert "Microsoft Defender for Endpoint" in shown and "Tenable.io" not in shown
    assert "badge[Coming soon]" in texts(at)


def test_details_button_opens_the_integration_page(dashboard_env: Path) -> None:
    at = new_app()
    at.button(key="marketplace_open_example").click().run()
    assert not at.exception
    assert at.title[0].value == "Example Inventory"
    assert "devices:read" in at.dataframe[1].value.to_string()


def _open_example_form(at: Any) -> None:
    at.session_state["integration_key"] = "example"
    goto(at, "app_pages/integration.py")


def test_install_form_shows_validation_errors_as_plain_text(dashboard_env: Path) -> None:
    at = new_app()
    _open_example_form(at)
    token = at.text_input(key="install_example_token")
    assert token.proto.type == token.proto.PASSWORD
    at.text_input(key="install_example_pageSize").input("not-a-number")
    at.button(key="install_example_install").click().run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "missing config key" in errors and "baseUrl" in errors
    assert Marketplace(Database(dashboard_env), "acme").installations() == []


def test_test_connection_then_install_against_the_simulator(
    dashboard_env: Path, example_sim: tuple[Any, str]
) -> None:
    at = new_app()
    _open_example_form(at)
    at.text_input(key="install_example_baseUrl").input(example_sim[1])
    at.text_input(key="install_example_token").input(TOKEN)
    at.button(key="install_example_test").click().run()
    assert not at.exception
    assert "Connection test passed for every capability." in [s.value for s in at.success]
    assert set(at.dataframe[-1].value["capability"]) == {"devices", "events"}
    # The page keeps a draft of the non-secret fields only; secrets live in the form widget alone
    # (cleared by the browser on submit, which AppTest does not model).
    own_state = {k: at.session_state[k] for k in at.session_state if not str(k).startswith("install_")}
    assert TOKEN not in repr(own_state)
    assert "token" not in at.session_state["integration_draft"]["example"]
    assert at.text_input(key="install_example_baseUrl").value == example_sim[1]

    at.text_input(key="install_example_name").input("Lab inventory")
    at.text_input(key="install_example_token").input(TOKEN)
    at.button(key="install_example_install").click().run()
    assert not at.exception
    assert any("Installed Lab inventory" in s.value for s in at.success), texts(at)
    [installation] = Marketplace(Database(dashboard_env), "acme").installations()
    assert installation.name == "Lab inventory" and installation.integration_key == "example"
    assert TOKEN not in repr(installation.config)


def test_wrong_token_fails_the_test_with_per_capability_results(
    dashboard_env: Path, example_sim: tuple[Any, str]
) -> None:
    at = new_app()
    _open_example_form(at)
    at.text_input(key="install_example_baseUrl").input(example_sim[1])
    at.text_input(key="install_example_token").input("wrong-token")
    at.button(key="install_example_install").click().run()
    assert not at.exception
    assert "connection test failed" in " ".join(e.value for e in at.error)
    assert Marketplace(Database(dashboard_env), "acme").installations() == []


def _wait_for(at: Any, needle: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        at.run()
        assert not at.exception
        if needle in texts(at):
            return texts(at)
    raise AssertionError(f"{needle!r} not shown; page said: {texts(at)}")


def test_sync_now_runs_in_the_background_and_completes(installed: Installation, dashboard_env: Path) -> None:
    at = goto(new_app(), "app_pages/installations.py")
    assert "badge[never synced]" in texts(at)
    at.button(key=f"installations_sync_{installed.installation_id}").click().run()
    assert not at.exception
    page = _wait_for(at, "finished: succeeded")
    assert "Sync of Example lab finished: succeeded (50 records)" in page
    [health] = installation_health(Database(dashboard_env), "acme")
    assert health["last_sync_status"] == "succeeded" and health["health"] == "healthy"
    assert "badge[healthy]" in texts(at)


def test_disable_schedule_and_uninstall_with_confirmation(
    installed: Installation, dashboard_env: Path
) -> None:
    market = Marketplace(Database(dashboard_env), "acme")
    at = goto(new_app(), "app_pages/installations.py")
    iid = installed.installation_id
    at.button(key=f"installations_toggle_{iid}").click().run()
    assert not market.get(iid).enabled
    assert f"installations_sync_{iid}" not in [b.key for b in at.button]

    at.text_input(key=f"installations_schedule_{iid}").input("6h")
    at.button(key=f"installations_save_schedule_{iid}").click().run()
    assert market.get(iid).schedule_expr is not None

    at.button(key=f"installations_uninstall_{iid}").click().run()
    assert market.installations() != []  # nothing happens before the confirmation
    at.button(key=f"installations_confirm_{iid}").click().run()
    assert not at.exception
    assert market.installations() == []
    assert "No integrations installed yet." in texts(at)


def test_bulk_disable(installed: Installation, dashboard_env: Path, example_sim: tuple[Any, str]) -> None:
    market = Marketplace(Database(dashboard_env), "acme")
    second, _ = market.install("example", "Second lab", {"baseUrl": example_sim[1], "token": TOKEN})
    at = goto(new_app(), "app_pages/installations.py")
    at.multiselect(key="installations_bulk").set_value(
        [installed.installation_id, second.installation_id]
    ).run()
    at.button(key="installations_bulk_disable").click().run()
    assert not at.exception
    assert [i.enabled for i in market.installations()] == [False, False]


def _sign_in(at: Any, name: str, password: str) -> None:
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    at.button(key="login_submit").click().run()


def test_sign_in_is_required_when_a_users_file_exists(dashboard_env: Path) -> None:
    add_user("alice", "correct horse battery", role="admin", org="acme", path=users_path(dashboard_env))
    at = new_app()
    assert at.title[0].value == "Sign in to aria_sync"
    assert "Marketplace" not in [t.value for t in at.title]
    _sign_in(at, "alice", "wrong password!")
    assert "Wrong user name or password." in [e.value for e in at.error]
    _sign_in(at, "alice", "correct horse battery")
    assert not at.exception
    assert at.title[0].value == "Marketplace"
    assert "Signed in as user:alice (admin)" in texts(at)
    at.button(key="app_sign_out").click().run()
    assert at.title[0].value == "Sign in to aria_sync"


def test_each_user_reads_their_own_organisation(dashboard_env: Path, installed: Installation) -> None:
    add_user("bob", "bob-password-1", role="admin", org="globex", path=users_path(dashboard_env))
    at = new_app()
    _sign_in(at, "bob", "bob-password-1")
    goto(at, "app_pages/installations.py")
    assert "Organisation: globex" in texts(at)
    assert "No integrations installed yet." in texts(at)


def test_viewer_sees_no_install_or_sync_and_the_library_refuses(
    dashboard_env: Path, installed: Installation, example_sim: tuple[Any, str]
) -> None:
    add_user("vera", "viewer-password", role="viewer", org="acme", path=users_path(dashboard_env))
    at = new_app()
    _sign_in(at, "vera", "viewer-password")
    goto(at, "app_pages/installations.py")
    assert not at.exception
    assert "Example lab" in [s.value for s in at.subheader]
    assert not {"Sync now", "Disable", "Uninstall", "Save schedule", "Sync selected"} & set(button_labels(at))

    at.session_state["integration_key"] = "example"
    goto(at, "app_pages/integration.py")
    assert not at.exception
    assert not {"Install", "Test connection"} & set(button_labels(at))
    assert any("viewer" in i.value for i in at.info)
    assert "Admin" not in texts(at)

    viewer = Actor("user:vera", "viewer")
    with pytest.raises(PermissionDeniedError):
        JobRegistry().start_sync(Database(dashboard_env), "acme", viewer, installed.installation_id)
    with pytest.raises(PermissionDeniedError):
        Marketplace(Database(dashboard_env), "acme", viewer).install(
            "example", "Viewer's", {"baseUrl": example_sim[1], "token": TOKEN}
        )


def test_analyst_can_sync_but_not_install(dashboard_env: Path, installed: Installation) -> None:
    add_user("ana", "analyst-password", role="analyst", org="acme", path=users_path(dashboard_env))
    at = new_app()
    _sign_in(at, "ana", "analyst-password")
    goto(at, "app_pages/installations.py")
    labels = set(button_labels(at))
    assert "Sync now" in labels and "Uninstall" not in labels and "Disable" not in labels
    at.session_state["integration_key"] = "example"
    goto(at, "app_pages/integration.py")
    install = at.button(key="install_example_install")
    assert install.disabled


def test_data_views_list_each_installed_stream(installed: Installation, dashboard_env: Path) -> None:
    registry = JobRegistry()
    handle = registry.start_sync(
        Database(dashboard_env), "acme", Actor("t", "admin"), installed.installation_id
    )
    assert registry.wait(handle, 15).state == "succeeded"
    at = goto(new_app(), "app_pages/data_views.py")
    assert not at.exception
    streams = at.selectbox(key="data_source_stream")
    assert [tuple(o) if not isinstance(o, str) else o for o in streams.options] and len(streams.options) == 2
    for table in ("assets", "vulnerabilities", "incidents", "services", "risks"):
        at.selectbox(key="data_aria_table").set_value(table).run()
        assert not at.exception, table


def _synced(installed: Installation, dashboard_env: Path) -> None:
    registry = JobRegistry()
    handle = registry.start_sync(
        Database(dashboard_env), "acme", Actor("t", "admin"), installed.installation_id
    )
    assert registry.wait(handle, 15).state == "succeeded"


def test_source_records_are_paged_and_filtered(installed: Installation, dashboard_env: Path) -> None:
    _synced(installed, dashboard_env)
    at = goto(new_app(), "app_pages/data_views.py")
    at.selectbox(key="data_source_stream").set_value(("example", "devices")).run()
    assert not at.exception
    assert len(at.dataframe[0].value) == 40
    at.selectbox(key="data_source_example_devices_size").set_value(25).run()
    assert len(at.dataframe[0].value) == 25
    assert "Page (of 2, 40 rows)" in [n.label for n in at.number_input]
    at.text_input(key="data_source_search").input("HOST-00007").run()
    assert not at.exception
    assert len(at.dataframe[0].value) == 1
    assert [d.label for d in at.download_button] == ["Download CSV", "Download Parquet"] * 2  # both tabs


def test_analysis_and_admin_pages_show_synced_data(
    installed: Installation, dashboard_env: Path, example_sim: tuple[Any, str]
) -> None:
    _synced(installed, dashboard_env)
    market = Marketplace(Database(dashboard_env), "acme", Actor("t", "admin"))
    broken, _ = market.install(
        "example", "Broken lab", {"baseUrl": example_sim[1], "token": "bad-token"}, test=False
    )
    registry = JobRegistry()
    failed = registry.wait(
        registry.start_sync(Database(dashboard_env), "acme", Actor("t", "admin"), broken.name), 15
    )
    assert failed.state == "failed"

    at = goto(new_app(), "app_pages/analysis.py")
    assert not at.exception
    inventory = at.dataframe[0].value
    assert len(inventory) == 40

    goto(at, "app_pages/admin.py")
    assert not at.exception
    jobs = at.dataframe[0].value
    assert list(jobs["status"])[:2] == ["failed", "succeeded"]
    assert "1 failed job(s); the reason is in the error column." in [e.value for e in at.error]
    assert any("Activity log chain verified" in s.value for s in at.success)
