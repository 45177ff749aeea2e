"""Intraday live trading (issue 11 item 4): ``--market-data stream`` on the simulated broker
replays the lake's minute bars through the stream feed; "1m" deployments decide on every bar
close, once per (session, minute), also across a restart; marks and the loss limits follow each
bar, so a breach halts within seconds where ``lake`` sees it only at the daily close."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from live.cli import app
from live.clock import NEW_YORK, SimClock
from live.journal import orders as jo
from live.market.feed import StreamFeed, session_hours
from live.market.marks import reprice_chain
from live.market.sim_replay import SimReplayFeed
from live.market.snapshot import StaticSnapshotProvider, snapshot_quotes
from live.market.stream.model import MinuteBar, OptionQuote
from live.notify import Event, Sink
from live.orders.ids import client_order_id
from live.runner.build import build_runner
from live.runner.config import RunnerConfig
from live.runner.core import Runner
from live.runner.intraday import minute_key
from live.runner.status import journal_status
from strategies.base import ParamSpace, Strategy
from strategies.models import MINUTE, AssetClass, Leg, MarketSnapshot, OrderIntent, Side
from strategies.pricing import bs_price
from tests.live.helpers import crossing_closes, deploy, limits, sessions, write_lake

MONDAY = date(2024, 3, 4)  # the session after the lake's last daily bar (EST: UTC-5)
OPEN = datetime(2024, 3, 4, 9, 30, tzinfo=NEW_YORK)
CRASH_AT = datetime(2024, 3, 4, 11, 0, tzinfo=NEW_YORK)  # SPY's bar here closes 30% down
SPY_BEFORE, SPY_AFTER = crossing_closes(30)[-1], 70.0
SEC = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """Config of :class:`MinuteProbe`."""

    symbols: tuple[str, ...] = ("SPY",)


class MinuteProbe(Strategy):
    """Test-only "1m" family: buys one share on every decision and writes what it saw into the
    intent's reason (closed SPY minutes, the last one's start, the session's close)."""

    name = "minute_probe"
    config_cls = ProbeConfig
    timeframe = "1m"

    @classmethod
    def param_space(cls) -> ParamSpace:
        return ParamSpace((), ProbeConfig)

    def decide(self, snapshot: MarketSnapshot, book: Any) -> list[OrderIntent]:
        assert snapshot.intraday is not None
        bars = snapshot.intraday.filter(pl.col("symbol") == "SPY")
        last: datetime = bars.get_column("ts").max()  # type: ignore[assignment]
        close = snapshot.features["session_close"]
        seen = f"n={bars.height} last={last:%H:%M} close={close:%H:%M} px={snapshot.prices['SPY']}"
        leg = Leg("SPY", Side.BUY, 1, AssetClass.US_EQUITY)
        return [OrderIntent(self.name, (leg,), 1, reason=seen)]


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> type[MinuteProbe]:
    """MinuteProbe registered for this test only."""
    from strategies import base

    monkeypatch.setattr(base, "_REGISTRY", dict(base.strategy_registry()))
    base.register_strategy(MinuteProbe)
    return MinuteProbe


def spy_price(minute: datetime) -> float:
    return SPY_BEFORE if minute < CRASH_AT else SPY_AFTER


def write_minutes(
    home: Path, day: date = MONDAY, spy: Callable[[datetime], float] = spy_price
) -> None:
    """The session's 390 minute bars of SPY (``spy``: crashing at 11:00) and QQQ, as the lake
    stores them."""
    start = datetime(day.year, day.month, day.day, 9, 30, tzinfo=NEW_YORK)
    rows = []
    for k in range(390):
        ts = start + timedelta(minutes=k)
        for symbol, px in (("SPY", spy(ts)), ("QQQ", 200.0)):
            rows.append(
                {
                    "ts": ts.astimezone(UTC),
                    "symbol": symbol,
                    "session": day,
                    "open": px,
                    "high": px,
                    "low": px,
                    "close": px,
                    "volume": 1e4,
                    "vwap": px,
                    "trade_count": 50,
                }  # fmt: skip
            )
    part = home / "lake" / "stock_bars_1m" / f"session={day.isoformat()}"
    part.mkdir(parents=True, exist_ok=True)
    frame = pl.DataFrame(rows).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
    frame.write_parquet(part / "part.parquet")


