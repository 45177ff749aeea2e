"""MarketStream end to end: real alpaca-py against the websocket and REST fakes on loopback."""

from __future__ import annotations

import json
import logging
import time
from datetime import date, timedelta

import pytest

from live.errors import ConfigError
from live.market.stream.alpaca_source import STOCK_CHANNELS, config_from_env
from live.market.stream.gaps import session_minutes
from live.market.stream.hub import StreamHub
from live.market.stream.model import FeedState, FeedStatus, MinuteBar, OptionQuote
from live.market.stream.service import MarketStream
from tests.fakes.alpaca_data_stream import FakeAlpacaDataStream
from tests.fakes.alpaca_market import AlpacaMarketFake
from tests.fakes.market import Bar, FakeMarket
from tests.fakes.polygon_stream import FakePolygonStream
from tests.stream.conftest import KEY, OPEN, SECRET, SESSION, Clock, wait_for

SYMBOLS = ["AAPL", "MSFT"]
SETTLE = timedelta(seconds=5)


def rest_minutes(market: FakeMarket, symbol: str, upto_minute: int) -> set:
    """The regular-hours minutes REST holds for ``symbol`` before minute ``upto_minute``."""
    regular = set(session_minutes(SESSION)[:upto_minute])
    out = set()
    for b in market.minute_bars(symbol, SESSION):
        ts = OPEN + timedelta(microseconds=(b.ts_ns - int(OPEN.timestamp() * 1e9)) // 1000)
        if ts in regular:
            out.add(ts)
    return out


def client_logs(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured log line but the fake server's (the fake logs frames it receives)."""
    return "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith("websockets.server")
    )


def start(env: dict, hub: StreamHub, clock: Clock, **kw) -> MarketStream:
    ms = MarketStream(
        SYMBOLS, env=env, hub=hub, clock=clock, settle=SETTLE, gap_interval=3600, **kw
    )
    return ms.start()


def streaming(ws: FakeAlpacaDataStream, feed: str = "iex") -> bool:
    return ws.connections(feed) == 1 and bool(ws.subscriptions(feed).get("bars"))


def test_drop_mid_minute_leaves_zero_gaps_and_backfill_is_fast(
    ws: FakeAlpacaDataStream, rest: AlpacaMarketFake, env: dict, hub: StreamHub, clock: Clock
) -> None:
    ms = start(env, hub, clock)
    wait_for(lambda: streaming(ws), what="subscribed stream")
    sent = ws.play("iex", SESSION, 0, 6)
    wait_for(lambda: ms.book.bars(SESSION).height == len(sent), what="minutes 0-5")
    # the socket dies mid-minute 6 and is back in minute 10: minutes 6..9 are never sent (the
    # clock moves first, so a reconnect however fast sees them due)
    clock.at(10)
    ws.drop("iex")
    wait_for(lambda: len(ws.connection_attempts("iex")) == 2 and streaming(ws), what="reconnect")
    reconnected = time.monotonic()
    wait_for(lambda: ms.stats()["gaps"]["filled"] >= 8, what="backfill of 6..9")
    took = time.monotonic() - reconnected
    ws.play("iex", SESSION, 10, 13)
    clock.at(13)
    wait_for(lambda: ms.book.bars(SESSION).height >= 2 * 13, what="minutes 10-12")
    ms.check_gaps()  # a timed pass after the last minute: nothing left to find
    for s in SYMBOLS:
        assert ms.book.minutes(s, SESSION) == rest_minutes(ws.market, s, 13)
    assert ms.gaps.find(SESSION, {s: ms.book.minutes(s, SESSION) for s in SYMBOLS}, clock()) == []
    df = ms.book.bars(SESSION)
    backfilled = df.filter(df["source"] == "backfill")["ts"].to_list()
    assert sorted(set(backfilled)) == [OPEN + timedelta(minutes=m) for m in range(6, 10)]
    stats = ms.stats()
    assert stats["feeds"]["alpaca:iex"]["reconnects"] == 1
    # lag: the clock (13:43:10) minus the close of the latest bar (minute 12 closes 13:43:00)
    assert stats["feeds"]["alpaca:iex"]["lag_s"] == pytest.approx(10.0, abs=1e-6)
    assert stats["gaps"]["found"] == 8 and stats["gaps"]["filled"] == 8
    # REST was asked once, for the window from the last bar before the drop to the first after
    calls = rest.hits("/v2/stocks/bars")
    assert len(calls) == 1 and calls[0].param("feed") == "iex"
    assert str(calls[0].param("start")).startswith("2024-03-15T13:36:00")
    print(f"\ngap backfill after reconnect: {took * 1000:.0f} ms (service timing {stats['gaps']})")
    assert took < 5.0
    ms.close()


def test_revision_applied_once_and_duplicated_reversed_frames_harmless(
    ws: FakeAlpacaDataStream, env: dict, hub: StreamHub, clock: Clock
) -> None:
    seen: list[MinuteBar] = []
    ms = start(env, hub, clock, on_bar=seen.append)
    wait_for(lambda: streaming(ws), what="subscribed stream")
    msgs = ws.play("iex", SESSION, 0, 3)
    wait_for(lambda: ms.book.bars(SESSION).height == 6, what="3 minutes")
    ws.publish("iex", msgs, duplicate=True, reverse=True)  # every frame twice, newest first
    ts = OPEN + timedelta(minutes=1)
    u = ws.updated_bar("iex", "AAPL", ts, c=999.5, v=123456)  # ~30 s later: a late trade
    ws.publish("iex", [u], duplicate=True)  # the same `u` frame again, twice
    wait_for(lambda: ms.book.counts()["duplicate"] >= 2 * len(msgs) + 2, what="all frames")
    bar = ms.book.bar("AAPL", ts)
    assert (
        bar is not None and bar.close == 999.5 and bar.volume == 123456 and bar.source == "revision"
    )
    assert ms.book.counts() == {"new": 6, "revision": 1, "duplicate": 2 * len(msgs) + 2}
    assert ms.book.counts("AAPL")["revision"] == 1
    assert [b.source for b in seen].count("revision") == 1 and len(seen) == 7
    assert ms.stats()["revisions"] == 1
    ms.close()


def test_two_consumers_share_one_socket(
    ws: FakeAlpacaDataStream, env: dict, hub: StreamHub, clock: Clock
) -> None:
    a = start(env, hub, clock)
    b = MarketStream(["MSFT", "SPY"], env=env, hub=hub, clock=clock, gap_interval=3600).start()
    wait_for(lambda: set(ws.subscriptions("iex").get("bars", [])) == {"AAPL", "MSFT", "SPY"})
    ws.play("iex", SESSION, 0, 2)
    wait_for(lambda: b.book.bars(SESSION).height == 4 and a.book.bars(SESSION).height == 4)
    assert ws.connections("iex") == 1 and len(ws.connection_attempts("iex")) == 1
    assert set(a.book.bars(SESSION)["symbol"]) == {"AAPL", "MSFT"}
    assert set(b.book.bars(SESSION)["symbol"]) == {"MSFT", "SPY"}
    a.close()  # AAPL leaves the vendor's set; the socket stays for b
    wait_for(lambda: set(ws.subscriptions("iex").get("bars", [])) == {"MSFT", "SPY"})
    assert ws.connections("iex") == 1
    b.close()
    wait_for(lambda: ws.connections("iex") == 0, what="socket closed by the last consumer")


def test_connection_limit_406_backs_off(ws: FakeAlpacaDataStream, env: dict, clock: Clock) -> None:
    """A second process on the key (its own hub) gets 406 and never retries faster than backoff."""
    first, second = StreamHub(), StreamHub()
    statuses: list[FeedStatus] = []
    try:
        a = start(env, first, clock)
        wait_for(lambda: streaming(ws))
        b = start(env, second, clock, on_status=statuses.append)
        wait_for(lambda: len(ws.connection_attempts("iex")) >= 4, timeout=20, what="3 refusals")
        refused = ws.connection_attempts("iex")[1:]
        gaps = [t1 - t0 for t0, t1 in zip(refused, refused[1:], strict=False)]
        # alpaca-py: wait uniform in [c/2, c], c = min(30, 2^(n-1)) s after the n-th failure
        floors = [0.5 * 2 ** (n - 1) * 0.95 for n in range(1, len(gaps) + 1)]
        assert all(g >= f for g, f in zip(gaps, floors, strict=True)), (gaps, floors)
        limit = [s for s in statuses if s.state == FeedState.CONNECTION_LIMIT]
        assert limit and limit[-1].code == 406 and "another connection" in limit[-1].message
        assert ws.connections("iex") == 1  # the first keeps its socket
        assert b.stats()["feeds"]["alpaca:iex"]["state"] == "connection_limit"
        b.close()
        a.close()
    finally:
        first.close_all()
        second.close_all()


def test_insufficient_subscription_409_stops_for_good(market: FakeMarket, clock: Clock) -> None:
    with FakeAlpacaDataStream("k", "s", market=market, plan_feeds={"iex"}) as fake:
        env = {
            "ALPACA_API_KEY": "k",
            "ALPACA_SECRET_KEY": "s",
            "ALPACA_FEED": "sip",
            "ALPACA_DATA_STREAM_URL": f"ws://127.0.0.1:{fake.port}",
        }
        hub = StreamHub()
        ms = MarketStream(["AAPL"], env=env, hub=hub, clock=clock, backfill=False).start()
        feed = wait_for(
            lambda: (
                (f := ms.stats()["feeds"]["alpaca:sip"])["state"] == "insufficient_subscription"
                and f
            ),
            what="409 state",
        )
        assert "Algo Trader Plus" in feed["message"] and "ALPACA_FEED=iex" in feed["message"]
        assert feed["code"] == 409
        time.sleep(2.0)  # alpaca-py would have retried by now if it meant to
        assert len(fake.connection_attempts("sip")) == 1
        ms.close()
        hub.close_all()


def test_mute_socket_goes_stale_then_reconnects(
    ws: FakeAlpacaDataStream, env: dict, hub: StreamHub, clock: Clock
) -> None:
    statuses: list[FeedStatus] = []
    ms = start({**env, "ALPACA_STREAM_DATA_TIMEOUT": "1"}, hub, clock, on_status=statuses.append)
    wait_for(lambda: streaming(ws))
    ws.play("iex", SESSION, 0, 1)
    wait_for(lambda: ms.book.bars(SESSION).height == 2)
    ws.mute("iex")
    wait_for(lambda: FeedState.STALE in [s.state for s in statuses], timeout=5, what="STALE")

    def reconnected() -> bool:
        states = [s.state for s in statuses]
        return FeedState.STREAMING in states[states.index(FeedState.STALE) :]

    wait_for(reconnected, timeout=8, what="STREAMING again after STALE")
    assert len(ws.connection_attempts("iex")) >= 2
    assert ms.stats()["feeds"]["alpaca:iex"]["reconnects"] >= 1
    ws.mute("iex", False)
    ms.close()


def test_no_secret_in_logs_or_stats(
    ws: FakeAlpacaDataStream,
    env: dict,
    hub: StreamHub,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = MarketStream(
        ["AAPL"], env={**env, "ALPACA_SECRET_KEY": "wrong-" + SECRET}, hub=StreamHub(), clock=clock
    ).start()
    wait_for(lambda: bad.stats()["feeds"]["alpaca:iex"]["state"] == "auth_failed", what="402")
    good = start(env, hub, clock)
    wait_for(lambda: streaming(ws))
    ws.play("iex", SESSION, 0, 2)
    wait_for(lambda: good.book.bars(SESSION).height == 4)
    text = (
        caplog.text
        + json.dumps(good.stats())
        + json.dumps(bad.stats())
        + repr(config_from_env(env))
    )
    assert "auth failed (402)" in text  # the failure is reported, by code and advice
    assert SECRET not in text and "s3cr3t" not in text
    bad.close()
    good.close()


def test_recent_sip_403_falls_back_to_iex_for_the_last_15_minutes(
    ws: FakeAlpacaDataStream, rest: AlpacaMarketFake, env: dict, hub: StreamHub, clock: Clock
) -> None:
    clock.at(40)
    rest.queue_faults("/v2/stocks/bars", ["403_plan"])
    ms = MarketStream(
        ["AAPL"],
        env={**env, "ALPACA_FEED": "sip"},
        hub=hub,
        clock=clock,
        settle=SETTLE,
        gap_interval=3600,
    )
    ms.check_gaps()  # before any stream: the whole morning so far is asked
    calls = [
        (str(c.param("feed")), str(c.param("start")), str(c.param("end")))
        for c in rest.hits("/v2/stocks/bars")
    ]
    assert [c[0] for c in calls] == ["sip", "sip", "iex"]
    # now 14:10:10: SIP up to 13:55 (15 minutes back, whole minute), IEX from there
    assert calls[1][2] < "2024-03-15T13:55" and calls[2][1].startswith("2024-03-15T13:55:00")
    assert ms.book.minutes("AAPL", SESSION) == rest_minutes(ws.market, "AAPL", 40)
    assert ms.stats()["backfill"]["recent_sip_refusals"] == 1
    # IEX's empties are provisional: asked again once SIP may answer for them
    assert ms.gaps.stats.filled == len(rest_minutes(ws.market, "AAPL", 40))


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        (
            {"ALPACA_DATA_STREAM_URL": "https://stream.data.alpaca.markets"},
            "ALPACA_DATA_STREAM_URL",
        ),
        ({"ALPACA_OPTIONS_STREAM_URL": "stream.data.alpaca.markets"}, "ALPACA_OPTIONS_STREAM_URL"),
        ({"ALPACA_FEED": "nasdaq"}, "ALPACA_FEED='nasdaq'"),
        ({"ALPACA_OPTIONS_FEED": "cboe"}, "ALPACA_OPTIONS_FEED='cboe'"),
        ({"ALPACA_STREAM_DATA_TIMEOUT": "0"}, "ALPACA_STREAM_DATA_TIMEOUT"),
        ({"ALPACA_DATA_STREAM_URL": "wss://stream.data.alpaca.markets/v2/sip"}, "names feed 'sip'"),
        ({"ALPACA_SECRET_KEY": ""}, "ALPACA_SECRET_KEY"),
    ],
)
def test_bad_settings_one_clear_line(changes: dict, needle: str) -> None:
    env = {"ALPACA_API_KEY": "k", "ALPACA_SECRET_KEY": "s", **changes}
    with pytest.raises(ConfigError) as err:
        config_from_env(env)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_endpoints_and_delayed_sip() -> None:
    cfg = config_from_env(
        {"ALPACA_API_KEY": "KEYID123", "ALPACA_SECRET_KEY": SECRET, "ALPACA_FEED": "delayed_sip"}
    )
    assert cfg.stock_url == "wss://stream.data.alpaca.markets/v2/delayed_sip"
    assert cfg.options_url == "wss://stream.data.alpaca.markets/v1beta1/indicative"
    assert "k" not in repr(cfg).replace("key_id", "") or "api_key" not in repr(cfg)


