"""Shared builders for the live-runner tests: a tiny lake, manifests, tickets and quotes."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from contracts.limits import RiskLimits
from live.deployments.manifests import write_manifest
from live.orders.ids import client_order_id
from live.orders.reports import OrderTicket, Quote
from strategies.models import AssetClass, Leg, OrderIntent, OrderType, PositionIntent, Side

KEY, SECRET = "PKTESTKEY0123456789", "sEcReT-should-never-be-logged-0123456789"
T0 = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)
CALL_A, CALL_B = "SPY240426C00555000", "SPY240426C00560000"


def sessions(n: int, end: date = date(2024, 3, 1)) -> list[date]:
    """``n`` weekdays ending at ``end``."""
    out, day = [], end
    while len(out) < n:
        if day.weekday() < 5:
            out.append(day)
        day -= timedelta(days=1)
    return out[::-1]


def crossing_closes(n: int) -> list[float]:
    """A series whose 3-bar SMA crosses above its 10-bar SMA on the last bar only."""
    closes = [100.0 - 0.5 * k for k in range(n - 1)]
    return [*closes, closes[-1] + 12.0]


def write_lake(home: Path, symbols: dict[str, list[float]], days: list[date]) -> None:
    """Daily bars per session partition, as the lake stores them."""
    for k, day in enumerate(days):
        rows = [
            {
                "symbol": s,
                "session": day,
                "open": c[k],
                "high": c[k],
                "low": c[k],
                "close": c[k],
                "volume": 1e6,
                "ts": datetime(day.year, day.month, day.day, 5, tzinfo=UTC),
            }
            for s, c in symbols.items()
        ]
        part = home / "lake" / "stock_bars_1d" / f"session={day.isoformat()}"
        part.mkdir(parents=True, exist_ok=True)
        pl.DataFrame(rows).write_parquet(part / "part.parquet")


# a hand-written deployment lists every limit (a daily-loss limit always) and its costs
SIGNAL_COSTS = {"kind": "signal", "fees": 0.001, "slippage": 0.0005}
OPTIONS_COSTS = {"kind": "options", "fill_fraction": 0.25}


def limits(**over: Any) -> dict[str, Any]:
    """Every limit as manifest JSON: the RiskLimits defaults with a loose daily-loss limit
    (half the test capital, so only tests about it hit it) and ``over``."""
    return RiskLimits(**{"max_daily_loss": 50_000.0, **over}).model_dump(mode="json")


def manifest(name: str = "ma-spy", symbols: tuple[str, ...] = ("SPY",), **over: Any) -> dict:
    """An ma_crossover deployment manifest (fast 3 / slow 10)."""
    return {
        "manifest_id": f"m-{name}",
        "strategy": "ma_crossover",
        "interface_version": 1,
        "params": {"symbols": list(symbols), "fast": 3, "slow": 10, "allocation": 0.5},
        "capital": 100_000.0,
        "risk_limits": limits(),
        "costs": SIGNAL_COSTS,
        **over,
    }


def deploy(home: Path, name: str = "ma-spy", **over: Any) -> Path:
    """Write a manifest into ``<home>/live/deployments``."""
    return write_manifest(home / "live" / "deployments", name, manifest(name, **over))


def equity_ticket(
    symbol: str = "SPY",
    qty: float = 10,
    side: Side = Side.BUY,
    seq: int = 0,
    dep: str = "dep-one",
    **kw: Any,
) -> OrderTicket:
    intent = OrderIntent(dep, (Leg(symbol, side, 1, AssetClass.US_EQUITY),), qty, **kw)
    return OrderTicket(client_order_id(dep, T0, seq, 1), intent, dep)


def spread_ticket(qty: int = 1, seq: int = 0, dep: str = "dep-one", **kw: Any) -> OrderTicket:
    legs = (
        Leg(CALL_A, Side.BUY, 1, AssetClass.US_OPTION, PositionIntent.BUY_TO_OPEN),
        Leg(CALL_B, Side.SELL, 1, AssetClass.US_OPTION, PositionIntent.SELL_TO_OPEN),
    )
    intent = OrderIntent(dep, legs, qty, OrderType.LIMIT, kw.pop("limit_price", 1.5), **kw)
    return OrderTicket(client_order_id(dep, T0, seq, 2), intent, dep)


def quote(
    last: float,
    bid: float = math.nan,
    ask: float = math.nan,
    ts: datetime = T0,
    greeks: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0),
) -> Quote:
    return Quote(bid, ask, last, ts, greeks)
