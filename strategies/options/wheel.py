"""The wheel: cash-secured puts until assigned, then covered calls until called away."""

from __future__ import annotations

from dataclasses import dataclass

from strategies.base import Param, ParamSpace, register_strategy
from strategies.models import OPTION_MULTIPLIER, Book, MarketSnapshot, OrderIntent, Right, Side
from strategies.options.chain import OptionChainView
from strategies.options.common import OptionStrategy, check_common, check_no_sizing
from strategies.options.orders import open_intent
from strategies.options.selection import ContractTarget, select_by_delta
from strategies.options.vol_filters import VolFilters


@dataclass(frozen=True, slots=True)
class WheelConfig(VolFilters):
    """Config of :class:`Wheel` (plus the keyword-only :class:`VolFilters`).

    Attributes:
        underlying: Underlying symbol.
        contracts: Contracts per cycle (shares = 100 x contracts).
        put_delta: Absolute delta of the cash-secured put.
        call_delta: Absolute delta of the covered call.
        dte: Preferred days to expiry; ``dte_min``/``dte_max`` bound the eligible expiries.
        dte_min: Smallest acceptable days to expiry.
        dte_max: Largest acceptable days to expiry.
        call_above_basis: Only sell calls struck at or above the shares' cost basis.
        profit_target: Buy back a short option at this fraction of its credit kept; None off.
        stop_loss: Buy back at a loss of this multiple of the credit; None off.
        exit_dte: Buy back at this many days to expiry; None lets it expire or be assigned.
        limit_fraction: Limit price at ``mid +/- fraction * spread``; None sends market orders.
        max_drawdown: Open nothing new while the book's drawdown exceeds this; None off.
        max_abs_delta: Open nothing new while |portfolio delta| (shares) exceeds this; None off.
    """

    underlying: str = "SPY"
    contracts: int = 1
    put_delta: float = 0.30
    call_delta: float = 0.30
    dte: int = 30
    dte_min: int = 20
    dte_max: int = 45
    call_above_basis: bool = True
    profit_target: float | None = None
    stop_loss: float | None = None
    exit_dte: int | None = None
    limit_fraction: float | None = 0.5
    max_drawdown: float | None = None
    max_abs_delta: float | None = None

    def __post_init__(self) -> None:
        check_common(self)
        check_no_sizing(self, "the covered calls must cover the assigned put's shares")
        self.target(Right.PUT)
        self.target(Right.CALL)

    def target(self, right: Right) -> ContractTarget:
        """The selection target of the put or call leg."""
        delta = self.put_delta if right is Right.PUT else self.call_delta
        return ContractTarget(right, delta, self.dte, self.dte_min, self.dte_max)


@register_strategy
class Wheel(OptionStrategy):
    """Sell cash-secured puts; once assigned sell covered calls; once called away, start over."""

    name = "wheel"
    config_cls = WheelConfig
    __slots__ = ()

    @classmethod
    def param_space(cls) -> ParamSpace:
        """Deltas 0.15-0.40, expiry 21-45 days, optional 50% profit target, an IV rank floor of
        0.5 or none."""
        return ParamSpace(
            (
                Param("put_delta", values=(0.15, 0.20, 0.30, 0.40)),
                Param("call_delta", values=(0.15, 0.20, 0.30, 0.40)),
                Param("dte", values=(21, 30, 45)),
                Param("profit_target", values=(None, 0.5)),
                Param("min_iv_rank", values=(None, 0.5)),
            ),
            WheelConfig,
        )

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        """Manage the open short option, else open the next leg of the wheel."""
        chain = self.chain_of(snapshot)
        if chain is None:
            return []
        intents, still_open = self.manage_exits(snapshot, book, chain)
        if intents or still_open or not self.may_open(book):
            return intents
        shares = book.shares(self.config.underlying)
        if shares >= OPTION_MULTIPLIER * self.config.contracts:
            return self._covered_call(chain, book)
        if not self.entry_size(snapshot):  # the vol filters gate a new cycle's put
            return []
        return self._cash_secured_put(chain)

    def _cash_secured_put(self, chain: OptionChainView) -> list[OrderIntent]:
        quote = select_by_delta(chain, self.config.target(Right.PUT))
        if quote is None:
            return []
        reason = f"cash-secured put {quote.strike:g} delta {quote.delta:.2f} dte {quote.dte}"
        intent = open_intent(
            self.name,
            [(quote, Side.SELL, 1)],
            self.config.contracts,
            self.config.limit_fraction,
            "csp",
            reason,
        )
        return [intent]

    def _covered_call(self, chain: OptionChainView, book: Book) -> list[OrderIntent]:
        floor = None
        if self.config.call_above_basis:
            stock = book.position(self.config.underlying)
            floor = None if stock is None else stock.avg_price
        quote = select_by_delta(chain, self.config.target(Right.CALL), strike_floor=floor)
        if quote is None:
            return []
        reason = f"covered call {quote.strike:g} delta {quote.delta:.2f} dte {quote.dte}"
        intent = open_intent(
            self.name,
            [(quote, Side.SELL, 1)],
            self.config.contracts,
            self.config.limit_fraction,
            "cc",
            reason,
        )
        return [intent]
