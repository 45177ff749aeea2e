"""Synthetic 1-minute and daily bars for one session, built on ``synthetic_market`` daily paths."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.lake.tables import BAR_COLUMNS, empty_bars
from alpaca_improved_pipelines.sources.synthetic_market import daily_path, path_index, profile, rng

HALT_PROBABILITY = 0.01  # per symbol-session: a 5-30 minute trading halt (missing bars)
MISSING_MINUTE_PROBABILITY = 0.05  # per symbol-session: one minute with no trades
AVG_TRADE_SIZE = 120.0


def _u_shape(x: np.ndarray, open_weight: float, close_weight: float) -> np.ndarray:
    return 1.0 + open_weight * np.exp(-x * 12.0) + close_weight * np.exp(-(1.0 - x) * 10.0)


def _round_prices(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 1.0, np.round(x, 2), np.round(x, 4))


def minute_arrays(seed: int, symbol: str, session: dt.date) -> dict[str, np.ndarray]:
    """The minute bars of ``symbol`` on ``session`` as column arrays (before dropping halts)."""
    i = path_index(session)
    path = daily_path(seed, symbol)
    opn, cls = cal.session_open_close(session)
    n = int((cls - opn).total_seconds() // 60)
    g = rng(seed, symbol, "minute", counter=i << 128)
    x = (np.arange(n) + 0.5) / n
    w = _u_shape(x, 2.0, 1.0)
    w_cum = np.cumsum(w) / w.sum()
    day_open, day_close = path.open[i], path.close[i]
    target = np.log(day_close / day_open)
    step_sd = path.intraday_sigma[i] * np.sqrt(w / w.sum())
    brownian = np.cumsum(g.standard_normal(n) * step_sd)
    log_px = brownian - w_cum * (brownian[-1] - target)  # bridge: ends exactly at the close
    close = day_open * np.exp(log_px)
    open_ = np.concatenate(([day_open], close[:-1]))
    wick = np.abs(g.standard_normal((2, n))) * 0.35 * step_sd
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    vol_w = _u_shape(x, 3.0, 2.5)
    volume = np.maximum(
        np.round(path.volume[i] * vol_w / vol_w.sum() * np.exp(0.35 * g.standard_normal(n))), 1.0
    )
    trades = np.maximum(np.round(volume / (AVG_TRADE_SIZE * np.exp(0.2 * g.standard_normal(n)))), 1)
    open_, high, low, close = (_round_prices(a) for a in (open_, high, low, close))
    high = np.maximum.reduce([high, open_, close])
    low = np.minimum.reduce([low, open_, close])
    vwap = np.clip((high + low + close) / 3.0 * (1 + 1e-4 * g.standard_normal(n)), low, high)
    keep = np.ones(n, dtype=bool)
    if g.random() < HALT_PROBABILITY:
        start = int(g.integers(30, n - 60))
        keep[start : start + int(g.integers(5, 31))] = False
    if g.random() < MISSING_MINUTE_PROBABILITY:
        keep[int(g.integers(1, n - 1))] = False
    ts = opn.value + np.arange(n, dtype=np.int64) * 60_000_000_000
    return {
        "ts": ts[keep],
        "open": open_[keep],
        "high": high[keep],
        "low": low[keep],
        "close": close[keep],
        "volume": volume[keep],
        "vwap": np.round(vwap[keep], 4),
        "trade_count": trades[keep].astype(np.int64),
    }


def _frame(symbol: str, session: dt.date, cols: dict[str, np.ndarray]) -> pl.DataFrame:
    n = cols["ts"].size
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "ts": pl.Series(cols["ts"], dtype=pl.Int64).cast(pl.Datetime("ns", "UTC")),
            "session": pl.Series([session] * n, dtype=pl.Date),
            **{k: cols[k] for k in ("open", "high", "low", "close", "volume", "vwap")},
            "trade_count": cols["trade_count"],
            "source": ["synthetic"] * n,
            "adjustment": ["raw"] * n,
            "filled": [False] * n,
        }
    ).select(BAR_COLUMNS)


def minute_bars(seed: int, symbols: tuple[str, ...], session: dt.date) -> pl.DataFrame:
    """1-minute bars for ``symbols`` on ``session`` (sorted by symbol, ts)."""
    cal.require_session(session, "session")
    frames = []
    for sym in sorted(symbols):
        profile(sym)
        frames.append(_frame(sym, session, minute_arrays(seed, sym, session)))
    return pl.concat(frames) if frames else empty_bars()


def daily_bars(seed: int, symbols: tuple[str, ...], session: dt.date) -> pl.DataFrame:
    """Daily bars aggregated from the minute bars, stamped 00:00 New York like the vendors."""
    minute = minute_bars(seed, symbols, session)
    stamp = cal.midnight_new_york(session)
    return (
        minute.group_by("symbol", maintain_order=True)
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            ((pl.col("vwap") * pl.col("volume")).sum() / pl.col("volume").sum())
            .round(4)
            .alias("vwap"),
            pl.col("trade_count").sum(),
        )
        .with_columns(
            pl.lit(stamp).cast(pl.Datetime("ns", "UTC")).alias("ts"),
            pl.lit(session).alias("session"),
            pl.lit("synthetic").alias("source"),
            pl.lit("raw").alias("adjustment"),
            pl.lit(False).alias("filled"),
        )
        .select(BAR_COLUMNS)
    )
