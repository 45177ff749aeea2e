"""A daily family gated on intraday features in research: its sweep data carries each session's
features from the lake's ``stock_bars_1m`` (computed by the strategies' own definition), a gated
sweep point runs end to end on a small synthetic lake and equals an independent vectorbt run on
the gated signals, and vwap_reversion's daily-regime points sweep like any other parameter."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.backtesting.data import GatedCloseMatrix, MinuteMatrix
from alpaca_improved_pipelines.backtesting.families import family
from alpaca_improved_pipelines.backtesting.sweep import SweepSpec, evaluate_chunk
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.sources.synthetic_bars import daily_bars, minute_bars
from strategies.equity import Momentum, MomentumConfig, VWAPReversion
from strategies.equity.intraday_gate import DailyInputs, gate_mask
from strategies.indicators.session_features import IntradayFeatureMatrix, intraday_feature_frame

from .conftest import SYMBOLS, quiet, resources_for

FEES, SLIPPAGE, CASH = 0.001, 0.0005, 100_000.0  # SweepConfig's defaults
SESSIONS = cal.sessions_between(dt.date(2024, 10, 1), dt.date(2024, 12, 3))  # 45, a half day
HOLE = SESSIONS[2]  # XOM has no minute bars that session
FAST = {"lookback": 3, "enter": 0.0, "leave": -0.005, "trend": 0}


@pytest.fixture(scope="module")
def gate_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Daily and minute bars of the synthetic source; one session's minutes lack XOM."""
    home = tmp_path_factory.mktemp("gate") / "home"
    for s in SESSIONS:
        minutes = minute_bars(7, SYMBOLS, s)
        if s == HOLE:
            minutes = minutes.filter(pl.col("symbol") != "XOM")
        lake = home / "lake"
        storage.write_partition(daily_bars(7, SYMBOLS, s), lake, "stock_bars_1d", s, fsync=False)
        storage.write_partition(minutes, lake, "stock_bars_1m", s, fsync=False)
    return home


def _features_by_hand(home: Path, symbols: list[str]) -> IntradayFeatureMatrix:
    """The strategies' definition on every minute partition read here, not by the loader."""
    bars = pl.concat(
        pl.read_parquet(home / "lake" / "stock_bars_1m" / f"session={s}" / "part.parquet")
        for s in SESSIONS
    )
    bounds = [cal.session_open_close(s) for s in SESSIONS]
    sessions = pl.DataFrame(
        {
            "session": SESSIONS,
            "open": [o.to_pydatetime() for o, _ in bounds],
            "close": [c.to_pydatetime() for _, c in bounds],
        }
    )
    return IntradayFeatureMatrix.from_frame(
        intraday_feature_frame(bars, sessions), SESSIONS, symbols
    )


def test_the_gated_family_loads_intraday_features_with_its_closes(gate_home: Path) -> None:
    """momentum's sweep data: the daily closes, plus features equal to the definition run on
    the minute partitions directly (NaN for XOM's missing session, so its gate is closed
    there), and the minute partitions in its data versions; its sweep asset depends on
    stock_bars_1m, an ungated daily family's does not."""
    from alpaca_improved_pipelines.defs.research.assets import SWEEPS

    data = family("momentum").load(gate_home / "lake")
    assert isinstance(data, GatedCloseMatrix) and isinstance(data.signal_input, DailyInputs)
    expected = _features_by_hand(gate_home, data.symbols)
    for name, values in expected.values.items():
        np.testing.assert_array_equal(data.intraday.values[name], values)
    t, j = SESSIONS.index(HOLE), data.symbols.index("XOM")
    assert np.isnan(data.intraday.values["vwap_distance"][t, j])
    assert not gate_mask(data.intraday, "above_vwap")[t, j]
    assert np.isfinite(data.intraday.values["vwap_distance"][t + 1 :, j]).all()
    assert sum(k.startswith("stock_bars_1m/") for k in data.data_versions) == len(SESSIONS)
    assert data.sessions_without_minutes == 0
    assert dg.AssetKey("stock_bars_1m") in SWEEPS["momentum"].asset_deps[SWEEPS["momentum"].key]
    ma = SWEEPS["ma_crossover"]
    assert dg.AssetKey("stock_bars_1m") not in ma.asset_deps[ma.key]
    assert not family("ma_crossover").uses_intraday_features


def _vectorbt_returns(home: Path, data: GatedCloseMatrix, params: dict) -> np.ndarray:
    import vectorbt as vbt

    strategy = Momentum(MomentumConfig(symbols=tuple(data.symbols), **params))
    features = _features_by_hand(home, data.symbols)
    entries, exits = strategy.signals(DailyInputs(data.close, features))
    pf = vbt.Portfolio.from_signals(
        data.close,
        entries,
        exits,
        fees=FEES,
        slippage=SLIPPAGE,
        init_cash=CASH / len(data.symbols),
        freq="1D",
    )
    value = np.asarray(pf.value()).sum(axis=1)
    return value / np.r_[CASH, value[:-1]] - 1.0