def test_bad_symbols_rejected_before_connecting(env: dict) -> None:
    with pytest.raises(ConfigError, match="stock symbol 'AA PL'"):
        MarketStream(["AA PL"], env=env)
    with pytest.raises(ConfigError, match="option symbol"):
        MarketStream([], ["SPY 240621C500"], env=env)


# -- options on Alpaca, the symbol limit -----------------------------------------------------


def test_option_quotes_over_msgpack(
    ws: FakeAlpacaDataStream, env: dict, hub: StreamHub, clock: Clock
) -> None:
    quotes: list[OptionQuote] = []
    occ = "SPY240315C00510000"
    ms = MarketStream([], [occ], env=env, hub=hub, clock=clock, on_quote=quotes.append).start()
    wait_for(lambda: ws.subscriptions("indicative").get("quotes") == [occ], what="quote sub")
    t = OPEN + timedelta(minutes=3, seconds=12.5)
    q = {"T": "q", "S": occ, "bx": "C", "bp": 1.25, "bs": 10, "ax": "X", "ap": 1.31, "as": 7}
    ws.publish("indicative", [q | {"t": t}])
    wait_for(lambda: quotes, what="one quote")
    assert quotes == [OptionQuote(occ, t, 1.25, 1.31, 10.0, 7.0, "C", "X")]
    feed = ms.stats()["feeds"]["alpaca-options:indicative"]
    assert feed["state"] == "streaming" and feed["last_exchange_ts"] == t.isoformat()
    ms.close()


