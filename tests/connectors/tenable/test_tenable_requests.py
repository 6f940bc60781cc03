"""The Tenable export requests and settings, without a server."""

from __future__ import annotations

from aria_sync.connectors.tenable.api import asset_export_body, cursor_epoch, vulnerability_export_body
from aria_sync.connectors.tenable.export import ExportSettings


def test_first_vulnerability_export_asks_for_every_state_and_all_history() -> None:
    body = vulnerability_export_body(None, ExportSettings())
    assert body["filters"] == {"since": 0, "state": ["OPEN", "REOPENED", "FIXED"]}
    assert 50 <= body["num_assets"] <= 5000


def test_incremental_requests_round_the_cursor_down() -> None:
    settings = ExportSettings()
    assert vulnerability_export_body("1796538686.709", settings)["filters"]["since"] == 1796538686
    assert asset_export_body("1796538686.709", settings)["filters"] == {"updated_at": 1796538685}
    assert asset_export_body(None, settings)["filters"] == {}


def test_unusable_cursors_mean_a_full_window() -> None:
    for cursor in ("", "not-a-number", "-5", "nan", "inf"):
        assert cursor_epoch(cursor) is None
    assert vulnerability_export_body("garbage", ExportSettings())["filters"]["since"] == 0


def test_options_are_clamped_to_tenable_limits() -> None:
    settings = ExportSettings.from_options(
        {
            "export_download_workers": 12,
            "vuln_export_num_assets": 10,
            "asset_export_chunk_size": 50_000,
            "export_poll_initial_seconds": "0.02",
            "export_deadline_seconds": "soon",
        }
    )
    assert settings.download_workers == 3
    assert settings.vuln_num_assets == 50
    assert settings.asset_chunk_size == 10_000
    assert settings.poll_initial_seconds == 0.02
    assert settings.deadline_seconds == ExportSettings().deadline_seconds
