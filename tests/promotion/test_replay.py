"""A replay of past sessions through the live runner in sim reproduces the backtest's orders,
and the live-vs-backtest drift report measures tracking error.

Real components throughout: a lake of synthetic daily bars, deployment manifests the runner
validates, the runner (clock, snapshots, decide(), risk engine, order manager, SQLite journal,
simulated broker), vectorbt for the backtest, and a Dagster instance for the assets.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.backtesting.reference import (
    compare_orders,
    deployment_reference,
    tracking_error,
)
from alpaca_improved_pipelines.defs.monitoring.assets import live_results
from alpaca_improved_pipelines.defs.monitoring.replay import live_replay
from alpaca_improved_pipelines.lake import storage
from live.brokers.sim_state import SimConfig
from live.deployments.manifests import write_manifest
from live.replay import ReplayResult, replay
from research import lakehouse
from tests.live.helpers import OPTIONS_COSTS, SIGNAL_COSTS, limits
from tests.research.conftest import SYMBOLS, quiet, resources_for

START, END = dt.date(2024, 9, 3), dt.date(2024, 11, 29)
MANIFESTS = {
    "rsi": {"strategy": "rsi_reversion", "params": {"window": 7, "lower": 40.0, "upper": 60.0}},
    "mac": {"strategy": "ma_crossover", "params": {"fast": 3, "slow": 10}},
}


def deploy(home: Path, name: str) -> dict:
    spec = MANIFESTS[name]
    manifest = {
        "manifest_id": f"test-{name}",
        "strategy": spec["strategy"],
        "interface_version": 1,
        "params": {**spec["params"], "symbols": list(SYMBOLS)},
        "capital": 100_000.0,
        "risk_limits": limits(),
        "costs": SIGNAL_COSTS,
    }
    write_manifest(home / "live" / "deployments", name, manifest)
    return manifest


@pytest.fixture
def home(year_home: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "home"
    shutil.copytree(year_home / "lake", dst / "lake")
    return dst


def live_frame(result: ReplayResult, name: str) -> pl.DataFrame:
    rows = [{k: v for k, v in o.items() if k != "legs"} for o in result.orders]
    return pl.DataFrame(rows).filter(pl.col("deployment_id") == name)


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_replay_reproduces_the_backtest_orders(home: Path, name: str) -> None:
    manifest = deploy(home, name)
    result = replay(home, START, END)
    # the runner decided once on every session of the window (holidays included in the sim's
    # weekday clock never add or lose a session)
    with sqlite3.connect(result.home / "live" / "journal.sqlite") as con:
        decided = [r[0] for r in con.execute("SELECT session FROM decisions ORDER BY 1")]
    assert decided == [s.isoformat() for s in cal.sessions_between(START, END)]
    live = live_frame(result, name)
    ref = deployment_reference(home, manifest, START, END)
    cmp = compare_orders(live, ref.orders)
    assert ref.orders.height >= 6  # enough trading for the comparison to mean something
    assert cmp["match"].to_list() == ["both"] * ref.orders.height, cmp
    # same fill prices: the sim fills at the previous close plus 5 bps, as the backtest does
    assert cmp["price_diff_bps"].abs().max() < 0.01
    # whole shares from the shared equity; close to the backtest's fractional per-symbol shares
    assert (cmp["live_qty"] == cmp["live_qty"].round()).all()
    ratio = cmp["live_qty"] / cmp["backtest_qty"]
    assert ratio.min() > 0.85 and ratio.max() < 1.15, cmp
    # every round trip closes the position it opened
    held = live.with_columns(
        pl.when(pl.col("side") == "buy").then(pl.col("filled_qty")).otherwise(-pl.col("filled_qty"))
    )
    assert held.group_by("symbol").agg(pl.col("filled_qty").sum())["filled_qty"].min() >= 0


def test_a_rejected_symbol_shows_as_missing_orders(home: Path) -> None:
    manifest = deploy(home, "rsi")
    result = replay(home, START, END, sim=SimConfig(reject_symbols=frozenset({"AAPL"})))
    cmp = compare_orders(
        live_frame(result, "rsi"), deployment_reference(home, manifest, START, END).orders
    )
    missing = cmp.filter(pl.col("match") == "backtest_only")
    assert missing.height > 0 and set(missing["symbol"]) == {"AAPL"}
    assert set(cmp.filter(pl.col("symbol") != "AAPL")["match"]) == {"both"}


def test_compare_orders_flags_an_extra_live_order() -> None:
    day = dt.date(2024, 3, 1)
    live = pl.DataFrame(
        {
            "session": [day.isoformat()] * 2,
            "symbol": ["SPY", "XOM"],
            "side": ["buy", "buy"],
            "qty": [10.0, 5.0],
            "filled_qty": [10.0, 5.0],
            "avg_price": [100.0, 50.0],
            "status": ["filled"] * 2,
        }  # fmt: skip
    )
    backtest = pl.DataFrame(
        {"session": [day], "symbol": ["SPY"], "side": ["buy"], "size": [10.2], "price": [100.0]}
    )
    cmp = compare_orders(live, backtest)
    assert dict(zip(cmp["symbol"], cmp["match"], strict=True)) == {
        "SPY": "both",
        "XOM": "live_only",
    }
    # an order that never filled is not a live order
    unfilled = live.with_columns(pl.lit(0.0).alias("filled_qty"))
    assert compare_orders(unfilled, backtest)["match"].to_list() == ["backtest_only"]


def test_tracking_error_definition() -> None:
    sessions = [dt.date(2024, 1, d) for d in (2, 3, 4, 5)]
    bt = pl.DataFrame({"session": sessions, "ret": [0.01, -0.02, 0.005, 0.0]})
    same = tracking_error(bt, bt)
    assert same["tracking_error"] == 0.0 and same["correlation"] == pytest.approx(1.0)
    live = bt.with_columns(pl.col("ret") + pl.Series([0.001, -0.001, 0.001, -0.001]))
    te = tracking_error(live, bt)
    assert te["tracking_error"] == pytest.approx(
        np.std([1, -1, 1, -1], ddof=1) * 1e-3 * np.sqrt(252)
    )
    assert te["live_return"] == pytest.approx(np.prod(1 + live["ret"].to_numpy()) - 1)


def _drift(home: Path, result: ReplayResult) -> dict:
    """Install the replay's journal as the home's journal; live_results' drift row."""
    shutil.copy2(result.home / "live" / "journal.sqlite", home / "live" / "journal.sqlite")
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [live_results], resources=resources_for(home), instance=instance, run_config=quiet()
        )
    assert res.success
    meta = res.asset_materializations_for_node("live_results")[0].metadata
    assert "tracking_error" in meta["drift"].value
    (row,) = meta["drift_rows"].value
    return row


