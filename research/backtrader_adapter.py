"""Run our ``Strategy.decide()`` on backtrader's broker: a ``bt.Strategy`` that, after every
daily bar, builds the ``MarketSnapshot`` and ``Book`` the live runner builds, calls ``decide()``
and turns its ``OrderIntent``s into backtrader orders.

    >>> cerebro = bt.Cerebro()
    >>> for feed in lake_feeds(home, ["SPY", "AAPL"], "1d"):
    ...     cerebro.adddata(feed)
    >>> configure_broker(cerebro, cash=100_000, costs=Costs(fees=0.001, slippage=0.0005))
    >>> cerebro.addstrategy(DecideStrategy, decider=MACrossover(MACrossoverConfig(...)))
    >>> decide_run = cerebro.run()[0]          # .decided, .fills, .values, .pending

Works over any backtrader feed whose name is the symbol (``lake_feeds`` names them), not only
the lake's. The conventions, each set to match ours (``reference_backtest`` / the sweeps):

- A decision at bar t sees bars up to and including t (``snapshot.history``, ``ts`` = the
  session's close) and its market orders fill at bar t's close: backtrader's cheat-on-close
  (``set_coc(True)``), not its default fill at the next bar's open.
- Costs: ``fees`` is a percentage commission on each fill's notional (``setcommission``),
  ``slippage`` moves the fill price by that fraction against the order (``set_slippage_perc``
  with ``slip_out=True``, so it is never capped at the bar's high/low, as vectorbt does not).
- backtrader executes a cheat-on-close order on its next broker cycle, which needs one more
  bar; an order decided on the last bar stays ``pending`` (vectorbt fills it at that close).
- Limit orders are backtrader's: matched against the following bar's range (no cheat-on-close
  for limits); ``day`` orders expire after that one bar.
- Only single-leg equity intents map to backtrader orders; an options or multi-leg intent
  raises :class:`AdapterError` (our options engine, ``strategies.backtest.options_engine``,
  runs those).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

from contracts.calendar import session_open_close
from research.backtrader_feed import import_backtrader
from strategies.base import Strategy, safe_decide
from strategies.models import (
    AssetClass,
    Book,
    MarketSnapshot,
    OrderIntent,
    OrderType,
    Position,
    Side,
    TimeInForce,
)

# DecideStrategy is made on first access (module __getattr__), so backtrader stays optional
__all__ = ["AdapterError", "Costs", "configure_broker", "decide_strategy_class"]

HISTORY_COLUMNS = ("session", "symbol", "open", "high", "low", "close", "volume")


class AdapterError(RuntimeError):
    """decide() asked for something backtrader's broker cannot do here; the message says what."""


@dataclass(frozen=True, slots=True)
class Costs:
    """Our signal cost model (``SignalCosts``): fractions of notional and of price."""

    fees: float = 0.0
    slippage: float = 0.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.fees < 1.0 and 0.0 <= self.slippage < 1.0):
            raise ValueError(f"fees and slippage are fractions in [0, 1), got {self}")


def configure_broker(cerebro: Any, cash: float, costs: Costs = Costs()) -> None:
    """Starting cash, our costs and our fill convention (fill at the decision bar's close)."""
    broker = cerebro.broker
    broker.setcash(float(cash))
    broker.setcommission(commission=costs.fees)  # percentage of notional, stock-like
    broker.set_slippage_perc(
        costs.slippage, slip_open=True, slip_limit=True, slip_match=True, slip_out=True
    )
    broker.set_coc(True)


class _History:
    """One feed's bars so far, as columns (appended once per bar the feed delivers)."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.rows: dict[str, list[Any]] = {c: [] for c in HISTORY_COLUMNS if c != "symbol"}
        self.seen = 0

    def update(self, data: Any) -> bool:
        """Append the feed's new bar; True when it delivered one this cycle."""
        if len(data) == self.seen:
            return False
        self.seen = len(data)
        self.rows["session"].append(data.datetime.date(0))
        for col in ("open", "high", "low", "close", "volume"):
            self.rows[col].append(float(getattr(data, col)[0]))
        return True

    def frame(self, lookback: int | None) -> pl.DataFrame:
        cut = slice(-lookback, None) if lookback else slice(None)
        cols = {c: v[cut] for c, v in self.rows.items()}
        return pl.DataFrame({"symbol": self.symbol, **cols}, schema_overrides={"session": pl.Date})


def _close_ts(session: dt.date, cache: dict[dt.date, dt.datetime]) -> dt.datetime:
    """The session's close (UTC, early closes respected): the decision time."""
    ts = cache.get(session)
    if ts is None:
        ts = cache[session] = session_open_close(session)[1].to_pydatetime()
    return ts


