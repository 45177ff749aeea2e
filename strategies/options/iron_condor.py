"""Iron condor: short OTM put and call by delta, long wings a fixed strike width further out."""

from __future__ import annotations

from dataclasses import dataclass

from strategies.base import Param, ParamSpace, register_strategy
from strategies.models import Book, MarketSnapshot, OrderIntent, Right, Side
from strategies.options.common import OptionStrategy, check_common
from strategies.options.orders import open_intent
from strategies.options.selection import ContractTarget, select_by_delta, select_by_strike
from strategies.options.vol_filters import VolFilters


@dataclass(frozen=True, slots=True)
class IronCondorConfig(VolFilters):
    """Config of :class:`IronCondor` (plus the keyword-only :class:`VolFilters`: IV rank,
    contango and IV - RV premium sizing).

    Attributes:
        underlying: Underlying symbol.
        contracts: Condors per trade.
        short_delta: Absolute delta of both short legs.
        wing_width: Strike distance from each short leg to its long wing (> 0).
        dte: Preferred days to expiry; ``dte_min``/``dte_max`` bound the eligible expiries.
        dte_min: Smallest acceptable days to expiry.
        dte_max: Largest acceptable days to expiry.
        profit_target: Close at this fraction of the credit kept; None off.
        stop_loss: Close at a loss of this multiple of the credit; None off.
        exit_dte: Close at this many days to expiry; None holds to expiry.
        limit_fraction: Net limit from legs at ``mid +/- fraction * spread``; None = market.
        max_drawdown: Open nothing new while the book's drawdown exceeds this; None off.
        max_abs_delta: Open nothing new while |portfolio delta| (shares) exceeds this; None off.
    """

    underlying: str = "SPY"
    contracts: int = 1
    short_delta: float = 0.16
    wing_width: float = 5.0
    dte: int = 45
    dte_min: int = 30
    dte_max: int = 60
    profit_target: float | None = 0.5
    stop_loss: float | None = 2.0
    exit_dte: int | None = 21
    limit_fraction: float | None = 0.5
    max_drawdown: float | None = None
    max_abs_delta: float | None = None

    def __post_init__(self) -> None:
        check_common(self)
        if not self.wing_width > 0:
            raise ValueError(f"wing_width must be > 0, got {self.wing_width}")
        if not self.short_delta < 0.5:
            raise ValueError(
                f"short_delta must be < 0.5 (out of the money), got {self.short_delta}"
            )
        self.target(Right.PUT)

    def target(self, right: Right) -> ContractTarget:
        """Selection target of a short leg."""
        return ContractTarget(right, self.short_delta, self.dte, self.dte_min, self.dte_max)


@register_strategy
class IronCondor(OptionStrategy):
    """Sell a delta-targeted iron condor for a net credit; one condor open at a time."""

    name = "iron_condor"
    config_cls = IronCondorConfig
    __slots__ = ()

    @classmethod
    def param_space(cls) -> ParamSpace:
        """Short delta 0.10-0.30, wings 5-10, expiry 30-60 days, exits at 21 DTE or off, an IV
        rank floor of 0.5 or none, contango required or not."""
        return ParamSpace(
            (
                Param("short_delta", values=(0.10, 0.16, 0.20, 0.30)),
                Param("wing_width", values=(5.0, 10.0)),
                Param("dte", values=(30, 45, 60)),
                Param("exit_dte", values=(None, 21)),
                Param("min_iv_rank", values=(None, 0.5)),
                Param("require_contango", values=(False, True)),
            ),
            IronCondorConfig,
            predicate=lambda p: p.get("exit_dte") is None or p["exit_dte"] < p.get("dte", 45),
        )

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        """Manage the open condor, else open a new one."""
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
        short_put = select_by_delta(chain, cfg.target(Right.PUT))
        short_call = select_by_delta(chain, cfg.target(Right.CALL))
        if short_put is None or short_call is None or short_put.expiry != short_call.expiry:
            return []
        if short_put.strike >= short_call.strike:
            return []
        long_put = select_by_strike(
            chain, short_put.dte, Right.PUT, short_put.strike - cfg.wing_width, "below"
        )
        long_call = select_by_strike(
            chain, short_call.dte, Right.CALL, short_call.strike + cfg.wing_width, "above"
        )
        if long_put is None or long_call is None:
            return []
        legs = [
            (long_put, Side.BUY, 1),
            (short_put, Side.SELL, 1),
            (short_call, Side.SELL, 1),
            (long_call, Side.BUY, 1),
        ]
        reason = (
            f"iron condor {long_put.strike:g}/{short_put.strike:g}/"
            f"{short_call.strike:g}/{long_call.strike:g} dte {short_put.dte}"
        )
        return [open_intent(self.name, legs, size, cfg.limit_fraction, "condor", reason)]
