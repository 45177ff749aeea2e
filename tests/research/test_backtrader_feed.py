"""The backtrader feed over the lake: every timeframe's bars reach backtrader unchanged, stamped
in exchange time, with backtrader's timeframe and compression; bad input fails with one line."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import backtrader as bt
import polars as pl
import pytest

from research.backtrader_feed import LakeFeedError, lake_feeds, read_bars

from .backtrader_lake import INTRADAY, SESSIONS, SYMBOLS, build_lake


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lake(tmp_path_factory.mktemp("bt_feed"))


class _Recorder(bt.Strategy):
    """Records every bar each feed delivers, as backtrader's lines show it."""

    def start(self) -> None:
        self.rows: list[tuple] = []

    def next(self) -> None:
        for d in self.datas:
            if len(d) and d.datetime[0] == self.datetime[0]:
                row = (d._name, d.datetime.datetime(0), d.open[0], d.high[0], d.low[0])
                self.rows.append((*row, d.close[0], d.volume[0]))


def _run(home: Path, symbols: list[str], timeframe: str, **kw) -> tuple[list[tuple], list]:
    cerebro = bt.Cerebro(stdstats=False)
    feeds = lake_feeds(home, symbols, timeframe, **kw)
    for feed in feeds:
        cerebro.adddata(feed)
    cerebro.addstrategy(_Recorder)
    return cerebro.run()[0].rows, feeds


def _lake(home: Path, table: str) -> pl.DataFrame:
    return pl.read_parquet(home / "lake" / table / "*" / "part.parquet", hive_partitioning=True)


def test_daily_feed_is_the_lake_stamped_at_the_session(home: Path) -> None:
    rows, feeds = _run(home, ["XOM", "SPY"], "1d")
    assert [f._name for f in feeds] == ["XOM", "SPY"]
    assert all(f._timeframe == bt.TimeFrame.Days and f._compression == 1 for f in feeds)
    lake = _lake(home, "stock_bars_1d").sort("symbol", "session")
    for symbol in ("XOM", "SPY"):
        got = [r for r in rows if r[0] == symbol]
        want = lake.filter(pl.col("symbol") == symbol)
        assert [r[1] for r in got] == [dt.datetime.combine(s, dt.time()) for s in SESSIONS]
        expected = want.select("open", "high", "low", "close", "volume").rows()
        assert [r[2:] for r in got] == expected  # float64 through backtrader, bit for bit


@pytest.mark.parametrize(
    ("timeframe", "minutes", "per_session"), [("1h", 60, (7, 4)), ("5m", 5, (78, 42))]
)
def test_intraday_feeds_stamp_the_bar_close_in_new_york(
    home: Path, timeframe: str, minutes: int, per_session: tuple[int, int]
) -> None:
    rows, feeds = _run(home, ["AAPL"], timeframe)
    assert feeds[0]._timeframe == bt.TimeFrame.Minutes and feeds[0]._compression == minutes
    stamps = [r[1] for r in rows]
    for session, count in zip(INTRADAY, per_session, strict=True):
        day = [s for s in stamps if s.date() == session]
        assert len(day) == count
        # the first bar closes one bar after the 09:30 open; the last at the close (13:00 on
        # the early close after Thanksgiving), never after it
        assert day[0] == dt.datetime.combine(session, dt.time(9, 30)) + dt.timedelta(
            minutes=minutes
        )
        close = dt.time(13) if session == INTRADAY[1] else dt.time(16)
        assert day[-1] == dt.datetime.combine(session, close)
    table = f"stock_bars_{timeframe}"
    lake = _lake(home, table).filter(pl.col("symbol") == "AAPL").sort("ts")
    assert [r[5] for r in rows] == lake["close"].to_list()


def test_minute_feed_and_session_window(home: Path) -> None:
    rows, feeds = _run(home, ["SPY"], "1m", start=INTRADAY[1], end=INTRADAY[1])
    assert feeds[0]._compression == 1
    assert len(rows) == 210  # 09:30-13:00
    assert rows[0][1] == dt.datetime.combine(INTRADAY[1], dt.time(9, 31))  # naive New York
    daily = read_bars(home, SYMBOLS, "1d", start=dt.date(2024, 3, 1), end=dt.date(2024, 3, 31))
    assert list(daily) == list(SYMBOLS)
    assert all(len(f) == 20 for f in daily.values())  # March 2024's sessions (Good Friday off)


def test_bad_input_fails_with_one_clear_line(home: Path, tmp_path: Path) -> None:
    with pytest.raises(LakeFeedError, match=r"timeframe '15m' .* use one of \['1d', '1h'"):
        lake_feeds(home, ["SPY"], "15m")
    with pytest.raises(LakeFeedError, match="MSFT has no stock_bars_1d bars .* backfill it"):
        lake_feeds(home, ["SPY", "MSFT"], "1d")
    (tmp_path / "lake").mkdir()
    with pytest.raises(LakeFeedError, match="no stock_bars_1h partitions; materialize"):
        lake_feeds(tmp_path, ["SPY"], "1h")


def test_missing_backtrader_names_the_extra(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "backtrader", None)  # what an install without it sees
    with pytest.raises(ImportError, match=r"alpaca-improved\[backtrader\]"):
        lake_feeds(home, ["SPY"], "1d")