class _DecideMixin:
    """The adapter's logic; :func:`decide_strategy_class` mixes it into ``bt.Strategy``."""

    params: Any
    datas: list[Any]
    broker: Any

    def start(self) -> None:
        strategy = self.params.decider
        if not isinstance(strategy, Strategy):
            raise AdapterError(
                "DecideStrategy needs decider=<a strategies.base.Strategy instance>, got "
                f"{strategy!r}"
            )
        if strategy.timeframe != "1d":
            raise AdapterError(
                f"{strategy.name} decides on {strategy.timeframe} bars; the backtrader adapter "
                "runs daily strategies (feed them stock_bars_1d)"
            )
        self._histories = [_History(d._name) for d in self.datas]
        self._close_cache: dict[dt.date, dt.datetime] = {}
        self._peak = 0.0
        self.decided: list[dict[str, Any]] = []
        self.fills: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.values: list[tuple[dt.date, float]] = []
        self._open: dict[int, dict[str, Any]] = {}

    def next(self) -> None:
        fresh = [h.update(d) for h, d in zip(self._histories, self.datas, strict=True)]
        session = max(h.rows["session"][-1] for h in self._histories if h.rows["session"])
        frames = [h.frame(self.params.lookback) for h in self._histories if h.seen]
        history = pl.concat(frames).sort("session", "symbol")
        prices = {
            h.symbol: h.rows["close"][-1]
            for h, new in zip(self._histories, fresh, strict=True)
            if new
        }
        snapshot = MarketSnapshot(_close_ts(session, self._close_cache), session, prices, history)
        book = self._book()
        self.values.append((session, book.equity))
        for intent in safe_decide(self.params.decider, snapshot, book):
            self._submit(intent, session)

    def _book(self) -> Book:
        positions = []
        for data in self.datas:
            pos = self.broker.getposition(data)
            if pos.size:
                positions.append(Position(data._name, pos.size, pos.price, float(data.close[0])))
        book = Book.build(self.broker.getcash(), tuple(positions), peak_equity=self._peak)
        self._peak = book.peak_equity
        return book

    def _submit(self, intent: OrderIntent, session: dt.date) -> None:
        bt = import_backtrader()
        leg = intent.legs[0]
        if len(intent.legs) != 1 or leg.asset_class is not AssetClass.US_EQUITY:
            raise AdapterError(
                f"{intent.strategy} asked for a {len(intent.legs)}-leg "
                f"{leg.asset_class.value} order; backtrader runs single-leg equity orders only "
                "(run options families on strategies.backtest.options_engine)"
            )
        data = self.getdatabyname(leg.symbol)  # type: ignore[attr-defined]
        limit = intent.order_type is OrderType.LIMIT
        kwargs: dict[str, Any] = {
            "data": data,
            "size": float(intent.qty),
            "exectype": bt.Order.Limit if limit else bt.Order.Market,
        }
        if limit:
            kwargs["price"] = intent.limit_price
            kwargs["valid"] = bt.Order.DAY if intent.time_in_force is TimeInForce.DAY else None
        buy = leg.side is Side.BUY
        order = self.buy(**kwargs) if buy else self.sell(**kwargs)  # type: ignore[attr-defined]
        row = {
            "session": session,
            "symbol": leg.symbol,
            "side": leg.side.value,
            "qty": float(intent.qty),
            "order_type": intent.order_type.value,
            "reason": intent.reason,
        }
        self.decided.append(row)
        self._open[order.ref] = row

    def notify_order(self, order: Any) -> None:
        row = self._open.get(order.ref)
        if row is None or order.status in (order.Submitted, order.Accepted, order.Partial):
            return
        del self._open[order.ref]
        if order.status == order.Completed:
            ex = order.executed
            self.fills.append(
                {
                    **row,
                    "fill_session": order.data.num2date(ex.dt).date(),
                    "size": abs(ex.size),
                    "price": ex.price,
                    "fees": ex.comm,
                }
            )
        else:  # Canceled, Expired, Margin, Rejected
            self.rejected.append({**row, "status": order.getstatusname()})

    @property
    def pending(self) -> list[dict[str, Any]]:
        """Decided orders still open at the end of the data (decided on the last bar)."""
        return list(self._open.values())


_CLASS: type | None = None


def decide_strategy_class() -> type:
    """``DecideStrategy``: the ``bt.Strategy`` running a ``decide()`` (built on first use, so
    importing this module never needs backtrader).

    Params: ``decider`` (a :class:`strategies.base.Strategy`), ``lookback`` (sessions of
    history per symbol in the snapshot; None = all, as the sweeps' signals see).
    """
    global _CLASS
    if _CLASS is None:
        bt = import_backtrader()

        class DecideStrategy(_DecideMixin, bt.Strategy):  # type: ignore[misc,name-defined]
            """Runs ``params.strategy.decide()`` after every bar on backtrader's broker."""

            params = (("decider", None), ("lookback", None))

        _CLASS = DecideStrategy
    return _CLASS


def __getattr__(name: str) -> Any:
    if name == "DecideStrategy":
        return decide_strategy_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
