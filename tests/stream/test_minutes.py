"""MinuteBook: one bar per (symbol, exchange minute); revisions once, duplicates harmless."""

from __future__ import annotations

import random
import threading
from datetime import UTC, date, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from live.market.stream.minutes import MinuteBook
from live.market.stream.model import MinuteBar
from strategies.models import INTRADAY_COLUMNS

SESSION = date(2026, 3, 10)
T0 = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)  # 09:30 New York


def bar(symbol: str = "AAPL", minute: int = 0, close: float = 100.0, **kw: object) -> MinuteBar:
    base: dict[str, object] = dict(
        symbol=symbol,
        ts=T0 + timedelta(minutes=minute),
        open=100.0,
        high=101.0,
        low=99.0,
        close=close,
        volume=1000.0,
        vwap=100.2,
        trade_count=10,
    )
    base.update(kw)
    return MinuteBar(**base)  # type: ignore[arg-type]


def test_revision_replaces_once_and_duplicate_frames_count_once() -> None:
    book = MinuteBook()
    assert book.apply(bar()) == "new"
    assert book.apply(bar()) == "duplicate"
    rev = bar(close=100.5, volume=1200.0, source="revision")
    assert book.apply(rev) == "revision"
    assert book.apply(rev) == "duplicate"  # the duplicated `u` frame
    assert book.apply(bar()) == "duplicate"  # a late copy of the original `b` never undoes it
    stored = book.bar("AAPL", T0)
    assert stored is not None and stored.close == 100.5 and stored.source == "revision"
    assert book.counts() == {"new": 1, "revision": 1, "duplicate": 3}
    assert book.counts("AAPL") == book.counts()
    assert book.counts("MSFT") == {"new": 0, "revision": 0, "duplicate": 0}


def test_backfill_fills_holes_only() -> None:
    book = MinuteBook()
    book.apply(bar(minute=0))
    assert book.apply(bar(minute=0, close=1.0, source="backfill")) == "duplicate"
    assert book.apply(bar(minute=1, close=2.0, source="backfill")) == "new"
    assert book.apply(bar(minute=1, close=3.0)) == "duplicate"  # REST answered for a closed minute
    first, second = book.bar("AAPL", T0), book.bar("AAPL", T0 + timedelta(minutes=1))
    assert first is not None and first.close == 100.0 and first.source == "stream"
    assert second is not None and second.close == 2.0 and second.source == "backfill"


def test_late_bar_for_an_unseen_minute_is_new_and_last_ts_is_the_exchange_max() -> None:
    book = MinuteBook()
    book.apply(bar(minute=5))
    assert book.apply(bar(minute=2)) == "new"
    assert book.last_ts("AAPL") == T0 + timedelta(minutes=5)
    assert book.last_ts("MSFT") is None
    assert book.minutes("AAPL", SESSION) == {T0 + timedelta(minutes=m) for m in (2, 5)}


def test_bars_frame_contract_and_closed_by() -> None:
    book = MinuteBook()
    for m in (2, 0, 1):
        book.apply(bar("MSFT", m))
        book.apply(bar("AAPL", m))
    df = book.bars(SESSION)
    assert df.columns == [*INTRADAY_COLUMNS, "source"]
    assert df.schema["ts"] == pl.Datetime("ns", "UTC")
    assert df["symbol"].to_list() == ["AAPL"] * 3 + ["MSFT"] * 3
    assert df["ts"].to_list() == [T0 + timedelta(minutes=m) for m in (0, 1, 2)] * 2
    # the bar starting at minute 1 closes at minute 2: included at exactly minute 2, not before
    closed = book.bars(SESSION, ["MSFT"], closed_by=T0 + timedelta(minutes=2))
    assert closed["ts"].to_list() == [T0, T0 + timedelta(minutes=1)]
    assert book.bars(SESSION, ["MSFT"], closed_by=T0 + timedelta(seconds=119)).height == 1
    assert book.bars(date(2026, 3, 11)).height == 0


def test_drop_session_forgets_it_and_last_ts_falls_back() -> None:
    book = MinuteBook()
    book.apply(bar(minute=0))
    next_day = bar(ts=datetime(2026, 3, 11, 14, 30, tzinfo=UTC))
    book.apply(next_day)
    book.drop_session(date(2026, 3, 11))
    assert book.sessions() == [SESSION]
    assert book.last_ts("AAPL") == T0
    book.drop_session(SESSION)
    assert book.last_ts("AAPL") is None and book.bars(SESSION).height == 0


def test_session_is_the_new_york_date_not_the_utc_date() -> None:
    book = MinuteBook()
    late = bar(ts=datetime(2026, 3, 11, 0, 30, tzinfo=UTC))  # 20:30 New York on the 10th
    book.apply(late)
    assert book.minutes("AAPL", SESSION) == {late.ts}


frames = st.lists(
    st.tuples(
        st.sampled_from(["AAPL", "MSFT"]),
        st.integers(0, 5),
        st.sampled_from(["stream", "revision", "backfill"]),
        st.integers(0, 2),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(frames, st.randoms(use_true_random=False))
def test_any_order_of_duplicated_frames_gives_the_same_book(
    msgs: list[tuple[str, int, str, int]], rnd: random.Random
) -> None:
    """Duplicating frames changes nothing, and counts add up: every frame is one outcome."""
    bars = [bar(s, m, close=100.0 + v, source=src) for s, m, src, v in msgs]
    once, twice = MinuteBook(), MinuteBook()
    for b in bars:
        once.apply(b)
    for b in bars:
        twice.apply(b)
        twice.apply(b)
    assert once.bars(SESSION).equals(twice.bars(SESSION))
    assert sum(once.counts().values()) == len(bars)
    assert twice.counts()["duplicate"] == once.counts()["duplicate"] + len(bars)
    # every minute seen is held exactly once, whatever the order
    shuffled = MinuteBook()
    order = bars[:]
    rnd.shuffle(order)
    for b in order:
        shuffled.apply(b)
    assert (
        shuffled.bars(SESSION)
        .select("symbol", "ts")
        .equals(once.bars(SESSION).select("symbol", "ts"))
    )
    assert once.counts()["new"] == once.bars(SESSION).height


def test_concurrent_writers_lose_nothing() -> None:
    book = MinuteBook()

    def write(symbol: str) -> None:
        for m in range(390):
            book.apply(bar(symbol, m))

    threads = [threading.Thread(target=write, args=(f"S{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert book.bars(SESSION).height == 8 * 390
    assert book.counts()["new"] == 8 * 390