def test_drift_report_tracking_error_against_the_backtest(home: Path) -> None:
    manifest = deploy(home, "rsi")
    drift = _drift(home, replay(home, START, END))
    good = drift["tracking_error"]
    # fills against the close of the decision session: exactly the sim's 5 bps
    assert drift["slippage_bps_mean"] == pytest.approx(5.0, abs=0.01)
    assert drift["fill_rate"] == 1.0
    # independent recomputation: live returns from the live_pnl view (DuckDB window sums),
    # backtest returns from vectorbt's portfolio value
    con = lakehouse.connect(home)
    live = con.sql(
        "SELECT session, pnl / (100000 + coalesce(sum(pnl) OVER (ORDER BY session ROWS BETWEEN "
        "UNBOUNDED PRECEDING AND 1 PRECEDING), 0)) AS ret FROM live_pnl "
        "WHERE deployment_id = 'rsi' ORDER BY session"
    ).pl()
    first = con.execute("SELECT min(session) FROM live_orders WHERE deployment_id = 'rsi'")
    ref = deployment_reference(home, manifest, first.fetchone()[0], live["session"].max())
    aligned = ref.returns.join(live, on="session", how="left", suffix="_live").fill_null(0.0)
    expected = np.std((aligned["ret_live"] - aligned["ret"]).to_numpy(), ddof=1) * np.sqrt(252)
    assert good == pytest.approx(expected, rel=1e-4)
    assert 0 < good < 0.05  # same orders; whole shares, fees and sizing: a small tracking error
    # a broker that rejects one symbol makes the live book drift from the backtest
    rejecting = SimConfig(reject_symbols=frozenset({"AAPL"}))
    bad = _drift(home, replay(home, START, END, sim=rejecting))
    assert bad["tracking_error"] > 2 * good
    assert bad["fill_rate"] < 1.0


