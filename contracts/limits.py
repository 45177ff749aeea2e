"""Frozen risk limits (pydantic, ``extra="forbid"``): per deployment, for the account, and the
documented defaults an approval derives from its capital.

A deployment's :class:`RiskLimits` travel in its manifest (the approval writes them, the runner's
risk engine enforces them); :class:`AccountLimits` are the runner's own, from its config.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

from strategies.models import TimeInForce

ALPACA_REQUESTS_PER_MINUTE = 200

# What an approval derives from its capital C and reference price P (the lowest last close of
# the deployment's underlyings) when the approver does not set a limit; README "Approving".
DAILY_LOSS_OF_CAPITAL: Final = 0.02  # max_daily_loss = 2% of C: REDUCING for the session
ORDER_NOTIONAL_OF_CAPITAL: Final = 1.0  # max_order_notional = C: no order above the capital
DRAWDOWN: Final = 0.20  # max_drawdown: HALTED 20% below peak equity
DELTA_LEVERAGE: Final = 2.0  # |delta| <= 2 x C / P shares (twice what C buys outright)
GAMMA_MOVE: Final = 0.05  # |gamma| <= delta cap / (5% of P): a 5% move adds <= one delta cap
VEGA_OF_CAPITAL: Final = 0.01  # |vega| <= 1% of C per vol point
THETA_OF_CAPITAL: Final = 0.002  # |theta| <= 0.2% of C per day


class GreekLimits(BaseModel):
    """Absolute caps on portfolio Greeks in position units (None = no cap).

    delta in shares, gamma in shares per $1, vega in $ per vol point, theta in $ per day (see
    :mod:`contracts.greeks`).
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
        max_daily_loss: $ loss since the session's start equity that switches to REDUCING (a
            deployment manifest must set it; None only for the account).
        max_drawdown: Fractional drawdown from peak equity that switches to HALTED.
        greeks: Portfolio Greek caps.
        max_quote_age_s: A reference quote older than this is stale.
        max_stressed_loss: $ loss of the book after the order in its worst scenario of the
            standard grid (spot +/-10% x implied vol +/-10 points, full revaluation; see
            ``live.risk.stress``) above which an order that deepens it is refused (None = no
            check; older manifests without it stay valid).
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
    max_stressed_loss: float | None = Field(default=None, gt=0)


class AccountLimits(RiskLimits):
    """Account-wide limits plus the shared submit budget and the options order rules.

    Attributes:
        max_submits_per_minute: Order submissions per minute (a share of Alpaca's 200/min budget,
            which polls and reconciliation also spend).
        option_tifs: Time-in-force values allowed for option orders (Alpaca: ``day``; GTC now
            supported too).
        max_underlying_share: Highest share of the account's exposure (its gross exposure
            after the order, or its equity when larger) in one underlying, across all
            deployments (None = no check). Definitions in ``live.risk.account_rules``.
        buckets: Underlying -> sector or factor bucket, for ``max_bucket_share``.
        max_bucket_share: Highest share of the account's exposure in one bucket.
        correlation_clusters: Deployment id -> correlation cluster (e.g. the
            ``portfolio_allocation`` asset's ``correlation_clusters.json``).
        max_cluster_share: Highest share of the account's exposure held by the deployments of
            one correlation cluster together.
    """

    max_open_orders: int = Field(default=200, ge=1)
    max_submits_per_minute: int = Field(default=60, ge=1, le=ALPACA_REQUESTS_PER_MINUTE)
    option_tifs: frozenset[TimeInForce] = frozenset({TimeInForce.DAY, TimeInForce.GTC})
    max_underlying_share: float | None = Field(default=None, gt=0, le=1)
    buckets: dict[str, str] = Field(default_factory=dict)
    max_bucket_share: float | None = Field(default=None, gt=0, le=1)
    correlation_clusters: dict[str, str] = Field(default_factory=dict)
    max_cluster_share: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _caps_have_their_maps(self) -> AccountLimits:
        if self.max_bucket_share is not None and not self.buckets:
            raise ValueError("max_bucket_share needs buckets (underlying -> bucket name)")
        if self.max_cluster_share is not None and not self.correlation_clusters:
            raise ValueError(
                "max_cluster_share needs correlation_clusters (deployment id -> cluster name)"
            )
        return self


def derived_risk_limits(capital: float, reference_price: float) -> RiskLimits:
    """Every limit of a deployment of ``capital``, derived as the module constants document.

    Args:
        capital: The approved capital ($).
        reference_price: The lowest recent close among the deployment's underlyings ($/share):
            the price that turns $ into the share units of the delta and gamma caps and of the
            share-count limits (the loosest such cap across its symbols).

    Count limits (contracts per order and per position, open orders, concentration, quote age)
    keep the :class:`RiskLimits` defaults; the share limits (per order and per position) equal
    the delta cap.
    """
    if not capital > 0 or not reference_price > 0:
        raise ValueError(f"capital {capital} and reference price {reference_price} must be > 0")
    delta = DELTA_LEVERAGE * capital / reference_price
    return RiskLimits(
        max_order_notional=ORDER_NOTIONAL_OF_CAPITAL * capital,
        max_order_shares=delta,
        max_position_shares=delta,
        max_daily_loss=DAILY_LOSS_OF_CAPITAL * capital,
        max_drawdown=DRAWDOWN,
        greeks=GreekLimits(
            delta=delta,
            gamma=delta / (GAMMA_MOVE * reference_price),
            vega=VEGA_OF_CAPITAL * capital,
            theta=THETA_OF_CAPITAL * capital,
        ),
    )
