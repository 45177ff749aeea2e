"""Contract selection by delta and days-to-expiry targets, and strikes by distance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strategies.models import Right
from strategies.options.chain import ContractQuote, OptionChainView


@dataclass(frozen=True, slots=True)
class ContractTarget:
    """Which contract to pick: an absolute delta and a days-to-expiry window.

    Attributes:
        right: Call or put.
        delta: Target absolute delta in (0, 1), e.g. 0.30 for a 30-delta put or call.
        dte: Preferred days to expiry; the eligible expiry closest to it wins (earlier on ties).
        dte_min: Smallest acceptable days to expiry.
        dte_max: Largest acceptable days to expiry.
    """

    right: Right
    delta: float = 0.30
    dte: int = 30
    dte_min: int = 21
    dte_max: int = 45

    def __post_init__(self) -> None:
        if not 0.0 < self.delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")
        if not 0 <= self.dte_min <= self.dte <= self.dte_max:
            raise ValueError(
                "need 0 <= dte_min <= dte <= dte_max, "
                f"got {self.dte_min}, {self.dte}, {self.dte_max}"
            )


def choose_expiry(chain: OptionChainView, dte: int, dte_min: int, dte_max: int) -> int | None:
    """Days to the eligible expiry closest to ``dte`` (ties go to the earlier), or None."""
    dtes = chain.col("dte")
    eligible = dtes[(dtes >= dte_min) & (dtes <= dte_max)]
    if eligible.size == 0:
        return None
    rank = 2 * np.abs(eligible - dte) + (eligible > dte)  # equal distance: the earlier wins
    return int(eligible[np.argmin(rank)])


def _quotable(chain: OptionChainView) -> np.ndarray:
    bid, ask = chain.col("bid"), chain.col("ask")
    return np.isfinite(bid) & np.isfinite(ask) & (bid > 0) & (ask >= bid)


def select_by_delta(
    chain: OptionChainView, target: ContractTarget, strike_floor: float | None = None
) -> ContractQuote | None:
    """The quotable contract nearest ``target.delta`` in the expiry nearest ``target.dte``.

    Ties in delta distance go to the lower strike; ``strike_floor`` excludes strikes below it.
    Returns None when nothing qualifies.
    """
    expiry_dte = choose_expiry(chain, target.dte, target.dte_min, target.dte_max)
    if expiry_dte is None:
        return None
    delta = chain.col("delta")
    is_call = chain.col("is_call")
    mask = (chain.col("dte") == expiry_dte) & _quotable(chain) & np.isfinite(delta)
    mask &= is_call if target.right is Right.CALL else ~is_call
    if strike_floor is not None:
        mask &= chain.col("strike") >= strike_floor - 1e-9
    rows = np.flatnonzero(mask)
    if rows.size == 0:
        return None
    distance = np.abs(np.abs(delta[rows]) - target.delta)
    order = np.lexsort((chain.col("strike")[rows], distance))
    return chain.quote_at(int(rows[order[0]]))


def select_by_strike(
    chain: OptionChainView, expiry_dte: int, right: Right, strike: float, mode: str = "nearest"
) -> ContractQuote | None:
    """The quotable contract of one expiry whose strike is nearest / at-or-below / at-or-above.

    Args:
        chain: The chain.
        expiry_dte: Days to expiry identifying the expiry.
        right: Call or put.
        strike: Reference strike.
        mode: ``nearest`` (ties to the lower strike), ``below`` (<= strike) or ``above``
            (>= strike).
    """
    if mode not in ("nearest", "below", "above"):
        raise ValueError(f"mode must be nearest, below or above, got {mode!r}")
    is_call = chain.col("is_call")
    mask = (chain.col("dte") == expiry_dte) & _quotable(chain)
    mask &= is_call if right is Right.CALL else ~is_call
    strikes = chain.col("strike")
    if mode == "below":
        mask &= strikes <= strike + 1e-9
    elif mode == "above":
        mask &= strikes >= strike - 1e-9
    rows = np.flatnonzero(mask)
    if rows.size == 0:
        return None
    order = np.lexsort((strikes[rows], np.abs(strikes[rows] - strike)))
    return chain.quote_at(int(rows[order[0]]))


def atm_strike_quote(chain: OptionChainView, expiry_dte: int, right: Right) -> ContractQuote | None:
    """The contract of ``right`` whose strike is nearest the underlying price."""
    return select_by_strike(chain, expiry_dte, right, chain.underlying_price, "nearest")
