"""Momentum-driven long options: buy calls on up-momentum, puts on down-momentum."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strategies.base import Param, ParamSpace, register_strategy
from strategies.models import Book, MarketSnapshot, OrderIntent, Right, Side
from strategies.options.common import OptionStrategy, check_common
from strategies.options.exits import structures
from strategies.options.orders import close_intent, open_intent
from strategies.options.selection import ContractTarget, select_by_delta
from strategies.options.vol_filters import VolFilters


@dataclass(frozen=True, slots=True)
class MomentumOptionsConfig(VolFilters):
    """Config of :class:`MomentumOptions` (plus the keyword-only :class:`VolFilters`).

    Attributes:
        underlying: Underlying symbol.
        contracts: Contracts per trade.
        lookback: Rate-of-change lookback in sessions (>= 1).
        threshold: Buy calls when ROC > threshold, puts when ROC < -threshold (> 0).
        delta: Absolute delta of the option bought.
        dte: Preferred days to expiry; ``dte_min``/``dte_max`` bound the eligible expiries.
        dte_min: Smallest acceptable days to expiry.
        dte_max: Largest acceptable days to expiry.
        profit_target: Close at this fraction of the premium gained; None off.
        stop_loss: Close at a loss of this fraction of the premium; None off.
        exit_dte: Close at this many days to expiry; None holds to expiry.
        limit_fraction: Limit price at ``mid +/- fraction * spread``; None = market.
        max_drawdown: Open nothing new while the book's drawdown exceeds this; None off.
        max_abs_delta: Open nothing new while |portfolio delta| (shares) exceeds this; None off.
    """

    underlying: str = "SPY"
    contracts: int = 1
    lookback: int = 20
    threshold: float = 0.03
    delta: float = 0.50
    dte: int = 45
    dte_min: int = 30
    dte_max: int = 60
    profit_target: float | None = 1.0
    stop_loss: float | None = 0.5
    exit_dte: int | None = 10
    limit_fraction: float | None = 0.5
    max_drawdown: float | None = None
    max_abs_delta: float | None = None

    def __post_init__(self) -> None:
        check_common(self)
        if self.lookback < 1:
            raise ValueError(f"lookback must be >= 1, got {self.lookback}")
        if not self.threshold > 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")
        self.target(Right.CALL)

    def target(self, right: Right) -> ContractTarget:
        """Selection target of the option bought."""
        return ContractTarget(right, self.delta, self.dte, self.dte_min, self.dte_max)


@register_strategy
class MomentumOptions(OptionStrategy):
    """Long a call (put) while momentum is up (down); close on reversal or an exit rule."""

    name = "momentum_options"
    config_cls = MomentumOptionsConfig
    __slots__ = ()

    @classmethod
    def param_space(cls) -> ParamSpace:
        """Lookback 10-60, threshold 2-5%, delta 0.3-0.6."""
        return ParamSpace(
            (
                Param("lookback", values=(10, 20, 40, 60)),
                Param("threshold", values=(0.02, 0.03, 0.05)),
                Param("delta", values=(0.30, 0.40, 0.50, 0.60)),
            ),
            MomentumOptionsConfig,
        )

    def momentum(self, snapshot: MarketSnapshot) -> float:
        """Rate of change over ``lookback`` sessions (NaN with too little history)."""
        close = snapshot.closes(self.config.underlying).to_numpy()
        if close.size <= self.config.lookback:
            return float("nan")
        return float(close[-1] / close[-1 - self.config.lookback] - 1.0)

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        """Exit on rules or reversal; enter in the momentum's direction when flat."""
        chain = self.chain_of(snapshot)
        if chain is None:
            return []
        cfg = self.config
        roc = self.momentum(snapshot)
        intents, still_open = self.manage_exits(snapshot, book, chain)
        if intents:
            return intents
        if still_open:
            for positions in structures(book, cfg.underlying).values():
                is_call = positions[0].right is Right.CALL
                if np.isfinite(roc) and (roc < 0 if is_call else roc > 0):
                    intent = close_intent(
                        self.name,
                        positions,
                        chain,
                        cfg.limit_fraction,
                        "close",
                        f"momentum reversed ({roc:+.2%})",
                    )
                    intents.extend([] if intent is None else [intent])
            return intents
        if not np.isfinite(roc) or abs(roc) <= cfg.threshold or not self.may_open(book):
            return []
        size = self.entry_size(snapshot)
        if not size:
            return []
        right = Right.CALL if roc > 0 else Right.PUT
        quote = select_by_delta(chain, cfg.target(right))
        if quote is None:
            return []
        reason = f"momentum {roc:+.2%}: long {quote.strike:g}{right.value} dte {quote.dte}"
        return [
            open_intent(self.name, [(quote, Side.BUY, 1)], size, cfg.limit_fraction, "long", reason)
        ]
