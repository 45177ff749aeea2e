"""Intraday VWAP reversion on minute bars: buy a stretch below the session VWAP, sell the return
to it, and be flat a set number of minutes before the session's real close (never overnight).

The indicator is the session's running volume-weighted mean and standard deviation of the bars'
VWAP (West's weighted update, restarted at every open). One compiled kernel computes it with the
entry and exit rules row by row over a :class:`~strategies.equity.intraday.MinutePanel`; the
vectorized backtest runs it over every session of the lake, ``decide()`` over the session's
closed minutes so far, so a live decision on a bar's close is exactly the vectorized signal on
that bar's row.

Time rules, in closed minutes ``c`` since the open of a session of ``n`` minutes (390; 210 on a
half day): entries only while ``warmup <= c <= n - last_entry``; a forced exit once
``c >= n - flat_before`` (on every minute, with or without a new bar, so a position is closed
even if the symbol stops printing). ``decide()`` reads the open and close from
``snapshot.features["session_open"]`` / ``["session_close"]`` (the snapshot has no calendar).

Optional daily-regime gate (``regime_sma``, off by default): entries only on sessions whose
daily regime is up, i.e. the last *closed* daily bar's close is above the SMA of the last
``regime_sma`` daily closes (:func:`~strategies.indicators.timeframes.trend_signal`, read by the
as-of rule of :mod:`strategies.indicators.timeframes`: today's daily bar is still forming, so a
session is gated by the sessions before it). Exits are never gated. The vectorized form takes
the daily closes from the panel's own session closes (the panel's first ``regime_sma`` sessions
stay closed: warm-up); ``decide()`` from ``snapshot.history``; the two agree when the daily bars
are the minute bars' sessions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from numba import njit

from strategies.base import Param, ParamSpace, register_strategy
from strategies.equity.intraday import (
    MinutePanel,
    decision_minute,
    intraday_bars,
    session_bounds,
)
from strategies.equity.signal import SignalStrategy, check_allocation, check_symbols
from strategies.indicators.timeframes import trend_signal
from strategies.models import Book, MarketSnapshot, OrderIntent, Side


@njit(cache=True, nogil=True)
def vwap_reversion_column(
    close: np.ndarray,
    vwap: np.ndarray,
    volume: np.ndarray,
    has_bar: np.ndarray,
    minute: np.ndarray,
    session_minutes: np.ndarray,
    band: float,
    exit_band: float,
    stop: float,
    warmup: int,
    last_entry: int,
    flat_before: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Entries and exits of one symbol's minute column (row ``r`` reads rows ``<= r`` only)."""
    n_rows = close.shape[0]
    entries = np.zeros(n_rows, dtype=np.bool_)
    exits = np.zeros(n_rows, dtype=np.bool_)
    weight = 0.0
    mean = 0.0
    m2 = 0.0
    for r in range(n_rows):
        if minute[r] == 0:  # a new session: the VWAP restarts
            weight = 0.0
            mean = 0.0
            m2 = 0.0
        closed = minute[r] + 1
        n = session_minutes[r]
        if has_bar[r]:
            v = volume[r]
            p = vwap[r]
            if v > 0.0 and math.isfinite(v) and math.isfinite(p):
                weight += v
                delta = p - mean
                mean += v / weight * delta
                m2 += v * delta * (p - mean)
            if weight > 0.0:
                sd = math.sqrt(max(m2 / weight, 0.0))
                px = close[r]
                stopped = stop > 0.0 and px < mean - stop * sd
                in_window = closed >= warmup and closed <= n - last_entry
                entries[r] = in_window and px < mean - band * sd and not stopped
                exits[r] = px >= mean - exit_band * sd or stopped
        if closed >= n - flat_before:
            exits[r] = True
            entries[r] = False
    return entries, exits


