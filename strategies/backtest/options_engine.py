"""The options backtest engine: a day loop over a chain archive calling the strategy's ``decide()``.

Each session, in order: pay dividends on ex-dates; mark every holding at the session's mid (and
attribute the move to delta, gamma, theta, vega and a residual using the previous session's
Greeks); hand the strategy a :class:`MarketSnapshot` that holds nothing after the session plus the
marked :class:`Book`; fill its intents at ``mid +/- fill_fraction * spread`` with fees, all legs or
none, subject to buying power; then settle early assignments and expiries physically; record the
day. Per-day work touches only the held contracts (binary search into the sorted archive) and
slices (no copies) of the archive and history, so ten years of daily chains take well under a
second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, time
from typing import cast

import numpy as np
import polars as pl

from strategies.accounting import Account, Settlement
from strategies.backtest.archive import ChainArchive, bars_from_chains
from strategies.backtest.config import OptionsBacktestConfig
from strategies.backtest.execution import OrderRejected, execute
from strategies.backtest.holding import ChainHolding
from strategies.backtest.results import OptionsBacktestResult, Recorder
from strategies.backtest.settlement import early_assign, expire
from strategies.base import Strategy, safe_decide
from strategies.indicators.session_features import features_by_session as intraday_by_session
from strategies.models import NEW_YORK, MarketSnapshot, OrderIntent
from strategies.options.vol_features import features_by_session

_EPOCH = date(1970, 1, 1)
MARKET_CLOSE = time(16, 0)
_BAR_COLUMNS = ("session", "symbol", "open", "high", "low", "close", "volume")
DELTA, GAMMA, THETA, VEGA, RESIDUAL, TRADING, SETTLEMENT, DIVIDENDS, FEES = range(9)


def _num(x: float) -> float:
    return x if math.isfinite(x) else 0.0


class OptionsEngine:
    """Stateful runner of one backtest (use :func:`run_options_backtest`)."""

    def __init__(
        self,
        strategy: Strategy,
        archive: ChainArchive,
        config: OptionsBacktestConfig,
        bars: pl.DataFrame,
        vol_features: pl.DataFrame | None = None,
        intraday_features: pl.DataFrame | None = None,
    ) -> None:
        missing = [c for c in _BAR_COLUMNS if c not in bars.columns]
        if missing:
            raise ValueError(f"bars lack columns {missing}")
        self.strategy, self.archive, self.config = strategy, archive, config
        self.history = bars.with_columns(pl.col("session").cast(pl.Date)).sort("session", "symbol")
        hist_days = self.history.get_column("session").cast(pl.Int32).to_numpy()
        day_numbers = np.array([(s - _EPOCH).days for s in archive.sessions])
        self.hist_end = np.searchsorted(hist_days, day_numbers, side="right")
        self.account = Account(config.initial_cash, ChainHolding)
        self.recorder = Recorder()
        self.prev_session: date | None = None
        self.prev_equity = config.initial_cash
        self.order_id = 0
        # a session's features are computed from data up to that session only (proven in tests)
        self.vol = {} if vol_features is None else features_by_session(vol_features)
        self.intraday = {} if intraday_features is None else intraday_by_session(intraday_features)

    def run(self, days: Sequence[int]) -> OptionsBacktestResult:
        """Step through archive session indices ``days`` (ascending) and return the results."""
        for day in days:
            self.step(day)
        return self.recorder.result()

    def step(self, day: int) -> None:
        """Process one session."""
        session = self.archive.sessions[day]
        spots = {
            u: float(p)
            for u, p in zip(self.archive.underlyings, self.archive.und_price[day], strict=True)
            if math.isfinite(p)
        }
        att = [0.0] * 9
        self._dividends(session, att)
        self._mark(day, session, spots, att)
        after_close = self.config.decision_time >= MARKET_CLOSE
        if after_close:  # deciding after the close: today's expiries have settled (the runner)
            self._settle(day, session, spots, att)
        snapshot = self._snapshot(day, session, spots)
        for intent in safe_decide(self.strategy, snapshot, self.account.book()):
            self._execute(intent, day, session, att)
        if not after_close:  # deciding during the session: expiries settle at its close
            self._settle(day, session, spots, att)
        self._record(session, att)

    def _dividends(self, session: date, att: list[float]) -> None:
        for h in list(self.account.holdings.values()):
            amount = self.config.dividends.get(h.underlying, {}).get(session, 0.0)
            if amount and not h.is_option:
                self.account.receive(amount * h.qty)
                att[DIVIDENDS] += amount * h.qty

    def _mark(self, day: int, session: date, spots: dict[str, float], att: list[float]) -> None:
        cfg, cols = self.config, self.archive.cols
        dt = 0 if self.prev_session is None else (session - self.prev_session).days
        account = self.account
        # the engine's account holds ChainHoldings only (Account(..., ChainHolding) and execute)
        for h in cast(dict[str, ChainHolding], account.holdings).values():
            if not h.is_option:
                spot = spots.get(h.underlying, math.nan)
                if math.isfinite(spot):
                    att[DELTA] += h.qty * (spot - h.mark)
                    account.mark(h.symbol, spot)
                    h.spot = spot
                continue
            row = self.archive.find(day, h.key)
            if row < 0 or not math.isfinite(cols["mid"][row]):
                continue  # not quoted today: keep the stale mark
            units = h.qty * h.multiplier
            spot, mark, iv = cols["underlying_price"][row], cols["mid"][row], cols["iv"][row]
            d_s = spot - h.spot if math.isfinite(h.spot) else 0.0
            parts = (
                units * _num(h.delta) * d_s,
                units * 0.5 * _num(h.gamma) * d_s * d_s,
                units * _num(h.theta) * dt * cfg.theta_scale,
                units * _num(h.vega) * _num(iv - h.iv) * cfg.vega_scale,
            )
            att[DELTA] += parts[0]
            att[GAMMA] += parts[1]
            att[THETA] += parts[2]
            att[VEGA] += parts[3]
            att[RESIDUAL] += units * (mark - h.mark) - sum(parts)
            greeks = (
                float(cols["delta"][row]),
                float(cols["gamma"][row]),
                float(cols["vega"][row]),
                float(cols["theta"][row]),
            )
            account.mark(h.symbol, float(mark), greeks)
            h.spot, h.iv = float(spot), float(iv)

    def _snapshot(self, day: int, session: date, spots: dict[str, float]) -> MarketSnapshot:
        ts = datetime.combine(session, self.config.decision_time, NEW_YORK)
        history = self.history.slice(0, int(self.hist_end[day]))
        return MarketSnapshot(
            ts,
            session,
            spots,
            history,
            self.archive.chains(day),
            vol_features=self.vol.get(session, {}),
            intraday_features=self.intraday.get(session, {}),
        )

    def _execute(self, intent: OrderIntent, day: int, session: date, att: list[float]) -> None:
        self.order_id += 1
        limit = intent.limit_price
        head = (
            session,
            self.order_id,
            intent.strategy,
            intent.tag,
            len(intent.legs),
            float(intent.qty),
            intent.order_type.value,
            limit,
        )
        try:
            fills = execute(intent, self.archive, day, self.config, self.account)
        except OrderRejected as exc:
            self.recorder.orders.append((*head, "rejected", str(exc)))
            return
        self.recorder.orders.append((*head, "filled", intent.reason))
        for f in fills:
            att[TRADING] += f.qty * f.holding.multiplier * (f.mark - f.price)
            att[FEES] -= f.fees
            pi = None if f.leg.position_intent is None else f.leg.position_intent.value
            self.recorder.fills.append(
                (
                    session,
                    self.order_id,
                    intent.strategy,
                    f.leg.symbol,
                    f.leg.side.value,
                    abs(f.qty),
                    f.price,
                    f.fees,
                    "trade",
                    pi,
                    intent.tag,
                    intent.reason,
                )
            )

    def _settle(self, day: int, session: date, spots: dict[str, float], att: list[float]) -> None:
        nxt = self.archive.sessions[day + 1] if day + 1 < len(self.archive) else None
        dividends = {u: d.get(nxt, 0.0) for u, d in self.config.dividends.items()} if nxt else {}
        events = early_assign(self.account, session, spots, dividends, self.config)
        events += expire(self.account, session, spots, self.config)
        for event in events:
            att[SETTLEMENT] += event.pnl
            att[FEES] -= event.fees
            self._settlement_fills(session, event)

    def _settlement_fills(self, session: date, e: Settlement) -> None:
        h, name = e.holding, self.strategy.name
        value = 0.0 if e.kind == "expiry" else h.intrinsic(e.spot)
        side = "buy" if h.qty < 0 else "sell"
        self.recorder.fills.append(
            (
                session,
                None,
                name,
                h.symbol,
                side,
                abs(h.qty),
                value,
                e.fees,
                e.kind,
                None,
                e.kind,
                f"{e.kind} at spot {e.spot:.2f}",
            )
        )
        if e.shares:
            self.recorder.fills.append(
                (
                    session,
                    None,
                    name,
                    h.underlying,
                    "buy" if e.shares > 0 else "sell",
                    abs(e.shares),
                    h.strike,
                    0.0,
                    e.kind,
                    None,
                    e.kind,
                    f"{h.symbol} {e.kind}",
                )
            )

    def _record(self, session: date, att: list[float]) -> None:
        account = self.account
        equity = account.equity()
        account.peak_equity = max(account.peak_equity, equity)
        self.recorder.day(
            session,
            equity,
            account.cash,
            account.collateral(),
            account.peak_equity,
            account.greeks(),
            len(account.holdings),
        )
        for h in account.holdings.values():
            self.recorder.positions.append(
                (session, h.symbol, h.qty, h.avg_price, h.mark, h.market_value)
            )
        self.recorder.attribution.append((session, *att))
        self.prev_session, self.prev_equity = session, equity


def run_options_backtest(
    strategy: Strategy,
    chains: pl.DataFrame | ChainArchive,
    config: OptionsBacktestConfig | None = None,
    *,
    bars: pl.DataFrame | None = None,
    start: date | None = None,
    end: date | None = None,
    expected_sessions: Sequence[date] | None = None,
    vol_features: pl.DataFrame | None = None,
    intraday_features: pl.DataFrame | None = None,
) -> OptionsBacktestResult:
    """Backtest ``strategy`` day by day over an option chain archive.

    Args:
        strategy: Any :class:`Strategy`; its ``decide()`` is called once per session.
        chains: Chain archive (columns :data:`strategies.models.CHAIN_COLUMNS`, many sessions) or
            a prepared :class:`ChainArchive` (prepare once to reuse across a sweep).
        config: Engine settings (fills, fees, assignment); defaults when None.
        bars: Daily bars for the snapshots' history (default: closes from the chains). Bars
            before ``start`` serve as warm-up history.
        start: First session to trade (inclusive; default the archive's first).
        end: Last session to trade (inclusive; default the archive's last).
        expected_sessions: Sessions that must be present in the archive for ``[start, end]``
            (for example the exchange calendar); a missing one raises ValueError naming it.
        vol_features: A :func:`~strategies.options.vol_features.vol_feature_frame`; each
            session's rows become that snapshot's ``vol_features`` (None: no features).
        intraday_features: A :func:`~strategies.indicators.session_features.
            intraday_feature_frame` (each session's features from its minute bars up to its
            close); each session's rows become that snapshot's ``intraday_features`` (None:
            none, so an intraday gate stays closed).

    Returns:
        The daily, positions, fills, orders and attribution frames.

    Raises:
        ValueError: Empty date range, bad archive or bars, or missing sessions.
        StrategyError: The strategy raised or returned something other than OrderIntents.
    """
    config = config or OptionsBacktestConfig()
    archive = chains if isinstance(chains, ChainArchive) else ChainArchive.from_frame(chains)
    first = start or archive.sessions[0]
    last = end or archive.sessions[-1]
    if first > last:
        raise ValueError(f"empty date range: start {first} is after end {last}")
    days = [i for i, s in enumerate(archive.sessions) if first <= s <= last]
    if not days:
        raise ValueError(f"no chain sessions between {first} and {last}")
    if expected_sessions is not None:
        have = set(archive.sessions)
        gaps = sorted(s for s in expected_sessions if first <= s <= last and s not in have)
        if gaps:
            raise ValueError(f"chain archive misses {len(gaps)} sessions, first {gaps[:5]}")
    history = bars if bars is not None else bars_from_chains(archive)
    engine = OptionsEngine(strategy, archive, config, history, vol_features, intraday_features)
    return engine.run(days)


__all__ = ["OptionsEngine", "bars_from_chains", "run_options_backtest"]
