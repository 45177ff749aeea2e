"""Momentum debit spreads: the stepped ``decide()`` on the options engine and the vectorized
backtest make the same trades on the synthetic lake, order for order."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from strategies.backtest.archive import ChainArchive
from strategies.backtest.options_engine import run_options_backtest
from strategies.backtest.options_sweep import sweep_options
from strategies.backtest.spread_vectorized import TRADE_SCHEMA, momentum_spread_trades
from strategies.base import get_strategy_class
from strategies.options import MomentumSpreads, MomentumSpreadsConfig
from strategies.options.momentum_spreads import trend_direction
from strategies.options.vol_features import vol_feature_frame
from tests.strategies.vol_lake import spy_chains, vol_lake

N = 160
SURFACE, BARS, FLOWS = vol_lake(N)
FRAME = vol_feature_frame(SURFACE, BARS, FLOWS)
ARCHIVE = ChainArchive.from_frame(spy_chains(N))
SPY_BARS = BARS.filter(pl.col("symbol") == "SPY")
FAST = {"lookback": 5, "threshold": 0.01, "trend": 10, "dte": 30, "dte_min": 14, "dte_max": 45}


def engine_trades(
    cfg: MomentumSpreadsConfig,
    features: pl.DataFrame | None,
    archive: ChainArchive = ARCHIVE,
    bars: pl.DataFrame = SPY_BARS,
) -> pl.DataFrame:
    """The engine's trades in the vectorized form's layout (opening order -> its exit)."""
    res = run_options_backtest(MomentumSpreads(cfg), archive, bars=bars, vol_features=features)
    assert res.orders.filter(pl.col("status") == "rejected").height == 0
    fills = res.fills
    opens = fills.filter((pl.col("kind") == "trade") & (pl.col("tag") == "spread"))
    exits = sorted(
        [(s, "close") for s in fills.filter(pl.col("tag") == "close").get_column("session")]
        + [(s, "expiry") for s in fills.filter(pl.col("kind") == "expiry").get_column("session")]
    )
    rows = []
    for (_, session), legs in opens.group_by("order_id", "session", maintain_order=True):
        long = legs.filter(pl.col("side") == "buy").row(0, named=True)
        short = legs.filter(pl.col("side") == "sell").row(0, named=True)
        after = [e for e in exits if e[0] > session]
        exit_session, kind = after[0] if after else (None, "open")
        direction = 1 if long["symbol"][-9] == "C" else -1
        rows.append(
            (session, exit_session, kind, direction, int(long["qty"]), long["symbol"],
             short["symbol"])
        )  # fmt: skip
    return pl.DataFrame(rows, schema=TRADE_SCHEMA, orient="row")


CASES = {
    "trend_sma": ({**FAST}, False),
    "no_sma_hold_to_expiry": ({**FAST, "trend": 0, "exit_dte": None}, False),
    "iv_rank_cap_and_premium_sizing": (
        {**FAST, "max_iv_rank": 0.7, "premium_scale": 0.02, "contracts": 2},
        True,
    ),
    "wide_otm": ({**FAST, "long_delta": 0.35, "width": 10.0, "exit_dte": 10}, False),
}


@pytest.mark.parametrize("case", CASES)
def test_stepped_decide_and_vectorized_backtest_make_the_same_trades(case: str) -> None:
    params, with_features = CASES[case]
    cfg = MomentumSpreadsConfig(**params)  # type: ignore[arg-type]
    features = FRAME if with_features else None
    stepped = engine_trades(cfg, features)
    vectorized = momentum_spread_trades(cfg, ARCHIVE, SPY_BARS, features)
    assert stepped.height >= 3, stepped
    assert vectorized.equals(stepped), (vectorized, stepped)
    assert set(stepped.get_column("direction").to_list()) == {1, -1}  # both verticals traded
    for d, long, short in stepped.select("direction", "long", "short").iter_rows():
        strike_long, strike_short = int(long[-8:]) / 1000, int(short[-8:]) / 1000
        assert long[-9] == short[-9] == ("C" if d > 0 else "P")
        assert (strike_short - strike_long) * d > 0  # a debit vertical: short leg further OTM
    if with_features:
        assert set(stepped.get_column("contracts").to_list()) - {2}  # the premium moved sizes


def test_a_lasting_trend_holds_to_expiry_and_settles_in_both_forms() -> None:
    from datetime import date

    from strategies.backtest.synthetic import business_days, synthetic_chains

    spots = 100 * np.exp(np.linspace(0.0, 0.35, 90))  # a steady up-trend, never lost
    chains = synthetic_chains("SPY", date(2023, 1, 2), 90, spots=spots)
    sessions = business_days(date(2023, 1, 2), 90)
    bars = pl.DataFrame({"session": sessions, "symbol": "SPY", "close": spots})
    bars = bars.with_columns(open=pl.col("close"), high=pl.col("close"), low=pl.col("close"),
                             volume=pl.lit(1.0))  # fmt: skip
    short_dated = {**FAST, "dte": 14, "dte_min": 7, "dte_max": 21, "exit_dte": None}
    cfg = MomentumSpreadsConfig(**short_dated)  # type: ignore[arg-type]
    archive = ChainArchive.from_frame(chains)
    vectorized = momentum_spread_trades(cfg, archive, bars)
    kinds = vectorized.get_column("exit_kind").to_list()
    assert kinds.count("expiry") >= 3 and set(kinds) <= {"expiry", "open"}
    assert vectorized.equals(engine_trades(cfg, None, archive, bars))


def test_an_unquoted_leg_delays_the_exit_in_both_forms() -> None:
    cfg = MomentumSpreadsConfig(**FAST)  # type: ignore[arg-type]
    first = momentum_spread_trades(cfg, ARCHIVE, SPY_BARS).row(0, named=True)
    gone = (pl.col("contract") == first["long"]) & (pl.col("session") == first["exit_session"])
    archive = ChainArchive.from_frame(ARCHIVE.frame.filter(~gone))
    moved = momentum_spread_trades(cfg, archive, SPY_BARS)
    assert moved.row(0, named=True)["exit_session"] > first["exit_session"]
    assert moved.equals(engine_trades(cfg, None, archive))


def test_the_trend_is_causal_and_decide_reads_its_last_value() -> None:
    close = SPY_BARS.sort("session").get_column("close").to_numpy()
    full = trend_direction(close, 5, 0.01, 10)
    assert set(full.tolist()) == {-1, 0, 1}
    for t in (0, 9, 10, 57, N - 1):
        np.testing.assert_array_equal(trend_direction(close[: t + 1], 5, 0.01, 10), full[: t + 1])


def test_registered_swept_and_refusing_what_it_cannot_model() -> None:
    assert get_strategy_class("momentum_spreads") is MomentumSpreads
    assert len(list(MomentumSpreads.param_space().grid())) == 3 * 3 * 2 * 3 * 2
    points = [{"threshold": t} for t in (0.005, 0.01, 0.03)]
    sweep = sweep_options("momentum_spreads", points, ARCHIVE, base=FAST, bars=SPY_BARS)
    assert sweep.table.get_column("n_trials").to_list() == [3, 3, 3]
    assert len(set(sweep.table.get_column("trades").to_list())) > 1
    with pytest.raises(ValueError, match=r"does not model \['profit_target'\]"):
        momentum_spread_trades(MomentumSpreadsConfig(profit_target=0.5), ARCHIVE, SPY_BARS)
    with pytest.raises(ValueError, match="width must be > 0"):
        MomentumSpreadsConfig(width=0.0)
