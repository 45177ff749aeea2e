"""The backtest a live deployment is held to: one vectorbt run of its family and params over a
window, starting flat, and the comparisons against what the live runner did.

``reference_backtest`` computes the signals on the whole history (the indicators warm up on the
sessions before the window, as the live snapshots do) and keeps only the window's signals, so the
backtest starts flat on the window's first session exactly like a fresh deployment. Its orders
are vectorbt's order records (filled at the session close with the costs the manifest records:
those of the sweep that selected the strategy); its daily returns are the portfolio's (equal
capital per symbol, as the sweeps).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from alpaca_improved_pipelines.backtesting.data import (
    CloseMatrix,
    GatedCloseMatrix,
    load_closes,
    with_intraday_features,
)
from alpaca_improved_pipelines.backtesting.families import family
from alpaca_improved_pipelines.errors import ConfigError
from contracts import paths
from contracts.greeks import LAKE_THETA_UNIT, LAKE_VEGA_UNIT
from contracts.manifest import (
    DeploymentManifest,
    OptionsCosts,
    SignalCosts,
    parse_manifest,
    read_manifest,
)
from strategies.equity.intraday_gate import OFF, DailyInputs

ORDER_KEY = ["session", "symbol", "side"]


@dataclass(frozen=True)
class Reference:
    """Orders (``session, symbol, side, size, price``) and daily returns (``session, ret``)."""

    orders: pl.DataFrame
    returns: pl.DataFrame


def reference_backtest(
    strategy: str,
    params: dict[str, Any],
    data: CloseMatrix,
    start: dt.date,
    end: dt.date,
    *,
    init_cash: float = 100_000.0,
    fees: float,
    slippage: float,
) -> Reference:
    """vectorbt ``from_signals`` of ``strategy(params)`` trading only on sessions in
    ``[start, end]`` (flat before), with signals computed on all of ``data``, charging ``fees``
    (fraction of each fill's notional) and ``slippage`` (fraction of price) as a sweep does.

    ``params`` may name ``symbols`` (a subset of ``data.symbols``); the other keys are the
    family's parameters (``allocation`` is ignored: the sweeps invest each symbol's share fully).
    """
    import vectorbt as vbt

    if family(strategy).timeframe != "1d":  # orders here are keyed by session: one per day
        raise ConfigError(
            f"{strategy} trades minute bars; its reference backtest is not built yet (compare "
            "its live round trips with the sweep's trades.parquet entry_ts/exit_ts instead)"
        )
    symbols = list(params.get("symbols") or data.symbols)
    missing = sorted(set(symbols) - set(data.symbols))
    if missing:
        raise ConfigError(f"symbols {missing} are not in the lake's stock_bars_1d; backfill them")
    cols = [data.symbols.index(s) for s in symbols]
    close = data.close[:, cols]
    point = {k: v for k, v in params.items() if k not in ("symbols", "allocation")}
    inputs: object = close
    if isinstance(data, GatedCloseMatrix):  # an intraday-gated variant reads the features too
        inputs = DailyInputs(close, data.intraday.columns(cols))
    entries, exits = family(strategy).signals(point, symbols, inputs)
    sessions = np.array(data.sessions)
    inside = (sessions >= start) & (sessions <= end)
    if not inside.any():
        raise ConfigError(f"no lake sessions between {start} and {end}")
    entries = entries & inside[:, None]
    exits = exits & inside[:, None]
    pf = vbt.Portfolio.from_signals(
        close,
        entries,
        exits,
        fees=fees,
        slippage=slippage,
        freq="1D",
        init_cash=init_cash / len(symbols),
    )
    rec = pf.orders.records
    orders = pl.DataFrame(
        {
            "session": [data.sessions[i] for i in rec["idx"]],
            "symbol": [symbols[c] for c in rec["col"]],
            "side": ["buy" if s == 0 else "sell" for s in rec["side"]],
            "size": np.asarray(rec["size"], dtype=np.float64),
            "price": np.asarray(rec["price"], dtype=np.float64),
        },
        schema={
            "session": pl.Date,
            "symbol": pl.String,
            "side": pl.String,
            "size": pl.Float64,
            "price": pl.Float64,
        },
    ).sort(ORDER_KEY)
    value = (np.asarray(pf.cash()) + np.asarray(pf.asset_value())).sum(axis=1)
    prev = np.concatenate([[init_cash], value[:-1]])
    returns = pl.DataFrame({"session": data.sessions, "ret": value / prev - 1.0}).filter(
        pl.col("session").is_between(start, end)
    )
    return Reference(orders, returns)


def deployment_reference(
    home: Path,
    manifest: DeploymentManifest | Mapping[str, Any],
    start: dt.date,
    end: dt.date,
) -> Reference:
    """The backtest of a deployment manifest over the lake of ``home`` with the manifest's
    capital and costs (those of the sweep that selected it): :func:`options_reference` for
    options families, else :func:`reference_backtest` (ValueError for a family with neither,
    or a manifest that does not validate)."""
    m = as_manifest(manifest)
    if is_options_family(m.strategy):
        return options_reference(home, m, start, end)
    if not isinstance(m.costs, SignalCosts):
        raise ConfigError(f"{m.manifest_id}: {m.strategy} needs signal costs, has {m.costs.kind}")
    symbols = list(m.params.get("symbols") or []) or None
    data = load_closes(paths.lake_dir(home), end=end, symbols=symbols)
    if m.params.get("intraday_gate", OFF) != OFF:  # the variant gates on intraday features
        data = with_intraday_features(paths.lake_dir(home), data)
    return reference_backtest(
        m.strategy,
        m.params,
        data,
        start,
        end,
        init_cash=m.capital,
        fees=m.costs.fees,
        slippage=m.costs.slippage,
    )


def as_manifest(manifest: DeploymentManifest | Mapping[str, Any]) -> DeploymentManifest:
    """A manifest, validating a mapping (e.g. a journal's ``manifest_json``)."""
    if isinstance(manifest, DeploymentManifest):
        return manifest
    return parse_manifest(manifest, str(manifest.get("manifest_id", "manifest")))


LEG_SCHEMA = {"session": pl.Date, "symbol": pl.String, "side": pl.String, "size": pl.Float64,
              "price": pl.Float64}  # fmt: skip


def is_options_family(strategy: str) -> bool:
    """Whether ``strategy`` is an options family (held to the options engine)."""
    from strategies.base import get_strategy_class
    from strategies.options.common import OptionStrategy

    try:
        return issubclass(get_strategy_class(strategy), OptionStrategy)
    except (KeyError, ValueError):
        return False


def options_reference(
    home: Path, manifest: DeploymentManifest, start: dt.date, end: dt.date
) -> Reference:
    """The options engine on an options deployment over the lake's archived chains in
    ``[start, end]``: trade legs as orders (``session, symbol, side, size, price``) and daily
    equity returns. It decides after each close as the live runner does (``decision_time``
    16:30: that day's expiries settled first) with the manifest's costs (the research
    backtest's fill fraction and fees; mid +/- 25% of the spread is also the simulated broker's
    fill model); sessions without chains are flat (nothing to trade on, live or here)."""
    from alpaca_improved_pipelines.defs.research.options_backtest import (
        load_chain_archive,
        load_vol_features,
    )
    from strategies.backtest import run_options_backtest
    from strategies.base import create_strategy

    if not isinstance(manifest.costs, OptionsCosts):
        raise ConfigError(f"{manifest.manifest_id}: {manifest.strategy} needs options costs")
    strategy = create_strategy(manifest.strategy, dict(manifest.params))
    underlying = getattr(strategy.config, "underlying", None) or "SPY"
    flat = Reference(
        pl.DataFrame(schema=LEG_SCHEMA),
        pl.DataFrame(schema={"session": pl.Date, "ret": pl.Float64}),
    )
    try:
        chains, bars, _ = load_chain_archive(paths.lake_dir(home), underlying)
    except ConfigError:  # no archived chains: the runner had none to trade on either
        return flat
    inside = chains.filter(pl.col("session").is_between(start, end))
    if inside.is_empty():
        return flat
    capital = manifest.capital
    config = manifest.costs.backtest_config(
        initial_cash=capital, vega_unit=LAKE_VEGA_UNIT, theta_unit=LAKE_THETA_UNIT,
        decision_time=dt.time(16, 30),
    )  # fmt: skip
    features = load_vol_features(paths.lake_dir(home), underlying, bars)
    result = run_options_backtest(
        strategy, chains, config, bars=bars, start=start, end=end, vol_features=features
    )
    legs = (
        result.fills.filter(pl.col("kind") == "trade")
        .select("session", "symbol", "side", pl.col("qty").alias("size"), "price")
        .cast(LEG_SCHEMA)  # type: ignore[arg-type]
        .sort(ORDER_KEY)
    )
    daily = result.daily.select("session", "equity").sort("session")
    returns = daily.select(
        pl.col("session").cast(pl.Date),
        (pl.col("equity") / pl.col("equity").shift(1).fill_null(capital) - 1.0).alias("ret"),
    )
    return Reference(legs, returns)


def live_legs(orders: list[dict[str, Any]]) -> pl.DataFrame:
    """Replay orders (``live.replay.replay_orders`` rows) as filled legs (``session, symbol,
    side, filled_qty, avg_price``; a spread's legs carry no price of their own)."""
    rows = [
        {
            "session": o["session"],
            "symbol": symbol,
            "side": side,
            "filled_qty": o["filled_qty"] * ratio,
            "avg_price": o["avg_price"] if len(o["legs"]) == 1 else None,
        }
        for o in orders
        if o["filled_qty"] > 0
        for symbol, side, ratio in o["legs"]
    ]
    schema = {"session": pl.String, "symbol": pl.String, "side": pl.String,
              "filled_qty": pl.Float64, "avg_price": pl.Float64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def compare_orders(live: pl.DataFrame, backtest: pl.DataFrame) -> pl.DataFrame:
    """Live orders (``session, symbol, side, qty, filled_qty, avg_price, status``) against the
    backtest's (``session, symbol, side, size, price``), one row per order key with
    ``match`` = ``both`` | ``live_only`` | ``backtest_only``.

    A live order counts only when it reached the broker and filled at least partly: an order the
    risk engine or the broker rejected is a missing order, as the backtest assumed it traded.
    """
    session = pl.col("session")
    if live.schema.get("session") == pl.String:
        session = session.str.to_date()
    done = live.filter(pl.col("filled_qty") > 0).select(
        session,
        "symbol",
        "side",
        pl.col("filled_qty").alias("live_qty"),
        pl.col("avg_price").alias("live_price"),
    )
    ref = backtest.select(
        ORDER_KEY + [pl.col("size").alias("backtest_qty"), pl.col("price").alias("backtest_price")]
    )
    out = done.join(ref, on=ORDER_KEY, how="full", coalesce=True)
    return out.with_columns(
        pl.when(pl.col("live_qty").is_null())
        .then(pl.lit("backtest_only"))
        .when(pl.col("backtest_qty").is_null())
        .then(pl.lit("live_only"))
        .otherwise(pl.lit("both"))
        .alias("match"),
        ((pl.col("live_price") / pl.col("backtest_price") - 1.0) * 1e4).alias("price_diff_bps"),
    ).sort(ORDER_KEY)


def tracking_error(live: pl.DataFrame, backtest: pl.DataFrame) -> dict[str, float | int | None]:
    """Annualized tracking error of live daily returns against the backtest's.

    Both frames have ``session, ret``; only sessions present in both count. Returns
    ``sessions, tracking_error`` (sample std of the difference x sqrt(252)),
    ``live_return, backtest_return`` (compounded) and ``correlation`` (None when undefined).
    """
    both = live.select("session", pl.col("ret").alias("live")).join(
        backtest.select("session", pl.col("ret").alias("bt")), on="session", how="inner"
    )
    n = both.height
    if n < 2:
        return {"sessions": n, "tracking_error": None, "live_return": None,
                "backtest_return": None, "correlation": None}  # fmt: skip
    a, b = both["live"].to_numpy(), both["bt"].to_numpy()
    corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else None
    return {
        "sessions": n,
        "tracking_error": float(np.std(a - b, ddof=1) * np.sqrt(252.0)),
        "live_return": float(np.prod(1.0 + a) - 1.0),
        "backtest_return": float(np.prod(1.0 + b) - 1.0),
        "correlation": corr,
    }


def manifests(home: Path) -> dict[str, DeploymentManifest]:
    """Deployment id -> manifest of every ``<home>/live/deployments/*.json`` (ContractError
    naming the file when one does not validate)."""
    directory = paths.deployments_dir(home)
    out = {}
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        m = read_manifest(path)
        out[m.deployment_id or path.stem] = m
    return out
