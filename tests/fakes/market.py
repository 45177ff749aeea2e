"""The data every vendor fake serves: the synthetic market, plus a small Black-Scholes chain.

Bars come from ``sources.synthetic_bars`` (so a partition filled through any fake equals the
synthetic source's partition), with a few pre- and post-market minutes added as the vendors
send them. Option chains are built from the synthetic close with Black-Scholes (scipy) and a
smile, bid/ask spreads that widen away from the money, optional Greeks/IV and optional trades.
"""

from __future__ import annotations

import datetime as dt
import math
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.stats import norm

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.sources import synthetic_bars
from alpaca_improved_pipelines.sources.synthetic_market import profile

RATE = 0.045
EXTENDED_OFFSETS_MIN = (-90, -60, -30, 0, 60, 120)  # before the open / from the close


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar as the fakes hold it: ns epoch timestamp and floats."""

    ts_ns: int
    o: float
    h: float
    l: float  # noqa: E741 - vendor field name
    c: float
    v: float
    vw: float
    n: int


@dataclass(frozen=True, slots=True)
class OptionQuote:
    """One contract of a chain at a session's close."""

    occ: str
    underlying: str
    expiry: dt.date
    right: str
    strike: float
    bid: float
    ask: float
    last: float | None
    quote_ns: int
    iv: float | None
    greeks: dict[str, float] | None
    volume: int
    open_interest: int
    spot: float


def _crc(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def occ_symbol(underlying: str, expiry: dt.date, right: str, strike: float) -> str:
    return f"{underlying}{expiry:%y%m%d}{right}{round(strike * 1000):08d}"


def _expiries(session: dt.date) -> list[dt.date]:
    out: list[dt.date] = []
    day = session + dt.timedelta(days=(4 - session.weekday()) % 7 or 7)
    while len(out) < 4:  # weekly Fridays (the session before when Friday is a holiday)
        out.append(day if cal.is_session(day) else cal.previous_session(day))
        day += dt.timedelta(days=7)
    for months in (1, 2):  # monthly third Fridays
        y, m = divmod(session.month - 1 + months, 12)
        first = dt.date(session.year + y, m + 1, 1)
        third = first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)
        if third not in out:
            out.append(third if cal.is_session(third) else cal.previous_session(third))
    return sorted(set(out))


def bs(s: float, k: float, t: float, iv: float, call: bool) -> tuple[float, dict[str, float]]:
    """Black-Scholes price and Greeks (theta per day, vega and rho per 1 point)."""
    sq = iv * math.sqrt(t)
    d1 = (math.log(s / k) + (RATE + 0.5 * iv * iv) * t) / sq
    d2 = d1 - sq
    disc = math.exp(-RATE * t)
    if call:
        price, delta, rho = (
            s * norm.cdf(d1) - k * disc * norm.cdf(d2),
            norm.cdf(d1),
            k * t * disc * norm.cdf(d2),
        )
    else:
        price, delta, rho = (
            k * disc * norm.cdf(-d2) - s * norm.cdf(-d1),
            norm.cdf(d1) - 1,
            -k * t * disc * norm.cdf(-d2),
        )
    theta = -s * norm.pdf(d1) * iv / (2 * math.sqrt(t)) - RATE * k * disc * (
        norm.cdf(d2) if call else -norm.cdf(-d2)
    )
    greeks = {
        "delta": delta,
        "gamma": norm.pdf(d1) / (s * sq),
        "theta": theta / 365.0,
        "vega": s * norm.pdf(d1) * math.sqrt(t) / 100.0,
        "rho": rho / 100.0,
    }
    return price, {k_: round(float(v), 6) for k_, v in greeks.items()}


