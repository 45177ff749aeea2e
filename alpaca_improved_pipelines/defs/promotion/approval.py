"""What an approval says: the candidate, who approves and why, the capital, and every risk limit.

A limit the approver leaves unset is derived from the capital as :mod:`contracts.limits`
documents (daily loss 2% of capital, order notional the capital, drawdown 20%, Greek caps from
the capital and the lowest last close of the deployment's underlyings), so every manifest carries
all of them and always a daily-loss limit.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field, ValidationError

from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from contracts import paths
from contracts.limits import GreekLimits, RiskLimits, derived_risk_limits

# ApprovalConfig field -> GreekLimits field
GREEK_FIELDS = {
    "max_delta": "delta", "max_gamma": "gamma", "max_vega": "vega", "max_theta": "theta",
}  # fmt: skip


class ApprovalConfig(dg.Config):
    """A human approval of one candidate (from the Dagster UI's launchpad).

    Every risk limit can be set here; one left unset is derived from ``capital`` (see each
    field's description and :func:`contracts.limits.derived_risk_limits`).
    """

    family: str
    approver: str
    reason: str
    demo: bool = False
    capital: float = Field(default=100_000.0, gt=0, description="$ allotted to the deployment")
    allow_failed_gates: bool = False
    max_daily_loss: float | None = Field(
        default=None, gt=0, description="$ lost since the session's start that switches the "
        "deployment to REDUCING (default: 2% of capital; always set)"
    )  # fmt: skip
    max_drawdown: float | None = Field(
        default=None, gt=0, le=1, description="Fraction below peak equity that HALTS (default 0.2)"
    )
    max_order_notional: float | None = Field(
        default=None, gt=0, description="$ of one order, all legs (default: the capital)"
    )
    max_order_shares: float | None = Field(
        default=None, gt=0, description="Shares in one order (default: the delta cap)"
    )
    max_position_shares: float | None = Field(
        default=None, gt=0, description="|Shares| held in one symbol (default: the delta cap)"
    )
    max_order_contracts: int | None = Field(
        default=None, ge=1, description="Option contracts in one order (default 50)"
    )
    max_position_contracts: int | None = Field(
        default=None, ge=1, description="|Contracts| held in one option symbol (default 100)"
    )
    max_concentration: float | None = Field(
        default=None, gt=0, description="Gross value in one underlying / equity (default 1.0)"
    )
    max_open_orders: int | None = Field(
        default=None, ge=1, description="Orders open at once (default 20)"
    )
    max_quote_age_s: float | None = Field(
        default=None, gt=0, description="Seconds after which a quote is stale (default 4 days)"
    )
    max_delta: float | None = Field(
        default=None, gt=0, description="|Delta| in shares (default 2 x capital / reference price)"
    )
    max_gamma: float | None = Field(
        default=None, gt=0, description="|Gamma| in shares per $1 (default: delta cap / 5% of "
        "the reference price)"
    )  # fmt: skip
    max_vega: float | None = Field(
        default=None, gt=0, description="|Vega| in $ per vol point (default 1% of capital)"
    )
    max_theta: float | None = Field(
        default=None, gt=0, description="|Theta| in $ per day (default 0.2% of capital)"
    )
    max_stressed_loss: float | None = Field(
        default=None, gt=0, description="$ loss in the worst spot +/-10% x vol +/-10 pts "
        "scenario after an order (default: no check)"
    )  # fmt: skip


def limit_overrides(config: ApprovalConfig) -> dict[str, Any]:
    """The limits the approver set (ApprovalConfig field -> value)."""
    names = set(RiskLimits.model_fields) | set(GREEK_FIELDS)
    return {k: v for k, v in config.model_dump().items() if k in names and v is not None}


def approved_limits(config: ApprovalConfig, reference_price: float) -> RiskLimits:
    """The derived limits with the approver's overrides applied (ConfigError if invalid)."""
    base = derived_risk_limits(config.capital, reference_price).model_dump()
    greeks = dict(base["greeks"])
    for key, value in limit_overrides(config).items():
        if key in GREEK_FIELDS:
            greeks[GREEK_FIELDS[key]] = value
        else:
            base[key] = value
    try:
        return RiskLimits.model_validate({**base, "greeks": GreekLimits(**greeks)})
    except ValidationError as exc:
        raise ConfigError(f"approval of {config.family}: invalid risk limits: {exc}") from None


def underlyings(params: dict[str, Any]) -> list[str]:
    """The symbols whose prices a deployment's limits are measured in."""
    if params.get("underlying"):
        return [str(params["underlying"])]
    return [str(s) for s in params.get("symbols") or []]


def reference_close(home: Path, symbols: list[str]) -> tuple[str, float, dt.date]:
    """(symbol, close, session): the lowest close among ``symbols`` on the lake's last session."""
    lake = paths.lake_dir(home)
    sessions = storage.existing_sessions(lake, "stock_bars_1d")
    if not sessions or not symbols:
        raise ConfigError(
            f"no stock_bars_1d close for {symbols or 'the deployment'} to size its risk limits; "
            "backfill stock_bars_1d first"
        )
    last = sessions[-1]
    bars = storage.read_partitions(lake, "stock_bars_1d", [last], BAR_SCHEMA)
    rows = bars.filter(pl.col("symbol").is_in(symbols) & (pl.col("close") > 0)).sort("close")
    if rows.is_empty():
        raise ConfigError(
            f"stock_bars_1d has no close for {symbols} on {last}; backfill those symbols"
        )
    symbol, close = rows.row(0)[rows.columns.index("symbol")], float(rows["close"][0])
    return str(symbol), close, dt.date.fromisoformat(last)