def make_home(home: Path, *, monday_daily: bool = False) -> Path:
    """Daily bars to Friday (SPY crossing: ma-spy buys Monday), Monday's minutes; with
    ``monday_daily``, also Monday's daily bar (what ``lake`` mode sees after the close)."""
    days = sessions(30)
    spy, qqq = crossing_closes(30), [200.0] * 30
    if monday_daily:
        days, spy, qqq = [*days, MONDAY], [*spy, SPY_AFTER], [*qqq, 200.0]
    write_lake(home, {"SPY": spy, "QQQ": qqq}, days)
    write_minutes(home)
    return home


def runner(
    home: Path, start: datetime, market_data: str = "stream", sinks: list[Sink] | None = None,
    **kw: Any,
) -> Runner:  # fmt: skip
    config = RunnerConfig(
        home=home, broker="sim", cycle_seconds=kw.pop("cycle_seconds", 60),
        market_data=market_data, **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    built, _ = build_runner(config, clock=SimClock(start), sinks=sinks)
    return built


def run_until(r: Runner, stop: datetime) -> None:
    r.run(should_stop=lambda: r.clock.now() >= stop)


def minute_decisions(r: Runner, dep: str) -> list[str]:
    rows = r.j.rows("SELECT session FROM decisions WHERE deployment_id=? ORDER BY 1", dep)
    return [row[0] for row in rows]


def test_minute_strategy_decides_on_every_bar_close_once_even_across_a_restart(
    tmp_path: Path, probe: type[MinuteProbe]
) -> None:
    home = make_home(tmp_path)
    deploy(home, "probe", strategy="minute_probe", params={"symbols": ["SPY"]})
    deploy(home, "ma-spy")  # a daily deployment in the same runner keeps its one decision
    first = runner(home, OPEN)
    run_until(first, OPEN + timedelta(minutes=30, seconds=30))
    keys = [f"2024-03-04 {(OPEN + timedelta(minutes=k)):%H:%M}" for k in range(1, 31)]
    assert minute_decisions(first, "probe") == keys  # 09:31 .. 10:00, each once
    assert minute_decisions(first, "ma-spy") == ["2024-03-01"]
    orders = [o for o in jo.list_orders(first.j) if o.deployment_id == "probe"]
    # each decision saw exactly the minutes closed by its bar's close, and the calendar's close
    seen = [o.intent.reason for o in orders]
    assert seen[0] == f"n=1 last=14:30 close=21:00 px={SPY_BEFORE}"  # UTC: 09:30 and 16:00 NY
    assert seen[29] == f"n=30 last=14:59 close=21:00 px={SPY_BEFORE}"
    assert all(o.session == "2024-03-01" for o in orders)  # sent on the day's data session
    tenth = OPEN + timedelta(minutes=10)  # the decision on the 09:39 bar's close
    assert orders[9].client_order_id == client_order_id(
        "probe", tenth, 0, 1, salt=minute_key(tenth - timedelta(minutes=1))
    )
    stats = first.status.snapshot()["market_data"]
    assert stats["minute_decisions"] == 30 and stats["latency_ms"]["n"] == 30
    assert 0 <= stats["latency_ms"]["p50"] <= stats["latency_ms"]["p99"]
    assert journal_status(first.j)["market_data"]["minute_decisions"] == 30
    first.close()

    # a restart 30 s after the 10:00 decision: the replay hands it every bar so far at once;
    # 10:00 is already decided, so nothing is decided again, and then each new minute once
    second = runner(home, OPEN + timedelta(minutes=30, seconds=30))
    run_until(second, OPEN + timedelta(minutes=32, seconds=30))
    assert minute_decisions(second, "probe") == [*keys, "2024-03-04 10:01", "2024-03-04 10:02"]
    cids = [o.client_order_id for o in jo.list_orders(second.j)]
    assert len(cids) == len(set(cids)) == 33  # 32 minutes + ma-spy's daily order
    second.close()


class Recorder(Sink):
    name = "recorder"

    def __init__(self) -> None:
        self.events: list[Event] = []

    def send(self, event: Event) -> None:
        self.events.append(event)


def test_on_lake_a_minute_deployment_never_decides_and_says_so(
    tmp_path: Path, probe: type[MinuteProbe]
) -> None:
    home = make_home(tmp_path)
    deploy(home, "probe", strategy="minute_probe", params={"symbols": ["SPY"]})
    sink = Recorder()
    r = runner(home, OPEN, "lake", sinks=[sink])
    run_until(r, OPEN + timedelta(minutes=10))
    assert minute_decisions(r, "probe") == [] and jo.list_orders(r.j) == []
    idle = [e for e in sink.events if e.kind == "deployment_idle"]
    assert len(idle) == 1 and "--market-data stream" in idle[0].message
    r.close()


def breach_home(tmp_path: Path, **kw: Any) -> Path:
    home = make_home(tmp_path, **kw)
    # ma-spy buys 510 SPY at 98 on Monday's open: the 11:00 bar (70) costs 14,280, past both the
    # 5,000 daily loss and the 10% drawdown on its 100,000
    deploy(home, "ma-spy", risk_limits=limits(max_daily_loss=5_000.0, max_drawdown=0.1))
    return home


def raised_at(r: Runner, key: str) -> datetime:
    since = r.j.get_meta("risk_since", {})
    return datetime.fromisoformat(since["ma-spy"][key]["at"])


def test_stream_sees_a_loss_limit_breach_within_seconds_and_lake_only_at_the_close(
    tmp_path: Path,
) -> None:
    bar_close = CRASH_AT + timedelta(minutes=1)  # the replay delivers the crashing bar here
    stream = runner(breach_home(tmp_path / "stream", monday_daily=True), OPEN)
    try:
        stream.run(should_stop=lambda: stream.clock.now() >= bar_close + timedelta(seconds=30))
        assert stream.risk.state("ma-spy").value == "halted"
        assert stream.quotes["SPY"].last == SPY_AFTER
        for key in ("drawdown", "daily_loss"):  # within one poll (1 s) of the bar's delivery
            assert bar_close <= raised_at(stream, key) <= bar_close + timedelta(seconds=1)
        assert jo.list_orders(stream.j)[0].filled_avg_price == pytest.approx(SPY_BEFORE, rel=1e-3)
    finally:
        stream.close()

    lake_home = breach_home(tmp_path / "lake", monday_daily=True)
    lake = runner(lake_home, OPEN, "lake", cycle_seconds=1800)  # the close is on a cycle
    try:
        lake.run(should_stop=lambda: lake.clock.now() >= bar_close + timedelta(seconds=30))
        assert lake.risk.state("ma-spy").value == "active"  # blind between daily closes
        after_close = session_hours(MONDAY)[1] + timedelta(seconds=30)
        lake.run(should_stop=lambda: lake.clock.now() >= after_close)
        # the daily cycle at the close reads Monday's bar: 5 hours after the stream saw it
        assert raised_at(lake, "drawdown") == session_hours(MONDAY)[1]
        assert lake.risk.state("ma-spy").value == "halted"
    finally:
        lake.close()


def test_replay_delivers_a_bar_at_its_close_never_early(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    feed = SimReplayFeed(home, StaticSnapshotProvider(None), grace_s=2.0)
    assert feed.pump(OPEN + timedelta(seconds=59.999)) == 0
    assert feed.closed_minute(OPEN + timedelta(seconds=59.999)) == OPEN - MINUTE  # pre-open
    assert feed.pump(OPEN + timedelta(minutes=1)) == 2  # SPY and QQQ of 09:30
    assert feed.closed_minute(OPEN + timedelta(minutes=1)) == OPEN  # both arrived: ready now
    assert feed.pump(OPEN + timedelta(minutes=3, seconds=1)) == 4
    assert feed.book.last_ts("SPY") == OPEN + timedelta(minutes=2)
    assert feed.stats()["replayed"] == 6
    quotes = tmp_path / "lake" / "option_quotes_1m" / "session=2024-03-04"
    quotes.mkdir(parents=True)
    pl.DataFrame(
        {
            "ts": [OPEN + 3 * MINUTE],
            "symbol": [P100],
            "quote_ts": [OPEN + 3 * MINUTE + 42 * SEC],
            "bid": [2.0],
            "ask": [2.2],
            "bid_size": [5.0],
            "ask_size": [7.0],
        }  # fmt: skip
    ).write_parquet(quotes / "part.parquet")
    again = SimReplayFeed(home, StaticSnapshotProvider(None))  # the stream's recorded NBBO too
    again.pump(OPEN + 3 * MINUTE + 59 * SEC)
    assert P100 not in again.marks({}, None)  # the minute's last quote is known at its end
    again.pump(OPEN + 4 * MINUTE)
    assert again.marks({}, None)[P100].mid == pytest.approx(2.1)
    assert again.marks({}, None)[P100].ts == OPEN + 3 * MINUTE + 42 * SEC

    live = StreamFeed(StaticSnapshotProvider(None), symbols=("SPY", "QQQ"), grace_s=2.0)
    bar = MinuteBar("SPY", OPEN, 1, 1, 1, 1, 1, 1, 1)
    live.book.apply(bar)
    live.on_bar(bar)  # QQQ had no trades in 09:30: the minute waits for the grace period
    assert live.closed_minute(OPEN + timedelta(minutes=1, seconds=1)) == OPEN - MINUTE
    assert live.closed_minute(OPEN + timedelta(minutes=1, seconds=2)) == OPEN
    # a minute with no bar at all is still one: time rules (flat before the close) run on it
    assert live.closed_minute(OPEN + timedelta(minutes=5, seconds=3)) == OPEN + 4 * MINUTE


C100, P100, CNOIV = "SPY240405C00100000", "SPY240405P00100000", "SPY240412C00100000"


def chain(spot: float) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "contract": [C100, P100, CNOIV],
            "session": [date(2024, 3, 1)] * 3,
            "strike": [100.0, 100.0, 100.0],
            "right": ["C", "P", "C"],
            "bid": [4.9, 4.4, 4.9],
            "ask": [5.1, 4.6, 5.1],
            "mid": [5.0, 4.5, 5.0],
            "underlying_price": [spot] * 3,
            "dte": [30, 30, 30],
            "iv": [0.25, 0.25, None],
            "delta": [0.53, -0.47, 0.5],
            "gamma": [0.05] * 3,
            "vega": [0.11] * 3,
            "theta": [-0.05] * 3,
        }  # fmt: skip
    )


