"""An options family swept through the options_backtest asset on a lake the real pipeline
wrote (chains and vol surfaces): the IV-rank floor is a parameter like any other, counted in
n_trials, walked forward, and on the leaderboard the promotion gates read."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.defs.options import work
from alpaca_improved_pipelines.defs.options.config import ChainConfig, SurfaceConfig
from alpaca_improved_pipelines.defs.promotion.gates import GateConfig, gate_reasons
from alpaca_improved_pipelines.defs.research.assets import options_backtest
from alpaca_improved_pipelines.defs.research.leaderboard import leaderboard_frame
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.sources.synthetic_bars import daily_bars
from research import lakehouse

from .conftest import quiet, resources_for

SESSIONS = cal.sessions_between(dt.date(2024, 3, 1), dt.date(2024, 5, 10))  # 50 sessions
POINTS: list[dict[str, Any]] = [{"min_iv_rank": None}, {"min_iv_rank": 0.3}, {"min_iv_rank": 0.7}]


def sweep_config(points: list[dict[str, Any]]) -> dict:
    return {
        "ops": {
            "options_backtest": {
                "config": {
                    "family": "iron_condor",
                    "params_json": json.dumps({"dte": 30, "dte_min": 14, "dte_max": 45}),
                    "sweep_json": json.dumps(points),
                    "walk_forward_train": 20,
                    "walk_forward_test": 10,
                }
            }
        }
    }


@pytest.mark.slow
def test_an_iv_rank_sweep_reaches_the_leaderboard_and_the_gates(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for s in SESSIONS:
        storage.write_partition(daily_bars(7, ("SPY",), s), home / "lake", "stock_bars_1d", s,
                                fsync=False)  # fmt: skip
    res = resources_for(home)
    chains = ChainConfig(underlyings=["SPY"], american_iv=False)
    work.chains_for_run(chains, res["source"], res["lake"], res["universe"], SESSIONS)  # type: ignore[arg-type]
    work.surfaces_for_run(SurfaceConfig(min_history=5), res["lake"], SESSIONS)  # type: ignore[arg-type]
    with dg.instance_for_test() as instance:
        out = dg.materialize(
            [options_backtest],
            resources=res,
            instance=instance,
            run_config=quiet(sweep_config(POINTS)),
        )
        assert out.success
        meta = out.asset_materializations_for_node("options_backtest")[0].metadata
        assert meta["n_trials"].value == 3 and meta["sessions"].value == len(SESSIONS)
        bad = dg.materialize(
            [options_backtest],
            resources=res,
            instance=instance,
            run_config=quiet(sweep_config([])),
            raise_on_error=False,
        )
        assert not bad.success  # an empty sweep is refused, naming sweep_json
        (err,) = [e for e in bad.all_events if e.is_step_failure]
        assert "sweep_json must be a non-empty JSON list" in str(err.event_specific_data)
    con = lakehouse.connect(home)
    rows = con.sql(
        "SELECT rank, params, trades, n_trials, dsr, mlflow_run_id FROM backtest_runs "
        "WHERE family = 'iron_condor' ORDER BY rank"
    ).fetchall()
    assert [r[0] for r in rows] == [1, 2, 3] and {r[3] for r in rows} == {3}
    floors = [json.loads(r[1])["min_iv_rank"] for r in rows]
    assert sorted(floors, key=str) == sorted([None, 0.3, 0.7], key=str)
    trades = {json.loads(r[1])["min_iv_rank"]: r[2] for r in rows}
    assert len(set(trades.values())) > 1  # the floor changes what is traded
    assert trades[None] >= trades[0.7]
    assert rows[0][5] and rows[1][5] is None  # the best point's MLflow run
    board = leaderboard_frame(home).filter(pl.col("family") == "iron_condor")
    (row,) = board.to_dicts()
    assert row["n_trials"] == 3 and row["oos_sharpe"] is not None
    reasons = gate_reasons(row, GateConfig())
    assert not any("out-of-sample Sharpe None" in r for r in reasons)


def test_sweep_points_must_be_a_list_of_objects() -> None:
    from alpaca_improved_pipelines.defs.research.options_sweep import parse_points

    assert parse_points('[{"min_iv_rank": 0.5}]') == [{"min_iv_rank": 0.5}]
    for bad in ("{}", "[]", "[1]", "nope"):
        with pytest.raises(ConfigError, match="sweep_json"):
            parse_points(bad)
