"""Dagster on Postgres vs SQLite (issue 13 item 1): one single-run backfill of each, same process.

The same backfill (``market_data_job`` over N sessions x M symbols in one run, as
``alpaca-improved backfill --batch-size N`` runs it) into two fresh data roots: one with the
embedded SQLite instance, one with ``ALPACA_IMPROVED_DATABASE_URL`` pointing at a real
PostgreSQL 15 started here (durable settings: fsync on). Prints both wall times and the ratio
of the best of each (issue target: Postgres <= 1.2x SQLite) with the load average, since a
shared machine's load moves single runs by tens of percent; asserts nothing.

    python benchmarks/bench_postgres_backfill.py [--sessions 252] [--symbols 10] [--repeat 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.postgres_server starts the server, as the tests do

from alpaca_improved_pipelines import calendar as cal  # noqa: E402
from alpaca_improved_pipelines.commands import run_backfill  # noqa: E402
from alpaca_improved_pipelines.settings import DEFAULT_SYMBOLS, load_settings  # noqa: E402
from contracts.database import DATABASE_ENV, PASSWORD_ENV  # noqa: E402
from tests.postgres_server import PostgresServer, missing_reason  # noqa: E402


def backfill(
    home: Path, symbols: tuple[str, ...], first: dt.date, last: dt.date, url: str
) -> float:
    """Seconds for one single-run backfill of [first, last] into ``home`` (``url``: Postgres)."""
    os.environ.update(
        {
            "ALPACA_IMPROVED_HOME": str(home),
            "ALPACA_IMPROVED_SYMBOLS": ",".join(symbols),
            "ALPACA_IMPROVED_START": first.isoformat(),
            "ALPACA_IMPROVED_FSYNC": "1",
            DATABASE_ENV: url,
        }
    )
    os.environ.pop(PASSWORD_ENV, None)
    n = len(cal.sessions_between(first, last))
    t = time.perf_counter()
    results = run_backfill(
        first.isoformat(), last.isoformat(), None, n, "market_data_job", load_settings()
    )
    took = time.perf_counter() - t
    assert len(results) == 1 and results[0].success, results
    return took


def _logins(server: PostgresServer, db: str) -> int:
    """Sessions opened on ``db`` so far (each a TCP connect plus a SCRAM login)."""
    time.sleep(1.0)  # backends report their stats when they end, about once a second
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (db,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=252)
    ap.add_argument("--symbols", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1, help="backfills per store (ABBA order)")
    args = ap.parse_args()
    if reason := missing_reason():
        raise SystemExit(reason)
    symbols = DEFAULT_SYMBOLS[: args.symbols]
    sessions = cal.sessions_between(dt.date(2024, 1, 2), dt.date(2025, 12, 31))
    first, last = sessions[0], sessions[args.sessions - 1]
    server = PostgresServer.start(fast=False)
    tmp = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    times: dict[str, list[float]] = {"sqlite": [], "postgres": []}
    logins: list[int] = []
    load = os.getloadavg()[0]
    try:
        backfill(tmp / "warm-up", symbols, first, sessions[2], "")  # imports, JIT, caches
        for i in range(args.repeat):  # A B B A ...: drift in machine load hits both alike
            for kind in ("sqlite", "postgres") if i % 2 == 0 else ("postgres", "sqlite"):
                url = server.create_database(f"bench{i}") if kind == "postgres" else ""
                times[kind].append(backfill(tmp / f"{kind}{i}", symbols, first, last, url))
                if url:
                    logins.append(_logins(server, f"bench{i}"))
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    load = max(load, os.getloadavg()[0])
    print(
        f"single-run backfill, {args.sessions} sessions x {len(symbols)} symbols "
        f"(market_data_job: 1m/5m/1h/1d bars + indicators); {os.cpu_count()} cores, "
        f"load average up to {load:.1f}"
    )
    for kind, label in (("sqlite", "SQLite  "), ("postgres", "Postgres")):
        runs = ", ".join(f"{t:.1f}" for t in times[kind])
        print(f"  Dagster instance on {label}: best {min(times[kind]):7.1f} s  (runs: {runs})")
    print(f"  Postgres logins per backfill (pg_stat_database.sessions): {logins}")
    ratio = min(times["postgres"]) / min(times["sqlite"])
    print(f"  ratio Postgres / SQLite (best of each): {ratio:.2f}x  (target <= 1.2x)")


if __name__ == "__main__":
    main()
