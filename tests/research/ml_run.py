"""One Dagster run of the ML family through approval, shared by the v1 and v2 asset tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from alpaca_improved_pipelines.backtesting.research_tables import read_family
from alpaca_improved_pipelines.defs.ml.assets import gbm_signal_model
from alpaca_improved_pipelines.defs.promotion.assets import approved_manifest, candidates
from alpaca_improved_pipelines.defs.research.assets import leaderboard
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.sources.synthetic_bars import daily_bars
from strategies.ml import unbind_model
from tests.research_lake import quiet


def daily_lake(home: Path, symbols: tuple[str, ...], sessions: list[Any]) -> None:
    """Synthetic daily bars (seed 7) of ``symbols`` for every session."""
    for s in sessions:
        bars = daily_bars(7, symbols, s)
        storage.write_partition(bars, home / "lake", "stock_bars_1d", s, fsync=False)


@contextmanager
def trained_and_approved(
    home: Path, resources: dict[str, Any], train: dict[str, Any]
) -> Iterator[dg.ExecuteInProcessResult]:
    """Materialize gbm_signal_model (config ``train``), the leaderboard, candidates and an
    approved manifest of the family on a temp instance; unbind the model afterwards."""
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [gbm_signal_model, leaderboard, candidates, approved_manifest],
            resources=resources,
            instance=instance,
            run_config=quiet({"ops": {
                "gbm_signal_model": {"config": train},
                "candidates": {"config": {"require_quality_checks": False}},
                "approved_manifest": {"config": {"family": "gbm_signal", "approver": "t",
                                                 "reason": "test", "allow_failed_gates": True}},
            }}),
        )  # fmt: skip
        assert res.success
        yield res
    board = read_family(home / "lake", "backtest_runs", "gbm_signal")
    unbind_model(json.loads(board["params"][0])["model_sha256"])
