"""The research notebook runs top to bottom against a real lake and MLflow store."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import nbformat
import pytest
from nbclient import NotebookClient

from alpaca_improved_pipelines.defs.research.assets import ma_crossover_sweep, rsi_reversion_sweep

from .conftest import quiet, resources_for

NOTEBOOK = (
    Path(__file__).resolve().parents[2]
    / "research"
    / "notebooks"
    / ("explore_lake_and_experiments.ipynb")
)


@pytest.mark.slow
def test_notebook_runs_top_to_bottom(year_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = {
        "ops": {
            n: {"config": {"workers": 1}} for n in ("ma_crossover_sweep", "rsi_reversion_sweep")
        }
    }
    if not (year_home / "lake" / "backtest_runs").exists():
        with dg.instance_for_test() as instance:
            assert dg.materialize(
                [ma_crossover_sweep, rsi_reversion_sweep],
                resources=resources_for(year_home),
                instance=instance,
                run_config=quiet(cfg),
            ).success
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
