"""A strategy family is declared once, by its strategy class and its registration: the sweep
asset, walk-forward, leaderboard row and candidate gating all follow from the registry.

Issue 10, defect 7: ``momentum`` was a registered, documented family with no sweep, so it could
never become a candidate. The module imports only what the old code had, so that on the old code
the first test fails on its assertion (momentum has no sweep asset), not on an import.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from alpaca_improved_pipelines.backtesting.data import load_closes
from alpaca_improved_pipelines.backtesting.families import family
from contracts.calendar import session_open_close
from strategies import analytics
from strategies.base import Param, ParamSpace, strategy_registry
from strategies.equity import Momentum, MomentumConfig, SignalStrategy
from strategies.equity._kernels import rolling_mean
from strategies.equity.signal import check_allocation, check_symbols
from strategies.indicators.session_features import intraday_features_asof
from strategies.models import NEW_YORK, Book, MarketSnapshot, Position, Side

from .conftest import SYMBOLS, quiet, resources_for

FEES, SLIPPAGE, CASH = 0.001, 0.0005, 100_000.0  # SweepConfig's defaults


def test_every_registered_signal_family_is_swept_walked_forward_and_gated() -> None:
    """The old gap: momentum is registered with ``signals()`` but had no sweep asset, so the
    walk-forward, leaderboard and candidates never saw it. Every registered signal family now
    has its ``<name>_sweep`` upstream of ``walk_forward`` (and so of the leaderboard and the
    candidates; ``tests/pipelines/test_definitions.py`` snapshots the code location's keys)."""
    from alpaca_improved_pipelines.defs.promotion.assets import candidates
    from alpaca_improved_pipelines.defs.research.assets import leaderboard, walk_forward

    registry = strategy_registry()
    signal = {n for n, c in registry.items() if issubclass(c, SignalStrategy) and c.sweep}
    assert "momentum" in signal and "gbm_signal" in registry  # trained, not swept (sweep=False)
    assert "gbm_signal" not in signal
    upstream = walk_forward.asset_deps[dg.AssetKey("walk_forward")]
    for name in sorted(signal):
        assert dg.AssetKey(f"{name}_sweep") in upstream, f"{name} has no sweep asset"
    assert leaderboard.asset_deps[leaderboard.key] == {
        walk_forward.key,
        dg.AssetKey("gbm_signal_model"),
    }
    assert candidates.asset_deps[candidates.key] == {leaderboard.key}


def test_lookback_is_declared_by_the_config() -> None:
    assert Momentum.lookback({"lookback": 21, "trend": 100}) == 100
    assert Momentum.lookback({"lookback": 126, "trend": 0}) == 126
    with pytest.raises(ValueError, match="leave must be < enter"):
        Momentum.lookback({"enter": 0.0, "leave": 0.0})


def _momentum_results(home: Path) -> pl.DataFrame:
    path = home / "lake" / "sweep_results" / "family=momentum" / "part.parquet"
    return pl.read_parquet(path).filter(pl.col("error").is_null())


def test_momentum_sweep_equals_an_independent_vectorbt_run(swept) -> None:
    """Every momentum variant of the sweep against vectorbt run here on the lake's closes and
    the strategy's own ``signals()`` (nothing of the sweep code), and against the fused kernel.

    Tolerances: total return and every daily return within 1e-12 absolute, Sharpe within 1e-9
    relative (same float64 simulation, summed in a different order); the fused fast path within
    1e-9 of vectorbt with equal trade counts.
    """
    import vectorbt as vbt

    home, _ = swept
    ok = _momentum_results(home)
    data = family("momentum").load(home / "lake")  # closes + intraday features (gated points)
    # year lake: 252 sessions; points needing >= 126 bars of warm-up are not swept
    expected = [p for p in Momentum.param_space().grid() if Momentum.lookback(p) < 126]
    assert sorted(ok["params"].to_list()) == sorted(json.dumps(p, sort_keys=True) for p in expected)
    assert ok["fastpath_abs_diff"].max() < 1e-9 and ok["fastpath_trades_equal"].all()
    assert ok["trades"].sum() > 0
    n_sym = len(data.symbols)
    for row in ok.iter_rows(named=True):
        params = json.loads(row["params"])
        entries, exits = Momentum(MomentumConfig(**params)).signals(data.signal_input)
        pf = vbt.Portfolio.from_signals(
            data.close,
            entries,
            exits,
            fees=FEES,
            slippage=SLIPPAGE,
            init_cash=CASH / n_sym,
            freq="1D",
        )
        value = np.asarray(pf.value()).sum(axis=1)
        rets = value / np.r_[CASH, value[:-1]] - 1.0
        np.testing.assert_allclose(row["returns"], rets, rtol=0, atol=1e-12)
        assert row["total_return"] == pytest.approx(value[-1] / CASH - 1.0, rel=0, abs=1e-12)
        assert row["trades"] == int(np.asarray(pf.trades.count()).sum())
        sharpe = analytics.sharpe_ratio(rets)
        if np.isfinite(sharpe):
            assert row["sharpe_ratio"] == pytest.approx(sharpe, rel=1e-9)


def _bars(data, symbol: str) -> pl.DataFrame:
    close = data.close[:, data.symbols.index(symbol)]
    prices = {"open": close, "high": close, "low": close, "close": close}
    return pl.DataFrame({"session": data.sessions, "symbol": symbol, **prices, "volume": 1.0})


def _snapshot(bars: pl.DataFrame, t: int, lake: Path | None = None) -> MarketSnapshot:
    """What the live runner sees after session ``t``'s close: bars up to ``t``, nothing later
    (and, given the lake, the intraday features of session ``t``'s minute bars)."""
    seen = bars.head(t + 1)
    session, symbol, close = seen["session"][t], seen["symbol"][t], seen["close"][t]
    ts = datetime.combine(session, datetime.min.time(), NEW_YORK)
    feats = {}
    if lake is not None:
        minute = pl.read_parquet(lake / "stock_bars_1m" / f"session={session}" / "part.parquet")
        opn, cls = (x.to_pydatetime() for x in session_open_close(session))
        feats = intraday_features_asof(session, minute.filter(pl.col("symbol") == symbol), opn, cls)
        ts = cls
    return MarketSnapshot(ts, session, {symbol: float(close)}, seen, intraday_features=feats)


def test_best_momentum_variant_trades_when_decide_would(swept, tmp_path: Path) -> None:
    """The event-driven path: the sweep's best momentum variant, driven session by session
    through ``decide()`` (long/flat state carried from its own orders), makes exactly the round
    trips the sweep recorded for it (its MLflow child run's trades.parquet)."""
    from alpaca_improved_pipelines.backtesting.research_tables import read_family
    from alpaca_improved_pipelines.tracking.mlflow_store import Tracker

    home, _ = swept
    board = read_family(home / "lake", "backtest_runs", "momentum")
    best = board.filter(pl.col("rank") == 1).row(0, named=True)
    local = Tracker(home).client.download_artifacts(
        best["mlflow_run_id"], "trades.parquet", str(tmp_path)
    )
    recorded = sorted(
        (r["symbol"], r["entry_session"], None if r["open"] else r["exit_session"])
        for r in pl.read_parquet(local).iter_rows(named=True)
    )
    params = json.loads(best["params"])
    data = load_closes(home / "lake")
    decided = []
    for symbol in data.symbols:
        strategy = Momentum(MomentumConfig(symbols=(symbol,), **params))
        bars, held, entered = _bars(data, symbol), 0, None
        for t, session in enumerate(data.sessions):
            book = Book.build(CASH, (Position(symbol, held, 1.0, 1.0),) if held else ())
            for intent in strategy.decide(_snapshot(bars, t, home / "lake"), book):
                if intent.legs[0].side is Side.BUY:
                    held, entered = int(intent.qty), session
                else:
                    decided.append((symbol, entered, session))
                    held = 0
        if held:
            decided.append((symbol, entered, None))
    assert recorded and sorted(decided) == recorded


def test_momentum_becomes_a_candidate_with_a_backtest_to_hold_it_to(swept, tmp_path: Path) -> None:
    """Momentum is gated like every family and passes lenient gates; its chosen variant has the
    reference backtest a deployment is held to (the old hand-kept family table had none)."""
    from alpaca_improved_pipelines.backtesting.reference import reference_backtest
    from alpaca_improved_pipelines.defs.promotion.assets import candidates

    src, _ = swept
    home = tmp_path / "home"
    shutil.copytree(src, home, ignore=shutil.ignore_patterns("sweeps", "mlartifacts"))
    lenient = {"require_quality_checks": False, "min_dsr": 0.0, "min_oos_sharpe": -100.0,
               "min_trades": 0, "max_drawdown": 1.0}  # fmt: skip
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [candidates],
            resources=resources_for(home),
            instance=instance,
            run_config=quiet({"ops": {"candidates": {"config": lenient}}}),
        )
    assert res.success
    cands = json.loads((home / "live" / "candidates.json").read_text())["candidates"]
    momentum = next(c for c in cands if c["family"] == "momentum")
    assert momentum["passed"] and momentum["oos_sharpe"] is not None and momentum["trades"] > 0
    params = {**json.loads(momentum["params"]), "symbols": list(SYMBOLS)}
    data = family("momentum").load(home / "lake")  # a gated variant reads the features too
    window = (date(2024, 7, 1), date(2024, 12, 31))
    ref = reference_backtest("momentum", params, data, *window, fees=FEES, slippage=SLIPPAGE)
    assert ref.returns.height > 100 and ref.returns["ret"].abs().sum() > 0


