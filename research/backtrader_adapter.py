"""Run our ``Strategy.decide()`` on backtrader's broker: a ``bt.Strategy`` that, after every
daily bar (every minute bar for a ``timeframe = "1m"`` strategy), builds the ``MarketSnapshot``
and ``Book`` the live runner builds, calls ``decide()`` and turns its ``OrderIntent``s into
backtrader orders.

    >>> cerebro = bt.Cerebro()
    >>> for feed in lake_feeds(home, ["SPY", "AAPL"], "1d"):
    ...     cerebro.adddata(feed)
    >>> configure_broker(cerebro, cash=100_000, costs=Costs(fees=0.001, slippage=0.0005))
    >>> cerebro.addstrategy(DecideStrategy, decider=MACrossover(MACrossoverConfig(...)))
    >>> decide_run = cerebro.run()[0]          # .decided, .fills, .values, .pending

Works over any backtrader feed whose name is the symbol (``lake_feeds`` names them), not only
the lake's. The conventions, each set to match ours (``reference_backtest`` / the sweeps):

- A decision at bar t sees bars up to and including t (``snapshot.history``, ``ts`` = 16:00
  New York, when the live runner decides; minute strategies: :mod:`research.backtrader_intraday`)
  and its market orders fill at bar t's close:
  backtrader's cheat-on-close (``set_coc(True)``), not its default fill at the next bar's open.
- Costs: ``fees`` is a percentage commission on each fill's notional (``setcommission``),
  ``slippage`` moves the fill price by that fraction against the order (``set_slippage_perc``
  with ``slip_out=True``, so it is never capped at the bar's high/low, as vectorbt does not).
- backtrader executes a cheat-on-close order on its next broker cycle, which needs one more
  bar; an order decided on the last bar stays ``pending`` (vectorbt fills it at that close).
- Limit orders are backtrader's: matched against the following bar's range (no cheat-on-close
  for limits), filling at the limit or a better open; a ``day`` limit works that next session
  only (Alpaca queues a day order placed after the close for the next session), ``gtc`` until
  filled.
- Only single-leg equity intents map to backtrader orders; an options or multi-leg intent
  raises :class:`AdapterError` (our options engine, ``strategies.backtest.options_engine``,
  runs those).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

from contracts.calendar import next_session, session_open_close
from research.backtrader_feed import import_backtrader
from research.backtrader_history import history_for
from research.backtrader_intraday import IntradaySnapshots
from strategies.base import Strategy, safe_decide
from strategies.indicators.session_features import features_by_session
from strategies.models import (
    NEW_YORK,
    AssetClass,
    Book,
    MarketSnapshot,
    OrderIntent,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from strategies.options.vol_features import features_by_session as vol_by_session

# DecideStrategy is made on first access (module __getattr__), so backtrader stays optional
DECISION_TIME = dt.time(16)
__all__ = [
    "AdapterError",
    "Costs",
    "configure_broker",
    "decide_strategy_class",
    "decision_time",
    "run_decide",
]


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


def decision_time(session: dt.date) -> dt.datetime:
    """When the live runner decides on ``session``'s daily bar: 16:00 New York (its ``CLOSE``,
    also on early-close days, as the options engine's ``MARKET_CLOSE``)."""
    return dt.datetime.combine(session, DECISION_TIME, NEW_YORK)


def _day_end(snapshot: MarketSnapshot) -> dt.datetime:
    """Until when a day order decided on ``snapshot`` works (naive New York, as the feeds):
    a minute strategy's until its session's close; a daily strategy's, decided after the
    close, through the next session (Alpaca queues it for that session)."""
    if snapshot.intraday is not None:
        close = session_open_close(snapshot.session)[1].tz_convert(NEW_YORK)
        return close.to_pydatetime().replace(tzinfo=None)
    return dt.datetime.combine(next_session(snapshot.session), dt.time())


