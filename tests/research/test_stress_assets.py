"""stress_scenarios and factor_attribution materialized on a real temp lake, instance and MLflow."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
import pytest

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.backtesting.research_tables import write_family
from alpaca_improved_pipelines.defs.options.assets import option_chains, vol_surface
from alpaca_improved_pipelines.defs.risk.assets import factor_attribution, stress_scenarios
from alpaca_improved_pipelines.defs.risk.books import candidate_books
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.sources.synthetic_bars import daily_bars
from alpaca_improved_pipelines.tracking.mlflow_store import RunTags, Tracker
from strategies.pricing import bs_price

from .conftest import quiet, resources_for

SESSIONS = cal.sessions_between(dt.date(2024, 1, 2), dt.date(2024, 1, 31))
LAST = SESSIONS[-1]


def _lake(home: Path) -> None:
    for s in SESSIONS:
        bars = daily_bars(7, ("SPY", "AAPL", "XOM"), s)
        storage.write_partition(bars, home / "lake", "stock_bars_1d", s, fsync=False)
    cfg = {"ops": {"option_chains": {"config": {"underlyings": ["SPY"], "american_iv": False}}}}
    tags = {
        "dagster/asset_partition_range_start": SESSIONS[0].isoformat(),
        "dagster/asset_partition_range_end": LAST.isoformat(),
    }
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [option_chains, vol_surface], resources=resources_for(home), instance=instance,
            run_config=quiet(cfg), tags=tags,
        )  # fmt: skip
    assert res.success


@pytest.fixture(scope="module")
def chain_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("stress") / "home"
    _lake(home)
    return home


def _two_contracts(home: Path) -> pl.DataFrame:
    chain = storage.read_file(home / "lake", storage.partition_path(home / "lake", "option_chains",
                                                                    LAST))  # fmt: skip
    chain = chain.filter(pl.col("iv").is_not_null() & (pl.col("dte_days") > 20))
    spot = chain["underlying_price"][0]
    chain = chain.with_columns((pl.col("strike") - spot).abs().alias("dist"))
    put = chain.filter(pl.col("right") == "P").sort("dist").head(1)
    call = chain.filter(pl.col("right") == "C").sort("dist").head(1)
    return pl.concat([put, call])


def _materialize(home: Path, asset: dg.AssetsDefinition, config: dict) -> dict[str, Any]:
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [asset], resources=resources_for(home), instance=instance,
            run_config=quiet({"ops": {asset.key.path[-1]: {"config": config}}}),
        )  # fmt: skip
    assert res.success
    mat = res.asset_materializations_for_node(asset.key.path[-1])[0]
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


def test_live_book_grid_history_lake_mlflow_and_heatmap(chain_home: Path) -> None:
    legs = _two_contracts(chain_home)
    positions = pl.DataFrame(
        {
            "deployment_id": ["dep-a"] * 3,
            "symbol": [*legs["contract"].to_list(), "SPY"],
            "qty": [-3.0, 2.0, 100.0],
            "avg_price": [1.0, 1.0, 470.0],
            "asset_class": ["us_option", "us_option", "us_equity"],
            "updated_at": ["x"] * 3,
        }
    )
    storage.write_partition(positions, chain_home / "lake", "live_positions", LAST, fsync=False)
    windows = f'[{{"name": "jan", "start": "{SESSIONS[3]}", "end": "{SESSIONS[9]}"}}]'
    meta = _materialize(
        chain_home, stress_scenarios, {"window_sessions": 5, "windows_json": windows}
    )
    grid = storage.read_file(
        chain_home / "lake", storage.partition_path(chain_home / "lake", "stress_scenarios", LAST)
    )
    assert grid.height == 21 * 11 and set(grid["book"]) == {"dep-a"}
    assert grid.filter((pl.col("spot_shock") == 0) & (pl.col("vol_points") == 0))["pnl"][0] == 0
    # one cell by hand from the chain rows: qty x 100 x (bs_price shocked - now) + the shares
    cell = grid.filter((pl.col("spot_shock") == -0.1) & (pl.col("vol_points") == 4.0))["pnl"][0]
    s0 = float(storage.read_partitions(chain_home / "lake", "stock_bars_1d", [LAST]).filter(
        pl.col("symbol") == "SPY")["close"][0])  # fmt: skip
    args = (legs["strike"].to_numpy(), legs["t_years"].to_numpy(), legs["rate"].to_numpy())
    now = bs_price(s0, *args, legs["iv"].to_numpy(), legs["dividend_yield"].to_numpy(),
                   legs["right"].to_numpy())  # fmt: skip
    shocked = bs_price(0.9 * s0, *args, legs["iv"].to_numpy() + 0.04,
                       legs["dividend_yield"].to_numpy(), legs["right"].to_numpy())  # fmt: skip
    expected = float(np.array([-300.0, 200.0]) @ (shocked - now)) + 100.0 * (-0.1 * s0)
    assert cell == pytest.approx(expected, rel=1e-10)
    hist = storage.read_file(
        chain_home / "lake", storage.partition_path(chain_home / "lake", "stress_history", LAST)
    )
    assert {"jan", "crash", "vol_spike"} <= set(hist["window"])
    jan = hist.filter(pl.col("window") == "jan")
    assert jan.height == 7 and jan["cumulative"][0] == 0.0
    assert jan["daily"].sum() == pytest.approx(jan["cumulative"][-1], abs=1e-6)
    assert "data:image/png;base64," in meta["heatmaps"]
    assert "dep-a" in meta["books"]
    tracker = Tracker(chain_home)
    run = meta["mlflow_run_id"]
    plots = {a.path for a in tracker.client.list_artifacts(run, "plots")}
    assert {"plots/stress_dep-a.png", "plots/stress_dep-a.html", "plots/windows_dep-a.png"} <= plots
    assert meta["heatmaps"].count("data:image/png;base64,") == 2  # the grid and the windows
    assert run_tags(tracker, run)["data.version.option_chains/session=" + LAST.isoformat()]
    files = {a.path for a in tracker.client.list_artifacts(run)}
    assert {"stress_grid.parquet", "stress_history.parquet"} <= files


def run_tags(tracker: Tracker, run: str) -> dict[str, str]:
    return dict(tracker.client.get_run(run).data.tags)


def _backtest_run(home: Path, legs: pl.DataFrame) -> str:
    """An options backtest's MLflow run as run_options_family logs it (daily, positions,
    attribution) and its backtest_runs row."""
    tracker = Tracker(home)
    run = tracker.start_run("wheel", "wheel SPY", "backtest", RunTags("r", "options_backtest", ""))
    rng = np.random.default_rng(5)
    closes = storage.read_partitions(home / "lake", "stock_bars_1d", SESSIONS).filter(
        pl.col("symbol") == "SPY").sort("session")  # fmt: skip
    bench = closes["close"].to_numpy()
    equity = 100_000.0 * (1.0 + 0.8 * (bench / bench[0] - 1.0)) + rng.normal(0, 50, bench.size)
    daily = pl.DataFrame({"session": SESSIONS, "equity": equity})
    held = pl.DataFrame(
        {
            "session": [LAST],
            "symbol": [legs["contract"][0]],
            "qty": [-2.0],
            "avg_price": [1.0],
            "mark": [1.0],
            "market_value": [-200.0],
        }
    )
    attribution = pl.DataFrame({"session": SESSIONS, "delta": np.ones(len(SESSIONS)),
                                "vega": np.full(len(SESSIONS), -2.0)})  # fmt: skip
    for name, frame in (("daily", daily), ("positions", held), ("attribution", attribution)):
        tracker.log_frame(run, frame, f"{name}.parquet")
    tracker.finish(run)
    rows = pl.DataFrame(  # a sweep's runner-up (rank 2, same window) must not be read
        {"family": ["wheel"] * 2, "rank": [2, 1], "mlflow_run_id": ["not-a-run", run],
         "start": [SESSIONS[0]] * 2, "end": [LAST] * 2}
    )  # fmt: skip
    write_family(home / "lake", "backtest_runs", "wheel", rows)
    return run


def test_backtest_book_and_factor_attribution(chain_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    for name in ("stock_bars_1d", "option_chains", "vol_surface"):
        for s in storage.existing_sessions(chain_home / "lake", name):
            src = storage.partition_path(chain_home / "lake", name, s)
            dst = storage.partition_path(home / "lake", name, s)
            dst.parent.mkdir(parents=True)
            dst.write_bytes(src.read_bytes())
    legs = _two_contracts(chain_home)
    run = _backtest_run(home, legs)
    books = candidate_books(home, Tracker(home))
    assert [(b.name, b.source, b.positions["qty"].to_list()) for b in books] == [
        ("wheel", "backtest", [-2.0])
    ]
    meta = _materialize(home, factor_attribution, {"benchmark": "SPY"})
    assert meta["families"] == 1
    table = storage.read_file(home / "lake", storage.partition_path(home / "lake",
                              "factor_attribution", "wheel"))  # fmt: skip
    value = dict(zip(table["component"].to_list(), table["value"].to_list(), strict=True))
    assert value["beta"] == pytest.approx(0.8 * 100_000.0 / 100_000.0, abs=0.15)
    assert value["vega"] == pytest.approx(-2.0 * len(SESSIONS))
    assert value["n"] == len(SESSIONS) - 1
    logged = {a.path for a in Tracker(home).client.list_artifacts(run)}
    assert "factor_attribution.parquet" in logged
    assert "data:image/png;base64," in meta["greek_split"]
    plots = {a.path for a in Tracker(home).client.list_artifacts(run, "plots")}
    assert "plots/attribution.png" in plots


def test_an_approval_can_set_max_stressed_loss() -> None:
    """The approver sets the optional limit; left unset, the approved limits carry no check."""
    from alpaca_improved_pipelines.defs.promotion.approval import ApprovalConfig, approved_limits

    capped = ApprovalConfig(family="wheel", approver="me", reason="r", max_stressed_loss=2_500.0)
    assert approved_limits(capped, 500.0).max_stressed_loss == 2_500.0
    plain = ApprovalConfig(family="wheel", approver="me", reason="r")
    assert approved_limits(plain, 500.0).max_stressed_loss is None
