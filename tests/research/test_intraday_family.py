"""The intraday family (VWAP reversion on minute bars) in research: the vectorized backtest over
the lake's ``stock_bars_1m`` makes exactly the round trips that ``decide()`` makes stepped minute
by minute, the compiled fast path equals vectorbt, and the family's generated sweep asset reads
minute bars (its data need follows from ``timeframe``) and materializes like any family's."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.backtesting.data import MinuteMatrix
from alpaca_improved_pipelines.backtesting.families import family
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from alpaca_improved_pipelines.sources.synthetic_bars import minute_bars
from strategies.equity import VWAPReversion, VWAPReversionConfig
from tests.intraday_steps import step_round_trips

from .conftest import SYMBOLS, quiet, resources_for

FEES, SLIPPAGE, CASH = 0.001, 0.0005, 100_000.0  # SweepConfig's defaults
# eight sessions around Thanksgiving 2024: the Friday after is a half day (13:00 close)
SESSIONS = cal.sessions_between(dt.date(2024, 11, 22), dt.date(2024, 12, 4))
HALF_DAY = dt.date(2024, 11, 29)
ONE_WORKER = {"workers": 1, "top_k": 1}
POINTS = [{}, {"band": 1.5, "exit_band": 0.5, "stop": 4.0, "warmup": 30}]


@pytest.fixture(scope="module")
def minute_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake with minute bars only (no daily bars): what the minute family needs."""
    home = tmp_path_factory.mktemp("intraday") / "home"
    for s in SESSIONS:
        bars = minute_bars(7, SYMBOLS, s)
        storage.write_partition(bars, home / "lake", "stock_bars_1m", s, fsync=False)
    return home


@pytest.fixture(scope="module")
def data(minute_home: Path) -> MinuteMatrix:
    loaded = family("vwap_reversion").load(minute_home / "lake")
    assert isinstance(loaded, MinuteMatrix)
    return loaded


def _vectorbt(data: MinuteMatrix, params: dict):
    import vectorbt as vbt

    config = VWAPReversionConfig(symbols=tuple(data.symbols), **params)
    entries, exits = VWAPReversion(config).signals(data.panel)
    return vbt.Portfolio.from_signals(
        data.close, entries, exits, fees=FEES, slippage=SLIPPAGE, init_cash=CASH / 3, freq="1min"
    )


def test_the_minute_family_loads_stock_bars_1m_on_the_session_grid(data: MinuteMatrix) -> None:
    assert data.table == "stock_bars_1m" and data.sessions == SESSIONS
    assert set(data.data_versions) == {f"stock_bars_1m/session={s}" for s in SESSIONS}
    lengths = {s: (data.panel.session_index == i).sum() for i, s in enumerate(SESSIONS)}
    assert lengths[HALF_DAY] == 210 and {lengths[s] for s in SESSIONS if s != HALF_DAY} == {390}
    assert np.isfinite(data.close).all()
    # the synthetic source drops minutes (no trades, halts); they are rows without a bar
    assert 0 < (~data.panel.has_bar).sum() < data.panel.has_bar.size // 50


def test_a_daily_family_still_loads_daily_closes(minute_home: Path) -> None:
    with pytest.raises(ConfigError, match="no stock_bars_1d partitions"):
        family("momentum").load(minute_home / "lake")


@pytest.mark.parametrize("params", POINTS, ids=["default", "stop"])
def test_vectorized_round_trips_equal_decide_stepped_minute_by_minute(
    minute_home: Path, data: MinuteMatrix, params: dict
) -> None:
    """Same entry and exit minute, same side (long), for every symbol; every round trip opens
    and closes within one session, the last exit at least ``flat_before`` minutes before the
    close (13:00 on the half day)."""
    pf = _vectorbt(data, params)
    rec = pf.trades.records
    ts = pl.Series(data.panel.ts).cast(pl.Datetime("ns", "UTC")).to_list()
    vectorized = sorted(
        (data.symbols[c], ts[e], None if st == 0 else ts[x])
        for c, e, x, st in zip(
            rec["col"], rec["entry_idx"], rec["exit_idx"], rec["status"], strict=True
        )
    )
    bars = storage.read_partitions(minute_home / "lake", "stock_bars_1m", SESSIONS, BAR_SCHEMA)
    strategy = VWAPReversion(VWAPReversionConfig(symbols=tuple(SYMBOLS), **params))
    stepped, log = step_round_trips(strategy, bars, SESSIONS)
    assert len(vectorized) >= 10, "too few trades to prove anything"
    assert stepped == vectorized
    assert all(i.legs[0].side.value in ("buy", "sell") for _, i in log)
    flat_by = strategy.config.flat_before
    for _, entry, exit_ in stepped:
        assert exit_ is not None and cal.new_york_date(entry) == cal.new_york_date(exit_)
        _, close = cal.session_open_close(cal.new_york_date(exit_))
        assert exit_ + dt.timedelta(minutes=1) <= close - dt.timedelta(minutes=flat_by)


def test_fast_path_equals_vectorbt_within_1e9(data: MinuteMatrix) -> None:
    """Total return and trade count of every (point, symbol): compiled state machine vs vectorbt
    ``from_signals`` on the same minute grid (1e-9 absolute on returns; counts equal)."""
    points = VWAPReversion.param_space().sample(6, seed=3) + POINTS
    ret, trades = VWAPReversion.sweep_fast_path(
        data.panel, points, fees=FEES, slippage=SLIPPAGE, init_cash=CASH / 3
    )
    for k, point in enumerate(points):
        pf = _vectorbt(data, point)
        np.testing.assert_allclose(ret[k], np.asarray(pf.total_return()), rtol=0, atol=1e-9)
        assert (trades[k] == np.asarray(pf.trades.count())).all()
    assert trades.sum() > 0


