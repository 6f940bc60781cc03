"""The analysis notebooks are committed without outputs, with a parameters cell and the venv kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = {
    "01_quickstart.ipynb",
    "02_asset_coverage.ipynb",
    "03_vulnerability_risk.ipynb",
    "04_incidents_and_services.ipynb",
    "05_sync_operations.ipynb",
}


def test_every_analysis_notebook_is_present() -> None:
    assert {p.name for p in NOTEBOOKS} >= EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_are_stripped(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert dirty == [], f"{path.name}: cells {dirty} keep outputs; run nbstripout on it"
    assert "widgets" not in notebook.metadata, "widget state is an output too"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_the_parameters_cell(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert code_cells, f"{path.name} has no code"
    assert "parameters" in code_cells[0].metadata.get("tags", []), f"{path.name}: tag the first code cell"
    assert "ARIA_SYNC_ORG" in code_cells[0].source
    assert notebook.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cells_use_the_public_api_without_sql(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert "import aria_sync as aria" in code
    for marker in ("SELECT ", "duckdb.connect", "aria_sync.analysis._", ".read() as"):
        assert marker not in code, f"{path.name} reaches past the analysis API ({marker.strip()!r})"
