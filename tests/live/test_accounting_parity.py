"""One accounting: the options backtest engine and the live runner with the simulated broker keep
the same books, day by day, to the cent.

Each scenario writes a synthetic SPY chain archive to a lake, replays a deployment through the
live runner in sim (deployment manifest, lake snapshots, ``decide()``, risk engine, order manager,
journal, simulated broker, reconciliation of assignments) and runs the options engine over the
same sessions with the sim's fill model and no fees. After every session's orders (and the
expiries settled before them), the deployment's book, the simulated broker's account and the
engine's daily row must agree on cash, collateral, buying power, positions and equity within
0.005 (half a cent), and the lake's live P&L (``journal_io.daily_pnl`` over the replay's fills)
must tell the same equity.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from alpaca_improved_pipelines.defs.monitoring.journal_io import (
    daily_pnl,
    fills_with_session,
    option_marks,
)
from live.book import Ledger
from live.brokers.sim import SimBroker
from live.brokers.sim_state import SimConfig
from live.clock import SimClock
from live.deployments.manifests import write_manifest
from live.journal import orders as jo
from live.journal.store import Journal
from live.orders.reports import OrderTicket
from live.replay import replay
from strategies.accounting import option_requirement
from strategies.backtest.config import FeeSchedule, OptionsBacktestConfig
from strategies.backtest.options_engine import run_options_backtest
from strategies.backtest.synthetic import synthetic_chains
from strategies.base import create_strategy
from strategies.models import AssetClass, Leg, OrderIntent, OrderType, PositionIntent, Side
from tests.live.helpers import OPTIONS_COSTS, limits, quote
from tests.live.test_replay_options import write_lake

CENT = 0.005  # half a cent: "to the cent"
START = date(2024, 9, 3)  # 60 business days without an NYSE holiday: Sep 3 - Nov 22, 2024
SESSIONS = 60
CAPITAL = 100_000.0
FREE = FeeSchedule(
    option_commission=0.0, option_orf=0.0, option_taf=0.0, stock_commission=0.0,
    stock_taf=0.0, stock_taf_max=0.0, sec_rate=0.0, assignment_fee=0.0,
)  # fmt: skip
COMMON = {"underlying": "SPY", "dte": 21, "dte_min": 10, "dte_max": 30}
SCENARIOS: dict[str, tuple[str, dict[str, Any], np.ndarray | None, set[str]]] = {
    # a decline gets the 495 put assigned; covered calls on the shares through the rebound
    "wheel": (
        "wheel",
        {**COMMON, "put_delta": 0.4, "call_delta": 0.4, "profit_target": None},
        np.concatenate([np.linspace(500, 430, 25), np.linspace(430, 500, 35)]),
        {"assignment"},
    ),
    "iron_condor": (
        "iron_condor",
        {**COMMON, "short_delta": 0.2, "wing_width": 10.0, "exit_dte": None},
        None,
        set(),
    ),
    # shares bought, calls sold into a rally: called away at expiry, bought again
    "covered_call": (
        "covered_call",
        {**COMMON, "call_delta": 0.4, "profit_target": None},
        np.linspace(500, 560, SESSIONS),
        {"assignment"},
    ),
}


def run_both(tmp_path: Path, name: str) -> tuple[Any, Any, pl.DataFrame]:
    strategy, params, spots, _ = SCENARIOS[name]
    chains = synthetic_chains(
        "SPY", START, SESSIONS, seed=11, s0=500.0, strike_step=5.0, spots=spots
    )
    home = tmp_path / "home"
    write_lake(home, chains)
    write_manifest(
        home / "live" / "deployments",
        name,
        {
            "manifest_id": name,
            "strategy": strategy,
            "interface_version": 1,
            "params": params,
            "capital": CAPITAL,
            "risk_limits": limits(max_concentration=10.0),
            "costs": OPTIONS_COSTS,
        },  # fmt: skip
    )
    sessions = sorted(chains["session"].unique().to_list())
    sim = SimConfig(cash=CAPITAL, slippage_bps=0.0, option_fill_fraction=0.25)
    live = replay(home, sessions[0], sessions[-1], sim=sim)
    # the runner decides on a session's data at the next open, after that day's expiries
    # settled: the engine's after-the-close decision time; the sim's fill model, no fees
    config = OptionsBacktestConfig(
        initial_cash=CAPITAL, fees=FREE, fill_fraction=0.25, decision_time=time(16, 30)
    )
    ref = run_options_backtest(create_strategy(strategy, params), chains, config)
    return live, ref, chains


@pytest.mark.slow  # three 60-session replays through the runner
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_backtest_and_live_books_agree_to_the_cent(tmp_path: Path, name: str) -> None:
    live, ref, chains = run_both(tmp_path, name)
    assert all(o["status"] == "filled" for o in live.orders), live.orders
    books = {(b["session"], b["deployment_id"]): b for b in live.books}
    held = ref.positions.group_by("session").agg(
        pl.struct("symbol", "qty", "avg_price").alias("rows")
    )
    positions = {
        s: {r["symbol"]: (r["qty"], r["avg_price"]) for r in rows} for s, rows in held.rows()
    }
    checked = 0
    for row in ref.daily.iter_rows(named=True):
        session = row["session"].isoformat()
        expected = positions.get(row["session"], {})
        for who in (name, ""):  # the deployment's book, the simulated broker's account
            book = books[(session, who)]
            for field in ("cash", "collateral", "buying_power", "equity"):
                assert book[field] == pytest.approx(row[field], abs=CENT), (session, who, field)
            assert book["positions"].keys() == expected.keys(), (session, who)
            for symbol, (qty, avg) in expected.items():
                assert book["positions"][symbol][0] == qty, (session, who, symbol)
                assert book["positions"][symbol][1] == pytest.approx(avg, abs=CENT / 100)
        checked += 1
    assert checked == SESSIONS
    # the scenario went where it was meant to: trades, settlements, collateral reserved
    done = ref.fills
    assert done.filter(pl.col("kind") == "trade").height >= 4
    assert set(done.filter(pl.col("kind") != "trade")["kind"].to_list()) >= SCENARIOS[name][3]
    if name == "covered_call":  # called away: the shares left at the strike
        assert done.filter((pl.col("kind") == "assignment") & (pl.col("symbol") == "SPY")).height
    collateral = {"wheel": 49_500.0, "iron_condor": 1_000.0, "covered_call": 0.0}[name]
    assert ref.daily["collateral"].max() == collateral  # the put; the condor's 10-point width
    # the lake's live P&L folds the same journal through the same accounting
    journal = Journal(live.home / "live" / "journal.sqlite")
    try:
        rows = [vars_of(f) for f in jo.all_fills(journal)]
    finally:
        journal.close()
    spots = chains.group_by("session").agg(pl.col("underlying_price").first().alias("close"))
    closes = pl.concat(
        [
            spots.select(pl.lit("SPY").alias("symbol"), "session", "close"),
            option_marks(tmp_path / "home", START.isoformat()),  # the archived chain mids
        ]
    )
    # the replay trades at the open after the session it decided on, at that session's quotes:
    # book each fill on the session before its own, as the engine does
    sessions = sorted(chains["session"].unique().to_list())
    decided_on = dict(zip(sessions[1:], sessions[:-1], strict=True))
    fills = fills_with_session(pl.DataFrame(rows)).with_columns(
        pl.col("session").replace_strict(decided_on)
    )
    pnl = daily_pnl(fills, closes)
    equity = dict(
        pnl.filter(pl.col("deployment_id") == name)
        .select("session", CAPITAL + pl.col("pnl").cum_sum())
        .rows()
    )
    for session, value in ref.daily.select("session", "equity").rows():
        # before the first fill the lake has no row: the equity is still the capital
        assert equity.get(session, CAPITAL) == pytest.approx(value, abs=CENT), session


def vars_of(fill: jo.FillRow) -> dict[str, Any]:
    return {
        "deployment_id": fill.deployment_id, "symbol": fill.symbol,
        "asset_class": fill.asset_class, "qty": fill.qty, "price": fill.price,
        "ts": fill.ts.astimezone(UTC).isoformat(),
    }  # fmt: skip


# -- the iron condor that live reserved 9,500 for and the backtest 500 --------------------------
PUT_SHORT, PUT_LONG = "SPY240621P00095000", "SPY240621P00090000"
CALL_SHORT, CALL_LONG = "SPY240621C00105000", "SPY240621C00110000"
CONDOR = ((PUT_SHORT, -1.0, 1.20), (PUT_LONG, 1.0, 0.50), (CALL_SHORT, -1.0, 1.10),
          (CALL_LONG, 1.0, 0.40))  # fmt: skip


def test_an_iron_condor_reserves_its_max_loss_in_live_the_sim_and_the_backtest() -> None:
    width = option_requirement([(95.0, False, -1), (90.0, False, 1), (105.0, True, -1),
                                (110.0, True, 1)], 0.0)  # fmt: skip
    assert width == 500.0  # the wider side's width x 100, not the short put's 9,500
    now = datetime(2024, 6, 3, 15, tzinfo=UTC)
    ledger = Ledger.from_fills(
        jo.FillRow(f"e{k}", None, "ic", s, AssetClass.US_OPTION.value, q, px, now)
        for k, (s, q, px) in enumerate(CONDOR)
    )
    book = ledger.book("ic", 10_000.0, {})
    assert book.collateral == 500.0
    assert book.cash == pytest.approx(10_000.0 + 140.0)  # 1.40 net credit
    assert book.buying_power == pytest.approx(10_000.0 + 140.0 - 500.0)
    # the simulated broker fills the same condor as one mleg order and reserves the same
    quotes = {s: quote(px, px, px) for s, _, px in CONDOR}
    broker = SimBroker(quotes.get, SimClock(now), SimConfig(cash=10_000.0))
    legs = tuple(
        Leg(s, Side.BUY if q > 0 else Side.SELL, 1, AssetClass.US_OPTION,
            PositionIntent.BUY_TO_OPEN if q > 0 else PositionIntent.SELL_TO_OPEN)
        for s, q, _ in CONDOR
    )  # fmt: skip
    intent = OrderIntent("ic", legs, 1, OrderType.LIMIT, -1.40)
    broker.submit(OrderTicket("aimp-ic-1", intent, "ic"))
    account = broker.account()
    assert account.cash == pytest.approx(10_140.0)
    assert account.buying_power == pytest.approx(10_140.0 - 500.0)
