"""The stream layer over a real loopback websocket: ingest, option quotes, gap backfill, memory.

Run: ``.venv/bin/python benchmarks/bench_stream.py [--quick] [--repeat N]`` (prints only).

The websocket fake (``tests.fakes.alpaca_data_stream``) runs in a child process, so its sending
takes the other core and the measured side is the client alone. It greets, authenticates and
acks subscriptions as the vendor does; the market data are msgpack frames recorded once in the
child (one frame per minute holding every symbol's bar; option quotes in frames of 100) and
sent as the same bytes to each client, so both clients parse identical input:

1. ingest: minute bars/s of a bare alpaca-py ``StockDataStream(raw_data=True)`` with a no-op
   async handler (the issue's peer), of the same with alpaca-py's default pydantic models, and
   of our ``AlpacaConnection -> StreamHub -> MarketStream -> MinuteBook`` path with an
   ``on_bar`` consumer (each frame decoded in bulk, routed and booked per frame); runs
   interleaved, ``--repeat`` each, medians (and best) with the ratio of the medians. Two rates
   each: wall (first frame sent to last message consumed) and CPU (the receiving thread's
   ``thread_time``, which holds the socket read, inflate, unpack and dispatch: far steadier
   when other jobs share the cores);
2. option quotes: the same for ``OptionDataStream`` quotes across 500 contracts;
3. gap backfill: the socket drops mid-minute (``fake.drop``) while four minutes pass; time
   from the reconnect (the fake's upgrade time) until REST backfill left zero gaps
   (in-process fakes, 16 symbols, ``--gap-reps`` drops);
4. memory: a full session (390 minutes) of 500 symbols through MarketStream, then again with
   the ``StreamLakeWriter`` (flushed at each sample), each in a fresh process; VmRSS from
   ``/proc/self/status`` every 30 simulated minutes, its growth after the first hour compared
   with what the held bars cost (tracemalloc on a sample, plus the writer's frame per row).

``bench_stream_ingest.py`` measures the same path without a socket (alpaca-py's receive loop
fed from memory); this one includes the websocket read. Nothing is asserted; on a shared
machine read the ratios, above all the CPU ones. ``--quick``: a small smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgpack  # noqa: E402
import polars as pl  # noqa: E402
from alpaca.data.live.option import OptionDataStream  # noqa: E402
from alpaca.data.live.stock import StockDataStream  # noqa: E402
from alpaca.data.live.websocket import DataStream  # noqa: E402

from contracts import lake as layout  # noqa: E402
from contracts import paths  # noqa: E402
from live.market.stream.alpaca_source import parse  # noqa: E402
from live.market.stream.hub import StreamHub  # noqa: E402
from live.market.stream.lake_writer import STREAM_BARS, StreamLakeWriter  # noqa: E402
from live.market.stream.minutes import MinuteBook  # noqa: E402
from live.market.stream.service import MarketStream  # noqa: E402

KEY, SECRET = "bench-key", "bench-secret"
SESSION = date(2024, 3, 15)
OPEN = datetime(2024, 3, 15, 13, 30, tzinfo=UTC)  # 09:30 New York (daylight time)
QUOTE_BATCH = 100
SAMPLE_EVERY = 30  # simulated minutes between RSS samples


def stock_symbols(n: int) -> list[str]:
    return [f"S{i:03d}" for i in range(n)]


def contracts(n: int) -> list[str]:
    return [f"SPY2404{19 + i % 2:02d}{'CP'[i % 2]}{400_000 + i * 500:08d}" for i in range(n)]


# -- the recorded frames (built in the child; the parent never sees them) ----------------------
def bar_frames(symbols: list[str], minutes: int) -> list[bytes]:
    """One msgpack frame per minute holding every symbol's bar (the vendor's minute batch)."""
    out = []
    for m in range(minutes):
        t = msgpack.Timestamp.from_unix_nano(int((OPEN + timedelta(minutes=m)).timestamp()) * 10**9)
        frame = []
        for k, s in enumerate(symbols):
            px = 50.0 + (k * 7 + m * 13) % 1000 / 10
            frame.append({"T": "b", "S": s, "o": px, "h": px + 0.25, "l": px - 0.25, "c": px + 0.1})
            frame[-1] |= {"v": 1000 + m * 3 + k, "t": t, "n": 12, "vw": px + 0.05}
        out.append(msgpack.packb(frame))
    return out


def quote_frames(occs: list[str], count: int) -> list[bytes]:
    """``count`` NBBO quotes cycling through ``occs``, 100 to a frame, 1 ms apart."""
    base = int(OPEN.timestamp()) * 10**9
    msgs = []
    for i in range(count):
        bid = 1.0 + (i * 31) % 400 / 100
        t = msgpack.Timestamp.from_unix_nano(base + i * 1_000_000)
        msgs.append({"T": "q", "S": occs[i % len(occs)], "t": t, "bx": "C", "bp": bid, "bs": 5})
        msgs[-1] |= {"ax": "X", "ap": round(bid + 0.05, 2), "as": 7, "c": "A"}
    return [msgpack.packb(msgs[i : i + QUOTE_BATCH]) for i in range(0, count, QUOTE_BATCH)]


def serve(pipe: Connection, symbols: int, minutes: int, occs: int, quotes: int) -> None:
    """Child process: the fake on loopback; sends recorded frames when the parent asks."""
    from tests.fakes.alpaca_data_stream import FakeAlpacaDataStream  # noqa: PLC0415
    from tests.fakes.ws_server import wait_for  # noqa: PLC0415

    frames = {
        "iex": bar_frames(stock_symbols(symbols), minutes),
        "indicative": quote_frames(contracts(occs), quotes),
    }
    channel = {"iex": "bars", "indicative": "quotes"}
    with FakeAlpacaDataStream(KEY, SECRET) as fake:
        pipe.send(fake.port)
        while True:
            op, feed, lo, hi, want = pipe.recv()
            if op == "stop":
                return
            if op == "idle":  # the previous client is gone (one connection per key and feed)
                wait_for(lambda f=feed: not fake._endpoints[f].conns, 30)  # type: ignore[misc]
                pipe.send(0)
                continue

            def ready(f: str = feed, n: int = want) -> bool:
                return (
                    fake.connections(f) == 1 and len(fake.subscriptions(f).get(channel[f], [])) >= n
                )

            wait_for(ready, 30)
            pipe.send("ready")
            conns = [c for c in fake._endpoints[feed].conns if c.authed]

            async def blast(chunk: list[bytes] = frames[feed][lo:hi], to: Any = conns) -> int:
                for frame in chunk:
                    for c in to:
                        await c.ws.send(frame)
                return len(chunk)

            pipe.send(asyncio.run_coroutine_threadsafe(blast(), fake._loop).result(600))


class Server:
    """The parent's handle on the child process's fake."""

    def __init__(self, symbols: int, minutes: int, occs: int, quotes: int) -> None:
        ctx = mp.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=serve, args=(child, symbols, minutes, occs, quotes), daemon=True
        )
        self.proc.start()
        self.port = int(self.pipe.recv())
        self.url = f"ws://127.0.0.1:{self.port}"
        self.env = {"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET, "ALPACA_FEED": "iex"}
        self.env |= {"ALPACA_DATA_STREAM_URL": self.url, "ALPACA_OPTIONS_FEED": "indicative"}

    def send(self, feed: str, lo: int, hi: int, want: int) -> None:
        """Ask for frames[lo:hi]; returns when one client subscribed ``want`` symbols."""
        self.pipe.send(("send", feed, lo, hi, want))
        self.pipe.recv()  # "ready": the frames are on their way

    def sent(self) -> int:
        return int(self.pipe.recv())

    def idle(self, feed: str) -> None:
        self.pipe.send(("idle", feed, 0, 0, 0))
        self.pipe.recv()

    def close(self) -> None:
        self.pipe.send(("stop", "", 0, 0, 0))
        self.proc.join(10)


class Counter:
    """Counts deliveries (on the receiving thread); notes when the ``target``-th one arrived.

    Also the receiving thread's CPU time (``time.thread_time``) between the first and the last
    delivery: what the client costs, much less sensitive than wall time to other jobs taking
    the cores (the socket read, inflate and unpack run on the same thread).
    """

    def __init__(self, target: int) -> None:
        self.n, self.target, self.done_at = 0, target, 0.0
        self.cpu_first = self.cpu_done = 0.0
        self.done = threading.Event()

    def __call__(self, _: Any) -> None:
        self.n += 1
        if self.n == 1:
            self.cpu_first = time.thread_time()
        if self.n == self.target:
            self.done_at, self.cpu_done = time.perf_counter(), time.thread_time()
            self.done.set()


def timed(server: Server, feed: str, frames: int, want: int, count: Counter) -> tuple[float, float]:
    """(wall messages/s from the first frame sent to the last consumed, CPU messages/s)."""
    server.send(feed, 0, frames, want)
    start = time.perf_counter()
    if not count.done.wait(600):
        raise RuntimeError(f"{feed}: only {count.n} of {count.target} messages arrived")
    server.sent()
    cpu = max(count.cpu_done - count.cpu_first, 1e-9)
    return count.target / (count.done_at - start), (count.target - 1) / cpu


def plain_client(
    server: Server, kind: str, names: list[str], frames: int, n: int, raw: bool = True
) -> tuple[float, float]:
    """alpaca-py alone with a no-op async handler that counts (``raw``: dicts, else models)."""
    count = Counter(n)

    async def handler(msg: Any) -> None:
        count(msg)

    stream: DataStream
    if kind == "stocks":
        stream = StockDataStream(KEY, SECRET, raw_data=raw, url_override=f"{server.url}/v2/iex")
        stream.subscribe_bars(handler, *names)  # type: ignore[attr-defined]
        feed = "iex"
    else:
        url = f"{server.url}/v1beta1/indicative"
        stream = OptionDataStream(KEY, SECRET, raw_data=raw, url_override=url)
        stream.subscribe_quotes(handler, *names)  # type: ignore[attr-defined]
        feed = "indicative"
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        return timed(server, feed, frames, len(names), count)
    finally:

        async def stop() -> None:
            await stream.stop_ws()
            await stream.close()

        asyncio.run_coroutine_threadsafe(stop(), stream._loop).result(10)  # type: ignore[arg-type]
        thread.join(10)
        server.idle(feed)


def our_client(
    server: Server, kind: str, names: list[str], frames: int, n: int
) -> tuple[float, float]:
    """MarketStream over our AlpacaConnection: hub routing, MinuteBook, the consumer callback."""
    count = Counter(n)
    hub = StreamHub()
    stocks, occs = (names, []) if kind == "stocks" else ([], names)
    ms = MarketStream(
        stocks, occs, env=server.env, hub=hub, backfill=False, gap_interval=3600,
        on_bar=count, on_quote=count,
    ).start()  # fmt: skip
    feed = "iex" if kind == "stocks" else "indicative"
    try:
        return timed(server, feed, frames, len(names), count)
    finally:
        ms.close()
        hub.close_all()
        server.idle(feed)


def compare(
    server: Server, kind: str, names: list[str], frames: int, n: int, repeat: int
) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) messages/s of each client; runs interleaved so load hits all alike.

    "alpaca-py raw" (``raw_data=True``, the issue's peer: no parsing at all), "alpaca-py
    models" (the library's default pydantic models: what a plain user's handler gets) and ours.
    """
    names_ = ("alpaca-py raw", "alpaca-py models", "ours")
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in names_}
    for _ in range(repeat):
        runs["alpaca-py raw"].append(plain_client(server, kind, names, frames, n))
        runs["ours"].append(our_client(server, kind, names, frames, n))
        runs["alpaca-py models"].append(plain_client(server, kind, names, frames, n, False))
    med = {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for k, v in runs.items()
    }
    head = f"medians of {repeat} runs"
    print(f"  {head:<17} {'wall msgs/s':>11} {'CPU msgs/s':>11} {'best CPU':>10}   CPU runs")
    for name in names_:
        listed = ", ".join(f"{c / 1000:,.0f}k" for _, c in runs[name])
        best = max(c for _, c in runs[name])
        print(
            f"  {name:<17} {med[name][0]:>11,.0f} {med[name][1]:>11,.0f} {best:>10,.0f}"
            f"   ({listed})"
        )
    for peer, target in (("alpaca-py raw", " (target >= 0.9x)"), ("alpaca-py models", "")):
        wall, cpu = (med["ours"][i] / med[peer][i] for i in (0, 1))
        print(f"  ratio ours / {peer:<16} wall {wall:.2f}x, CPU {cpu:.2f}x{target} (medians)")
    return med


