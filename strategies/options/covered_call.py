"""Covered call: hold 100 shares per contract and keep a call sold against them."""

from __future__ import annotations

from dataclasses import dataclass

from strategies.base import Param, ParamSpace, register_strategy
from strategies.models import (
    OPTION_MULTIPLIER,
    AssetClass,
    Book,
    Leg,
    MarketSnapshot,
    OrderIntent,
    Right,
    Side,
)
from strategies.options.common import OptionStrategy, check_common, check_no_sizing
from strategies.options.orders import open_intent
from strategies.options.selection import ContractTarget, select_by_delta
from strategies.options.vol_filters import VolFilters


@dataclass(frozen=True, slots=True)
class CoveredCallConfig(VolFilters):
    """Config of :class:`CoveredCall` (plus the keyword-only :class:`VolFilters`).

    Attributes:
        underlying: Underlying symbol.
        contracts: Calls sold (and 100 x contracts shares held).
        call_delta: Absolute delta of the call sold.
        dte: Preferred days to expiry; ``dte_min``/``dte_max`` bound the eligible expiries.
        dte_min: Smallest acceptable days to expiry.
        dte_max: Largest acceptable days to expiry.
        buy_shares: Buy the shares (market, day) when fewer than needed are held.
        profit_target: Buy back the call at this fraction of its credit kept; None off.
        stop_loss: Buy back at a loss of this multiple of the credit; None off.
        exit_dte: Buy back at this many days to expiry; None holds to expiry.
        limit_fraction: Limit price at ``mid +/- fraction * spread``; None sends market orders.
        max_drawdown: Open nothing new while the book's drawdown exceeds this; None off.
        max_abs_delta: Open nothing new while |portfolio delta| (shares) exceeds this; None off.
    """

    underlying: str = "SPY"
    contracts: int = 1
    call_delta: float = 0.30
    dte: int = 30
    dte_min: int = 20
    dte_max: int = 45
    buy_shares: bool = True
    profit_target: float | None = 0.5
    stop_loss: float | None = None
    exit_dte: int | None = None
    limit_fraction: float | None = 0.5
    max_drawdown: float | None = None
    max_abs_delta: float | None = None

    def __post_init__(self) -> None:
        check_common(self)
        check_no_sizing(self, "the calls are sized to cover the shares held")
        self.target()

    def target(self) -> ContractTarget:
        """The call selection target."""
        return ContractTarget(Right.CALL, self.call_delta, self.dte, self.dte_min, self.dte_max)


@register_strategy
class CoveredCall(OptionStrategy):
    """Own the shares, sell an out-of-the-money call by delta, roll when it exits or expires."""

    name = "covered_call"
    config_cls = CoveredCallConfig
    __slots__ = ()

    @classmethod
    def param_space(cls) -> ParamSpace:
        """Call delta 0.15-0.40, expiry 21-45 days, profit target 50% or off."""
        return ParamSpace(
            (
                Param("call_delta", values=(0.15, 0.20, 0.30, 0.40)),
                Param("dte", values=(21, 30, 45)),
                Param("profit_target", values=(None, 0.5, 0.8)),
            ),
            CoveredCallConfig,
        )

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        """Top up the shares, manage the short call, sell a new one when none is open."""
        chain = self.chain_of(snapshot)
        if chain is None:
            return []
        cfg = self.config
        intents, still_open = self.manage_exits(snapshot, book, chain)
        need = OPTION_MULTIPLIER * cfg.contracts
        shares = book.shares(cfg.underlying)
        if shares < need:
            if not (cfg.buy_shares and self.may_open(book)):
                return intents
            leg = Leg(cfg.underlying, Side.BUY, 1, AssetClass.US_EQUITY)
            intents.append(
                OrderIntent(
                    self.name,
                    (leg,),
                    need - shares,
                    tag="shares",
                    reason=f"hold {need} shares to cover the calls",
                )
            )
        if intents or still_open or not self.may_open(book) or not self.entry_size(snapshot):
            return intents
        quote = select_by_delta(chain, cfg.target())
        if quote is not None:
            reason = f"covered call {quote.strike:g} delta {quote.delta:.2f} dte {quote.dte}"
            intents.append(
                open_intent(
                    self.name,
                    [(quote, Side.SELL, 1)],
                    cfg.contracts,
                    cfg.limit_fraction,
                    "cc",
                    reason,
                )
            )
        return intents