@dataclass(frozen=True, slots=True)
class ToyConfig:
    symbols: tuple[str, ...] = ("SPY",)
    window: int = 10
    band: float = 0.0
    allocation: float = 1.0

    def __post_init__(self) -> None:
        check_symbols(self.symbols)
        check_allocation(self.allocation)

    def lookback_bars(self) -> int:
        return self.window


class ToySMA(SignalStrategy):
    """Toy: long above the SMA by more than a band, flat below it."""

    name = "toy_sma"
    config_cls = ToyConfig
    __slots__ = ()

    @classmethod
    def param_space(cls) -> ParamSpace:
        return ParamSpace(
            (Param("window", values=(5, 20)), Param("band", values=(0.0, 0.01))), ToyConfig
        )

    def column_signals(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sma = rolling_mean(close, self.config.window)
        return close > sma * (1 + self.config.band), close < sma


@pytest.fixture
def toy_registered(monkeypatch: pytest.MonkeyPatch):
    """ToySMA registered (the one declaration a new family makes), for this test only."""
    from strategies import base

    monkeypatch.setattr(base, "_REGISTRY", dict(strategy_registry()))
    base.register_strategy(ToySMA)
    yield ToySMA


def test_registering_a_family_generates_its_research_assets(toy_registered) -> None:
    from alpaca_improved_pipelines.defs.research.assets import sweep_assets, walk_forward_asset
    from strategies.equity import signal_families

    sweeps = sweep_assets()
    assert set(sweeps) == set(signal_families()) >= {"momentum", "toy_sma"}
    toy = sweeps["toy_sma"]
    assert toy.key == dg.AssetKey("toy_sma_sweep")
    assert "Toy: long above the SMA" in toy.descriptions_by_key[toy.key]
    assert toy.group_names_by_key[toy.key] == "research"
    deps = walk_forward_asset(sweeps).asset_deps[dg.AssetKey("walk_forward")]
    assert dg.AssetKey("toy_sma_sweep") in deps


def test_a_half_declared_family_is_refused_at_registration(monkeypatch) -> None:
    from strategies import base

    monkeypatch.setattr(base, "_REGISTRY", dict(strategy_registry()))

    @dataclass(frozen=True)
    class NoLookback:
        symbols: tuple[str, ...] = ("SPY",)
        window: int = 5
        allocation: float = 1.0

    class Bad(ToySMA):
        name = "bad_toy"
        config_cls = NoLookback

        @classmethod
        def param_space(cls) -> ParamSpace:
            return ParamSpace((Param("window", values=(5,)),), NoLookback)

    with pytest.raises(TypeError, match="lookback_bars"):
        base.register_strategy(Bad)
    assert "bad_toy" not in strategy_registry()


@pytest.mark.slow
def test_a_toy_family_flows_from_registration_to_candidate(
    toy_registered, swept, tmp_path: Path
) -> None:
    """End to end with nothing but the registration: the toy's generated sweep materializes
    (fast path = its own signals through the compiled simulator, equal to vectorbt), the
    generated walk-forward covers it, it is on the leaderboard and it is a gated candidate."""
    from alpaca_improved_pipelines.defs.promotion.assets import candidates
    from alpaca_improved_pipelines.defs.research.assets import (
        leaderboard,
        sweep_assets,
        walk_forward_asset,
    )

    from .conftest import one_worker

    src, _ = swept
    home = tmp_path / "home"
    shutil.copytree(src, home, ignore=shutil.ignore_patterns("sweeps", "mlartifacts"))
    sweeps = sweep_assets()
    lenient = {"require_quality_checks": False, "min_dsr": 0.0, "min_oos_sharpe": -100.0,
               "min_trades": 0, "max_drawdown": 1.0}  # fmt: skip
    ops = {**one_worker("toy_sma")["ops"], "candidates": {"config": lenient}}
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [sweeps["toy_sma"], walk_forward_asset(sweeps), leaderboard, candidates],
            resources=resources_for(home),
            instance=instance,
            run_config=quiet({"ops": ops}),
        )
    assert res.success
    results = pl.read_parquet(home / "lake" / "sweep_results" / "family=toy_sma" / "part.parquet")
    assert results.height == 4 and results["error"].is_null().all()
    assert results["fastpath_abs_diff"].max() < 1e-9 and results["fastpath_trades_equal"].all()
    folds = pl.read_parquet(home / "lake" / "walk_forward" / "family=toy_sma" / "part.parquet")
    assert folds.height >= 3
    cands = json.loads((home / "live" / "candidates.json").read_text())["candidates"]
    toy = next(c for c in cands if c["family"] == "toy_sma")
    assert toy["passed"] and toy["oos_sharpe"] is not None
    assert {c["family"] for c in cands} >= {"ma_crossover", "momentum", "rsi_reversion"}