# -- 3. gap backfill ---------------------------------------------------------------------------
GAP_SYMBOLS = ["SPY", "QQQ", "IWM", "DIA", "AAPL", "MSFT", "NVDA", "AMZN"]
GAP_SYMBOLS += ["GOOGL", "META", "TSLA", "JPM", "XOM", "KO", "AMD", "BAC"]


def gap_run(market: Any) -> tuple[float, float]:
    """(reconnect -> zero gaps, drop -> zero gaps) seconds: one drop at 09:36:30, back at 09:40."""
    from tests.fakes.alpaca_data_stream import FakeAlpacaDataStream  # noqa: PLC0415
    from tests.fakes.alpaca_market import AlpacaMarketFake  # noqa: PLC0415
    from tests.fakes.ws_server import wait_for  # noqa: PLC0415

    symbols = GAP_SYMBOLS
    now = [OPEN]
    with (
        FakeAlpacaDataStream(KEY, SECRET, market=market) as ws,
        AlpacaMarketFake(market, key=KEY, secret=SECRET) as rest,
    ):
        env = {"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET, "ALPACA_FEED": "iex"}
        env |= {"ALPACA_DATA_STREAM_URL": f"ws://127.0.0.1:{ws.port}", "ALPACA_DATA_URL": rest.url}
        hub = StreamHub()
        ms = MarketStream(
            symbols, env=env, hub=hub, clock=lambda: now[0], settle=timedelta(seconds=5),
            gap_interval=3600,
        ).start()  # fmt: skip
        wait_for(lambda: len(ws.subscriptions("iex").get("bars", [])) == len(symbols), 30)
        sent = ws.play("iex", SESSION, 0, 6)
        wait_for(lambda: ms.book.counts()["new"] == len(sent), 30)
        now[0] = OPEN + timedelta(minutes=6, seconds=30)  # mid-minute
        dropped = time.monotonic()
        ws.drop("iex")
        now[0] = OPEN + timedelta(minutes=10, seconds=10)  # minutes 6..9 passed while down
        wait_for(lambda: len(ws.connection_attempts("iex")) == 2, 30)
        reconnected = ws.connection_attempts("iex")[-1]  # the fake's upgrade time (monotonic)
        wait_for(lambda: ms.stats()["gaps"]["filled"] >= 4 * len(symbols), 30)
        filled = time.monotonic()
        left = ms.gaps.find(SESSION, {s: ms.book.minutes(s, SESSION) for s in symbols}, now[0])
        ms.close()
        hub.close_all()
    if left:
        raise RuntimeError(f"gaps left after the backfill: {left}")
    return filled - reconnected, filled - dropped


def gap_backfill(reps: int) -> None:
    from tests.fakes.market import FakeMarket  # noqa: PLC0415

    market = FakeMarket()
    runs = [gap_run(market) for _ in range(reps)]
    took = [r for r, _ in runs]
    listed = ", ".join(f"{t:.3f}" for t in took)
    print(
        f"  reconnect -> zero gaps: median {statistics.median(took):.3f} s, "
        f"max {max(took):.3f} s over {reps} drops ({listed})"
    )
    worst = max(d for _, d in runs)
    print(f"  drop -> zero gaps (incl. alpaca-py's reconnect backoff): max {worst:.3f} s")
    print("  target: < 5 s after the reconnect")


# -- 4. memory ---------------------------------------------------------------------------------
def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def held_bytes_per_bar(symbols: list[str], minutes: int, books: int) -> float:
    """Python heap one parsed bar costs, kept in ``books`` MinuteBooks (tracemalloc)."""
    frames = bar_frames(symbols, minutes)
    gc.collect()
    tracemalloc.start()
    kept, bars = [MinuteBook() for _ in range(books)], 0
    before = tracemalloc.get_traced_memory()[0]
    for f in frames:
        for msg in msgpack.unpackb(f):
            bar = parse("stocks", "bars", msg)
            for b in kept:
                b.apply(bar)  # type: ignore[arg-type]
            bars += 1
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held / bars


def session_rss(pipe: Connection, symbols: int, minutes: int, lake: bool, every: int) -> None:
    """Child process (a clean heap): one session through MarketStream (+ the lake writer).

    Sends back [(minute, VmRSS MB)] sampled every ``every`` minutes after the writer's
    flush, and the writer's partition frame size per row (0 without the writer).
    """
    logging.getLogger("alpaca").setLevel(logging.CRITICAL)
    server = Server(symbols, minutes, 1, 1)
    names = stock_symbols(symbols)
    with tempfile.TemporaryDirectory() as home:
        writer = StreamLakeWriter(Path(home), flush_seconds=3600, fsync=False)
        seen = [0]

        def on_bar(bar: Any) -> None:
            if lake:
                writer.on_bar(bar)
            seen[0] += 1

        hub = StreamHub()
        ms = MarketStream(
            names, env=server.env, hub=hub, backfill=False, gap_interval=3600, on_bar=on_bar
        ).start()
        series = [(0, rss_mb())]
        for lo in range(0, minutes, every):
            hi = min(lo + every, minutes)
            server.send("iex", lo, hi, symbols)
            server.sent()
            deadline = time.monotonic() + 120
            while seen[0] < symbols * hi and time.monotonic() < deadline:
                time.sleep(0.005)
            writer.flush()
            gc.collect()
            series.append((hi, rss_mb()))
        per_row = 0.0
        if lake:
            part = layout.partition_path(paths.lake_dir(Path(home)), STREAM_BARS, SESSION)
            on_disk = pl.read_parquet(part)
            per_row = on_disk.estimated_size() / max(on_disk.height, 1)
        ms.close()
        hub.close_all()
        server.close()
    pipe.send((series, per_row))


def session_memory(symbols: int, minutes: int, every: int) -> None:
    ctx = mp.get_context("spawn")
    hour = 60 if minutes >= 120 else every  # growth is read after the first hour's samples
    bars_after = symbols * (minutes - hour)
    names = stock_symbols(min(symbols, 100))
    for lake, label in ((False, "MarketStream"), (True, "MarketStream + StreamLakeWriter")):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=session_rss, args=(child, symbols, minutes, lake, every))
        proc.start()
        series, per_row = parent.recv()
        proc.join(30)
        # the writer keeps the same bar objects in its own book, plus its partition frame
        per_bar = held_bytes_per_bar(names, min(minutes, 60), 2 if lake else 1) + per_row
        print(f"  {label}: VmRSS (MB) every {every} simulated minutes, {symbols} symbols")
        print("   " + "  ".join(f"{m}m {mb:.0f}" for m, mb in series))
        at_hour = next(mb for m, mb in series if m >= hour)
        grown = series[-1][1] - at_hour
        expect = bars_after * per_bar / 2**20
        print(
            f"   growth after minute {hour}: {grown:+.1f} MB for {bars_after:,} more bars; "
            f"the bars themselves: {per_bar:.0f} B each = {expect:.1f} MB"
            + (f" (incl. {per_row:.0f} B/row of the writer's frame)" if lake else "")
        )
        if expect:
            print(f"   => {grown / expect:.2f}x the data held")


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def main(argv: list[str] | None = None) -> None:
    # alpaca-py logs each deliberate close as an error ("restarting connection: sent 1000 (OK)")
    logging.getLogger("alpaca").setLevel(logging.CRITICAL)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a ~20 s smoke run (small sizes)")
    p.add_argument("--symbols", type=int, default=500)
    p.add_argument("--minutes", type=int, default=390)
    p.add_argument("--contracts", type=int, default=500)
    p.add_argument("--quotes", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--gap-reps", type=int, default=5)
    a = p.parse_args(argv)
    if a.quick:
        a.symbols, a.minutes, a.quotes, a.repeat, a.gap_reps = 200, 40, 20_000, 1, 1
    every = 10 if a.minutes < 120 else SAMPLE_EVERY
    began = time.perf_counter()
    symbols, occs = stock_symbols(a.symbols), contracts(a.contracts)
    server = Server(a.symbols, a.minutes, a.contracts, a.quotes)
    try:
        n = a.symbols * a.minutes
        section(f"1. ingest: {n:,} minute bars ({a.symbols} symbols x {a.minutes} frames)")
        compare(server, "stocks", symbols, a.minutes, n, a.repeat)
        frames = -(-a.quotes // QUOTE_BATCH)
        section(f"2. option quotes: {a.quotes:,} msgpack quotes across {a.contracts} contracts")
        compare(server, "options", occs, frames, a.quotes, a.repeat)
    finally:
        server.close()
    section(f"3. gap backfill: drop mid-minute, 4 minutes missed, {len(GAP_SYMBOLS)} symbols")
    gap_backfill(a.gap_reps)
    section("4. memory: a simulated session, each run in a fresh process")
    session_memory(a.symbols, a.minutes, every)
    print(f"\nwall time {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
