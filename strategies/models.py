"""Domain models shared by strategies, the backtest engines and the live runner.

The shapes follow Alpaca's order API so the live runner can send an :class:`OrderIntent` as is:
a simple order has one :class:`Leg`; a multi-leg (``mleg``) order has 2-4 legs with unique
symbols, whole-contract quantities and a net ``limit_price`` (positive = net debit, negative =
net credit). Option prices are per share; a contract's value is ``price * multiplier`` (100).

Greeks in chains and positions follow Alpaca's snapshot convention: per share, ``vega`` per
1 volatility point (0.01 of IV) and ``theta`` per calendar day.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from strategies.indicators.session_features import IntradayFeatures
    from strategies.options.chain import OptionChainView
    from strategies.options.vol_features import VolSurfaceFeatures

NEW_YORK = ZoneInfo("America/New_York")
OPTION_MULTIPLIER = 100
CHAIN_COLUMNS = (
    "contract",
    "underlying",
    "session",
    "expiry",
    "strike",
    "right",
    "bid",
    "ask",
    "mid",
    "underlying_price",
    "dte",
    "iv",
    "delta",
    "gamma",
    "vega",
    "theta",
)
# The numeric columns of CHAIN_COLUMNS (read as float64 numpy arrays by the engine and views).
CHAIN_FLOAT_COLUMNS = (
    "strike",
    "bid",
    "ask",
    "mid",
    "underlying_price",
    "iv",
    "delta",
    "gamma",
    "vega",
    "theta",
)


class Side(StrEnum):
    """Order side."""

    BUY = "buy"
    SELL = "sell"


class AssetClass(StrEnum):
    """Alpaca asset class of a leg."""

    US_EQUITY = "us_equity"
    US_OPTION = "us_option"


class OrderType(StrEnum):
    """Order types Alpaca accepts for options and mleg orders."""

    MARKET = "market"
    LIMIT = "limit"


class TimeInForce(StrEnum):
    """Time in force."""

    DAY = "day"
    GTC = "gtc"


class PositionIntent(StrEnum):
    """Alpaca ``position_intent`` of an option leg."""

    BUY_TO_OPEN = "buy_to_open"
    BUY_TO_CLOSE = "buy_to_close"
    SELL_TO_OPEN = "sell_to_open"
    SELL_TO_CLOSE = "sell_to_close"

    @property
    def side(self) -> Side:
        """The order side this intent implies."""
        return Side.BUY if self.value.startswith("buy") else Side.SELL

    @property
    def opens(self) -> bool:
        """True for the two opening intents."""
        return self.value.endswith("open")


class Right(StrEnum):
    """Option right, as in OCC symbols."""

    CALL = "C"
    PUT = "P"


@dataclass(frozen=True, slots=True)
class Leg:
    """One leg of an order; a simple order has exactly one leg with ``ratio_qty == 1``."""

    symbol: str
    side: Side
    ratio_qty: int = 1
    asset_class: AssetClass = AssetClass.US_OPTION
    position_intent: PositionIntent | None = None

    def __post_init__(self) -> None:
        if not self.symbol or self.symbol != self.symbol.strip():
            raise ValueError(
                f"symbol must be a non-empty symbol without spaces, got {self.symbol!r}"
            )
        if isinstance(self.ratio_qty, bool) or not isinstance(self.ratio_qty, int):
            raise ValueError(f"ratio_qty must be an int, got {self.ratio_qty!r}")
        if self.ratio_qty < 1:
            raise ValueError(f"ratio_qty must be >= 1, got {self.ratio_qty}")
        if self.asset_class is AssetClass.US_OPTION and self.position_intent is None:
            raise ValueError(f"position_intent is required for option leg {self.symbol}")
        if self.position_intent is not None and self.position_intent.side is not self.side:
            raise ValueError(
                f"position_intent {self.position_intent} contradicts side {self.side} "
                f"({self.symbol})"
            )

    @property
    def sign(self) -> int:
        """+1 for buys, -1 for sells."""
        return 1 if self.side is Side.BUY else -1


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What a strategy wants to trade; the risk engine and broker turn it into an order.

    Attributes:
        strategy: Name of the strategy (deployment) that produced the intent.
        legs: One leg (simple order) or 2-4 legs with unique symbols (``mleg``).
        qty: Order quantity; contracts (whole) for options and mleg, shares for equity. Each leg
            trades ``qty * ratio_qty``.
        order_type: Market or limit.
        limit_price: Required for limit orders. Simple orders: positive price per share. ``mleg``:
            net price per spread unit, positive = net debit, negative = net credit.
        time_in_force: ``day`` or ``gtc`` (fractional equity quantities must be ``day``).
        tag: Short stable label (goes into the deterministic client order id).
        reason: Human-readable reason recorded in journals and backtest fills.
    """

    strategy: str
    legs: tuple[Leg, ...]
    qty: int | float
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    tag: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "legs", tuple(self.legs))
        if not self.strategy:
            raise ValueError("strategy must be a non-empty name")
        self._check_legs()
        self._check_qty()
        self._check_price()
        if len(self.tag) > 24 or not all(c.isalnum() or c in "-_." for c in self.tag):
            raise ValueError(f"tag must be <= 24 chars of [A-Za-z0-9-_.], got {self.tag!r}")

    def _check_legs(self) -> None:
        n = len(self.legs)
        if n == 0 or n > 4:
            raise ValueError(f"legs must hold 1 (simple) or 2-4 (mleg) legs, got {n}")
        if n == 1 and self.legs[0].ratio_qty != 1:
            raise ValueError("a simple order's leg must have ratio_qty 1")
        if len({leg.symbol for leg in self.legs}) != n:
            raise ValueError("mleg leg symbols must be unique")

    def _check_qty(self) -> None:
        qty = self.qty
        if isinstance(qty, bool) or not isinstance(qty, int | float) or not math.isfinite(qty):
            raise ValueError(f"qty must be a finite number, got {qty!r}")
        if qty <= 0:
            raise ValueError(f"qty must be > 0, got {qty}")
        whole = float(qty).is_integer()
        if (self.has_options or self.is_mleg) and not whole:
            raise ValueError(f"qty must be whole contracts for option/mleg orders, got {qty}")
        if not whole and self.time_in_force is not TimeInForce.DAY:
            raise ValueError("fractional qty requires time_in_force 'day'")

    def _check_price(self) -> None:
        price = self.limit_price
        if self.order_type is OrderType.MARKET:
            if price is not None:
                raise ValueError("limit_price must be None for market orders")
            return
        if price is None or not math.isfinite(price):
            raise ValueError("limit_price is required (finite) for limit orders")
        if not self.is_mleg and price <= 0:
            raise ValueError(f"limit_price must be > 0 for a simple order, got {price}")
        if self.is_mleg and price == 0:
            raise ValueError("mleg limit_price must be non-zero (+debit / -credit)")

    @property
    def is_mleg(self) -> bool:
        """True for a multi-leg order."""
        return len(self.legs) > 1

    @property
    def has_options(self) -> bool:
        """True when any leg is an option."""
        return any(leg.asset_class is AssetClass.US_OPTION for leg in self.legs)

    def leg_quantities(self) -> tuple[float, ...]:
        """Signed quantity each leg trades (+ buy, - sell)."""
        return tuple(leg.sign * leg.ratio_qty * float(self.qty) for leg in self.legs)


