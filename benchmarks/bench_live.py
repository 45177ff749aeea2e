"""Live-runner benchmarks (printed, never asserted).

1. Decision-to-submit latency (p50/p99): from a deployment's ``decide()`` returning to the
   broker's ``submit`` being entered (journal commit of the decision, risk checks and the durable
   ``submitting`` mark in between), on the simulated broker and on the real alpaca-py client
   against the local fake Alpaca. Targets: p99 < 10 ms in sim (the seed's bar: 100 ms).
2. Cycle time with 1,000 active deployments (target < 1 s): the cycle in which all 1,000 decide
   (orders capped by the 200/min submit budget) and a steady-state cycle after it.

Run: ``.venv/bin/python benchmarks/bench_live.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import ClassVar

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contracts.limits import AccountLimits, RiskLimits  # noqa: E402
from live.clock import SimClock  # noqa: E402
from live.deployments.manifests import write_manifest  # noqa: E402
from live.market.snapshot import StaticSnapshotProvider  # noqa: E402
from live.notify import Sink  # noqa: E402
from live.runner.build import build_runner  # noqa: E402
from live.runner.config import RunnerConfig  # noqa: E402
from live.runner.core import Runner  # noqa: E402
from strategies.base import Param, ParamSpace, Strategy, register_strategy  # noqa: E402
from strategies.models import (  # noqa: E402
    AssetClass,
    Book,
    Leg,
    MarketSnapshot,
    OrderIntent,
    Side,
)
from tests.live.runner_setup import MONDAY_10, make_home  # noqa: E402


@dataclass(frozen=True, slots=True)
class FlipConfig:
    """Config of the benchmark strategy."""

    symbol: str = "SPY"


@register_strategy
class Flip(Strategy):
    """Buys one share when flat, sells it when long: one order per decision."""

    name: ClassVar[str] = "bench_flip"
    config_cls = FlipConfig
    __slots__ = ()

    @classmethod
    def param_space(cls) -> ParamSpace:
        """No search space."""
        return ParamSpace((Param("symbol", values=("SPY",)),), FlipConfig)

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        """Flip the position."""
        side = Side.SELL if book.shares(self.config.symbol) > 0 else Side.BUY
        leg = Leg(self.config.symbol, side, 1, AssetClass.US_EQUITY)
        return [OrderIntent(self.name, (leg,), 1, tag="flip")]


# the bench walks back through sessions, so its quotes age: the staleness rule is relaxed
FLIP = {
    "manifest_id": "bench",
    "strategy": "bench_flip",
    "interface_version": 1,
    "capital": 100_000.0,
    "risk_limits": RiskLimits(max_quote_age_s=1e9, max_daily_loss=50_000.0).model_dump(mode="json"),
    "costs": {"kind": "signal", "fees": 0.0, "slippage": 0.0},
}
LIMITS = AccountLimits(max_submits_per_minute=200, max_quote_age_s=1e9)


class PerfSimClock(SimClock):
    """Simulated wall time, real monotonic time (so latencies are real)."""

    def monotonic(self) -> float:
        return time.perf_counter()


class Quiet(Sink):
    name = "quiet"

    def send(self, event: object) -> None:
        """Drop events."""


def snapshot(k: int) -> MarketSnapshot:
    """A distinct session per decision (each deployment decides once per session)."""
    day = date(2024, 3, 1) - timedelta(days=k)
    hist = pl.DataFrame({"session": [day], "symbol": ["SPY"], "close": [100.0]})
    return MarketSnapshot(MONDAY_10, day, {"SPY": 100.0}, hist)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def latency_run(
    runner: Runner, provider: StaticSnapshotProvider, n: int
) -> tuple[list[float], list[float]]:
    """(decision-to-submit, decision-to-ack) seconds over ``n`` one-order cycles."""
    calls: list[float] = []
    submit = runner.broker.submit

    def timed(ticket):  # noqa: ANN001, ANN202 - a thin timing wrapper
        t0 = time.perf_counter()
        try:
            return submit(ticket)
        finally:
            calls.append(time.perf_counter() - t0)

    runner.broker.submit = timed  # type: ignore[method-assign]
    runner.start()
    for k in range(n):
        provider.snapshot = snapshot(k)
        runner.cycle()
    acks = [lat + call for lat, call in zip(runner.latencies, calls, strict=False)]
    return runner.latencies, acks


def bench_latency_sim(home: Path, n: int = 150) -> tuple[list[float], list[float]]:
    write_manifest(
        home / "live" / "deployments",
        "flip",
        FLIP,
    )
    provider = StaticSnapshotProvider(snapshot(0))
    config = RunnerConfig(home=home, account_limits=LIMITS)
    runner, _ = build_runner(
        config, clock=PerfSimClock(MONDAY_10), snapshots=provider, sinks=[Quiet()]
    )
    return latency_run(runner, provider, n)


def bench_latency_fake(home: Path, n: int = 100) -> tuple[list[float], list[float]]:
    from tests.fakes.alpaca_broker import FakeAlpacaBroker
    from tests.live.conftest import make_alpaca
    from tests.live.helpers import KEY, SECRET

    write_manifest(
        home / "live" / "deployments",
        "flip",
        FLIP,
    )
    provider = StaticSnapshotProvider(snapshot(0))
    with FakeAlpacaBroker(api_key=KEY, secret_key=SECRET) as fake:
        fake.market_ts, fake.prices["SPY"] = MONDAY_10, 100.0
        broker = make_alpaca(fake)
        broker.session.bucket.limit = 10_000  # the bench measures latency, not the budget
        config = RunnerConfig(
            home=home,
            broker="alpaca",
            cycle_seconds=0,
            account_limits=LIMITS,
        )
        runner, _ = build_runner(config, broker=broker, snapshots=provider, sinks=[Quiet()])
        return latency_run(runner, provider, n)


def bench_cycle(home: Path, deployments: int = 1_000) -> tuple[float, float, int]:
    make_home(home, deployments=0)
    limits = RiskLimits(max_concentration=10.0, max_daily_loss=50_000.0).model_dump(mode="json")
    for k in range(deployments):
        write_manifest(
            home / "live" / "deployments",
            f"ma-{k:04d}",
            {
                "manifest_id": f"m{k}",
                "strategy": "ma_crossover",
                "interface_version": 1,
                "params": {"symbols": ["SPY"], "fast": 3, "slow": 10, "allocation": 0.01},
                "capital": 100_000.0,
                "risk_limits": limits,
                "costs": {"kind": "signal", "fees": 0.001, "slippage": 0.0005},
            },
        )
    config = RunnerConfig(
        home=home, sim={"cash": 1e9}, account_limits=AccountLimits(max_submits_per_minute=200)
    )
    runner, _ = build_runner(config, clock=SimClock(MONDAY_10), sinks=[Quiet()])
    runner.start()
    warm = next(iter(runner.deployments.active.values()))  # load numba's compiled kernels once
    warm.strategy.decide(runner.snapshot, runner.ledger.book(warm.id, 1e5, runner.quotes))
    t0 = time.perf_counter()
    counts = runner.cycle()
    deciding = time.perf_counter() - t0
    t1 = time.perf_counter()
    runner.cycle()
    steady = time.perf_counter() - t1
    return deciding, steady, counts.get("submitted", 0)


def bench_stream(n: int = 100) -> list[float]:
    """Seconds from the fake filling an order to its report on the runner's queue (the
    trade-update stream through alpaca-py's TradingStream over a loopback websocket)."""
    from live.brokers.alpaca import settings_from_env
    from live.brokers.alpaca_stream import TradeUpdateStream
    from tests.fakes.alpaca_broker import FakeAlpacaBroker
    from tests.fakes.alpaca_stream import FakeTradeStream
    from tests.live.conftest import alpaca_env
    from tests.live.helpers import KEY, SECRET

    out = []
    with (
        FakeAlpacaBroker(api_key=KEY, secret_key=SECRET) as fake,
        FakeTradeStream(KEY, SECRET) as ws,
    ):
        ws.attach(fake)
        fake.auto_fill = False
        fake.prices["SPY"] = 100.0
        cids = fake.seed_orders(n, prefix="bench")
        updates = TradeUpdateStream(settings_from_env(env=alpaca_env(fake)), ws.url).start()
        deadline = time.monotonic() + 20
        while ws.listeners == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            for cid in cids:
                t0 = time.perf_counter()
                fake.fill(cid)
                while not updates.drain():
                    time.sleep(0.0002)
                out.append(time.perf_counter() - t0)
        finally:
            updates.close()
    return out


