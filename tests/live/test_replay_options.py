"""A wheel deployment replayed through the live runner in sim places the options backtest's
orders: same sessions, contracts, sides and quantities, at the same fill model's prices, through
profit-target rolls and through an assignment (shares, then covered calls).

The lake holds a synthetic SPY chain archive (daily bars from its underlying prices); the
reference is the options engine (``run_options_backtest``) over the same sessions with fees off
(the simulated broker charges none by default).
"""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from live.deployments.manifests import write_manifest
from live.replay import replay
from strategies.backtest.config import FeeSchedule, OptionsBacktestConfig
from strategies.backtest.options_engine import run_options_backtest
from strategies.backtest.synthetic import synthetic_chains
from strategies.base import create_strategy
from tests.live.helpers import OPTIONS_COSTS, limits

START = date(2024, 9, 3)  # 60 business days without an NYSE holiday: Sep 3 - Nov 22, 2024
SESSIONS = 60
FREE = FeeSchedule(
    option_commission=0.0, option_orf=0.0, option_taf=0.0, stock_commission=0.0,
    stock_taf=0.0, stock_taf_max=0.0, sec_rate=0.0, assignment_fee=0.0,
)  # fmt: skip
PARAMS = {"underlying": "SPY", "put_delta": 0.4, "call_delta": 0.4, "dte": 21, "dte_min": 10,
          "dte_max": 30, "profit_target": 0.5}  # fmt: skip


# a drifting path (puts bought back at the profit target and re-sold), and a decline that gets
# the put assigned, then covered calls on the shares
SCENARIOS = {
    "rolls": None,
    "assigned": np.concatenate([np.linspace(500, 430, 30), np.linspace(430, 470, 30)]),
}


@pytest.fixture(params=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest) -> tuple[str, pl.DataFrame]:
    spots = SCENARIOS[request.param]
    chains = synthetic_chains(
        "SPY", START, SESSIONS, seed=11, s0=500.0, strike_step=5.0, spots=spots
    )
    return request.param, chains


def write_lake(home: Path, chains: pl.DataFrame) -> None:
    bars = chains.group_by("session").agg(pl.col("underlying_price").first().alias("close"))
    for session, close in bars.sort("session").iter_rows():
        part = home / "lake" / "stock_bars_1d" / f"session={session.isoformat()}"
        part.mkdir(parents=True)
        pl.DataFrame(
            {
                "session": [session],
                "symbol": ["SPY"],
                "open": [close],
                "high": [close],
                "low": [close],
                "close": [close],
                "volume": [1e6],
            }  # fmt: skip
        ).write_parquet(part / "part.parquet")
        part = home / "lake" / "option_chains" / f"session={session.isoformat()}"
        part.mkdir(parents=True)
        lake_layout(chains.filter(pl.col("session") == session)).write_parquet(
            part / "part.parquet"
        )


def lake_layout(chains: pl.DataFrame) -> pl.DataFrame:
    """The option_chains asset's layout: ``dte_days``, vega per 1.00 vol, theta per year."""
    return chains.rename({"dte": "dte_days"}).with_columns(
        pl.col("vega") * 100.0, pl.col("theta") * 365.0
    )


def test_wheel_replay_places_the_options_backtest_orders(
    tmp_path: Path, scenario: tuple[str, pl.DataFrame]
) -> None:
    name, chains = scenario
    home = tmp_path / "home"
    write_lake(home, chains)
    write_manifest(
        home / "live" / "deployments",
        "wheel",
        {
            "manifest_id": "w",
            "strategy": "wheel",
            "interface_version": 1,
            "params": PARAMS,
            "capital": 100_000.0,
            "risk_limits": limits(),
            "costs": OPTIONS_COSTS,
        },  # fmt: skip
    )
    sessions = sorted(chains["session"].unique().to_list())
    result = replay(home, sessions[0], sessions[-1])
    live = sorted(
        (o["session"], tuple(sorted((s, side) for s, side, _ in o["legs"])), o["qty"])
        for o in result.orders
        if o["filled_qty"] > 0
    )
    assert all(o["status"] == "filled" for o in result.orders), result.orders
    # the runner decides on a session's data at the next open, after that day's expiries
    # settled: the engine's after-the-close decision time
    config = OptionsBacktestConfig(fees=FREE, fill_fraction=0.25, decision_time=time(16, 30))
    ref = run_options_backtest(create_strategy("wheel", PARAMS), chains, config)
    fills = ref.fills.filter(pl.col("kind") == "trade")
    legs = fills.group_by("session", "order_id").agg(
        pl.struct("symbol", "side").sort_by("symbol").alias("legs"), pl.col("qty").first()
    )
    expected = sorted(
        (s.isoformat(), tuple((leg["symbol"], leg["side"]) for leg in lg), float(q))
        for s, _, lg, q in legs.iter_rows()
    )
    assert len(expected) >= 10  # puts sold and bought back or assigned, calls on the shares
    assert live == expected
    settled = set(ref.fills.filter(pl.col("kind") != "trade")["kind"].to_list())
    assert settled == ({"assignment"} if name == "assigned" else set())
    # the same fill model: each contract at the backtest's price to the cent
    live_px = {
        (o["session"], o["symbol"]): o["avg_price"] for o in result.orders if o["filled_qty"] > 0
    }
    for session, symbol, price in fills.select("session", "symbol", "price").iter_rows():
        assert live_px[(session.isoformat(), symbol)] == pytest.approx(price, abs=0.005)
