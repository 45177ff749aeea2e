"""Momentum debit spreads: a bull call vertical in an up-trend, a bear put vertical in a
down-trend, closed when the trend is lost or near expiry.

The trend is the equity momentum family's: rate of change over ``lookback`` sessions beyond
``threshold`` and the close on the same side of its ``trend``-session SMA (the shared compiled
kernels ``rate_of_change`` / ``rolling_mean``). :func:`trend_direction` computes it for a whole
close series; ``decide()`` takes its last value on the snapshot's history, so the vectorized
backtest (:mod:`strategies.backtest.spread_vectorized`) sees bit-identical signals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strategies.base import Param, ParamSpace, register_strategy
from strategies.equity._kernels import rate_of_change, rolling_mean
from strategies.models import Book, MarketSnapshot, OrderIntent, Right, Side
from strategies.options.chain import ContractQuote, OptionChainView
from strategies.options.common import OptionStrategy, check_common
from strategies.options.exits import structures
from strategies.options.orders import close_intent, open_intent
from strategies.options.selection import ContractTarget, select_by_delta, select_by_strike
from strategies.options.vol_filters import VolFilters


def trend_direction(close: np.ndarray, lookback: int, threshold: float, trend: int) -> np.ndarray:
    """Per bar: +1 up-trend, -1 down-trend, 0 none (``int8``; 0 during the warm-up).

    Up: ``ROC(lookback) > threshold`` and close above its ``trend`` SMA; down: ``ROC <
    -threshold`` and close below it; ``trend = 0`` drops the SMA condition.
    """
    x = np.ascontiguousarray(close, dtype=np.float64)
    roc = rate_of_change(x, lookback)
    if trend:
        sma = rolling_mean(x, trend)
        above, below = x > sma, x < sma  # NaN SMA (warm-up) is neither
    else:
        above = below = np.ones(x.shape[0], dtype=bool)
    out = np.zeros(x.shape[0], dtype=np.int8)
    out[(roc > threshold) & above] = 1
    out[(roc < -threshold) & below] = -1
    return out


@dataclass(frozen=True, slots=True)
class MomentumSpreadsConfig(VolFilters):
    """Config of :class:`MomentumSpreads` (plus the keyword-only :class:`VolFilters`; a debit
    buyer's natural filter is ``max_iv_rank``).

    Attributes:
        underlying: Underlying symbol.
        contracts: Spreads per trade.
        lookback: Rate-of-change lookback in sessions (>= 1).
        threshold: Trend when |ROC| > threshold (>= 0).
        trend: SMA window the close must be on the trend's side of; 0 off, else >= 2.
        long_delta: Absolute delta of the long leg (the call bought, or the put bought).
        width: Strike distance to the short leg (above the long call, below the long put).
        dte: Preferred days to expiry; ``dte_min``/``dte_max`` bound the eligible expiries.
        dte_min: Smallest acceptable days to expiry.
        dte_max: Largest acceptable days to expiry.
        profit_target: Close at this fraction of the debit gained; None off.
        stop_loss: Close at a loss of this fraction of the debit; None off.
        exit_dte: Close at this many days to expiry; None holds to expiry.
        limit_fraction: Net limit at ``mid +/- fraction * spread``; None = market.
        max_drawdown: Open nothing new while the book's drawdown exceeds this; None off.
        max_abs_delta: Open nothing new while |portfolio delta| (shares) exceeds this; None off.
    """

    underlying: str = "SPY"
    contracts: int = 1
    lookback: int = 20
    threshold: float = 0.02
    trend: int = 50
    long_delta: float = 0.50
    width: float = 5.0
    dte: int = 30
    dte_min: int = 20
    dte_max: int = 45
    profit_target: float | None = None
    stop_loss: float | None = None
    exit_dte: int | None = 7
    limit_fraction: float | None = 0.5
    max_drawdown: float | None = None
    max_abs_delta: float | None = None

    def __post_init__(self) -> None:
        check_common(self)
        if self.lookback < 1:
            raise ValueError(f"lookback must be >= 1, got {self.lookback}")
        if not self.threshold >= 0:
            raise ValueError(f"threshold must be >= 0, got {self.threshold}")
        if self.trend < 0 or self.trend == 1:
            raise ValueError(f"trend must be 0 (off) or >= 2, got {self.trend}")
        if not self.width > 0:
            raise ValueError(f"width must be > 0, got {self.width}")
        self.target(Right.CALL)

    def target(self, right: Right) -> ContractTarget:
        """Selection target of the long leg."""
        return ContractTarget(right, self.long_delta, self.dte, self.dte_min, self.dte_max)

    def lookback_bars(self) -> int:
        """Sessions before the first possible signal."""
        return max(self.lookback, self.trend)


def spread_legs(
    chain: OptionChainView, cfg: MomentumSpreadsConfig, direction: int
) -> tuple[ContractQuote, ContractQuote] | None:
    """``(long, short)`` of the vertical for ``direction`` (+1 bull call, -1 bear put)."""
    right = Right.CALL if direction > 0 else Right.PUT
    long = select_by_delta(chain, cfg.target(right))
    if long is None:
        return None
    away = long.strike + cfg.width * direction
    short = select_by_strike(chain, long.dte, right, away, "above" if direction > 0 else "below")
    if short is None or short.strike == long.strike:
        return None
    return long, short


@register_strategy
class MomentumSpreads(OptionStrategy):
    """Buy a bull call (bear put) vertical while the trend is up (down); close when it ends."""

    name = "momentum_spreads"
    config_cls = MomentumSpreadsConfig
    __slots__ = ()

    @classmethod
    def param_space(cls) -> ParamSpace:
        """Lookback 10-40, threshold 1-3%, trend SMA off/50, long delta 0.4-0.6, IV rank cap."""
        return ParamSpace(
            (
                Param("lookback", values=(10, 20, 40)),
                Param("threshold", values=(0.01, 0.02, 0.03)),
                Param("trend", values=(0, 50)),
                Param("long_delta", values=(0.40, 0.50, 0.60)),
                Param("max_iv_rank", values=(None, 0.5)),
            ),
            MomentumSpreadsConfig,
        )

    def direction(self, snapshot: MarketSnapshot) -> int:
        """The trend on the snapshot's last session (+1, -1 or 0)."""
        cfg = self.config
        close = snapshot.close_array(cfg.underlying)
        if close.size == 0:
            return 0
        return int(trend_direction(close, cfg.lookback, cfg.threshold, cfg.trend)[-1])

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        """Exit on rules or a lost trend; open a vertical in the trend's direction when flat."""
        chain = self.chain_of(snapshot)
        if chain is None:
            return []
        cfg = self.config
        direction = self.direction(snapshot)
        intents, still_open = self.manage_exits(snapshot, book, chain)
        if intents:
            return intents
        if still_open:
            for positions in structures(book, cfg.underlying).values():
                held = 1 if positions[0].right is Right.CALL else -1
                if direction != held:
                    reason = f"trend {'lost' if direction == 0 else 'reversed'}"
                    intent = close_intent(
                        self.name, positions, chain, cfg.limit_fraction, "close", reason
                    )
                    intents.extend([] if intent is None else [intent])
            return intents
        if direction == 0 or not self.may_open(book):
            return []
        size = self.entry_size(snapshot)
        legs = spread_legs(chain, cfg, direction) if size else None
        if legs is None:
            return []
        long, short = legs
        kind = "bull call" if direction > 0 else "bear put"
        reason = f"{kind} {long.strike:g}/{short.strike:g} dte {long.dte}"
        order = [(long, Side.BUY, 1), (short, Side.SELL, 1)]
        return [open_intent(self.name, order, size, cfg.limit_fraction, "spread", reason)]