def test_option_marks_follow_the_spot_and_a_streamed_quote_wins() -> None:
    ts = datetime(2024, 3, 4, 16, 0, tzinfo=UTC)
    marks = reprice_chain(chain(100.0), 105.0, ts)
    years = 30 / 365
    up_call = bs_price(105.0, 100.0, years, 0.0, 0.25) - bs_price(100.0, 100.0, years, 0.0, 0.25)
    assert marks[C100].last == pytest.approx(5.0 + up_call, abs=1e-9)
    assert marks[C100].bid == pytest.approx(4.9 + up_call, abs=1e-9)
    assert marks[P100].last < 4.5 and marks[C100].greeks[0] > 0.53  # delta rose with spot
    assert marks[CNOIV].last == pytest.approx(5.0 + 0.5 * 5.0)  # no IV: moved by its delta
    assert marks[C100].ts == ts

    history = pl.DataFrame({"session": [date(2024, 3, 1)], "symbol": ["SPY"], "close": [100.0]})
    snap = MarketSnapshot(ts, date(2024, 3, 1), {"SPY": 100.0}, history, {"SPY": chain(100.0)})
    feed = StreamFeed(StaticSnapshotProvider(snap))
    bar = MinuteBar("SPY", OPEN, 105, 105, 105, 105, 1, 105, 1)
    feed.book.apply(bar)
    feed.on_bar(bar)
    feed.on_quote(OptionQuote(P100, OPEN + timedelta(seconds=30), 2.0, 2.2, 1, 1))
    out = feed.marks({}, snap)
    assert out["SPY"].last == 105.0 and out["SPY"].ts == OPEN + timedelta(minutes=1)
    assert out[C100].last == pytest.approx(5.0 + up_call, abs=1e-9)
    assert out[P100].mid == pytest.approx(2.1) and math.isfinite(out[P100].greeks[0])

    # only the contracts the book holds or open orders trade are repriced on a bar; the others
    # keep the daily mark (repricing whole chains every bar cost ~140 ms on the demo's chains)
    daily = reprice_chain(chain(100.0), 100.0, ts)
    some = feed.marks(daily, snap, contracts={C100})
    assert some[C100].last == pytest.approx(5.0 + up_call, abs=1e-9)
    assert some[CNOIV] == daily[CNOIV]
    assert feed.marks(daily, snap, contracts=set())[C100] == daily[C100]


