"""End-of-session settlement: expiry (exercise / assignment / worthless) and early assignment."""

from __future__ import annotations

import math
from dataclasses import dataclass

from strategies.backtest.config import OptionsBacktestConfig
from strategies.backtest.ledger import Holding, Ledger
from strategies.models import OPTION_MULTIPLIER


@dataclass(frozen=True, slots=True)
class Settlement:
    """A settled option holding: what happened, shares delivered, and the P&L vs its mark."""

    holding: Holding
    kind: str  # exercise | assignment | early_assignment | expiry
    shares: float  # signed shares received (+) or delivered (-)
    spot: float
    pnl: float  # before fees
    fees: float


def intrinsic(h: Holding, spot: float) -> float:
    """Intrinsic value per share at ``spot``."""
    return max(spot - h.strike, 0.0) if h.is_call else max(h.strike - spot, 0.0)


def settle(
    ledger: Ledger, h: Holding, spot: float, kind: str, config: OptionsBacktestConfig
) -> Settlement:
    """Exercise/assign ``h`` physically at its strike (shares marked at ``spot``), or let it
    expire worthless when ``kind == 'expiry'``; returns the P&L against the last mark."""
    value = intrinsic(h, spot) if kind != "expiry" else 0.0
    pnl = h.qty * OPTION_MULTIPLIER * (value - h.mark)
    ledger.remove(h.symbol)
    if kind == "expiry":
        return Settlement(h, kind, 0.0, spot, pnl, 0.0)
    shares = h.qty * OPTION_MULTIPLIER * (1.0 if h.is_call else -1.0)
    fees = abs(h.qty) * config.fees.assignment_fee
    stock = ledger.holdings.get(h.underlying) or Holding(h.underlying, 0.0, 0.0, spot, h.underlying)
    stock.mark = spot
    ledger.trade(stock, shares, h.strike, fees)
    held = ledger.holdings.get(h.underlying)
    if held is not None:
        held.mark = spot
    return Settlement(h, kind, shares, spot, pnl, fees)


def expire(
    ledger: Ledger, day_number: int, spots: dict[str, float], config: OptionsBacktestConfig
) -> list[Settlement]:
    """Settle every option expiring on ``day_number`` (days since 1970): ITM by at least
    ``exercise_threshold`` is exercised (long) or assigned (short), the rest expires."""
    out = []
    for h in [h for h in ledger.holdings.values() if h.is_option and h.expiry <= day_number]:
        spot = spots.get(h.underlying, math.nan)
        spot = h.spot if not math.isfinite(spot) else spot
        itm = intrinsic(h, spot) >= config.exercise_threshold - 1e-12
        kind = ("exercise" if h.qty > 0 else "assignment") if itm else "expiry"
        out.append(settle(ledger, h, spot, kind, config))
    return out


def early_assign(
    ledger: Ledger,
    day_number: int,
    spots: dict[str, float],
    next_dividend: dict[str, float],
    config: OptionsBacktestConfig,
) -> list[Settlement]:
    """Assign short options early per :class:`EarlyAssignment` (calls before an ex-dividend date
    whose extrinsic value is below the dividend; deep ITM shorts close to expiry)."""
    model = config.early_assignment
    if not model.enabled:
        return []
    out = []
    for h in [h for h in ledger.holdings.values() if h.is_option and h.qty < 0]:
        spot = spots.get(h.underlying, math.nan)
        value = intrinsic(h, spot) if math.isfinite(spot) else 0.0
        if value < config.exercise_threshold:
            continue
        extrinsic = h.mark - value
        dividend = next_dividend.get(h.underlying, 0.0)
        by_dividend = (
            model.before_ex_dividend and h.is_call and dividend > 0 and extrinsic < dividend
        )
        near = model.deep_itm_dte is not None and h.expiry - day_number <= model.deep_itm_dte
        deep = near and extrinsic <= model.extrinsic_threshold
        if by_dividend or deep:
            out.append(settle(ledger, h, spot, "early_assignment", config))
    return out
