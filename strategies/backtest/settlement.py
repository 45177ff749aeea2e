"""End-of-session settlement: expiry (exercise / assignment / worthless) and early assignment.

The settling itself is the account's (:meth:`Account.settle`, :meth:`Account.expire`); this module
chooses the spot and the early-assignment model.
"""

from __future__ import annotations

import math
from datetime import date

from strategies.accounting import Account, Holding, Settlement
from strategies.backtest.config import OptionsBacktestConfig
from strategies.backtest.holding import ChainHolding


def _spot(h: Holding, spots: dict[str, float]) -> float:
    """The session's underlying price, else the one at the holding's last mark."""
    spot = spots.get(h.underlying, math.nan)
    if not math.isfinite(spot) and isinstance(h, ChainHolding):
        return h.spot
    return spot


def expire(
    account: Account, session: date, spots: dict[str, float], config: OptionsBacktestConfig
) -> list[Settlement]:
    """Settle every option expiring on or before ``session``: ITM by at least
    ``exercise_threshold`` is exercised (long) or assigned (short), the rest expires."""
    return account.expire(
        session,
        lambda h: _spot(h, spots),
        config.exercise_threshold,
        config.fees.assignment_fee,
    )


def early_assign(
    account: Account,
    session: date,
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
    for h in [h for h in account.holdings.values() if h.is_option and h.qty < 0]:
        spot = spots.get(h.underlying, math.nan)
        value = h.intrinsic(spot) if math.isfinite(spot) else 0.0
        if value < config.exercise_threshold:
            continue
        extrinsic = h.mark - value
        dividend = next_dividend.get(h.underlying, 0.0)
        by_dividend = (
            model.before_ex_dividend and h.is_call and dividend > 0 and extrinsic < dividend
        )
        dte = (h.expiry - session).days if h.expiry is not None else 0
        near = model.deep_itm_dte is not None and dte <= model.deep_itm_dte
        deep = near and extrinsic <= model.extrinsic_threshold
        if by_dividend or deep:
            fees = abs(h.qty) * config.fees.assignment_fee
            out.append(account.settle(h.symbol, spot, "early_assignment", fees))
    return out
