"""Bar close -> decision latency of minute strategies in the live runner (printed, never asserted).

One full session of the lake's minute bars replayed through the stream feed
(``--market-data stream`` on the simulated broker, instant clock) into a runner with
``DEPLOYMENTS`` ``vwap_reversion`` deployments over ``SYMBOLS`` symbols. The latency of each
minute decision is real time (``time.perf_counter``) from the arrival of the minute's last bar
to the commit of the decision with its orders (minute snapshot from the book, every
deployment's ``decide()``, risk checks, journal), as ``/health`` reports it. Target (issue 11):
p99 < 20 ms with the sim feed.

The first decision includes loading the family's compiled numba kernel (the ``max``). The
machine's other load shows in the p99: it is real time.

Run: ``.venv/bin/python benchmarks/bench_intraday_latency.py [symbols] [deployments]`` (default:
5 symbols / 1 deployment, then 20 / 10).
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from live.clock import NEW_YORK, SimClock  # noqa: E402
from live.market.feed import session_hours  # noqa: E402
from live.runner.build import build_runner  # noqa: E402
from live.runner.config import RunnerConfig  # noqa: E402
from tests.live.helpers import deploy, sessions, write_lake  # noqa: E402

SESSION = date(2024, 3, 4)
OPEN = datetime(2024, 3, 4, 9, 30, tzinfo=NEW_YORK)


def price(symbol_index: int, minute: int) -> float:
    """A wobble with a dip or two per symbol, so the strategies trade."""
    base = 100.0 + symbol_index
    dip = 0.985 if (minute + 7 * symbol_index) % 97 < 4 else 1.0
    return base * dip + 0.05 * math.sin(minute / 3 + symbol_index)


def make_home(home: Path, symbols: list[str], deployments: int) -> None:
    write_lake(home, {s: [100.0 + k] * 30 for k, s in enumerate(symbols)}, sessions(30))
    rows = [
        {
            "ts": (OPEN + timedelta(minutes=m)).astimezone(UTC),
            "symbol": s,
            "open": (p := price(k, m)),
            "high": p,
            "low": p,
            "close": p,
            "volume": 1e4,
            "vwap": p,
            "trade_count": 40,
        }  # fmt: skip
        for m in range(390)
        for k, s in enumerate(symbols)
    ]
    part = home / "lake" / "stock_bars_1m" / f"session={SESSION.isoformat()}"
    part.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).with_columns(pl.col("ts").dt.cast_time_unit("ns")).write_parquet(
        part / "part.parquet"
    )
    per = max(1, len(symbols) // deployments)
    for d in range(deployments):
        chosen = symbols[(d * per) % len(symbols) :][:per] or symbols[:1]
        params = {"symbols": chosen, "band": 2.0, "warmup": 15, "allocation": 0.5}
        deploy(home, f"vwap-{d}", strategy="vwap_reversion", params=params, capital=100_000.0)


def main(n_symbols: int = 5, n_deployments: int = 1) -> None:
    symbols = [f"S{k:03d}" for k in range(n_symbols)]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        make_home(home, symbols, n_deployments)
        config = RunnerConfig(
            home=home, broker="sim", cycle_seconds=300, market_data="stream",
            sim={"cash": 10_000_000.0},  # type: ignore[arg-type]
        )  # fmt: skip
        runner, _ = build_runner(config, clock=SimClock(OPEN))
        end = session_hours(SESSION)[1] + timedelta(seconds=30)
        started = time.perf_counter()
        runner.run(should_stop=lambda: runner.clock.now() >= end)
        wall = time.perf_counter() - started
        stats = runner.minutes.stats()
        orders = runner.j.rows("SELECT COUNT(*) FROM orders")[0][0]
        runner.close()
    lat = stats.get("latency_ms", {})
    print(
        f"intraday sim replay: {n_symbols} symbols, {n_deployments} vwap_reversion deployments, "
        f"1 session ({stats['minute_decisions']} minute decisions, {orders} orders) in {wall:.1f} s"
    )
    print(
        f"bar close -> decision committed: p50 {lat.get('p50', float('nan')):.2f} ms, "
        f"p99 {lat.get('p99', float('nan')):.2f} ms, max {lat.get('max', float('nan')):.2f} ms "
        f"(n={lat.get('n', 0)}; target p99 < 20 ms)"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(*(int(a) for a in sys.argv[1:3]))
    else:  # one deployment on a few symbols, then ten deployments on twenty (decide() scales)
        main(5, 1)
        main(20, 10)
