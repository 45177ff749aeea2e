"""State of the simulated broker (orders, positions, cash, activities), saved as JSON if asked."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from live.journal.codec import ts_from_text, ts_to_text
from live.orders.reports import ActivityReport, LegReport, OrderReport, OrderStatus
from strategies.accounting import Account, Holding
from strategies.models import AssetClass, OrderType, Side, TimeInForce


class SimConfig(BaseModel):
    """Knobs of the simulated broker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cash: float = Field(default=100_000.0, ge=0)
    slippage_bps: float = Field(default=5.0, ge=0)
    # options fill at mid +/- this fraction of the spread, like the options backtest
    # (OptionsBacktestConfig.fill_fraction); None: at the touch with slippage_bps
    option_fill_fraction: float | None = Field(default=0.25, ge=0, le=1)
    fill_fraction: float = Field(default=1.0, gt=0, le=1)
    reject_symbols: frozenset[str] = frozenset()
    option_tifs: frozenset[TimeInForce] = frozenset({TimeInForce.DAY, TimeInForce.GTC})
    fee_per_contract: float = Field(default=0.0, ge=0)


@dataclass
class SimLeg:
    """One leg of a simulated order."""

    symbol: str
    side: str
    ratio: int
    asset_class: str
    filled_qty: float = 0.0
    avg_price: float | None = None


@dataclass
class SimOrder:
    """A simulated order."""

    broker_id: str
    client_order_id: str
    legs: list[SimLeg]
    qty: float
    order_type: str
    limit_price: float | None
    tif: str
    status: str
    submitted_at: str
    updated_at: str
    filled_qty: float = 0.0
    avg_price: float | None = None
    replaced_by: str | None = None

    def report(self) -> OrderReport:
        """The broker-side report of this order."""
        legs = tuple(
            LegReport(
                leg.symbol,
                Side(leg.side),
                leg.ratio,
                leg.filled_qty,
                leg.avg_price,
                AssetClass(leg.asset_class),
            )
            for leg in self.legs
        )
        return OrderReport(
            self.client_order_id, self.broker_id, OrderStatus(self.status), self.qty,
            self.filled_qty, self.avg_price, legs, ts_from_text(self.submitted_at),
            ts_from_text(self.updated_at), OrderType(self.order_type), self.limit_price,
            self.replaced_by,
        )  # fmt: skip


@dataclass
class SimState:
    """Everything the simulated broker knows; cash and positions are an accounting
    :class:`Account` (the one the backtest and the live books use)."""

    account: Account
    orders: dict[str, SimOrder] = field(default_factory=dict)
    by_client_id: dict[str, str] = field(default_factory=dict)
    activities: list[dict[str, Any]] = field(default_factory=list)
    seq: int = 0
    last_equity: float = 0.0
    day: str = ""  # New York date of the last step (last_equity rolls over on change)

    @classmethod
    def new(cls, cash: float) -> SimState:
        """A fresh account holding ``cash``."""
        return cls(Account(cash), last_equity=cash)

    @property
    def cash(self) -> float:
        """Cash in the account."""
        return self.account.cash

    @property
    def positions(self) -> dict[str, list[Any]]:
        """``symbol -> [qty, avg_price, asset class]`` (how the log stores them)."""
        return {
            s: [h.qty, h.avg_price, h.asset_class.value] for s, h in self.account.holdings.items()
        }

    def restore(
        self, cash: float, positions: dict[str, list[Any]], realized: float = 0.0, fees: float = 0.0
    ) -> None:
        """Replace the account with ``cash`` and logged ``positions`` (marked at cost until
        the next quotes)."""
        account = Account(cash)
        for symbol, (qty, avg, asset_class) in positions.items():
            h = Holding.of(symbol, asset_class)
            h.qty, h.avg_price, h.mark = float(qty), float(avg), float(avg)
            account.put(h)
        account.realized, account.fees = realized, fees
        self.account = account

    def activity_reports(self) -> list[ActivityReport]:
        """Activities as reports."""
        return [
            ActivityReport(a["id"], a["type"], a["symbol"], a["qty"], date.fromisoformat(a["day"]))
            for a in self.activities
        ]

    def append(self, path: Path, orders: list[SimOrder]) -> None:
        """Append the changed ``orders`` and the account to a JSON-lines log (no fsync: a
        SIGKILL keeps what was written; the log is compacted on load)."""
        record = {
            "orders": [asdict(o) for o in orders],
            "positions": self.positions,
            "cash": self.cash,
            "realized": self.account.realized,
            "fees": self.account.fees,
            "seq": self.seq,
            "last_equity": self.last_equity,
            "day": self.day,
            "activities": self.activities,
        }
        with path.open("a") as f:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, path: Path, cash: float) -> SimState:
        """Replay a log written by :meth:`append`, then compact it to one record."""
        state = cls.new(cash)
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line
            for o in record.pop("orders"):
                order = SimOrder(**{**o, "legs": [SimLeg(**leg) for leg in o["legs"]]})
                state.orders[order.broker_id] = order
                state.by_client_id[order.client_order_id] = order.broker_id
            state.restore(
                record.pop("cash"), record.pop("positions"), record.pop("realized", 0.0),
                record.pop("fees", 0.0),
            )  # fmt: skip
            for key, value in record.items():
                setattr(state, key, value)
        tmp = path.with_suffix(".compact")
        tmp.unlink(missing_ok=True)
        state.append(tmp, list(state.orders.values()))
        os.replace(tmp, path)
        return state


def stamp(ts: datetime) -> str:
    """Journal-style UTC text of ``ts``."""
    return ts_to_text(ts)
