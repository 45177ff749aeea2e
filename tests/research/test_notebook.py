"""The research notebook runs top to bottom against a real lake and MLflow store."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = (
    Path(__file__).resolve().parents[2]
    / "research"
    / "notebooks"
    / ("explore_lake_and_experiments.ipynb")
)


@pytest.mark.slow
def test_notebook_runs_top_to_bottom(swept, monkeypatch: pytest.MonkeyPatch) -> None:
    year_home, _ = swept  # the session's sweeps: built once, never by this test
    monkeypatch.setenv("ALPACA_IMPROVED_HOME", str(year_home))
    root = str(NOTEBOOK.parents[2])
    monkeypatch.setenv("PYTHONPATH", root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": root}}
    ).execute()
    outputs = "".join(
        str(o.get("text", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert "ma_crossover" in outputs and "rsi_reversion" in outputs