def test_symbol_limit_405_is_a_state_and_the_set_stays(market: FakeMarket, clock: Clock) -> None:
    with FakeAlpacaDataStream("k", "s", market=market, symbol_limit=2) as fake:
        env = {
            "ALPACA_API_KEY": "k",
            "ALPACA_SECRET_KEY": "s",
            "ALPACA_DATA_STREAM_URL": f"ws://127.0.0.1:{fake.port}",
        }
        hub = StreamHub()
        a = MarketStream(["AAPL", "MSFT"], env=env, hub=hub, clock=clock, backfill=False).start()
        wait_for(lambda: fake.subscriptions("iex").get("bars") == ["AAPL", "MSFT"])
        b = MarketStream(["SPY"], env=env, hub=hub, clock=clock, backfill=False).start()
        feed = wait_for(
            lambda: (f := b.stats()["feeds"]["alpaca:iex"])["state"] == "symbol_limit" and f
        )
        assert feed["code"] == 405 and "symbol limit" in feed["message"]
        assert fake.subscriptions("iex")["bars"] == ["AAPL", "MSFT"]
        assert fake.connections("iex") == 1
        a.close()
        b.close()
        hub.close_all()


# -- Polygon -----------------------------------------------------------------------------------


def polygon_env(fake: FakePolygonStream, key: str = "poly-key") -> dict[str, str]:
    return {"POLYGON_API_KEY": key, "POLYGON_STREAM_URL": fake.url}


