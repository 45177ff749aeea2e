"""Configuration of the options backtest engine: fills, fees, exercise and early assignment."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Per-fill fees. Regulatory fees are rounded up to the cent per leg, as brokers pass them on.

    Defaults approximate Alpaca's pass-through fees (commission-free options and stock); check the
    current schedule before relying on them.

    Attributes:
        option_commission: Commission per option contract.
        option_orf: Options Regulatory Fee per contract (buys and sells).
        option_taf: FINRA Trading Activity Fee per contract sold.
        stock_commission: Commission per share.
        stock_taf: FINRA TAF per share sold.
        stock_taf_max: Cap of the stock TAF per fill.
        sec_rate: SEC fee as a fraction of the notional of sells (options and stock).
        assignment_fee: Fee per exercised or assigned contract.
    """

    option_commission: float = 0.0
    option_orf: float = 0.02685
    option_taf: float = 0.00279
    stock_commission: float = 0.0
    stock_taf: float = 0.000166
    stock_taf_max: float = 8.30
    sec_rate: float = 0.0000278
    assignment_fee: float = 0.0

    def __post_init__(self) -> None:
        for name in self.__slots__:  # type: ignore[attr-defined]
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {value}")

    def option_fee(self, contracts: float, sell: bool, notional: float) -> float:
        """Fees of one option leg of ``contracts`` with ``notional`` premium ($)."""
        regulatory = self.option_orf * contracts
        if sell:
            regulatory += self.option_taf * contracts + self.sec_rate * notional
        return self.option_commission * contracts + cents_up(regulatory)

    def stock_fee(self, shares: float, sell: bool, notional: float) -> float:
        """Fees of one stock fill of ``shares`` with ``notional`` value ($)."""
        regulatory = 0.0
        if sell:
            regulatory = min(self.stock_taf * shares, self.stock_taf_max) + self.sec_rate * notional
        return self.stock_commission * shares + cents_up(regulatory)


def cents_up(value: float) -> float:
    """Round a fee up to the next cent (tolerating float noise just above a whole cent)."""
    return math.ceil(round(value * 100.0, 6)) / 100.0 if value > 0 else 0.0


@dataclass(frozen=True, slots=True)
class EarlyAssignment:
    """Early-assignment model of short American options (off by default).

    Attributes:
        enabled: Master switch.
        before_ex_dividend: Assign an in-the-money short call at the close before an ex-dividend
            date when its extrinsic value is below the dividend.
        deep_itm_dte: Assign in-the-money shorts with at most this many days to expiry whose
            extrinsic value is at most ``extrinsic_threshold``; None disables.
        extrinsic_threshold: Extrinsic value per share at or below which a deep ITM short goes.
    """

    enabled: bool = False
    before_ex_dividend: bool = True
    deep_itm_dte: int | None = 5
    extrinsic_threshold: float = 0.05

    def __post_init__(self) -> None:
        if self.deep_itm_dte is not None and self.deep_itm_dte < 0:
            raise ValueError(f"deep_itm_dte must be >= 0 or None, got {self.deep_itm_dte}")
        if not self.extrinsic_threshold >= 0:
            raise ValueError(f"extrinsic_threshold must be >= 0, got {self.extrinsic_threshold}")


@dataclass(frozen=True, slots=True)
class OptionsBacktestConfig:
    """Options backtest settings.

    Attributes:
        initial_cash: Starting cash.
        fill_fraction: Fills at ``mid + f * (ask - bid)`` for buys and ``mid - f * spread`` for
            sells (0 = mid, 0.5 = the touch).
        stock_slippage: Stock fills at ``price * (1 +/- stock_slippage)``.
        fees: Fee schedule.
        exercise_threshold: Contracts in the money by at least this at expiry are exercised or
            assigned (OCC's $0.01 automatic-exercise rule).
        early_assignment: Early-assignment model.
        dividends: ``underlying -> {ex_date: cash per share}``; holders at the prior close are paid.
        vega_unit: Chain vega per ``"vol_point"`` (0.01 IV) or per ``"unit"`` (1.00 IV).
        theta_unit: Chain theta per calendar ``"day"`` or per ``"year"``.
        decision_time: New York time stamped on each session's snapshot. Before 16:00 the
            strategy decides during the session and that day's expiries settle after it; from
            16:00 on it decides after the close, once they settled (what the live runner does:
            it decides on a session's data at the next open, after overnight assignments).
    """

    initial_cash: float = 100_000.0
    fill_fraction: float = 0.25
    stock_slippage: float = 0.0
    fees: FeeSchedule = field(default_factory=FeeSchedule)
    exercise_threshold: float = 0.01
    early_assignment: EarlyAssignment = field(default_factory=EarlyAssignment)
    dividends: Mapping[str, Mapping[date, float]] = field(default_factory=dict)
    vega_unit: str = "vol_point"
    theta_unit: str = "day"
    decision_time: time = time(15, 45)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial_cash) and self.initial_cash > 0):
            raise ValueError(f"initial_cash must be > 0, got {self.initial_cash}")
        if not 0.0 <= self.fill_fraction <= 1.0:
            raise ValueError(f"fill_fraction must be in [0, 1], got {self.fill_fraction}")
        if not 0.0 <= self.stock_slippage < 1.0:
            raise ValueError(f"stock_slippage must be in [0, 1), got {self.stock_slippage}")
        if not self.exercise_threshold >= 0:
            raise ValueError(f"exercise_threshold must be >= 0, got {self.exercise_threshold}")
        if self.vega_unit not in ("vol_point", "unit"):
            raise ValueError(f"vega_unit must be 'vol_point' or 'unit', got {self.vega_unit!r}")
        if self.theta_unit not in ("day", "year"):
            raise ValueError(f"theta_unit must be 'day' or 'year', got {self.theta_unit!r}")
        frozen = {u: MappingProxyType(dict(d)) for u, d in self.dividends.items()}
        object.__setattr__(self, "dividends", MappingProxyType(frozen))

    @property
    def vega_scale(self) -> float:
        """Multiplier turning an IV change (decimal) into vega units."""
        return 100.0 if self.vega_unit == "vol_point" else 1.0

    @property
    def theta_scale(self) -> float:
        """Multiplier turning calendar days into theta units."""
        return 1.0 if self.theta_unit == "day" else 1.0 / 365.0
