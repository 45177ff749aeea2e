"""``stream run`` / ``stream status`` end to end: a real subprocess, real alpaca-py, local fakes.

The subprocess streams from the websocket fake (``FakeAlpacaDataStream``) and checks symbols and
chains on the REST fake (``AlpacaMarketFake``); the test plays FakeMarket's minutes and a
revision, then reads the lake partition back: its rows must equal the fake's bars for the played
minutes. A second run continues the partition and stops by ``--for`` on its own. Bad input is one
``error:`` line and nothing written. The runs use ``--no-backfill``: the gap worker looks at
today's session (the wall clock), which the played 2024 session is not; MarketStream's own tests
cover the backfill.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from contracts import lake as layout
from contracts.calendar import new_york_date
from live.market.stream import status as status_file
from live.market.stream.cli import app
from live.market.stream.lake_writer import OPTION_QUOTES, STREAM_BARS
from tests.fakes.alpaca_data_stream import FakeAlpacaDataStream, minute_ns
from tests.fakes.alpaca_market import AlpacaMarketFake
from tests.fakes.market import FakeMarket
from tests.stream.conftest import KEY, OPEN, SECRET, SESSION, wait_for

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ["AAPL", "MSFT"]


def _env(env: dict[str, str], home: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "POLYGON_"))}
    return {**base, **env, "ALPACA_IMPROVED_HOME": str(home)}


def _run(env: dict[str, str], home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "live.market.stream.cli", "run", *args,
         "--flush-seconds", "0.2", "--status-seconds", "0.3", "--no-backfill"],
        cwd=ROOT, env=_env(env, home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _streaming(home: Path, proc: subprocess.Popen[str]) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"stream run exited {proc.returncode}: {proc.stderr.read()}")  # type: ignore[union-attr]
    payload = status_file.read_status(home)
    feeds = (payload or {}).get("stream", {}).get("feeds", {})
    return bool(feeds) and all(f["state"] == "streaming" for f in feeds.values())


def _expected(market: FakeMarket, minutes: range) -> pl.DataFrame:
    wanted = {minute_ns(SESSION, m) for m in minutes}
    rows = [
        (s, b.ts_ns, b.o, b.h, b.l, b.c, float(b.v), b.vw, b.n)
        for s in SYMBOLS
        for b in market.minute_bars(s, SESSION)
        if b.ts_ns in wanted
    ]
    cols = ["symbol", "ts", "open", "high", "low", "close", "volume", "vwap", "trade_count"]
    return (
        pl.DataFrame(rows, schema=cols, orient="row")
        .with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
        .sort("symbol", "ts")
    )


def _quote(occ: str, seconds: float, bid: float) -> dict:
    return {"T": "q", "S": occ, "t": OPEN + timedelta(seconds=seconds), "bp": bid,
            "ap": bid + 0.1, "bs": 5, "as": 7, "bx": "C", "ax": "C", "c": "A"}  # fmt: skip


def test_stream_run_writes_the_fakes_bars_and_a_restart_continues(
    ws: FakeAlpacaDataStream, rest: AlpacaMarketFake, env: dict, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    # OCC contracts as given (an underlying's near-the-money lookup is dated today, and the
    # fake's chains are of its as_of session)
    contracts = sorted(q.occ for q in ws.market.chain("SPY", ws.market.as_of)[:2])
    proc = _run(env, home, "--symbols", ",".join(SYMBOLS), "--options", ",".join(contracts),
                "--for", "60")  # fmt: skip
    wait_for(lambda: _streaming(home, proc), timeout=30, what="stream run to connect")
    assert sorted(ws.subscriptions("indicative")["quotes"]) == contracts
    ws.play("iex", SESSION, 0, 5)
    revised_at = OPEN + timedelta(minutes=2)
    revision = ws.updated_bar("iex", "AAPL", revised_at, c=123.45)
    ws.publish("indicative", [_quote(contracts[0], 10, 1.0), _quote(contracts[0], 50, 1.2),
                              _quote(contracts[1], 70, 2.0)])  # fmt: skip
    bars_path = layout.partition_path(home / "lake", STREAM_BARS, SESSION)

    def written() -> bool:
        return (
            bars_path.exists()
            and pl.read_parquet(bars_path).filter(pl.col("source") == "revision").height == 1
        )

    wait_for(written, timeout=15, what="the revision in the lake")
    wait_for(lambda: status_file.read_status(home)["writer"]["counts"].get("quotes") == 3,  # type: ignore[index]
             timeout=10, what="quotes in the status")  # fmt: skip
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"stopped (signal SIGTERM): {2 * 5} bar rows, 2 quote rows" in out
    assert f"(sessions: {SESSION})" in out
    assert SECRET not in out + err

    got = pl.read_parquet(bars_path).sort("symbol", "ts")
    revised = (pl.col("symbol") == "AAPL") & (pl.col("ts") == revised_at)
    expected = _expected(ws.market, range(0, 5)).with_columns(
        pl.when(revised).then(pl.lit(float(revision[k]))).otherwise(pl.col(col)).alias(col)
        for k, col in (("o", "open"), ("h", "high"), ("l", "low"), ("c", "close"))
    )  # the revision's values (updated_bar widens high/low around the new close)
    assert got.select(expected.columns).equals(expected)
    assert got.filter(pl.col("source") == "revision")["ts"].to_list() == [revised_at]
    quotes = pl.read_parquet(layout.partition_path(home / "lake", OPTION_QUOTES, SESSION))
    assert quotes.sort("symbol", "ts")["bid"].to_list() == [1.2, 2.0]  # last NBBO per minute

    final = status_file.read_status(home)
    assert final is not None and final["running"] is False and final["stop"] == "signal SIGTERM"
    assert final["symbols"] == SYMBOLS and final["contracts"] == 2
    assert final["stream"]["revisions"] == 1
    assert final["writer"]["rows"][STREAM_BARS] == expected.height
    assert KEY not in json.dumps(final) and SECRET not in json.dumps(final)

    # a restart continues the partition, and --for stops it on its own
    again = _run(env, home, "--symbols", ",".join(SYMBOLS), "--for", "5")
    wait_for(lambda: _streaming(home, again), timeout=30, what="the second run to connect")
    ws.play("iex", SESSION, 5, 8)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert "--for/--until reached" in out
    got = pl.read_parquet(bars_path).sort("symbol", "ts")
    assert got.height == _expected(ws.market, range(0, 8)).height
    assert got.filter(pl.col("ts") == revised_at, pl.col("symbol") == "AAPL")["close"].item() == (
        123.45
    )

    shown = subprocess.run(
        [sys.executable, "-m", "live.market.stream.cli", "status", "--home", str(home)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("stream stopped (pid ")
    assert "--for/--until reached" in shown.stdout.splitlines()[0]
    assert f"  lake: {2 * 8} bar rows" in shown.stdout and f"(sessions {SESSION})" in shown.stdout


def test_status_says_when_no_stream_ran_and_when_the_writer_is_dead(tmp_path: Path) -> None:
    runner = CliRunner()
    none = runner.invoke(app, ["status", "--home", str(tmp_path)])
    assert none.exit_code == 2
    assert "no stream status at" in none.output and "no stream has run" in none.output
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    status_file.write_status(
        tmp_path, {"pid": proc.pid, "running": True, "updated_at": "2024-03-15T14:00:00+00:00"}
    )
    shown = runner.invoke(app, ["status", "--home", str(tmp_path)])
    assert shown.exit_code == 0
    first = shown.output.splitlines()[0]
    assert first.startswith(f"stream NOT running: its writer (pid {proc.pid}) is dead")
    assert json.loads(shown.output[shown.output.index("{") :])["alive"] is False


@pytest.mark.parametrize(
    ("change", "args", "message"),
    [
        ({"ALPACA_API_KEY": None}, ["--symbols", "AAPL"], "set ALPACA_API_KEY and ALPACA_SECRET"),
        ({"ALPACA_DATA_STREAM_URL": "http://127.0.0.1:9"}, ["--symbols", "AAPL"],
         "ALPACA_DATA_STREAM_URL='http://127.0.0.1:9' is not a websocket URL"),
        ({}, ["--symbols", "AAPL,ZZZZ"], "unknown symbol 'ZZZZ'"),
        ({}, ["--symbols", "AAPL", "--for", "5", "--until", "2030-01-02T16:00:00-05:00"],
         "--for and --until contradict each other"),
        ({}, ["--symbols", "AAPL", "--until", "2020-01-02T16:00:00"], "needs a UTC offset"),
        ({}, ["--options", "ZZZZ"], "no option contracts for 'ZZZZ' expiring within 45 days"),
        ({}, ["--symbols", "aa pl"], "stock symbol 'AA PL' is not valid"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_nothing_is_written(
    env: dict, tmp_path: Path, change: dict, args: list[str], message: str
) -> None:
    home = tmp_path / "home"
    result = CliRunner().invoke(app, ["run", "--home", str(home), *args], env={**env, **change})
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert message in lines[0]
    assert not home.exists()


def test_a_damaged_partition_of_today_is_refused_before_streaming(
    env: dict, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    today = new_york_date(datetime.now(UTC))
    path = layout.partition_path(home / "lake", STREAM_BARS, today)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PAR1 truncated")
    result = CliRunner().invoke(app, ["run", "--home", str(home), "--symbols", "AAPL"], env=env)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: lake file {path} is not a stream_bars_1m partition")
    assert path.read_bytes() == b"PAR1 truncated"
    assert not (home / "stream").exists()


def test_a_feed_the_plan_lacks_is_one_line_and_nothing_is_written(
    market: FakeMarket, rest: AlpacaMarketFake, env: dict, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    with FakeAlpacaDataStream(KEY, SECRET, market=market, plan_feeds={"iex"}) as fake:
        result = CliRunner().invoke(
            app,
            ["run", "--home", str(home), "--symbols", "AAPL", "--connect-timeout", "15"],
            env={**env, "ALPACA_DATA_STREAM_URL": f"ws://127.0.0.1:{fake.port}",
                 "ALPACA_FEED": "sip"},
        )  # fmt: skip
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "insufficient subscription (409)" in errors[0], result.output
    assert not home.exists()


def test_alpaca_improved_stream_execs_the_live_cli_without_dagster(tmp_path: Path) -> None:
    cli = Path(sys.executable).parent / "alpaca-improved"
    shown = subprocess.run(
        [str(cli), "stream", "status", "--home", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 2
    assert shown.stderr.strip().startswith("error: no stream status at")
    probe = "import sys, live.market.stream.cli; assert 'dagster' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", probe], cwd=ROOT, timeout=120).returncode == 0
