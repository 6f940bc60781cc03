"""Run the analysis notebooks in the test session, against one demo database built for the session.

Every ``.ipynb`` file here is collected as an nbmake item (no ``--nbmake`` flag needed, and none
collected twice when it is given). Before the first notebook runs, the vendor simulators are
started and a tiny demo database is built through the normal install and sync paths
(:func:`aria_sync.demo.build_demo_database`). Each notebook's kernel inherits ``ARIA_SYNC_DB``,
``ARIA_SYNC_ORG``, ``ARIA_SYNC_ALLOWED_HOSTS`` and a file vault with its own master key; the
variables are put back after each notebook, so unit tests later in the session see a clean
environment. A notebook that builds its own database (the quickstart) says so in its metadata and
runs without waiting for the demo build.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import nbformat
import pytest
from cryptography.fernet import Fernet
from nbmake.pytest_items import NotebookFile

DEMO_ORG = "default"
DEMO_SIZE = "tiny"

_base = pytest.StashKey[dict[str, str]]()
_built = pytest.StashKey[dict[str, str]]()
_build_error = pytest.StashKey[BaseException]()
_workdir = pytest.StashKey[Path]()
_saved = pytest.StashKey[dict[str, str | None]]()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".ipynb" or ".ipynb_checkpoints" in file_path.parts:
        return None
    if parent.config.option.nbmake:
        return None  # nbmake's own hook collects it
    return NotebookFile.from_parent(parent, path=file_path)


def _base_environment(config: pytest.Config) -> dict[str, str]:
    """Loopback allowed and a file vault with a session key: what every notebook kernel gets."""
    if _base in config.stash:
        return config.stash[_base]
    workdir = Path(tempfile.mkdtemp(prefix="aria-notebooks-"))
    config.stash[_workdir] = workdir
    environment = {
        "ARIA_SYNC_ORG": DEMO_ORG,
        "ARIA_SYNC_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "ARIA_SYNC_VAULT": "file",
        "ARIA_SYNC_MASTER_KEY": Fernet.generate_key().decode(),
    }
    config.stash[_base] = environment
    return environment


def _demo_environment(config: pytest.Config) -> dict[str, str]:
    """The base environment plus ARIA_SYNC_DB, the demo database built on first use."""
    if _built in config.stash:
        return config.stash[_built]
    if _build_error in config.stash:
        raise config.stash[_build_error]
    environment = {
        **_base_environment(config),
        "ARIA_SYNC_DB": str(config.stash[_workdir] / "data" / "demo.duckdb"),
    }
    saved = _apply(environment)
    try:
        from aria_sync.demo import build_demo_database

        build_demo_database(Path(environment["ARIA_SYNC_DB"]), size=DEMO_SIZE, org=DEMO_ORG)
    except BaseException as exc:
        config.stash[_build_error] = exc
        raise
    finally:
        _restore(saved)
    config.stash[_built] = environment
    return environment


def _uses_demo_database(path: Path) -> bool:
    """A notebook opts out with ``"aria_sync": {"demo_database": false}`` in its metadata (the quickstart
    builds its own database)."""
    metadata = nbformat.read(path, as_version=4).metadata
    return bool(metadata.get("aria_sync", {}).get("demo_database", True))


def _apply(environment: dict[str, str]) -> dict[str, str | None]:
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    return saved


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _is_notebook(item: pytest.Item) -> bool:
    return item.path.suffix == ".ipynb"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if _is_notebook(item):
        needs_demo = _uses_demo_database(item.path)
        environment = _demo_environment(item.config) if needs_demo else _base_environment(item.config)
        item.stash[_saved] = _apply(environment)


def pytest_runtest_teardown(item: pytest.Item, nextitem: Any) -> None:
    if _saved in item.stash:
        _restore(item.stash[_saved])


def pytest_unconfigure(config: pytest.Config) -> None:
    if _workdir in config.stash:
        shutil.rmtree(config.stash[_workdir], ignore_errors=True)