@dataclass(frozen=True, slots=True)
class GreekExposure:
    """Portfolio Greeks in position units: delta in shares, gamma in shares per $1, vega in $ per
    vol point, theta in $ per calendar day."""

    delta: float = 0.0
    gamma: float = 0.0
    vega: float = 0.0
    theta: float = 0.0


@dataclass(frozen=True, slots=True)
class Position:
    """A held position (signed ``qty``: contracts for options, shares for equity).

    Prices (``avg_price``, ``mark``) are per share; Greeks are per share of one unit of ``qty``.
    """

    symbol: str
    qty: float
    avg_price: float
    mark: float
    asset_class: AssetClass = AssetClass.US_EQUITY
    underlying: str = ""
    expiry: date | None = None
    strike: float | None = None
    right: Right | None = None
    delta: float = 1.0
    gamma: float = 0.0
    vega: float = 0.0
    theta: float = 0.0

    @property
    def multiplier(self) -> int:
        """Shares per unit of qty (100 for options)."""
        return OPTION_MULTIPLIER if self.asset_class is AssetClass.US_OPTION else 1

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

    def dte(self, session: date) -> int | None:
        """Calendar days to expiry as of ``session`` (None for equity)."""
        return None if self.expiry is None else (self.expiry - session).days


@dataclass(frozen=True, slots=True)
class Fill:
    """One executed leg or a non-trade event (``kind``: trade, exercise, assignment, expiry)."""

    session: date
    strategy: str
    symbol: str
    side: Side
    qty: float
    price: float
    fees: float = 0.0
    kind: str = "trade"
    position_intent: PositionIntent | None = None
    tag: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Book:
    """Account state handed to ``decide()``: cash, positions and risk signals.

    Attributes:
        cash: Settled cash (may include premium received).
        positions: Open positions.
        equity: Cash plus the marked value of all positions.
        collateral: Cash reserved for short options (cash-secured puts, spread max loss).
        buying_power: ``cash - collateral`` (a cash account; no margin on stock).
        peak_equity: Highest end-of-day equity seen so far (drawdown reference).
        greeks: Portfolio Greek exposure.
    """

    cash: float
    positions: tuple[Position, ...] = ()
    equity: float = 0.0
    collateral: float = 0.0
    buying_power: float = 0.0
    peak_equity: float = 0.0
    greeks: GreekExposure = field(default_factory=GreekExposure)

    @classmethod
    def build(
        cls,
        cash: float,
        positions: tuple[Position, ...] = (),
        collateral: float = 0.0,
        peak_equity: float = 0.0,
    ) -> Book:
        """Derive equity, buying power, peak and Greeks from cash, positions and collateral."""
        equity = cash + sum(p.market_value for p in positions)
        exposure = [0.0, 0.0, 0.0, 0.0]
        for p in positions:
            units = p.qty * p.multiplier
            for k, value in enumerate((p.delta, p.gamma, p.vega, p.theta)):
                exposure[k] += units * value if math.isfinite(value) else 0.0  # NaN Greek: unknown
        return cls(
            cash=cash,
            positions=tuple(positions),
            equity=equity,
            collateral=collateral,
            buying_power=cash - collateral,
            peak_equity=max(peak_equity, equity),
            greeks=GreekExposure(*exposure),
        )

    @property
    def drawdown(self) -> float:
        """Fractional drawdown from peak equity (0 at a new high, 0.25 = 25% below the peak)."""
        return 0.0 if self.peak_equity <= 0 else max(0.0, 1.0 - self.equity / self.peak_equity)

    def position(self, symbol: str) -> Position | None:
        """The position in ``symbol``, if any."""
        return next((p for p in self.positions if p.symbol == symbol), None)

    def shares(self, symbol: str) -> float:
        """Shares held of an equity symbol (0 when flat)."""
        pos = self.position(symbol)
        return 0.0 if pos is None else pos.qty

    def options(self, underlying: str) -> tuple[Position, ...]:
        """Option positions on ``underlying``."""
        return tuple(
            p
            for p in self.positions
            if p.asset_class is AssetClass.US_OPTION and p.underlying == underlying
        )


