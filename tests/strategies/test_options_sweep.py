"""Vol-surface filters and sizing in the options families, swept like any other parameter."""

from __future__ import annotations

import math

import polars as pl
import pytest

from strategies.backtest.archive import ChainArchive
from strategies.backtest.options_engine import run_options_backtest
from strategies.backtest.options_sweep import sweep_options
from strategies.options import IronCondor, IronCondorConfig, WheelConfig
from strategies.options.vol_features import features_by_session, vol_feature_frame
from tests.strategies.vol_lake import spy_chains, vol_lake

SURFACE, BARS, FLOWS = vol_lake(120)
FRAME = vol_feature_frame(SURFACE, BARS, FLOWS)
FEATS = features_by_session(FRAME)
ARCHIVE = ChainArchive.from_frame(spy_chains(120))
SPY_BARS = BARS.filter(pl.col("symbol") == "SPY")
BASE = {"underlying": "SPY", "dte": 30, "dte_min": 20, "dte_max": 45, "exit_dte": 10}


def opens(orders: pl.DataFrame) -> pl.DataFrame:
    return orders.filter((pl.col("status") == "filled") & (pl.col("tag") == "condor"))


def run(**params: object) -> pl.DataFrame:
    strategy = IronCondor(IronCondorConfig(**{**BASE, **params}))  # type: ignore[arg-type]
    return run_options_backtest(strategy, ARCHIVE, bars=SPY_BARS, vol_features=FRAME).orders.filter(
        pl.col("status") == "filled"
    )


def test_defaults_decide_exactly_as_before() -> None:
    cfg = IronCondorConfig(**BASE)  # type: ignore[arg-type]
    without = run_options_backtest(IronCondor(cfg), ARCHIVE, bars=SPY_BARS)
    featured = run_options_backtest(IronCondor(cfg), ARCHIVE, bars=SPY_BARS, vol_features=FRAME)
    assert without.orders.height > 2
    assert without.orders.equals(featured.orders)
    assert without.daily.equals(featured.daily)
    # positional construction is unchanged: the filter fields are keyword-only
    assert IronCondorConfig("QQQ").underlying == "QQQ" and IronCondorConfig().min_iv_rank is None


@pytest.mark.parametrize("threshold", [0.3, 0.6, 0.8])
def test_an_iv_rank_floor_opens_only_at_or_above_it(threshold: float) -> None:
    opened = opens(run(min_iv_rank=threshold)).get_column("session").to_list()
    assert opened, threshold
    for s in opened:
        assert FEATS[s]["SPY"].iv_rank >= threshold  # NaN rank (short history) never opens


def test_contango_filter_and_premium_sizing() -> None:
    opened = opens(run(require_contango=True))
    assert opened.height and all(FEATS[s]["SPY"].contango for s in opened.get_column("session"))
    sized = opens(run(contracts=2, premium_scale=0.02))
    assert sized.height
    for s, qty in sized.select("session", "qty").iter_rows():
        premium = FEATS[s]["SPY"].iv_rv_premium
        assert qty == min(math.floor(2 * premium / 0.02 + 1e-9), 4) > 0
    assert set(sized.get_column("qty").to_list()) != {2.0}  # the premium moved the size


def test_a_sweep_over_the_threshold_changes_trades_and_the_trial_count() -> None:
    points = [{"min_iv_rank": r} for r in (None, 0.3, 0.6, 0.9)]
    sweep = sweep_options("iron_condor", points, ARCHIVE, base=BASE, bars=SPY_BARS,
                          vol_features=FRAME)  # fmt: skip
    table = sweep.table
    assert table.height == 4 and table.get_column("n_trials").to_list() == [4] * 4
    trades = table.get_column("trades").to_list()
    assert len(set(trades)) > 1 and trades[0] == run().height  # None: today's iron condor
    assert sweep.returns.shape == (120, 4)
    wider = sweep_options(
        "iron_condor",
        [*points, {"min_iv_rank": 0.5, "require_contango": True}],
        ARCHIVE,
        base=BASE,
        bars=SPY_BARS,
        vol_features=FRAME,
    )
    assert wider.table.get_column("n_trials").to_list() == [5] * 5  # one more trial counted
    assert wider.table.head(4).select("trades").equals(table.select("trades"))


def test_bad_filter_values_name_the_field() -> None:
    with pytest.raises(ValueError, match="min_iv_rank must be in"):
        IronCondorConfig(min_iv_rank=1.5)
    with pytest.raises(ValueError, match="min_iv_rank 0.8 must be <= max_iv_rank 0.2"):
        IronCondorConfig(min_iv_rank=0.8, max_iv_rank=0.2)
    with pytest.raises(ValueError, match="premium_scale is not supported here"):
        WheelConfig(premium_scale=0.04)
    with pytest.raises(ValueError, match="point 1"):
        sweep_options("iron_condor", [{}, {"min_iv_rank": -1.0}], ARCHIVE, base=BASE)