class FakeMarket:
    """Deterministic vendor-side data for a seed; ``as_of`` is the fakes' "today" for live data.

    Args:
        seed: Synthetic-market seed (the same seed as the synthetic source gives equal bars).
        as_of: The session live endpoints (snapshots, active contracts) describe.
        stock_history_start: First session the fake vendor serves stock bars for.
    """

    def __init__(
        self,
        seed: int = 7,
        as_of: dt.date = dt.date(2024, 3, 15),
        stock_history_start: dt.date = dt.date(2003, 9, 10),
    ) -> None:
        self.seed = seed
        self.as_of = as_of
        self.stock_history_start = stock_history_start

    def known(self, symbol: str) -> bool:
        try:
            profile(symbol)
        except ConfigError:
            return False
        return True

    def sessions(self, start: dt.date, end: dt.date) -> list[dt.date]:
        lo = max(start, self.stock_history_start, cal.CALENDAR_START)
        return cal.sessions_between(lo, min(end, cal.CALENDAR_END)) if lo <= end else []

    def minute_bars(self, symbol: str, session: dt.date) -> list[Bar]:
        """Regular-hours minutes plus a few extended-hours minutes, ascending."""
        return list(_minutes(self.seed, symbol, session))

    def daily_bar(self, symbol: str, session: dt.date) -> Bar:
        return _daily(self.seed, symbol, session)

    def bars(self, symbol: str, timeframe: str, start: dt.date, end: dt.date) -> list[Bar]:
        """Bars of ``symbol`` for the sessions whose New York date is in [start, end]."""
        if not self.known(symbol):
            return []
        days = self.sessions(start, end)
        if timeframe == "day":
            return [self.daily_bar(symbol, d) for d in days]
        return [b for d in days for b in self.minute_bars(symbol, d)]

    def chain(self, underlying: str, session: dt.date) -> list[OptionQuote]:
        """The chain of ``underlying`` at the close of ``session`` (empty if unknown)."""
        return list(_chain(self.seed, underlying, session)) if self.known(underlying) else []

    def quote(self, occ: str, session: dt.date) -> OptionQuote | None:
        underlying = occ[:-15]
        return next((q for q in self.chain(underlying, session) if q.occ == occ), None)


@lru_cache(maxsize=512)
def _minutes(seed: int, symbol: str, session: dt.date) -> tuple[Bar, ...]:
    frame = synthetic_bars.minute_bars(seed, (symbol,), session)
    ts = frame.get_column("ts").cast(int).to_list()
    rows = [
        Bar(t, o, h, lo, c, v, vw, n)
        for t, o, h, lo, c, v, vw, n in zip(
            ts,
            *(
                frame.get_column(k).to_list()
                for k in ("open", "high", "low", "close", "volume", "vwap", "trade_count")
            ),
            strict=True,
        )
    ]
    opn, cls = cal.session_open_close(session)
    first, last = rows[0], rows[-1]
    ext = []
    for i, off in enumerate(EXTENDED_OFFSETS_MIN):
        base, px = (opn, first.o) if i < 3 else (cls, last.c)
        ext.append(Bar(int(base.value) + off * 60_000_000_000, px, px, px, px, 100.0, px, 1))
    return tuple(sorted(rows + ext, key=lambda b: b.ts_ns))


@lru_cache(maxsize=512)
def _daily(seed: int, symbol: str, session: dt.date) -> Bar:
    row = synthetic_bars.daily_bars(seed, (symbol,), session).row(0, named=True)
    ts = int(cal.midnight_new_york(session).timestamp()) * 1_000_000_000
    return Bar(
        ts,
        row["open"],
        row["high"],
        row["low"],
        row["close"],
        row["volume"],
        row["vwap"],
        row["trade_count"],
    )


@lru_cache(maxsize=64)
def _chain(seed: int, underlying: str, session: dt.date) -> tuple[OptionQuote, ...]:
    spot = _daily(seed, underlying, session).c
    _, close = cal.session_open_close(session)
    step = 1.0 if spot < 100 else 5.0 if spot < 500 else 10.0
    atm = round(spot / step) * step
    base_iv = profile(underlying).vol
    out = []
    for expiry in _expiries(session):
        t = max((expiry - session).days, 0.5) / 365.0
        for k in range(-5, 6):
            strike = atm + k * step
            m = math.log(strike / spot) / math.sqrt(t)
            iv = float(
                np.clip(
                    base_iv * (1 + 0.6 * m * m - 0.25 * m) + 0.01 / math.sqrt(t * 12), 0.05, 3.0
                )
            )
            for right in ("C", "P"):
                occ = occ_symbol(underlying, expiry, right, strike)
                price, greeks = bs(spot, strike, t, iv, right == "C")
                half = max(0.01, 0.01 * price + 0.02 * abs(m)) / 2
                bid = max(round(price - half, 2), 0.0)
                ask = max(round(price + half, 2), round(bid + 0.01, 2))
                h = _crc(seed, occ, session)
                priced = price >= 0.05  # vendors leave IV/Greeks out when they cannot solve
                out.append(
                    OptionQuote(
                        occ,
                        underlying,
                        expiry,
                        right,
                        strike,
                        bid,
                        ask,
                        None if h % 4 == 0 else round((bid + ask) / 2, 2),
                        int(close.value) - 1_000_000 - (h % 999_999_937),
                        round(iv, 6) if priced else None,
                        greeks if priced else None,
                        0 if h % 4 == 0 else h % 500 + 1,
                        h % 9000 + 100,
                        spot,
                    )
                )
    return tuple(out)