def _max_session(frame: pl.DataFrame) -> date | None:
    if "session" not in frame.columns:
        raise ValueError("frames in a MarketSnapshot need a 'session' column")
    return frame.get_column("session").max() if frame.height else None  # type: ignore[return-value]


# The bars a strategy decides on (Strategy.timeframe): one decision per session on the daily
# close, or one per minute bar's close.
Timeframe = Literal["1d", "1m"]
INTRADAY_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume", "vwap", "trade_count")
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """Everything a strategy may see at one decision time, and nothing after ``session``.

    Attributes:
        ts: Timezone-aware decision time (its New York date is on or after ``session``).
        session: The last trading session whose data is included.
        prices: Latest price per symbol.
        history: Daily bars (``session``, ``symbol``, ``open``...``close``, ``volume``) up to and
            including ``session``.
        chains: Option chain per underlying (columns :data:`CHAIN_COLUMNS`) for ``session``.
        features: Extra precomputed inputs (for example IV rank), also as of ``session``.
        intraday: The minute bars of the decision's own session that closed by ``ts`` (columns
            :data:`INTRADAY_COLUMNS`, ``ts`` = the bar's start, UTC; a bar starting at t is
            closed at t + 1 min). Empty for daily decisions. ``history`` then ends at the
            session before (today's daily bar does not exist yet) and ``session`` is today.
        vol_features: Vol-surface features per underlying
            (:class:`~strategies.options.vol_features.VolSurfaceFeatures`) of a session on or
            before ``session``; an underlying without a surface that session is absent.
        intraday_features: Session-level intraday features per symbol
            (:class:`~strategies.indicators.session_features.IntradayFeatures`) of a session on
            or before ``session``, from its minute bars closed by ``ts`` (daily decisions: of
            ``session`` itself); a symbol without minute bars that session is absent.
    """

    ts: datetime
    session: date
    prices: Mapping[str, float]
    history: pl.DataFrame
    chains: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    features: Mapping[str, Any] = field(default_factory=dict)
    intraday: pl.DataFrame | None = None
    vol_features: Mapping[str, VolSurfaceFeatures] = field(default_factory=dict)
    intraday_features: Mapping[str, IntradayFeatures] = field(default_factory=dict)
    # memo of close_array(); many deployments deciding on one snapshot share the extraction
    _closes: dict[str, np.ndarray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None or self.ts.utcoffset() is None:
            raise ValueError("ts must be timezone-aware")
        if self.ts.astimezone(NEW_YORK).date() < self.session:
            raise ValueError(f"ts {self.ts.isoformat()} is before session {self.session}")
        for name, frame in (("history", self.history), *self.chains.items()):
            last = _max_session(frame)
            if last is not None and last > self.session:
                raise ValueError(
                    f"{name} holds data for {last}, after the snapshot session {self.session}"
                )
        if self.intraday is not None and self.intraday.height:
            last_start: datetime = self.intraday.get_column("ts").max()  # type: ignore[assignment]
            if last_start + MINUTE > self.ts:
                raise ValueError(
                    f"intraday holds the bar starting {last_start.isoformat()}, "
                    f"not closed at {self.ts.isoformat()}"
                )
        object.__setattr__(self, "prices", MappingProxyType(dict(self.prices)))
        object.__setattr__(self, "chains", MappingProxyType(dict(self.chains)))
        object.__setattr__(self, "features", MappingProxyType(dict(self.features)))
        for name in ("vol_features", "intraday_features"):  # never a later session's
            features = getattr(self, name)
            for key, feats in features.items():
                if feats.session > self.session:
                    raise ValueError(
                        f"{name}[{key!r}] are of {feats.session}, "
                        f"after the snapshot session {self.session}"
                    )
            object.__setattr__(self, name, MappingProxyType(dict(features)))

    def chain(self, underlying: str) -> OptionChainView:
        """Typed access to the option chain of ``underlying`` (KeyError naming it if absent)."""
        from strategies.options.chain import OptionChainView

        if underlying not in self.chains:
            raise KeyError(f"no option chain for {underlying!r} on {self.session}")
        return OptionChainView(self.chains[underlying])

    def closes(self, symbol: str) -> pl.Series:
        """Close prices of ``symbol`` in session order."""
        return pl.Series("close", self.close_array(symbol))

    def close_array(self, symbol: str) -> np.ndarray:
        """Close prices of ``symbol`` in session order as a read-only, C-contiguous float64
        array (computed once per snapshot and symbol; empty when the symbol is absent)."""
        cached = self._closes.get(symbol)
        if cached is None:
            rows = self.history.filter(pl.col("symbol") == symbol).sort("session")
            cached = np.ascontiguousarray(rows.get_column("close").to_numpy(), dtype=np.float64)
            cached.setflags(write=False)
            self._closes[symbol] = cached
        return cached
