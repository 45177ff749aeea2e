"""Long call butterfly centred at the money: buy 1 lower, sell 2 body, buy 1 upper."""

from __future__ import annotations

from dataclasses import dataclass

from strategies.base import Param, ParamSpace, register_strategy
from strategies.models import Book, MarketSnapshot, OrderIntent, Right, Side
from strategies.options.common import OptionStrategy, check_common
from strategies.options.orders import open_intent
from strategies.options.selection import atm_strike_quote, choose_expiry, select_by_strike
from strategies.options.vol_filters import VolFilters


@dataclass(frozen=True, slots=True)
class ButterflyConfig(VolFilters):
    """Config of :class:`Butterfly` (plus the keyword-only :class:`VolFilters`).

    Attributes:
        underlying: Underlying symbol.
        contracts: Butterflies per trade.
        wing_width: Strike distance from the body to each wing (> 0).
        right: Build it from calls or puts.
        dte: Preferred days to expiry; ``dte_min``/``dte_max`` bound the eligible expiries.
        dte_min: Smallest acceptable days to expiry.
        dte_max: Largest acceptable days to expiry.
        profit_target: Close at this fraction of the debit gained (1.0 = +100%); None off.
        stop_loss: Close at a loss of this fraction of the debit; None off.
        exit_dte: Close at this many days to expiry; None holds to expiry.
        limit_fraction: Net limit from legs at ``mid +/- fraction * spread``; None = market.
        max_drawdown: Open nothing new while the book's drawdown exceeds this; None off.
        max_abs_delta: Open nothing new while |portfolio delta| (shares) exceeds this; None off.
    """

    underlying: str = "SPY"
    contracts: int = 1
    wing_width: float = 5.0
    right: str = "C"
    dte: int = 21
    dte_min: int = 14
    dte_max: int = 35
    profit_target: float | None = 1.0
    stop_loss: float | None = 0.5
    exit_dte: int | None = 3
    limit_fraction: float | None = 0.5
    max_drawdown: float | None = None
    max_abs_delta: float | None = None

    def __post_init__(self) -> None:
        check_common(self)
        if not self.wing_width > 0:
            raise ValueError(f"wing_width must be > 0, got {self.wing_width}")
        if self.right not in ("C", "P"):
            raise ValueError(f"right must be 'C' or 'P', got {self.right!r}")
        if not 0 <= self.dte_min <= self.dte <= self.dte_max:
            raise ValueError("need 0 <= dte_min <= dte <= dte_max")


@register_strategy
class Butterfly(OptionStrategy):
    """Buy an at-the-money butterfly for a debit; one open at a time."""

    name = "butterfly"
    config_cls = ButterflyConfig
    __slots__ = ()

    @classmethod
    def param_space(cls) -> ParamSpace:
        """Wings 2.5-10, expiry 14-35 days."""
        return ParamSpace(
            (
                Param("wing_width", values=(2.5, 5.0, 10.0)),
                Param("dte", values=(14, 21, 35)),
                Param("profit_target", values=(0.5, 1.0)),
            ),
            ButterflyConfig,
        )

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        """Manage the open butterfly, else buy a new one."""
        chain = self.chain_of(snapshot)
        if chain is None:
            return []
        intents, still_open = self.manage_exits(snapshot, book, chain)
        if intents or still_open or not self.may_open(book):
            return intents
        size = self.entry_size(snapshot)
        if not size:
            return []
        cfg = self.config
        right = Right(cfg.right)
        expiry_dte = choose_expiry(chain, cfg.dte, cfg.dte_min, cfg.dte_max)
        body = None if expiry_dte is None else atm_strike_quote(chain, expiry_dte, right)
        if body is None:
            return []
        lower = select_by_strike(chain, body.dte, right, body.strike - cfg.wing_width, "below")
        upper = select_by_strike(chain, body.dte, right, body.strike + cfg.wing_width, "above")
        if lower is None or upper is None or lower.strike >= body.strike:
            return []
        if upper.strike - body.strike != body.strike - lower.strike:
            return []  # only balanced wings, so the payoff never goes negative
        legs = [(lower, Side.BUY, 1), (body, Side.SELL, 2), (upper, Side.BUY, 1)]
        reason = f"butterfly {lower.strike:g}/{body.strike:g}/{upper.strike:g} dte {body.dte}"
        return [open_intent(self.name, legs, size, cfg.limit_fraction, "fly", reason)]