def test_cli_refuses_an_unknown_market_data_mode(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["run", "--home", str(tmp_path), "--market-data", "tape", "--cycles", "0"]
    )
    assert result.exit_code == 2
    assert "--market-data 'tape'" in result.output and "'lake' or 'stream'" in result.output


def dip_and_back(ts: datetime) -> float:
    """SPY wobbling around 100, five minutes at 98.5 from 11:10, then back."""
    k = int((ts - OPEN).total_seconds() // 60)
    return 98.5 if 100 <= k < 105 else 100.0 + 0.05 * math.sin(k / 3)


def test_vwap_reversion_decides_live_as_its_vectorized_signals(tmp_path: Path) -> None:
    """The intraday family through the runner on the replayed session trades on exactly the
    rows its vectorized signals (research's backtest) trade on, and is flat before the close."""
    from strategies.equity.intraday import MinutePanel
    from strategies.equity.vwap_reversion import VWAPReversion, VWAPReversionConfig

    write_lake(tmp_path, {"SPY": crossing_closes(30)}, sessions(30))
    write_minutes(tmp_path, spy=dip_and_back)
    params: dict[str, Any] = {"band": 2.0, "warmup": 15, "flat_before": 15, "allocation": 0.5}
    deploy(tmp_path, "vwap", strategy="vwap_reversion", params={**params, "symbols": ["SPY"]})
    r = runner(tmp_path, OPEN, cycle_seconds=1800)  # minute ticks do the work between cycles
    run_until(r, session_hours(MONDAY)[1] + timedelta(seconds=30))
    live = [
        (round((o.decided_at - OPEN).total_seconds() / 60) - 1, o.intent.legs[0].side.value)
        for o in jo.list_orders(r.j)
    ]
    assert all(o.status.value == "filled" for o in jo.list_orders(r.j))
    r.close()

    bars = pl.read_parquet(tmp_path / "lake/stock_bars_1m/session=2024-03-04/part.parquet")
    strategy = VWAPReversion(VWAPReversionConfig(("SPY",), **params))
    panel = MinutePanel.build(bars, ("SPY",), [session_hours(MONDAY)])
    entries, exits = strategy.signals(panel)
    expected, held = [], False
    for row in range(390):
        entry, exit_ = bool(entries[row, 0]), bool(exits[row, 0])
        if held and (row + 1 >= 390 - 15 or (exit_ and not entry)):
            expected.append((row, "sell"))
            held = False
        elif not held and row + 1 < 390 - 15 and entry and not exit_:
            expected.append((row, "buy"))
            held = True
    assert expected[0] == (100, "buy")  # the scenario trades: the dip is an entry
    assert live == expected


def test_session_frame_mirrors_the_book_through_revisions_and_late_bars() -> None:
    from live.market.session_frame import SessionFrame
    from live.market.stream.minutes import MinuteBook

    book = MinuteBook()
    frame = SessionFrame(book)

    def land(symbol: str, k: int, close: float, source: Any = "stream") -> None:
        bar = MinuteBar(symbol, OPEN + k * MINUTE, close, close, close, close, 1, close, 1, source)
        if book.apply(bar) != "duplicate":
            frame.add(bar)

    def read(k: int) -> tuple[pl.DataFrame, dict[str, float]]:
        return frame.bars(MONDAY, ["SPY", "QQQ"], OPEN + (k + 1) * MINUTE)

    for k in range(5):
        land("SPY", k, 100.0 + k)
        land("QQQ", k, 200.0 + k)
        land("IWM", k, 50.0)
    got, last = read(4)
    assert got.equals(book.bars(MONDAY, ["SPY", "QQQ"]).drop("source"))
    assert last == {"QQQ": 204.0, "SPY": 104.0} and frame.rebuilds == 1  # appends since
    land("SPY", 7, 107.0)  # arrived early (a catch-up): not closed by 09:35
    land("SPY", 5, 105.0)
    land("QQQ", 6, 206.0)  # late and out of order
    land("QQQ", 5, 205.0)
    got, last = read(5)
    assert got.get_column("ts").max() == OPEN + 5 * MINUTE and last["QQQ"] == 205.0
    assert frame.rebuilds == 1
    land("SPY", 2, 99.0, "revision")  # replaces its minute: the frame is rebuilt from the book
    got, _ = read(7)
    assert frame.rebuilds == 2
    assert got.equals(book.bars(MONDAY, ["SPY", "QQQ"]).drop("source"))
    assert got.filter(pl.col("symbol") == "SPY").get_column("close").to_list()[2] == 99.0


@pytest.mark.slow
def test_demo_runs_one_intraday_session_and_prints_its_decisions(tmp_path: Path) -> None:
    """``make demo``'s intraday tail (a subprocess ``live run --market-data stream``)."""
    from rich.console import Console

    from alpaca_improved_pipelines.demo_live import INTRADAY_DIR, run_intraday_sim
    from alpaca_improved_pipelines.settings import Settings

    write_lake(tmp_path, {"SPY": crossing_closes(30), "QQQ": [200.0] * 30}, sessions(30))
    write_minutes(tmp_path, spy=dip_and_back)
    console = Console(record=True, width=160)
    run_intraday_sim(Settings(home=tmp_path, symbols=("SPY", "QQQ")), console)
    text = console.export_text()
    assert "11:11" in text and "below VWAP band" in text and "back to VWAP" in text
    assert "389 minute decisions" in text and str(tmp_path / INTRADAY_DIR) in text


def test_stream_feed_on_alpaca_reads_the_real_market_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--market-data stream --broker alpaca``: the feed over ``MarketStream`` (real alpaca-py
    against the websocket fake), subscribed to the deployments' symbols."""
    from live.market.stream_feed import alpaca_stream_feed
    from tests.fakes.alpaca_data_stream import FakeAlpacaDataStream
    from tests.fakes.alpaca_market import AlpacaMarketFake
    from tests.fakes.market import FakeMarket
    from tests.stream.conftest import KEY, SECRET, SESSION, wait_for

    opens, _ = session_hours(SESSION)
    deploy(tmp_path, "vwap", strategy="vwap_reversion", params={"symbols": ["AAPL", "MSFT"]})
    market = FakeMarket()
    with (
        FakeAlpacaDataStream(KEY, SECRET, market=market) as ws,
        AlpacaMarketFake(market, key=KEY, secret=SECRET) as rest,
    ):
        for name, value in {
            "ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET, "ALPACA_FEED": "iex",
            "ALPACA_DATA_STREAM_URL": f"ws://127.0.0.1:{ws.port}", "ALPACA_DATA_URL": rest.url,
        }.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        config = RunnerConfig(home=tmp_path, broker="alpaca", market_data="stream")
        feed = alpaca_stream_feed(config, StaticSnapshotProvider(None))
        try:
            wait_for(lambda: ws.subscriptions("iex").get("bars") == ["AAPL", "MSFT"])
            sent = ws.play("iex", SESSION, 0, 3)
            wait_for(lambda: feed.stats()["bars"] == len(sent) == 6, what="3 minutes x 2")
            assert feed.pump(opens) == 6 and feed.wait(0) is False  # taken: no wake pending
            assert feed.closed_minute(opens + 3 * MINUTE) == opens + 2 * MINUTE  # all arrived
            history = pl.DataFrame({"session": [date(2024, 3, 14)], "symbol": ["AAPL"]})
            base = MarketSnapshot(opens, date(2024, 3, 14), {"AAPL": 1.0}, history)
            snap = feed.minute_snapshot(base, opens + 2 * MINUTE, ["AAPL", "MSFT"])
            assert snap.intraday is not None
            assert snap.intraday.equals(feed.book.bars(SESSION).drop("source"))
            last = float(sent[-2 if sent[-1]["S"] == "MSFT" else -1]["c"])
            assert snap.prices["AAPL"] == pytest.approx(last)
            assert snap.features["session_open"] == opens
        finally:
            feed.close()


def test_a_short_put_marked_from_the_streamed_spot_trips_the_daily_loss(tmp_path: Path) -> None:
    """Options marks follow the stream: the underlying's minute close reprices the chain, and
    the P&L guard sees the short put's loss at once (a real engine, journal and ledger)."""
    from contracts.limits import AccountLimits
    from live.book import Ledger
    from live.deployments.manifests import load_manifest
    from live.journal.store import Journal
    from live.risk.engine import RiskEngine, TradingState
    from live.runner.pnl_guard import PnlGuard

    friday = date(2024, 3, 1)
    ts = datetime(2024, 3, 1, 21, 0, tzinfo=UTC)
    chains = {"SPY": chain(100.0).with_columns(pl.lit(friday).alias("session"))}
    history = pl.DataFrame({"session": [friday], "symbol": ["SPY"], "close": [100.0]})
    snap = MarketSnapshot(ts, friday, {"SPY": 100.0}, history, chains)
    path = deploy(tmp_path, "puts", risk_limits=limits(max_daily_loss=5_000.0))
    deps = [load_manifest(path)]
    j = Journal(tmp_path / "journal.sqlite")
    risk = RiskEngine(AccountLimits(), SimClock(OPEN))
    guard = PnlGuard(j, risk, AccountLimits())
    sold = jo.FillRow("e1", None, "puts", P100, "us_option", -10, 4.5, ts)
    ledger = Ledger.from_fills([sold])  # ten puts sold at the close's mid
    feed = StreamFeed(StaticSnapshotProvider(snap))
    daily = snapshot_quotes(snap)

    def minute(k: int, spot: float) -> None:
        bar = MinuteBar("SPY", OPEN + k * MINUTE, spot, spot, spot, spot, 1, spot, 1)
        feed.book.apply(bar)
        feed.on_bar(bar)
        guard.update(ledger, deps, None, feed.marks(daily, snap), OPEN + (k + 1) * MINUTE)

    minute(0, 100.0)
    assert risk.state("puts") is TradingState.ACTIVE
    minute(1, 90.0)  # the put is worth ~10.6: ~6,100 lost since the day's start
    assert risk.state("puts") is TradingState.REDUCING
    j.close()


class Died(BaseException):
    """A crash (escapes the runner's per-step error handling, as a kill would)."""


def test_a_minute_order_not_sent_before_a_crash_is_never_sent_late(
    tmp_path: Path, probe: type[MinuteProbe]
) -> None:
    home = make_home(tmp_path)
    deploy(home, "probe", strategy="minute_probe", params={"symbols": ["SPY"]})

    def die_before_send(point: str) -> None:
        if point == "before_send":
            raise Died(point)

    config = RunnerConfig(home=home, broker="sim", cycle_seconds=60, market_data="stream")
    first, _ = build_runner(config, clock=SimClock(OPEN), crash=die_before_send)
    with pytest.raises(Died):  # the 09:31 decision is journaled, then the process dies
        first.run(should_stop=lambda: first.clock.now() >= OPEN + 3 * MINUTE)
    first.close()
    restart = OPEN + 5 * MINUTE + 30 * SEC
    second = runner(home, restart)
    run_until(second, restart + 2 * MINUTE)
    orders = jo.list_orders(second.j)
    stale = orders[0]
    assert stale.decided_at == OPEN + MINUTE and stale.status.value == "unsent_expired"
    assert "a newer bar closed since" in (second.j.rows(
        "SELECT note FROM order_events WHERE client_order_id=? ORDER BY rowid DESC LIMIT 1",
        stale.client_order_id,
    )[0][0] or "")  # fmt: skip
    assert minute_decisions(second, "probe") == [
        "2024-03-04 09:31",
        "2024-03-04 09:35",
        "2024-03-04 09:36",
        "2024-03-04 09:37",
    ]  # fmt: skip  (09:32-09:34 closed while it was down: never decided late)
    assert [o.status.value for o in orders[1:]] == ["filled"] * 3
    assert second.broker.positions()[0].qty == 3  # the stale order never reached the broker
    second.close()