@pytest.mark.slow  # vectorbt's first compile in the process (~30-50 s), then MLflow
def test_a_gated_sweep_point_runs_end_to_end(gate_home: Path) -> None:
    """``momentum_sweep`` materialized on the small lake: every point (gated ones included)
    succeeds and passes the fast-path check, and each gated point's daily returns equal vectorbt
    run here on the strategy's signals masked by features computed from the minute partitions
    directly (1e-12 absolute); the gates change the results (they are not no-ops)."""
    from alpaca_improved_pipelines.defs.research.assets import SWEEPS

    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [SWEEPS["momentum"]],
            resources=resources_for(gate_home),
            instance=instance,
            run_config=quiet({"ops": {"momentum_sweep": {"config": {"workers": 1, "top_k": 1}}}}),
        )
    assert res.success
    path = gate_home / "lake" / "sweep_results" / "family=momentum" / "part.parquet"
    results = pl.read_parquet(path)
    assert results["error"].is_null().all()
    assert (results["fastpath_abs_diff"] < 1e-9).all() and results["fastpath_trades_equal"].all()
    params = [json.loads(p) for p in results["params"]]
    gates = {p["intraday_gate"] for p in params}
    assert gates == {"off", "above_vwap", "last_hour_up"}
    data = family("momentum").load(gate_home / "lake")
    assert isinstance(data, GatedCloseMatrix)
    by_gate: dict[str, list[tuple]] = {}
    for row, p in zip(results.iter_rows(named=True), params, strict=True):
        if p["intraday_gate"] != "off":
            expected = _vectorbt_returns(gate_home, data, p)
            np.testing.assert_allclose(row["returns"], expected, rtol=0, atol=1e-12)
        base = json.dumps({**p, "intraday_gate": None}, sort_keys=True)
        by_gate.setdefault(base, []).append((row["trades"], tuple(row["returns"])))
    assert len(by_gate) == len(params) // 3  # each point swept off and with both gates
    assert any(len(set(twins)) > 1 for twins in by_gate.values())


def test_vwap_reversion_regime_points_sweep_like_any_parameter(gate_home: Path) -> None:
    """regime_sma is in vwap_reversion's space (half its grid has it on); a regime-on point
    evaluates on the lake's minute bars next to its regime-off twin, the fast path agrees with
    vectorbt for both, and the gate only removes round trips."""
    grid = VWAPReversion.param_space().grid()
    regimes = [p["regime_sma"] for p in grid]
    assert regimes.count(20) == regimes.count(0) == 24
    data = family("vwap_reversion").load(gate_home / "lake", start=SESSIONS[3])
    assert isinstance(data, MinuteMatrix) and len(data.sessions) == len(SESSIONS) - 3
    off = {"band": 1.5, "exit_band": 0.5, "warmup": 15, "stop": 0.0, "regime_sma": 0}
    on = {**off, "regime_sma": 20}
    rows = evaluate_chunk(SweepSpec("vwap_reversion", [off, on]), [off, on], data)
    assert rows["error"].is_null().all()
    assert (rows["fastpath_abs_diff"] < 1e-9).all() and rows["fastpath_trades_equal"].all()
    trades = dict(zip(rows["params"], rows["trades"], strict=True))
    n_off, n_on = trades[json.dumps(off, sort_keys=True)], trades[json.dumps(on, sort_keys=True)]
    assert 0 < n_on < n_off


def test_a_lake_without_minute_bars_closes_every_gate(tmp_path: Path) -> None:
    """Daily bars only: the gated family still loads (ungated points sweep as before), every
    feature is NaN, the gates are closed everywhere and the loader counts the missing sessions
    (the sweep asset logs a warning naming the backfill)."""
    for s in SESSIONS[:10]:
        storage.write_partition(
            daily_bars(7, SYMBOLS, s), tmp_path / "lake", "stock_bars_1d", s, fsync=False
        )
    data = family("momentum").load(tmp_path / "lake")
    assert isinstance(data, GatedCloseMatrix) and data.sessions_without_minutes == 10
    assert all(np.isnan(v).all() for v in data.intraday.values.values())
    assert not gate_mask(data.intraday, "last_hour_up").any()
    gated = Momentum(
        MomentumConfig(symbols=tuple(data.symbols), intraday_gate="above_vwap", **FAST)
    )
    entries, _ = gated.signals(data.signal_input)
    plain, _ = Momentum(MomentumConfig(symbols=tuple(data.symbols), **FAST)).signals(data.close)
    assert plain.any() and not entries.any()