class _DecideMixin:
    """The adapter's logic; :func:`decide_strategy_class` mixes it into ``bt.Strategy``.

    After a run the strategy instance holds, as lists of dicts (``session`` = decision session):

    - ``decided``: every intent turned into an order (``symbol, side, qty, order_type,
      reason``);
    - ``fills``: completed orders with ``fill_session, size, price, fees``;
    - ``rejected``: orders the broker refused or expired, with backtrader's ``status``
      (``Margin`` when the cash does not cover a buy plus its costs);
    - ``pending``: orders still open when the data ended;
    - ``values``: ``(session, equity)`` as each decision's book saw it.
    """

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
        self._check_feeds(strategy)
        if strategy.timeframe == "1m":
            try:
                self._intraday = IntradaySnapshots(self.datas, self.params.daily)
            except ValueError as exc:
                raise AdapterError(str(exc)) from None
        else:
            self._history = history_for(self.datas, self.params.lookback, self.params.preload)
        frame = self.params.intraday_features
        self._session_features = {} if frame is None else features_by_session(frame)
        vol = self.params.vol_features
        self._session_vol = {} if vol is None else vol_by_session(vol)
        self._peak = 0.0
        self.decided: list[dict[str, Any]] = []
        self.fills: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.values: list[tuple[dt.date, float]] = []
        self._open: dict[int, dict[str, Any]] = {}

    def _check_feeds(self, strategy: Strategy) -> None:
        """AdapterError unless every feed has the strategy's bars (daily, or 1-minute)."""
        bt = import_backtrader()
        minute = strategy.timeframe == "1m"
        want = (bt.TimeFrame.Minutes, 1) if minute else (bt.TimeFrame.Days, 1)
        wrong = [d._name for d in self.datas if (d._timeframe, d._compression) != want]
        if wrong:
            table = "stock_bars_1m" if minute else "stock_bars_1d"
            raise AdapterError(
                f"feeds {wrong} do not hold {table} bars; {strategy.name} decides on "
                f"{strategy.timeframe} bars: feed it lake_feeds(home, symbols, "
                f"'{strategy.timeframe}')"
            )

    def next(self) -> None:
        if self.params.decider.timeframe == "1m":
            snapshot = self._intraday.update()
        else:
            session, prices, history = self._history.update()
            feats = self._session_features.get(session, {})  # the session's own minutes
            snapshot = MarketSnapshot(
                decision_time(session),
                session,
                prices,
                history,
                vol_features=self._session_vol.get(session, {}),  # the session's own surface
                intraday_features=feats,
            )
        book = self._book()
        self.values.append((snapshot.session, book.equity))
        for intent in safe_decide(self.params.decider, snapshot, book):
            self._submit(intent, snapshot)

    def _book(self) -> Book:
        positions = []
        for data in self.datas:
            pos = self.broker.getposition(data)
            if pos.size:
                positions.append(Position(data._name, pos.size, pos.price, float(data.close[0])))
        book = Book.build(self.broker.getcash(), tuple(positions), peak_equity=self._peak)
        self._peak = book.peak_equity
        return book

    def _submit(self, intent: OrderIntent, snapshot: MarketSnapshot) -> None:
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
            # a day order placed after the close works the next session (as Alpaca queues it);
            # backtrader's Order.DAY would expire it with the session it was placed in
            day = intent.time_in_force is TimeInForce.DAY
            kwargs["valid"] = _day_end(snapshot) if day else None
        buy = leg.side is Side.BUY
        order = self.buy(**kwargs) if buy else self.sell(**kwargs)  # type: ignore[attr-defined]
        row = {
            "ts": snapshot.ts,
            "session": snapshot.session,
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


def run_decide(
    feeds: list[Any],
    strategy: Strategy,
    cash: float,
    costs: Costs = Costs(),
    lookback: int | None = None,
    daily: pl.DataFrame | None = None,
    intraday_features: pl.DataFrame | None = None,
    vol_features: pl.DataFrame | None = None,
) -> Any:
    """Run ``strategy`` over ``feeds`` (e.g. :func:`research.backtrader_feed.lake_feeds`) on a
    fresh cerebro configured by :func:`configure_broker`; the finished ``DecideStrategy``
    (``lookback``, ``daily``, ``intraday_features`` and ``vol_features`` are its params)."""
    bt = import_backtrader()
    cerebro = bt.Cerebro(stdstats=False)
    for feed in feeds:
        cerebro.adddata(feed)
    configure_broker(cerebro, cash, costs)
    cerebro.addstrategy(
        decide_strategy_class(),
        decider=strategy,
        lookback=lookback,
        daily=daily,
        intraday_features=intraday_features,
        vol_features=vol_features,
    )
    return cerebro.run()[0]


_CLASS: type | None = None


def decide_strategy_class() -> type:
    """``DecideStrategy``: the ``bt.Strategy`` running a ``decide()`` (built on first use, so
    importing this module never needs backtrader).

    Params: ``decider`` (a :class:`strategies.base.Strategy`), ``lookback`` (sessions of
    history per symbol in the snapshot; None = all, as the sweeps' signals see; 260 = the live
    runner's window), ``preload`` (slice the pandas feeds' frames instead of collecting each
    bar: same frames, linear instead of quadratic time; see :mod:`research.backtrader_history`),
    ``daily`` (minute strategies: the daily bars their snapshots' ``history`` holds, e.g.
    ``read_bars``' frames; see :mod:`research.backtrader_intraday`), ``intraday_features``
    (daily strategies: an ``intraday_feature_frame``, e.g.
    :func:`research.timeframes.lake_intraday_features`; each session's rows become its
    snapshot's ``intraday_features``; None: none, so an intraday gate stays closed),
    ``vol_features`` (daily strategies: a
    :func:`~strategies.options.vol_features.vol_feature_frame`, e.g. the options sweeps'
    ``load_vol_features``; each session's rows become its snapshot's ``vol_features``, as the
    live runner's lake snapshot fills them; None: none, so a v2 ``gbm_signal`` sees NaN surfaces).
    """
    global _CLASS
    if _CLASS is None:
        bt = import_backtrader()

        class DecideStrategy(_DecideMixin, bt.Strategy):  # type: ignore[misc,name-defined]
            """Runs ``params.strategy.decide()`` after every bar on backtrader's broker."""

            params = (
                ("decider", None),
                ("lookback", None),
                ("preload", True),
                ("daily", None),
                ("intraday_features", None),
                ("vol_features", None),
            )

        _CLASS = DecideStrategy
    return _CLASS


def __getattr__(name: str) -> Any:
    if name == "DecideStrategy":
        return decide_strategy_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
