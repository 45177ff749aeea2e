"""Fill a stream's missing minutes from Alpaca's REST bars, as the plan's SIP window allows.

A :class:`~live.market.stream.gaps.Window` becomes one ``GET /v2/stocks/bars`` (alpaca-py's
``StockHistoricalDataClient``, ``url_override`` from ``ALPACA_DATA_URL``, paging by alpaca-py)
with the stream's own feed, so backfilled minutes are the same kind of bar as streamed ones.
The basic plan refuses the latest 15 minutes of SIP over REST (403 "subscription does not permit
querying recent SIP data"): with ``ALPACA_SIP_RECENT_DELAY_MIN=15`` set, or after the first such
403, the window is split and its most recent part is asked with ``feed=iex``. IEX sees fewer
trades than SIP, so a minute IEX had no bar for is only *provisionally* empty: the answer carries
``provisional_until`` (when SIP may be asked) and the gap tracker asks again then.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment, DataFeed, OptionsFeed
from alpaca.data.historical.option import OptionHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import OptionChainRequest, StockBarsRequest
from alpaca.data.timeframe import TimeFrame

from live.brokers.credentials import read_keys
from live.errors import ConfigError
from live.market.stream.gaps import Window
from live.market.stream.model import MinuteBar, minute_bar

log = logging.getLogger("live.market.stream")

RECENT_SIP_TEXT = "subscription does not permit querying recent sip data"
DEFAULT_RECENT_DELAY = timedelta(minutes=15)
REST_FEEDS = {"iex": DataFeed.IEX, "sip": DataFeed.SIP, "delayed_sip": DataFeed.DELAYED_SIP}


@dataclass(frozen=True)
class Part:
    """The REST answer for one (part of a) window."""

    window: Window
    bars: list[MinuteBar]
    feed: str
    provisional_until: datetime | None = None  # set when a stand-in feed answered


@dataclass
class BackfillStats:
    """REST calls made and bars returned."""

    calls: int = 0
    bars: int = 0
    recent_sip_refusals: int = 0
    errors: int = 0
    last_error: str = ""


@dataclass
class RestBackfill:
    """Minute bars for a window from Alpaca REST (see the module docstring).

    Args:
        client: alpaca-py's historical stock client (``raw_data=True``).
        feed: The stream's feed (iex, sip or delayed_sip).
        recent_delay: How much recent SIP the plan refuses (None: not known to refuse).
    """

    client: StockHistoricalDataClient
    feed: str = "iex"
    recent_delay: timedelta | None = None
    stats: BackfillStats = field(default_factory=BackfillStats)

    def fetch(self, window: Window, now: datetime) -> list[Part]:
        """Every bar REST has for ``window``; parts in time order (SIP, then the IEX stand-in)."""
        if self.feed == "sip" and self.recent_delay is not None:
            return self._split(window, now)
        try:
            return [Part(window, self._bars(window, self.feed), self.feed)]
        except APIError as exc:
            if self.feed != "sip" or RECENT_SIP_TEXT not in str(exc).lower():
                raise
            self.stats.recent_sip_refusals += 1
            self.recent_delay = DEFAULT_RECENT_DELAY
            log.info("REST refused recent SIP: asking the last %s with feed=iex", self.recent_delay)
            return self._split(window, now)

    def _split(self, window: Window, now: datetime) -> list[Part]:
        assert self.recent_delay is not None
        edge = now - self.recent_delay
        edge = edge.replace(second=0, microsecond=0)
        parts: list[Part] = []
        if window.start < edge:
            old = Window(window.start, min(window.end, edge), window.symbols)
            parts.append(Part(old, self._bars(old, "sip"), "sip"))
        if window.end > edge:
            recent = Window(max(window.start, edge), window.end, window.symbols)
            until = recent.end + self.recent_delay
            parts.append(Part(recent, self._bars(recent, "iex"), "iex", until))
        return parts

    def _bars(self, window: Window, feed: str) -> list[MinuteBar]:
        request = StockBarsRequest(
            symbol_or_symbols=list(window.symbols),
            timeframe=TimeFrame.Minute,
            start=window.start,
            end=window.end - timedelta(seconds=1),  # REST's end is inclusive; windows are not
            feed=REST_FEEDS[feed],
            adjustment=Adjustment.RAW,
            limit=10_000,
        )
        self.stats.calls += 1
        try:
            raw = self.client.get_stock_bars(request)
        except APIError as exc:
            self.stats.errors += 1
            self.stats.last_error = f"{exc.status_code}: {str(exc)[:200]}"
            raise
        assert isinstance(raw, dict)
        out = [
            bar
            for symbol, rows in raw.items()
            for row in rows or []
            if window.start <= (bar := rest_bar(symbol, row)).ts < window.end
        ]
        self.stats.bars += len(out)
        return out


def rest_bar(symbol: str, row: Mapping[str, Any]) -> MinuteBar:
    """One REST bar (``t`` RFC 3339, ``o h l c v n vw``) as a backfill MinuteBar."""
    return minute_bar(symbol, parse_rfc3339(str(row["t"])), row, "backfill")


def parse_rfc3339(text: str) -> datetime:
    """``2024-03-15T13:30:00Z`` or with up to nine fractional digits, as an aware datetime."""
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6]:0<6}{rest[len(digits) :]}"
    return datetime.fromisoformat(text)


def backfill_from_env(feed: str, env: Mapping[str, str] | None = None) -> RestBackfill:
    """A :class:`RestBackfill` from the broker's keys (:func:`read_keys`), ``ALPACA_DATA_URL``
    (optional host override) and ``ALPACA_SIP_RECENT_DELAY_MIN`` (optional).
    """
    env = os.environ if env is None else env
    keys = read_keys(env)
    if feed not in REST_FEEDS:
        raise ConfigError(f"ALPACA_FEED={feed!r}: use one of {sorted(REST_FEEDS)}")
    raw_delay = env.get("ALPACA_SIP_RECENT_DELAY_MIN", "")
    delay = None
    if raw_delay:
        try:
            minutes = int(raw_delay)
        except ValueError:
            minutes = -1
        if minutes < 0:
            raise ConfigError(
                f"ALPACA_SIP_RECENT_DELAY_MIN={raw_delay!r}: a whole number of minutes "
                "(15 on the basic plan, 0 with Algo Trader Plus)"
            )
        delay = timedelta(minutes=minutes) if minutes else None
    url = (env.get("ALPACA_DATA_URL") or "").rstrip("/") or None
    client = StockHistoricalDataClient(
        keys.api_key, keys.secret_key, raw_data=True, url_override=url
    )
    return RestBackfill(client, feed, delay)


def option_contracts(
    underlyings: Iterable[str],
    env: Mapping[str, str] | None = None,
    *,
    on: date,
    max_days: int = 45,
    per_underlying: int = 40,
) -> tuple[str, ...]:
    """The contracts to stream for ``--options SPY``: per underlying, the ``per_underlying``
    contracts nearest the money (|delta| nearest 0.5 when the chain carries Greeks, else strikes
    nearest the middle of the chain) expiring within ``max_days`` of ``on``, from Alpaca's
    option-chain snapshot (``ALPACA_DATA_URL``, ``ALPACA_OPTIONS_FEED``).

    Raises:
        ConfigError: An underlying with no contracts in that window (unknown symbol?).
    """
    env = os.environ if env is None else env
    keys = read_keys(env)
    url = (env.get("ALPACA_DATA_URL") or "").rstrip("/") or None
    client = OptionHistoricalDataClient(
        keys.api_key, keys.secret_key, raw_data=True, url_override=url
    )
    feed = OptionsFeed((env.get("ALPACA_OPTIONS_FEED") or "indicative").strip().lower())
    out: list[str] = []
    for underlying in underlyings:
        request = OptionChainRequest(
            underlying_symbol=underlying,
            feed=feed,
            expiration_date_gte=on,
            expiration_date_lte=on + timedelta(days=max_days),
        )
        raw: dict[str, dict[str, Any]] = client.get_option_chain(request)  # type: ignore[assignment]
        last = on + timedelta(days=max_days)
        chain = {occ: snap for occ, snap in raw.items() if occ_expiry(occ) <= last}
        if not chain:
            raise ConfigError(
                f"no option contracts for {underlying!r} expiring within {max_days} days of "
                f"{on.isoformat()}; check the underlying symbol"
            )
        out.extend(_nearest_the_money(chain, per_underlying))
    return tuple(out)


def occ_expiry(occ: str) -> date:
    """The expiry an OCC symbol encodes (``SPY240621C00500000`` -> 2024-06-21)."""
    yymmdd = occ[-15:-9]
    return date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))


def _nearest_the_money(chain: Mapping[str, Mapping[str, Any]], n: int) -> list[str]:
    deltas = {occ: (snap.get("greeks") or {}).get("delta") for occ, snap in chain.items()}
    score: dict[str, float]
    if any(d is not None for d in deltas.values()):  # a contract without Greeks ranks last
        score = {o: abs(abs(float(d)) - 0.5) if d is not None else 9.0 for o, d in deltas.items()}
    else:
        strikes = {occ: int(occ[-8:]) / 1000 for occ in chain}
        middle = sorted(strikes.values())[len(strikes) // 2]
        score = {occ: abs(k - middle) for occ, k in strikes.items()}
    return sorted(chain, key=lambda occ: (score[occ], occ))[:n]
