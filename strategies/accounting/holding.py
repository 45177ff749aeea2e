"""One held symbol and the multiplier that turns its per-share prices into dollars."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from strategies import occ
from strategies.models import OPTION_MULTIPLIER, AssetClass, Position, Right

EXERCISE_THRESHOLD = 0.01  # OCC exercises contracts at least $0.01 in the money at expiry


def multiplier(asset_class: AssetClass | str) -> int:
    """Shares per unit of quantity: :data:`OPTION_MULTIPLIER` per option contract, 1 per share."""
    return OPTION_MULTIPLIER if asset_class == AssetClass.US_OPTION else 1


@dataclass(slots=True)
class Holding:
    """A signed position (contracts for options, shares for equity) with its average entry price,
    its last mark (per share) and, for options, the contract terms and per-share Greeks.

    Mutable inside an :class:`~strategies.accounting.Account`; published as a frozen
    :class:`~strategies.models.Position`. Engines may subclass it to carry their own fields.
    """

    symbol: str
    qty: float = 0.0
    avg_price: float = 0.0
    mark: float = math.nan
    underlying: str = ""
    is_option: bool = False
    expiry: date | None = None
    strike: float = 0.0
    is_call: bool = False
    delta: float = 1.0
    gamma: float = 0.0
    vega: float = 0.0
    theta: float = 0.0

    @classmethod
    def of(cls, symbol: str, asset_class: AssetClass | str) -> Holding:
        """An empty holding of ``symbol``; option terms come from its OCC symbol."""
        if asset_class != AssetClass.US_OPTION:
            return cls(symbol, underlying=symbol)
        sym = occ.parse(symbol)
        return cls(
            symbol, underlying=sym.root, is_option=True, expiry=sym.expiry, strike=sym.strike,
            is_call=sym.is_call, delta=0.0,
        )  # fmt: skip

    @property
    def asset_class(self) -> AssetClass:
        """Alpaca asset class."""
        return AssetClass.US_OPTION if self.is_option else AssetClass.US_EQUITY

    @property
    def multiplier(self) -> int:
        """Shares per unit of qty."""
        return OPTION_MULTIPLIER if self.is_option else 1

    @property
    def market_value(self) -> float:
        """Signed value at the mark."""
        return self.qty * self.mark * self.multiplier

    @property
    def cost_basis(self) -> float:
        """Signed value at the average entry price."""
        return self.qty * self.avg_price * self.multiplier

    @property
    def unrealized_pnl(self) -> float:
        """Mark-to-market profit since entry."""
        return self.market_value - self.cost_basis

    def intrinsic(self, spot: float) -> float:
        """Intrinsic value per share at ``spot`` (0 for stock)."""
        if not self.is_option:
            return 0.0
        return max(spot - self.strike, 0.0) if self.is_call else max(self.strike - spot, 0.0)

    def delivered_shares(self, qty: float | None = None) -> float:
        """Signed shares ``qty`` contracts (default: all held) deliver when exercised or
        assigned: a long call or a short put receives them, a short call or long put gives them."""
        q = self.qty if qty is None else qty
        return q * OPTION_MULTIPLIER * (1.0 if self.is_call else -1.0)

    def position(self) -> Position:
        """Frozen snapshot for a :class:`~strategies.models.Book`."""
        if not self.is_option:
            return Position(
                self.symbol, self.qty, self.avg_price, self.mark, underlying=self.underlying,
                delta=self.delta,
            )  # fmt: skip
        return Position(
            self.symbol, self.qty, self.avg_price, self.mark, AssetClass.US_OPTION,
            self.underlying, self.expiry, self.strike, Right.CALL if self.is_call else Right.PUT,
            self.delta, self.gamma, self.vega, self.theta,
        )  # fmt: skip

    @classmethod
    def from_position(cls, p: Position) -> Holding:
        """The mutable holding of a frozen position."""
        return cls(
            p.symbol, p.qty, p.avg_price, p.mark, p.underlying or p.symbol,
            p.asset_class is AssetClass.US_OPTION, p.expiry, p.strike or 0.0,
            p.right is Right.CALL, p.delta, p.gamma, p.vega, p.theta,
        )  # fmt: skip
