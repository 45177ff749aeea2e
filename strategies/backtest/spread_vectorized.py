"""The vectorized form of :class:`~strategies.options.momentum_spreads.MomentumSpreads`: its
trades computed from whole arrays instead of a day loop calling ``decide()``.

The trend (:func:`~strategies.options.momentum_spreads.trend_direction`) and the vol-filter
sizes are computed for every session at once; each trade's legs are selected with the same
functions ``decide()`` uses, and its exit is the first later session where both legs are quoted
and the trend differs from the trade's or days to expiry reached ``exit_dte`` (else its expiry's
settlement), found with one vectorized search over the legs' quotes. A sweep gets the trades of
a point without stepping the engine; tests prove they are the engine's trades, order for order.

Covered: trend and DTE exits, expiry, vol filters and premium sizing, decisions during the
session (the engine's default ``decision_time``). Profit target, stop loss and the book-level
risk gates depend on fills and the book: such a config raises ValueError (run the engine).
"""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import polars as pl

from strategies.backtest.archive import ChainArchive
from strategies.options.chain import OptionChainView
from strategies.options.momentum_spreads import MomentumSpreadsConfig, spread_legs, trend_direction
from strategies.options.vol_features import features_by_session

TRADE_SCHEMA = {
    "entry_session": pl.Date,
    "exit_session": pl.Date,
    "exit_kind": pl.String,  # close | expiry | open (still held at the end)
    "direction": pl.Int8,
    "contracts": pl.Int64,
    "long": pl.String,
    "short": pl.String,
}
_UNSUPPORTED = ("profit_target", "stop_loss", "max_drawdown", "max_abs_delta")


def _session_directions(
    cfg: MomentumSpreadsConfig, sessions: tuple[date, ...], bars: pl.DataFrame
) -> np.ndarray:
    """The trend each session's decision sees (its history's last close, as ``decide()``)."""
    mine = bars.filter(pl.col("symbol") == cfg.underlying).sort("session")
    close = mine.get_column("close").to_numpy().astype(np.float64)
    direction = trend_direction(close, cfg.lookback, cfg.threshold, cfg.trend)
    bar_days = mine.get_column("session").cast(pl.Date).to_numpy()
    last = np.searchsorted(bar_days, np.array(sessions, dtype="datetime64[D]"), side="right") - 1
    return np.where(last >= 0, direction[np.maximum(last, 0)], 0).astype(np.int8)


def _has_chain(archive: ChainArchive, underlying: str) -> np.ndarray:
    """Per archive session: the underlying has chain rows (``decide()`` needs its chain)."""
    if underlying not in archive.underlyings:
        return np.zeros(len(archive.sessions), dtype=bool)
    rows = np.flatnonzero(archive.cols["und"] == archive.underlyings.index(underlying))
    days = np.searchsorted(archive.day_start, rows, side="right") - 1
    return np.bincount(days, minlength=len(archive.sessions)) > 0


def _leg_quoted(
    archive: ChainArchive, contracts: tuple[str, str], first: int, last: int
) -> np.ndarray:
    """Per archive session in ``[first, last]``: both contracts quoted with a finite mid
    (``close_intent``'s need); False elsewhere."""
    out = np.zeros(len(archive.sessions), dtype=bool)
    if first > last:
        return out
    lo, hi = int(archive.day_start[first]), int(archive.day_start[last + 1])
    names = archive.frame.get_column("contract").slice(lo, hi - lo)
    rows = np.flatnonzero(names.is_in(list(contracts)).to_numpy()) + lo
    rows = rows[np.isfinite(archive.cols["mid"][rows])]
    days = np.searchsorted(archive.day_start, rows, side="right") - 1
    return np.bincount(days, minlength=out.size) == 2


def momentum_spread_trades(
    cfg: MomentumSpreadsConfig,
    archive: ChainArchive | pl.DataFrame,
    bars: pl.DataFrame,
    vol_features: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The trades of ``cfg`` over ``archive`` (columns :data:`TRADE_SCHEMA`).

    Args:
        cfg: The family's config (no profit target, stop loss or book risk gates).
        archive: The chain archive the engine would run on.
        bars: Daily bars (``session``, ``symbol``, ``close``) the engine's snapshots hold.
        vol_features: The feature frame the engine would get (None: no features).

    Raises:
        ValueError: ``cfg`` uses an exit or gate this form does not model.
    """
    used = [name for name in _UNSUPPORTED if getattr(cfg, name) is not None]
    if used:
        raise ValueError(
            f"the vectorized momentum spread backtest does not model {used}; set them to None "
            "or run the options engine (run_options_backtest)"
        )
    if isinstance(archive, pl.DataFrame):
        archive = ChainArchive.from_frame(archive)
    sessions = archive.sessions
    direction = _session_directions(cfg, sessions, bars)
    feats = features_by_session(vol_features) if vol_features is not None else {}
    size = np.array(
        [cfg.entry_contracts(feats.get(s, {}).get(cfg.underlying), cfg.contracts) for s in sessions]
    )
    has_chain = _has_chain(archive, cfg.underlying)
    candidates = np.flatnonzero((direction != 0) & (size > 0) & has_chain)
    days = np.array([(s - date(1970, 1, 1)).days for s in sessions])
    trades: list[tuple] = []
    free_from = 0  # the first session a new trade may open (flat by then)
    for day in candidates:
        if day < free_from:
            continue
        d = int(direction[day])
        legs = spread_legs(OptionChainView(archive.chains(int(day))[cfg.underlying]), cfg, d)
        if legs is None:
            continue
        long, short = legs
        expiry = (long.expiry - date(1970, 1, 1)).days
        later = np.arange(len(sessions)) > day
        rule = direction != d
        if cfg.exit_dte is not None:
            rule |= (expiry - days) <= cfg.exit_dte
        listed = int(np.searchsorted(days, expiry, side="right")) - 1  # no quotes after expiry
        quoted = _leg_quoted(archive, (long.contract, short.contract), int(day) + 1, listed)
        closes = np.flatnonzero(later & rule & quoted)
        settles = np.flatnonzero(later & (days >= expiry))
        close_at = int(closes[0]) if closes.size else math.inf
        settle_at = int(settles[0]) if settles.size else math.inf
        end = min(close_at, settle_at)
        kind = "open" if end == math.inf else ("close" if close_at <= settle_at else "expiry")
        exit_session = None if end == math.inf else sessions[int(end)]
        trades.append(
            (sessions[day], exit_session, kind, d, int(size[day]), long.contract, short.contract)
        )
        free_from = len(sessions) if end == math.inf else int(end) + 1
    return pl.DataFrame(trades, schema=TRADE_SCHEMA, orient="row")
