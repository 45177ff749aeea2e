"""``alpaca-improved stream run|status``: the market-data stream into the lake, and its health.

``run`` streams minute bars (and option quotes) through :class:`MarketStream` (gap backfill
included) into :class:`StreamLakeWriter` (atomic micro-batches of ``stream_bars_1m`` and
``option_quotes_1m``) and rewrites ``<home>/stream/status.json`` every few seconds. Everything
it can check is checked before anything is written: the options, the keys, the stream URLs,
that every symbol exists (Alpaca REST has recent daily bars for it), the underlyings' option
chains, and that every feed authenticates (a feed the plan lacks fails at auth with 409). Bad
input is one ``error:`` line naming it and the fix, exit 2.

``status`` prints the status file and whether its writer is alive.

Runs as its own process (``python -m live.market.stream.cli``, which ``alpaca-improved stream``
execs): the live side never imports Dagster.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from contracts import lake as layout
from contracts import paths
from contracts.calendar import new_york_date
from live.errors import LiveError
from live.market.stream import status as status_file
from live.market.stream.lake_writer import OPTION_QUOTES, STREAM_BARS, StreamLakeWriter
from live.market.stream.model import ERROR_STATES, FeedState, FeedStatus

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The market-data stream: minute bars and option quotes into the lake, and its health.",
)
HomeOpt = Annotated[
    Path | None, typer.Option(help="ALPACA_IMPROVED_HOME (default: env or ./.alpaca_improved).")
]
FATAL = {*ERROR_STATES.values(), FeedState.EVICTED} - {FeedState.SLOW_CLIENT}
log = logging.getLogger("live.market.stream.cli")


def resolve_home(home: Path | None) -> Path:
    """``--home``, else ``ALPACA_IMPROVED_HOME``, else ``./.alpaca_improved``, absolute."""
    return Path(home or paths.home_from_env()).resolve()


class StreamInputError(LiveError, ValueError):
    """Bad input to ``stream run``: the message names it and the fix."""


def _fail(exc: Exception | str) -> None:
    typer.secho(f"error: {' '.join(str(exc).split())}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _split(text: str | None) -> list[str]:
    return [s.strip().upper() for s in (text or "").split(",") if s.strip()]


def _stop_time(for_seconds: float | None, until: str | None, now: datetime) -> datetime | None:
    if for_seconds is not None and until is not None:
        raise StreamInputError("--for and --until contradict each other; give one of them")
    if for_seconds is not None:
        if not for_seconds > 0:
            raise StreamInputError(f"--for {for_seconds:g}: give a positive number of seconds")
        return now + timedelta(seconds=for_seconds)
    if until is None:
        return None
    try:
        stop = datetime.fromisoformat(until)
    except ValueError:
        raise StreamInputError(
            f"--until {until!r} is not an ISO time; use e.g. 2025-01-02T16:00:00-05:00"
        ) from None
    if stop.tzinfo is None:
        raise StreamInputError(f"--until {until!r} needs a UTC offset, e.g. -05:00")
    if stop <= now:
        raise StreamInputError(f"--until {until} is in the past; give a later time")
    return stop


def _rest_error(what: str, exc: Exception) -> StreamInputError:
    text = str(exc)[:200]
    return StreamInputError(
        f"Alpaca REST refused {what} ({type(exc).__name__}: {text}); check ALPACA_API_KEY / "
        "ALPACA_SECRET_KEY and ALPACA_DATA_URL"
    )


def check_symbols_exist(symbols: list[str], feed: str, env: Mapping[str, str]) -> None:
    """Every stock symbol has daily bars on Alpaca REST in the last two weeks, or one error."""
    from alpaca.data.enums import DataFeed
    from alpaca.data.requests import StockBarsRequest
    from alpaca.data.timeframe import TimeFrame

    from live.market.stream.backfill import backfill_from_env

    client = backfill_from_env(feed, env).client
    now = datetime.now(UTC)
    request = StockBarsRequest(
        symbol_or_symbols=symbols,
        timeframe=TimeFrame.Day,
        start=now - timedelta(days=14),
        end=now - timedelta(minutes=16),  # outside the free plan's recent-SIP window
        feed=DataFeed(feed),
    )
    try:
        found = client.get_stock_bars(request)
    except Exception as exc:  # alpaca-py raises APIError, requests' errors, ValueError
        raise _rest_error("the symbol check", exc) from None
    known = {s for s, bars in dict(found).items() if bars}  # type: ignore[call-overload]
    unknown = [s for s in symbols if s not in known]
    if unknown:
        raise StreamInputError(
            f"unknown symbol {unknown[0]!r}: Alpaca has no {feed} daily bars for it in the last "
            "two weeks; check the ticker (e.g. BRK.B, not BRKB) or drop it from --symbols"
        )


def _wait_for_feeds(
    stream: Any, statuses: dict[str, FeedStatus], lock: threading.Lock, timeout: float
) -> None:
    """Until every feed streams; a fatal state or the timeout is a StreamInputError."""
    deadline = time.monotonic() + timeout
    expected = len(stream.stats()["feeds"])
    while True:
        with lock:
            seen = dict(statuses)
        fatal = [s for s in seen.values() if s.state in FATAL]
        if fatal:
            raise StreamInputError(fatal[0].message)
        if len(seen) >= expected and all(s.state == FeedState.STREAMING for s in seen.values()):
            return
        if time.monotonic() > deadline:
            last = "; ".join(s.message for s in seen.values()) or "no answer"
            raise StreamInputError(
                f"the stream did not connect within {timeout:g} s ({last}); check "
                "ALPACA_DATA_STREAM_URL and the network, or raise --connect-timeout"
            )
        time.sleep(0.05)


def _partitions(home: Path) -> dict[str, list[str]]:
    """The latest three sessions of each stream table (directory listing only)."""
    lake = paths.lake_dir(home)
    return {t: list(layout.scan_table(lake, t).files)[-3:] for t in (STREAM_BARS, OPTION_QUOTES)}


@app.command()
def run(
    symbols: Annotated[
        str | None, typer.Option(help="Stock symbols for minute bars, comma-separated.")
    ] = None,
    options: Annotated[
        str | None,
        typer.Option(
            help="Option quotes: OCC contracts, or underlyings (their near-the-money contracts "
            "expiring within 45 days).",
        ),
    ] = None,
    for_seconds: Annotated[
        float | None, typer.Option("--for", help="Stop after this many seconds.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Stop at this ISO time (with offset).")] = None,
    source: Annotated[str, typer.Option(help="alpaca (default) or polygon.")] = "alpaca",
    home: HomeOpt = None,
    flush_seconds: Annotated[float, typer.Option(help="Lake micro-batch period (s).")] = 1.0,
    status_seconds: Annotated[float, typer.Option(help="Status file period (s).")] = 2.0,
    connect_timeout: Annotated[
        float, typer.Option(help="Seconds for every feed to authenticate.")
    ] = 20.0,
    backfill: Annotated[
        bool, typer.Option(help="Fill today's missed minutes from Alpaca REST.")
    ] = True,
) -> None:
    """Stream minute bars (and option quotes) into the lake until --for/--until or Ctrl-C."""
    from alpaca.common.exceptions import APIError

    from live.market.stream.service import OCC, MarketStream

    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    env = os.environ
    statuses: dict[str, FeedStatus] = {}
    lock = threading.Lock()

    def on_status(status: FeedStatus) -> None:
        with lock:
            statuses[status.feed] = status

    try:
        root = resolve_home(home)
        stop_at = _stop_time(for_seconds, until, datetime.now(UTC))
        stocks, wanted = _split(symbols), _split(options)
        if not stocks and not wanted:
            raise StreamInputError(
                "nothing to stream: give --symbols AAPL,MSFT and/or --options SPY"
            )
        if source not in ("alpaca", "polygon"):
            raise StreamInputError(f"--source {source!r}: use alpaca or polygon")
        writer = StreamLakeWriter(root, flush_seconds=flush_seconds)
        try:
            stream = MarketStream(
                stocks,
                [o for o in wanted if OCC.match(o)],
                option_underlyings=[o for o in wanted if not OCC.match(o)],
                source=source,  # type: ignore[arg-type]
                env=env,
                on_bar=writer.on_bar,
                on_quote=writer.on_quote,
                on_status=on_status,
                backfill=None if backfill else False,
            )
        except APIError as exc:  # the option-chain lookup of an underlying
            raise _rest_error("the option-chain lookup", exc) from None
        if source == "alpaca" and stocks:
            check_symbols_exist(list(stream.symbols), stream.config.feed, env)  # type: ignore[union-attr]
        writer.open_session(new_york_date(datetime.now(UTC)))  # today's partitions can continue
    except (LiveError, ValueError, OSError) as exc:
        _fail(exc)
        return
    stop = threading.Event()
    reason = {"why": "stopped"}

    def on_signal(signum: int, _frame: object) -> None:
        reason["why"] = f"signal {signal.Signals(signum).name}"
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stream.start()
    try:
        _wait_for_feeds(stream, statuses, lock, connect_timeout)
    except StreamInputError as exc:
        stream.close()
        _fail(exc)
        return
    writer.start()
    started = status_file.now_iso()

    def snapshot(running: bool) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "running": running,
            "started_at": started,
            "updated_at": status_file.now_iso(),
            "stop_at": stop_at.isoformat() if stop_at else None,
            "stop": None if running else reason["why"],
            "symbols": list(stream.symbols),
            "contracts": len(stream.contracts),
            "stream": stream.stats(),
            "writer": writer.stats(),
            "partitions": _partitions(root),
        }

    typer.echo(
        f"streaming {len(stream.symbols)} symbols, {len(stream.contracts)} option contracts "
        f"into {paths.lake_dir(root)}; status: {status_file.status_path(root)}"
    )
    try:
        while not stop.is_set():
            status_file.write_status(root, snapshot(True))
            left = status_seconds
            if stop_at is not None:
                left = min(left, (stop_at - datetime.now(UTC)).total_seconds())
                if left <= 0:
                    reason["why"] = f"--for/--until reached ({stop_at.isoformat()})"
                    break
            stop.wait(left)
    finally:
        stream.close()
        writer.close()
        status_file.write_status(root, snapshot(False))
    done = writer.stats()
    rows, sessions = done["rows"], ", ".join(done["sessions"]) or "none"
    typer.echo(
        f"stopped ({reason['why']}): {rows[STREAM_BARS]} bar rows, {rows[OPTION_QUOTES]} quote "
        f"rows in the partitions written (sessions: {sessions})"
    )


@app.command()
def status(
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON.")] = False,
) -> None:
    """The last stream status (health, symbols, lag, gaps, rows) and whether it still runs."""
    root = resolve_home(home)
    try:
        payload = status_file.read_status(root)
    except ValueError as exc:
        _fail(exc)
        return
    if payload is None:
        _fail(
            f"no stream status at {status_file.status_path(root)}: no stream has run on {root} "
            "(start one with `alpaca-improved stream run --symbols AAPL`)"
        )
        return
    alive, line = status_file.writer_state(payload)
    payload["alive"] = alive
    if not as_json:
        typer.echo(line)
        for name, feed in (payload.get("stream") or {}).get("feeds", {}).items():
            typer.echo(
                f"  {name}: {feed.get('state')} ({feed.get('message')}); lag "
                f"{feed.get('lag_s')} s, {len(feed.get('symbols', []))} symbols"
            )
        gaps = (payload.get("stream") or {}).get("gaps", {})
        typer.echo(
            f"  gaps: found {gaps.get('found')}, filled {gaps.get('filled')}, verified empty "
            f"{gaps.get('verified_empty')}"
        )
        w = payload.get("writer") or {}
        rows = w.get("rows") or {}
        typer.echo(
            f"  lake: {rows.get(STREAM_BARS)} bar rows, {rows.get(OPTION_QUOTES)} quote rows "
            f"(sessions {', '.join(w.get('sessions') or []) or 'none'}); last flush "
            f"{w.get('last_flush_at')} ({w.get('flush_ms_last')} ms)"
            + (f"; WRITE ERROR: {w['error']}" if w.get("error") else "")
        )
    typer.echo(json.dumps(payload, indent=1, default=str, sort_keys=True))


if __name__ == "__main__":
    app()