@dataclass(frozen=True, slots=True)
class VWAPReversionConfig:
    """Config of :class:`VWAPReversion`.

    Attributes:
        symbols: Traded symbols.
        band: Enter when the close is more than ``band`` session-VWAP standard deviations below
            the VWAP (> 0).
        exit_band: Exit when the close is back within ``exit_band`` deviations below the VWAP
            (0 = at the VWAP, negative = above it); must be < ``band``.
        stop: Exit (and do not enter) below ``stop`` deviations under the VWAP; 0 disables,
            else > ``band``.
        warmup: Closed minutes after the open before the first entry (>= 1).
        last_entry: No new entry within this many minutes of the close (> ``flat_before``).
        flat_before: Exit every position this many minutes before the session's close (>= 1).
        allocation: Fraction of equity split across symbols.
        regime_sma: Daily-regime gate: enter only when the last closed daily close is above
            the SMA of this many daily closes (>= 2); 0 (the default) disables the gate.
    """

    symbols: tuple[str, ...] = ("SPY",)
    band: float = 2.0
    exit_band: float = 0.0
    stop: float = 0.0
    warmup: int = 15
    last_entry: int = 60
    flat_before: int = 15
    allocation: float = 1.0
    regime_sma: int = 0

    def __post_init__(self) -> None:
        check_symbols(self.symbols)
        if not self.band > 0:
            raise ValueError(f"band must be > 0, got {self.band}")
        if not self.exit_band < self.band:
            raise ValueError(f"exit_band must be < band, got {self.exit_band} >= {self.band}")
        if self.stop != 0 and not self.stop > self.band:
            raise ValueError(f"stop must be 0 (off) or > band, got {self.stop}")
        if self.warmup < 1 or self.flat_before < 1:
            raise ValueError(f"warmup and flat_before must be >= 1 minute, got {self}")
        if self.last_entry <= self.flat_before:
            raise ValueError(
                f"last_entry must be > flat_before (entries stop before the forced exit), "
                f"got {self.last_entry} <= {self.flat_before}"
            )
        check_allocation(self.allocation)
        if self.regime_sma != 0 and self.regime_sma < 2:
            raise ValueError(f"regime_sma must be 0 (off) or >= 2 sessions, got {self.regime_sma}")

    def lookback_bars(self) -> int:
        """Sessions of history before the first signal: none, the VWAP restarts every session
        (the daily-regime gate's ``regime_sma`` sessions when it is on)."""
        return self.regime_sma


def daily_regime_up(closes: np.ndarray, n: int) -> np.ndarray:
    """Per daily close: is the regime up after that session, ``close > SMA(n)`` (False during
    the SMA's warm-up). Row ``k`` reads closes ``<= k`` only."""
    if closes.size == 0:
        return np.zeros(0, dtype=np.bool_)
    frame = pl.DataFrame({"symbol": "_", "close": np.asarray(closes, dtype=np.float64)})
    value = frame.select(trend_signal(n).expr()).to_series()
    return (value > 0.0).fill_null(False).to_numpy().astype(np.bool_)


def session_gate(panel: MinutePanel, column: int, n: int) -> np.ndarray:
    """Per panel row: the daily regime of the sessions before the row's session (the as-of
    rule: a session's own daily bar is not closed while it trades)."""
    last = panel.session_last_rows
    up = daily_regime_up(panel.close[last, column], n)  # regime after each complete session
    prior = panel.session_index - 1
    known = (prior >= 0) & (prior < up.size)
    gate = np.zeros(panel.session_index.size, dtype=np.bool_)
    gate[known] = up[prior[known]]
    return gate