def test_live_replay_asset_passes_its_check_and_writes_the_lake(home: Path) -> None:
    deploy(home, "rsi")
    # an options deployment without archived chains: nothing to trade, live or in the engine
    wheel = {"manifest_id": "w", "strategy": "wheel", "interface_version": 1,
             "params": {"underlying": "SPY"}, "capital": 100_000.0, "risk_limits": limits(),
             "costs": OPTIONS_COSTS}  # fmt: skip
    write_manifest(home / "live" / "deployments", "wheel", wheel)
    # a stale row from an older replay of this window is replaced, not kept
    stale = pl.DataFrame({"session": [START], "symbol": ["OLD"], "match": ["live_only"]})
    storage.write_partition(stale, home / "lake", "live_replay", START, fsync=False)
    cfg = {"ops": {"live_replay": {"config": {"start": START.isoformat(), "end": END.isoformat()}}}}
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [live_replay], resources=resources_for(home), instance=instance, run_config=quiet(cfg)
        )
    assert res.success
    (check,) = res.get_asset_check_evaluations()
    assert check.passed, check.metadata
    meta = res.asset_materializations_for_node("live_replay")[0].metadata
    summary = meta["orders"].value
    assert summary["wheel"] == {"both": 0, "live_only": 0, "backtest_only": 0}
    assert meta["skipped"].value == {}
    rsi = summary["rsi"]
    assert rsi["both"] >= 6 and rsi["live_only"] == rsi["backtest_only"] == 0
    con = lakehouse.connect(home)
    rows = con.execute("SELECT match, count(*) FROM live_replay GROUP BY 1").fetchall()
    assert rows == [("both", rsi["both"])]


def test_live_run_until_decides_every_session_in_the_window(home: Path) -> None:
    import subprocess
    import sys

    deploy(home, "rsi")
    first, last = dt.date(2024, 12, 20), dt.date(2024, 12, 31)
    start = dt.datetime.combine(first, dt.time(16, 30), cal.NEW_YORK).isoformat()
    base = [sys.executable, "-m", "live.cli", "run", "--home", str(home),
            "--cycle-seconds", "86400", "--sim-start", start]  # fmt: skip
    bad = subprocess.run([*base, "--until", "2025-01-02T09:31"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--until '2025-01-02T09:31' needs a UTC offset" in bad.stderr
    until = dt.datetime(2025, 1, 2, 9, 31, tzinfo=cal.NEW_YORK).isoformat()
    run = subprocess.run([*base, "--until", until], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    with sqlite3.connect(home / "live" / "journal.sqlite") as con:
        decided = [r[0] for r in con.execute("SELECT session FROM decisions ORDER BY 1")]
    # Christmas and New Year's Day are closed: every session decided once, at the next open
    assert decided == [s.isoformat() for s in cal.sessions_between(first, last)]


def test_live_replay_holds_an_options_deployment_to_the_options_engine(home: Path) -> None:
    days = deploy_wheel_on_chains(home)
    window = {"start": days[0].isoformat(), "end": days[-1].isoformat()}
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [live_replay],
            resources=resources_for(home),
            instance=instance,
            run_config=quiet({"ops": {"live_replay": {"config": window}}}),
        )
    assert res.success
    (check,) = res.get_asset_check_evaluations()
    meta = res.asset_materializations_for_node("live_replay")[0].metadata
    summary = meta["orders"].value["wheel"]
    assert check.passed, (summary, check.metadata)
    assert summary["both"] >= 10 and summary["live_only"] == summary["backtest_only"] == 0
    con = lakehouse.connect(home)
    worst = con.execute("SELECT max(abs(price_diff_bps)) FROM live_replay WHERE match = 'both'")
    assert worst.fetchone()[0] < 1.0  # the same fill model on both sides


def test_drift_report_tracks_an_options_deployment_against_the_engine(home: Path) -> None:
    days = deploy_wheel_on_chains(home)
    drift = _drift(home, replay(home, days[0], days[-1]))
    assert drift["deployment_id"] == "wheel" and drift["tracking_note"] == ""
    assert drift["te_sessions"] == 60 and drift["fill_rate"] == 1.0
    # same orders and prices, options marked at the same mids: only the engine's regulatory
    # fees (the sim charges none) and the runner's next-morning fills separate them
    assert 0 < drift["tracking_error"] < 0.005
    assert drift["live_return"] == pytest.approx(drift["backtest_return"], abs=5e-4)
    assert drift["live_return"] > drift["backtest_return"]  # no fees live
    assert drift["correlation"] > 0.99


def deploy_wheel_on_chains(home: Path) -> list[dt.date]:
    """60 sessions of synthetic SPY chains in the lake (the option_chains layout) and a wheel
    deployment; returns the chain sessions."""
    from strategies.backtest.synthetic import synthetic_chains
    from tests.live.test_replay_options import PARAMS, lake_layout

    chains = synthetic_chains("SPY", dt.date(2024, 9, 3), 60, seed=11, s0=500.0, strike_step=5.0)
    days = sorted(chains["session"].unique().to_list())
    for day in days:
        part = lake_layout(chains.filter(pl.col("session") == day))
        storage.write_partition(part, home / "lake", "option_chains", day, fsync=False)
    wheel = {"manifest_id": "w", "strategy": "wheel", "interface_version": 1, "params": PARAMS,
             "capital": 100_000.0, "risk_limits": limits(), "costs": OPTIONS_COSTS}  # fmt: skip
    write_manifest(home / "live" / "deployments", "wheel", wheel)
    return days