def bench_replay(home: Path, sessions: int = 250) -> tuple[float, int, int]:
    """Seconds to replay ``sessions`` daily sessions of 3 symbols for one deployment (runs
    last: filling the lake imports the pipelines, which slows the rest of the process)."""
    from live.replay import replay
    from tests.research.conftest import fill_lake

    fill_lake(home)
    write_manifest(
        home / "live" / "deployments",
        "rsi",
        {"manifest_id": "bench", "strategy": "rsi_reversion", "interface_version": 1,
         "params": {"symbols": ["SPY", "AAPL", "XOM"], "window": 7, "lower": 40.0,
                    "upper": 60.0}, "capital": 100_000.0,
         "risk_limits": RiskLimits(max_daily_loss=50_000.0).model_dump(mode="json"),
         "costs": {"kind": "signal", "fees": 0.001, "slippage": 0.0005}},
    )  # fmt: skip
    days = sorted(p.parent.name[8:] for p in (home / "lake" / "stock_bars_1d").glob("*/*.parquet"))
    days = days[-sessions:]
    t0 = time.perf_counter()
    result = replay(
        home, date.fromisoformat(days[0]), date.fromisoformat(days[-1]), sinks=[Quiet()]
    )
    return time.perf_counter() - t0, len(days), len(result.orders)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, fn in (("sim", bench_latency_sim), ("fake alpaca", bench_latency_fake)):
            lat, ack = fn(root / name.replace(" ", "_"))
            print(
                f"decision-to-submit [{name}]: n={len(lat)} p50={pct(lat, 0.5):.2f} ms "
                f"p99={pct(lat, 0.99):.2f} ms mean={statistics.mean(lat) * 1000:.2f} ms "
                f"(target p99 < 10 ms in sim); decision-to-ack p50={pct(ack, 0.5):.2f} ms "
                f"p99={pct(ack, 0.99):.2f} ms"
            )
        deciding, steady, submitted = bench_cycle(root / "cycle")
        print(
            f"cycle with 1,000 deployments: deciding cycle {deciding:.3f} s "
            f"({submitted} orders sent, 200/min budget), steady cycle {steady:.3f} s "
            f"(target < 1 s)"
        )
        streamed = bench_stream()
        print(
            f"trade-update stream, fill to report on the runner's queue: n={len(streamed)} "
            f"p50={pct(streamed, 0.5):.2f} ms p99={pct(streamed, 0.99):.2f} ms (the runner "
            "applies the queue every second between cycles; without the stream a fill waits "
            "for the next cycle's poll)"
        )
        seconds, n_sessions, n_orders = bench_replay(root / "replay")
        print(
            f"replay through the runner in sim: {n_sessions} sessions x 3 symbols in "
            f"{seconds:.2f} s ({n_sessions / seconds:.0f} sessions/s, {n_orders} orders)"
        )


if __name__ == "__main__":
    main()