@pytest.mark.slow  # ~50 s alone: vectorbt's first compile in the process, then MLflow
def test_the_generated_sweep_asset_materializes_on_minute_bars(
    minute_home: Path, data: MinuteMatrix
) -> None:
    """``vwap_reversion_sweep`` reads stock_bars_1m (not daily bars), sweeps the whole grid
    but the daily-regime points whose ``regime_sma`` needs more than half of the 8 sessions,
    verifies every point on the fast path, and records one return per session: the portfolio
    value at each session's last minute, as an independent vectorbt run gives it."""
    from alpaca_improved_pipelines.defs.research.assets import SWEEPS

    asset = SWEEPS["vwap_reversion"]
    assert dg.AssetKey("stock_bars_1m") in asset.asset_deps[asset.key]
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [asset],
            resources=resources_for(minute_home),
            instance=instance,
            run_config=quiet(
                {"ops": {"vwap_reversion_sweep": {"config": {"workers": 1, "top_k": 1}}}}
            ),
        )
    assert res.success
    path = minute_home / "lake" / "sweep_results" / "family=vwap_reversion" / "part.parquet"
    results = pl.read_parquet(path)
    everything = list(VWAPReversion.param_space().grid())
    grid = [p for p in everything if VWAPReversion.lookback(p) < len(SESSIONS) // 2]
    assert {p["regime_sma"] for p in everything} == {0, 20}
    assert grid == [p for p in everything if p["regime_sma"] == 0]
    assert results.height == len(grid) and results["error"].is_null().all()
    assert (results["fastpath_abs_diff"] < 1e-9).all() and results["fastpath_trades_equal"].all()
    row = results.filter(pl.col("params") == json.dumps(grid[0], sort_keys=True)).row(0, named=True)
    value = np.asarray(_vectorbt(data, grid[0]).value()).sum(axis=1)[data.session_rows]
    expected = value / np.r_[CASH, value[:-1]] - 1.0
    assert len(row["returns"]) == len(SESSIONS)
    np.testing.assert_allclose(row["returns"], expected, rtol=0, atol=1e-12)
    meta = res.asset_materializations_for_node("vwap_reversion_sweep")[0].metadata
    assert meta["trials"].value == len(grid)


@pytest.mark.slow  # the session's year-lake sweeps (every family), then candidates and approval
def test_a_vwap_reversion_candidate_is_walked_forward_gated_and_approved(
    swept, tmp_path: Path
) -> None:
    """Like any family: its sweep ran on the year lake's minute bars, walk-forward folds it,
    the candidates gate it, and approval writes a deployment manifest naming the minute bars it
    was tested on, whose params build the strategy the live runner will run."""
    import shutil

    from alpaca_improved_pipelines.defs.promotion.assets import approved_manifest, candidates
    from contracts import paths
    from contracts.manifest import read_manifest
    from strategies.base import create_strategy

    src, _ = swept
    home = tmp_path / "home"
    shutil.copytree(src, home, ignore=shutil.ignore_patterns("sweeps", "mlartifacts"))
    folds = pl.read_parquet(home / "lake" / "walk_forward" / "family=vwap_reversion" / "*.parquet")
    assert folds.height >= 3
    lenient = {"require_quality_checks": False, "min_dsr": 0.0, "min_oos_sharpe": -100.0,
               "min_trades": 0, "max_drawdown": 1.0}  # fmt: skip
    approval = {"family": "vwap_reversion", "approver": "qa", "reason": "test"}
    ops = {"candidates": {"config": lenient}, "approved_manifest": {"config": approval}}
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [candidates, approved_manifest],
            resources=resources_for(home),
            instance=instance,
            run_config=quiet({"ops": ops}),
        )
    assert res.success
    cands = json.loads((home / "live" / "candidates.json").read_text())["candidates"]
    cand = next(c for c in cands if c["family"] == "vwap_reversion")
    assert cand["passed"] and cand["trades"] > 0
    (path,) = paths.manifests_dir(home).glob("vwap_reversion-*.json")
    manifest = read_manifest(path)
    assert manifest.strategy == "vwap_reversion" and set(manifest.data_versions) == {
        "stock_bars_1m"
    }
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in manifest.params.items()}
    strategy = create_strategy(manifest.strategy, params)  # as live.deployments builds it
    assert strategy.timeframe == "1m" and strategy.config.symbols == tuple(SYMBOLS)


def test_the_quality_gate_and_the_manifest_name_the_minute_bars(instance) -> None:
    """A minute family is gated on stock_bars_1m's blocking checks (not the daily bars')."""
    from alpaca_improved_pipelines.defs.promotion.assets import bars_table
    from alpaca_improved_pipelines.defs.promotion.gates import quality_checks_passed

    assert bars_table("vwap_reversion") == "stock_bars_1m" == family("vwap_reversion").table
    assert bars_table("momentum") == bars_table("wheel") == "stock_bars_1d"
    why = quality_checks_passed(instance, SESSIONS[0], SESSIONS[-1], bars_table("vwap_reversion"))
    assert why.startswith("no pandera_schema result on stock_bars_1m")


def test_a_symbol_missing_a_whole_session_is_refused(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for s in SESSIONS[:3]:
        bars = minute_bars(7, SYMBOLS if s != SESSIONS[1] else SYMBOLS[:2], s)
        storage.write_partition(bars, lake, "stock_bars_1m", s, fsync=False)
    with pytest.raises(ConfigError, match="no stock_bars_1m on some sessions; backfill"):
        family("vwap_reversion").load(lake)