def test_polygon_minute_aggregates_and_option_quotes(
    market: FakeMarket, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    occ = "SPY240315C00510000"
    quotes: list[OptionQuote] = []
    with FakePolygonStream("poly-key", market=market) as fake:
        hub = StreamHub()
        ms = MarketStream(
            SYMBOLS,
            [occ],
            source="polygon",
            env=polygon_env(fake),
            hub=hub,
            clock=clock,
            on_quote=quotes.append,
        ).start()
        wait_for(lambda: sorted(fake.subscriptions("stocks")) == ["AM.AAPL", "AM.MSFT"])
        wait_for(lambda: fake.subscriptions("options") == [f"Q.O:{occ}"])
        fake.play("stocks", SESSION, 0, 3)
        wait_for(lambda: ms.book.bars(SESSION).height == 6, what="6 aggregates")
        # the same minutes as Alpaca's bars (FakeMarket), stamped at the aggregate's start
        for s in SYMBOLS:
            assert ms.book.minutes(s, SESSION) == rest_minutes(market, s, 3)
        t_ms = int((OPEN + timedelta(minutes=2)).timestamp() * 1000)
        fake.publish(
            "options",
            [
                {
                    "ev": "Q",
                    "sym": f"O:{occ}",
                    "bx": 1,
                    "bp": 1.2,
                    "bs": 3,
                    "ax": 2,
                    "ap": 1.3,
                    "as": 4,
                    "t": t_ms,
                }
            ],
        )
        wait_for(lambda: quotes, what="option quote")
        assert quotes[0].symbol == occ and quotes[0].ts == OPEN + timedelta(minutes=2)
        stats = ms.stats()
        assert stats["feeds"]["polygon:stocks"]["state"] == "streaming"
        assert stats["backfill"] is None
        ms.close()
        hub.close_all()
    assert "poly-key" not in client_logs(caplog) + json.dumps(stats)
    assert "poly-key" in caplog.text  # the fake server's own DEBUG frames do show it: not ours


def test_polygon_eviction_stops_the_older_connection(market: FakeMarket, clock: Clock) -> None:
    """Two processes (hubs) on one key: the older is evicted and stops instead of fighting."""
    with FakePolygonStream("poly-key", market=market) as fake:
        first, second = StreamHub(), StreamHub()
        a = MarketStream(["AAPL"], source="polygon", env=polygon_env(fake), hub=first, clock=clock)
        a.start()
        wait_for(lambda: fake.connections("stocks") == 1)
        b = MarketStream(["AAPL"], source="polygon", env=polygon_env(fake), hub=second, clock=clock)
        b.start()
        feed = wait_for(
            lambda: (f := a.stats()["feeds"]["polygon:stocks"])["state"] == "evicted" and f
        )
        assert "newer connection" in feed["message"]
        time.sleep(1.5)  # the evicted client would have reconnected by now if it meant to
        assert len(fake.connection_attempts("stocks")) == 2 and fake.connections("stocks") == 1
        fake.play("stocks", SESSION, 0, 1)
        wait_for(lambda: b.book.bars(SESSION).height == 1)
        for h in (first, second):
            h.close_all()


def test_polygon_auth_failed_is_final(market: FakeMarket, clock: Clock) -> None:
    with FakePolygonStream("poly-key", market=market) as fake:
        hub = StreamHub()
        ms = MarketStream(
            ["AAPL"], source="polygon", env=polygon_env(fake, "wrong"), hub=hub, clock=clock
        )
        ms.start()
        feed = wait_for(
            lambda: (f := ms.stats()["feeds"]["polygon:stocks"])["state"] == "auth_failed" and f
        )
        assert "POLYGON_API_KEY" in feed["message"]
        time.sleep(1.0)
        assert len(fake.connection_attempts("stocks")) == 1
        hub.close_all()


def test_option_underlyings_resolve_to_near_the_money_contracts(
    ws: FakeAlpacaDataStream, env: dict, hub: StreamHub, clock: Clock, market: FakeMarket
) -> None:
    ms = MarketStream([], option_underlyings=["SPY"], env=env, hub=hub, clock=clock)
    chain = {q.occ: q for q in market.chain("SPY", SESSION)}
    assert 0 < len(ms.contracts) <= 40 and set(ms.contracts) <= set(chain)
    assert all(q.expiry <= SESSION + timedelta(days=45) for q in map(chain.get, ms.contracts) if q)
    # nearer the money than the chain's far wings: every chosen |delta| within the chosen band
    chosen = [chain[c] for c in ms.contracts]
    if all(q.greeks for q in chosen):
        worst = max(abs(abs(q.greeks["delta"]) - 0.5) for q in chosen if q.greeks)
        window = SESSION + timedelta(days=45)
        rest = [
            q
            for occ, q in chain.items()
            if occ not in ms.contracts and q.greeks and q.expiry <= window
        ]
        assert all(abs(abs(q.greeks["delta"]) - 0.5) >= worst - 1e-12 for q in rest if q.greeks)
    with pytest.raises(ConfigError, match="no option contracts for 'ZZZZ'"):
        MarketStream([], option_underlyings=["ZZZZ"], env=env, hub=hub, clock=clock)


class SparseMarket(FakeMarket):
    """FakeMarket where AAPL had no trades in minutes 3 and 4 (no bar exists anywhere)."""

    def minute_bars(self, symbol: str, session: date) -> list[Bar]:
        empty = {int((OPEN + timedelta(minutes=m)).timestamp()) * 10**9 for m in (3, 4)}
        bars = super().minute_bars(symbol, session)
        return [b for b in bars if symbol != "AAPL" or b.ts_ns not in empty]


def test_minutes_without_trades_are_verified_empty_once_and_the_timer_runs(clock: Clock) -> None:
    market = SparseMarket()
    with (
        FakeAlpacaDataStream(KEY, SECRET, market=market) as ws,
        AlpacaMarketFake(market, key=KEY, secret=SECRET) as rest,
    ):
        env = {
            "ALPACA_API_KEY": KEY,
            "ALPACA_SECRET_KEY": SECRET,
            "ALPACA_DATA_STREAM_URL": f"ws://127.0.0.1:{ws.port}",
            "ALPACA_DATA_URL": rest.url,
        }
        hub = StreamHub()
        ms = MarketStream(SYMBOLS, env=env, hub=hub, clock=clock, settle=SETTLE, gap_interval=0.1)
        ms.start()
        wait_for(lambda: streaming(ws))
        ws.play("iex", SESSION, 0, 9)
        wait_for(lambda: ms.book.bars(SESSION).height == 2 * 9 - 2, what="16 bars")
        clock.at(9)
        wait_for(lambda: ms.gaps.stats.empty == 2, what="two verified-empty minutes")
        passes = ms.stats()["gaps"]["passes"]
        wait_for(lambda: ms.stats()["gaps"]["passes"] >= passes + 3, what="timed passes")
        calls = rest.hits("/v2/stocks/bars")
        assert len(calls) == 1 and calls[0].param("symbols") == "AAPL"  # asked once, never again
        assert ms.gaps.empty_minutes("AAPL", clock()) == {
            OPEN + timedelta(minutes=m) for m in (3, 4)
        }
        assert ms.stats()["gaps"] | {"passes": 0} == ms.stats()["gaps"] | {
            "found": 2,
            "filled": 0,
            "verified_empty": 2,
            "passes": 0,
        }
        ms.close()
        hub.close_all()


def test_slow_client_407_and_unknown_symbols_are_reported(market: FakeMarket, clock: Clock) -> None:
    with FakeAlpacaDataStream("k", "s", market=market, known_symbols={"AAPL", "MSFT"}) as fake:
        env = {
            "ALPACA_API_KEY": "k",
            "ALPACA_SECRET_KEY": "s",
            "ALPACA_DATA_STREAM_URL": f"ws://127.0.0.1:{fake.port}",
        }
        hub = StreamHub()
        statuses: list[FeedStatus] = []
        ms = MarketStream(
            ["AAPL", "ZZZZ"],
            env=env,
            hub=hub,
            clock=clock,
            backfill=False,
            on_status=statuses.append,
        ).start()
        feed = wait_for(lambda: (f := ms.stats()["feeds"]["alpaca:iex"])["rejected_symbols"] and f)
        assert feed["rejected_symbols"] == ["ZZZZ"] and "ZZZZ" in feed["message"]
        fake.send_error("iex", 407, close=True)
        wait_for(lambda: FeedState.SLOW_CLIENT in [s.state for s in statuses], what="407 state")
        wait_for(lambda: len(fake.connection_attempts("iex")) == 2 and fake.connections("iex") == 1)
        slow = next(s for s in statuses if s.state == FeedState.SLOW_CLIENT)
        assert slow.code == 407 and "too slow" in slow.message
        ms.close()
        hub.close_all()


def test_delayed_sip_waits_15_minutes_before_calling_a_minute_missing(
    env: dict, hub: StreamHub, clock: Clock
) -> None:
    ms = MarketStream(["AAPL"], env={**env, "ALPACA_FEED": "delayed_sip"}, hub=hub, clock=clock)
    assert ms.config is not None and ms.config.stock_url.endswith("/v2/delayed_sip")
    clock.at(20)
    missing = ms.gaps.missing(SESSION, {"AAPL": set()}, clock())
    # 20 min 10 s after the open, only bars that closed 15 min + the 15 s settle ago are due:
    # minute 3 closed at 4:00 (due at 19:15), minute 4 closes at 5:00 (due at 20:15, not yet)
    assert missing == {"AAPL": [OPEN + timedelta(minutes=m) for m in range(4)]}
    assert ms.stats()["feeds"]["alpaca:delayed_sip"]["gaps_found"] == 4


def test_a_failed_backfill_is_retried_on_the_next_pass(
    ws: FakeAlpacaDataStream, rest: AlpacaMarketFake, env: dict, hub: StreamHub, clock: Clock
) -> None:
    ms = MarketStream(["AAPL"], env=env, hub=hub, clock=clock, settle=SETTLE, gap_interval=0.1)
    clock.at(5)
    rest.queue_faults("/v2/stocks/bars", ["500"])  # alpaca-py does not retry a 500 itself
    ms.start()
    wait_for(lambda: ms.gaps.stats.filled == 5, what="backfill after one failed pass")
    stats = ms.stats()
    assert stats["gaps"]["errors"] == 1 and stats["backfill"]["errors"] == 1
    assert stats["backfill"]["last_error"].startswith("500")
    assert SECRET not in json.dumps(stats)
    assert ms.book.minutes("AAPL", SESSION) == rest_minutes(ws.market, "AAPL", 5)
    ms.close()


def test_trades_statuses_luld_and_daily_bars_reach_on_event(
    ws: FakeAlpacaDataStream, env: dict, hub: StreamHub, clock: Clock
) -> None:
    events: list[tuple[str, dict]] = []
    ms = MarketStream(
        ["AAPL"],
        env=env,
        hub=hub,
        clock=clock,
        backfill=False,
        channels=STOCK_CHANNELS,
        on_event=lambda ch, msg: events.append((ch, msg)),
    ).start()
    wait_for(lambda: ws.subscriptions("iex").get("lulds") == ["AAPL"], what="lulds subscribed")
    assert all(ws.subscriptions("iex")[ch] == ["AAPL"] for ch in STOCK_CHANNELS)
    t = OPEN + timedelta(seconds=61.25)
    ws.publish(
        "iex",
        [
            {"T": "t", "S": "AAPL", "i": 1, "x": "V", "p": 170.1, "s": 100, "t": t, "c": ["@"]},
            {"T": "s", "S": "AAPL", "sc": "H", "sm": "Trading Halt", "rc": "LUDP", "t": t},
            {"T": "l", "S": "AAPL", "u": 180.0, "d": 160.0, "i": "", "t": t, "z": "C"},
            {"T": "d", "S": "AAPL", "o": 1.0, "h": 2.0, "l": 0.5, "c": 1.5, "v": 9, "t": t},
        ],
    )
    wait_for(lambda: len(events) == 4, what="four events")
    assert [ch for ch, _ in events] == ["trades", "statuses", "lulds", "dailyBars"]
    assert all(msg["t"] == t for _, msg in events)  # the exchange's time, as a datetime
    assert ms.book.bars(SESSION).height == 0  # a daily bar is not a minute bar
    ms.close()


def test_sessions_older_than_the_previous_one_are_forgotten(env: dict, hub: StreamHub) -> None:
    clock = Clock(OPEN)
    ms = MarketStream(["AAPL"], env=env, hub=hub, clock=clock, backfill=False)
    for day in (date(2024, 3, 13), date(2024, 3, 14), SESSION):
        ts = OPEN.replace(day=day.day)
        ms.book.apply(MinuteBar("AAPL", ts, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1))
    ms.check_gaps(OPEN - timedelta(hours=1))  # Friday before the open
    assert ms.book.sessions() == [date(2024, 3, 14), SESSION]


def test_polygon_drop_reconnects_and_runs_a_gap_pass(market: FakeMarket, clock: Clock) -> None:
    """The client reconnects by itself (websockets' backoff: a random 0-5 s first delay); the new
    socket is noticed and triggers a gap pass (Polygon has no backfill here: found, not filled)."""
    with FakePolygonStream("poly-key", market=market) as fake:
        hub = StreamHub()
        ms = MarketStream(
            ["AAPL"],
            source="polygon",
            env=polygon_env(fake),
            hub=hub,
            clock=clock,
            settle=SETTLE,
            gap_interval=3600,
        ).start()
        wait_for(lambda: fake.subscriptions("stocks") == ["AM.AAPL"])
        fake.play("stocks", SESSION, 0, 2)
        wait_for(lambda: ms.book.bars(SESSION).height == 2)
        clock.at(6)
        fake.drop("stocks")
        wait_for(
            lambda: (
                ms.stats()["feeds"]["polygon:stocks"]["reconnects"] == 1
                and fake.subscriptions("stocks") == ["AM.AAPL"]
            ),
            timeout=15,
            what="polygon reconnect",
        )
        wait_for(lambda: ms.stats()["gaps"]["found"] == 4, what="gap pass after the reconnect")
        fake.play("stocks", SESSION, 6, 7)
        wait_for(lambda: ms.book.bars(SESSION).height == 3)
        hub.close_all()
