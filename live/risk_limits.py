"""Frozen risk limits (pydantic, ``extra="forbid"``): per deployment and for the account."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from strategies.models import TimeInForce

ALPACA_REQUESTS_PER_MINUTE = 200


class GreekLimits(BaseModel):
    """Absolute caps on portfolio Greeks in position units (None = no cap).

    delta in shares, gamma in shares per $1, vega in $ per vol point, theta in $ per day.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    delta: float | None = Field(default=None, gt=0)
    gamma: float | None = Field(default=None, gt=0)
    vega: float | None = Field(default=None, gt=0)
    theta: float | None = Field(default=None, gt=0)


class RiskLimits(BaseModel):
    """Limits of one deployment (from its manifest); the account has :class:`AccountLimits`.

    Attributes:
        max_order_notional: Gross $ value of one order (all legs, at reference prices).
        max_order_contracts: Option contracts in one order (qty x sum of leg ratios).
        max_order_shares: Shares in one equity order.
        max_position_contracts: |contracts| held in one option symbol after the order.
        max_position_shares: |shares| held in one equity symbol after the order.
        max_concentration: Gross market value in one underlying / equity after the order.
        max_open_orders: Orders open at once.
        max_daily_loss: $ loss since the session's start equity that switches to REDUCING.
        max_drawdown: Fractional drawdown from peak equity that switches to HALTED.
        greeks: Portfolio Greek caps.
        max_quote_age_s: A reference quote older than this is stale.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_order_notional: float = Field(default=100_000.0, gt=0)
    max_order_contracts: int = Field(default=50, ge=1)
    max_order_shares: float = Field(default=10_000.0, gt=0)
    max_position_contracts: int = Field(default=100, ge=1)
    max_position_shares: float = Field(default=50_000.0, gt=0)
    max_concentration: float = Field(default=1.0, gt=0)
    max_open_orders: int = Field(default=20, ge=1)
    max_daily_loss: float | None = Field(default=None, gt=0)
    max_drawdown: float | None = Field(default=0.5, gt=0, le=1)
    greeks: GreekLimits = GreekLimits()
    max_quote_age_s: float = Field(default=4 * 86_400.0, gt=0)


class AccountLimits(RiskLimits):
    """Account-wide limits plus the shared submit budget and the options order rules.

    Attributes:
        max_submits_per_minute: Order submissions per minute (a share of Alpaca's 200/min budget,
            which polls and reconciliation also spend).
        option_tifs: Time-in-force values allowed for option orders (Alpaca: ``day``; GTC now
            supported too).
    """

    max_open_orders: int = Field(default=200, ge=1)
    max_submits_per_minute: int = Field(default=60, ge=1, le=ALPACA_REQUESTS_PER_MINUTE)
    option_tifs: frozenset[TimeInForce] = frozenset({TimeInForce.DAY, TimeInForce.GTC})