@register_strategy
class VWAPReversion(SignalStrategy):
    """Intraday VWAP reversion: buy a stretch below the session VWAP, flat before the close."""

    name = "vwap_reversion"
    config_cls = VWAPReversionConfig
    timeframe = "1m"
    __slots__ = ()

    @classmethod
    def param_space(cls) -> ParamSpace:
        """Band 1.5-2.5 sigmas, exit at or short of the VWAP, warm-up 15/30 minutes, stop
        off/4 sigmas, daily-regime gate off or above the 20-session SMA."""
        return ParamSpace(
            (
                Param("band", values=(1.5, 2.0, 2.5)),
                Param("exit_band", values=(0.0, 0.5)),
                Param("warmup", values=(15, 30)),
                Param("stop", values=(0.0, 4.0)),
                Param("regime_sma", values=(0, 20)),
            ),
            VWAPReversionConfig,
        )

    def column_signals(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Not defined on closes alone: this family reads minute bars (:meth:`signals`)."""
        raise TypeError(f"{self.name} trades minute bars: call signals(MinutePanel)")

    def signals(self, close: Any) -> tuple[np.ndarray, np.ndarray]:
        """Entries and exits, shape ``(rows, symbols)``, over a :class:`MinutePanel` (entries
        gated by the daily regime of the panel's prior sessions when ``regime_sma`` is on)."""
        if not isinstance(close, MinutePanel):
            raise TypeError(f"{self.name} needs a MinutePanel of minute bars, got {type(close)}")
        entries, exits = self.ungated_signals(close)
        if self.config.regime_sma:
            for j in range(entries.shape[1]):
                entries[:, j] &= session_gate(close, j, self.config.regime_sma)
        return entries, exits

    def _regime_up(self, snapshot: MarketSnapshot, symbol: str) -> bool:
        """The daily regime at the decision: of the last daily bar in ``history`` (the
        sessions before today's; a symbol without enough history is not up)."""
        daily = snapshot.history.filter(
            (pl.col("symbol") == symbol) & (pl.col("session") < snapshot.session)
        ).sort("session")
        closes = daily.get_column("close").cast(pl.Float64).to_numpy()
        up = daily_regime_up(closes, self.config.regime_sma)
        return bool(up[-1]) if up.size else False

    def ungated_signals(self, panel: MinutePanel) -> tuple[np.ndarray, np.ndarray]:
        """The kernel's entries and exits over ``panel``, without the daily-regime gate."""
        c = self.config
        entries = np.zeros(panel.close.shape, dtype=np.bool_)
        exits = np.zeros(panel.close.shape, dtype=np.bool_)
        for j in range(panel.close.shape[1]):
            entries[:, j], exits[:, j] = vwap_reversion_column(
                np.ascontiguousarray(panel.close[:, j]),
                np.ascontiguousarray(panel.vwap[:, j]),
                np.ascontiguousarray(panel.volume[:, j]),
                np.ascontiguousarray(panel.has_bar[:, j]),
                panel.minute,
                panel.session_minutes,
                float(c.band),
                float(c.exit_band),
                float(c.stop),
                int(c.warmup),
                int(c.last_entry),
                int(c.flat_before),
            )
        return entries, exits

    @classmethod
    def sweep_fast_path(
        cls,
        close: Any,
        points: Sequence[Mapping[str, Any]],
        *,
        fees: float,
        slippage: float,
        init_cash: float,
        threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each point's minute signals through the compiled ``from_signals`` state machine."""
        panel: MinutePanel = close
        return cls.simulate_points(
            panel.close,
            panel,
            points,
            fees=fees,
            slippage=slippage,
            init_cash=init_cash,
            threads=threads,
        )

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        """On a minute bar's close: the vectorized signal of that bar's row for every symbol,
        and a sell of every position once the forced-exit minute is reached."""
        opn, cls = session_bounds(snapshot)
        closed = decision_minute(snapshot, opn)
        n = (cls - opn) // 60_000_000_000
        intents: list[OrderIntent] = []
        symbols = self.config.symbols
        if closed >= n - self.config.flat_before:  # forced exit, with or without a new bar
            for symbol in symbols:
                held = book.shares(symbol)
                if held > 0:
                    intents.append(self._order(symbol, Side.SELL, held, "flat before close"))
            return intents
        if closed < 1:
            return intents
        panel = MinutePanel.build(intraday_bars(snapshot), symbols, [(opn, cls)]).head(closed)
        entries, exits = self.ungated_signals(panel)
        for j, symbol in enumerate(symbols):
            if not panel.has_bar[-1, j]:
                continue  # no bar closed this minute for the symbol: nothing new to act on
            if self.config.regime_sma and entries[-1, j] and not self._regime_up(snapshot, symbol):
                entries[-1, j] = False  # daily regime down (or unknown): no new entry
            held = book.shares(symbol)
            entry, exit_ = bool(entries[-1, j]), bool(exits[-1, j])
            if held > 0 and exit_ and not entry:
                intents.append(self._order(symbol, Side.SELL, held, "back to VWAP"))
            elif held == 0 and entry and not exit_:
                price = snapshot.prices.get(symbol, float(panel.close[-1, j]))
                qty = self._entry_qty(book, price)
                if qty >= 1:
                    intents.append(self._order(symbol, Side.BUY, qty, "below VWAP band"))
        return intents
