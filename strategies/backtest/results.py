"""Result tables of the options backtest and the recorder that accumulates them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from strategies.models import GreekExposure

ATTRIBUTION_COLUMNS = (
    "delta",
    "gamma",
    "theta",
    "vega",
    "residual",
    "trading",
    "settlement",
    "dividends",
    "fees",
)


@dataclass(frozen=True, slots=True)
class OptionsBacktestResult:
    """Everything an options backtest produced.

    Attributes:
        daily: One row per session: equity, cash, collateral, buying_power, market_value,
            peak_equity, drawdown, Greek exposure (delta, gamma, vega, theta), n_positions.
        positions: End-of-session holdings (session, symbol, qty, avg_price, mark, market_value).
        fills: Trades and non-trade events (exercise, assignment, early_assignment, expiry).
        orders: One row per intent: status (filled / rejected) and message.
        attribution: Daily P&L split into delta, gamma, theta, vega, residual (the market move of
            positions held over the day) plus trading (fill vs mark), settlement, dividends and
            fees (negative); ``total`` equals the day's equity change.
    """

    daily: pl.DataFrame
    positions: pl.DataFrame
    fills: pl.DataFrame
    orders: pl.DataFrame
    attribution: pl.DataFrame

    @property
    def final_equity(self) -> float:
        """Equity at the last session."""
        return float(self.daily.get_column("equity")[-1])

    def returns(self) -> pl.Series:
        """Daily simple returns of equity (first session against the initial cash)."""
        equity = self.daily.get_column("equity")
        return (equity / equity.shift(1) - 1.0).alias("returns").slice(1)


@dataclass(slots=True)
class Recorder:
    """Row accumulators, turned into frames once at the end (no per-day DataFrame work)."""

    daily: list[tuple[Any, ...]] = field(default_factory=list)
    positions: list[tuple[Any, ...]] = field(default_factory=list)
    fills: list[tuple[Any, ...]] = field(default_factory=list)
    orders: list[tuple[Any, ...]] = field(default_factory=list)
    attribution: list[tuple[Any, ...]] = field(default_factory=list)

    def day(
        self,
        session: date,
        equity: float,
        cash: float,
        collateral: float,
        peak: float,
        greeks: GreekExposure,
        n_positions: int,
    ) -> None:
        """Record one session's account state."""
        drawdown = 0.0 if peak <= 0 else max(0.0, 1.0 - equity / peak)
        self.daily.append(
            (
                session,
                equity,
                cash,
                collateral,
                cash - collateral,
                equity - cash,
                peak,
                drawdown,
                greeks.delta,
                greeks.gamma,
                greeks.vega,
                greeks.theta,
                n_positions,
            )
        )

    def result(self) -> OptionsBacktestResult:
        """Build the result frames."""
        frames = {
            name: pl.DataFrame(getattr(self, name), orient="row", schema=_schema(spec))
            for name, spec in _SCHEMAS.items()
        }
        attribution = frames["attribution"].with_columns(
            total=pl.sum_horizontal(*ATTRIBUTION_COLUMNS)
        )
        return OptionsBacktestResult(
            frames["daily"], frames["positions"], frames["fills"], frames["orders"], attribution
        )


_TYPES: dict[str, Any] = {"d": pl.Date, "f": pl.Float64, "i": pl.Int64, "s": pl.String}
_SCHEMAS = {  # column:type code, in row-tuple order
    "daily": "session:d equity:f cash:f collateral:f buying_power:f market_value:f peak_equity:f "
    "drawdown:f delta:f gamma:f vega:f theta:f n_positions:i",
    "positions": "session:d symbol:s qty:f avg_price:f mark:f market_value:f",
    "fills": "session:d order_id:i strategy:s symbol:s side:s qty:f price:f fees:f kind:s "
    "position_intent:s tag:s reason:s",
    "orders": "session:d order_id:i strategy:s tag:s legs:i qty:f order_type:s limit_price:f "
    "status:s message:s",
    "attribution": "session:d " + " ".join(f"{c}:f" for c in ATTRIBUTION_COLUMNS),
}


def _schema(spec: str) -> dict[str, Any]:
    return {name: _TYPES[code] for name, code in (item.split(":") for item in spec.split())}
