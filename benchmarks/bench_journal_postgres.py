"""The live journal on SQLite and on Postgres, side by side (printed, never asserted).

Runs :mod:`bench_live`'s journal-bound numbers twice: on the default SQLite journal, then with
``ALPACA_IMPROVED_DATABASE_URL`` pointing at a real PostgreSQL 15 started here (durable: fsync
and ``synchronous_commit`` on, as in production; loopback TCP), each run in a journal schema of
its own. Decision-to-submit covers the decision's transaction and the durable ``submitting``
mark before the simulated broker is entered; the 1,000-deployment cycle journals 1,000 decisions;
the journal-writes number times one order's three durable transactions alone.

Run: ``.venv/bin/python benchmarks/bench_journal_postgres.py [repeats]``.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_live as b  # noqa: E402

from contracts.database import DATABASE_ENV, JOURNAL_SCHEMA_ENV  # noqa: E402
from live.journal.pg import open_journal  # noqa: E402
from live.journal.store import Journal  # noqa: E402
from tests.postgres_server import PostgresServer  # noqa: E402


def bench_journal_ops(journal: Journal, n: int = 300) -> list[float]:
    """Seconds per order's journal writes, each its own durable transaction: the decision with
    its order (``pending_submit``), the ``submitting`` mark, the ``filled`` update."""
    from live.journal import orders as jo
    from live.orders.reports import OrderStatus
    from tests.live.helpers import T0, equity_ticket

    spent = []
    for k in range(n):
        ticket = equity_ticket(seq=k)
        t0 = time.perf_counter()
        jo.record_decision(
            journal, "dep-one", f"s{k}", T0, [(0, ticket.intent, ticket.client_order_id)], T0
        )
        jo.update_order(journal, ticket.client_order_id, T0, "runner",
                        status=OrderStatus.SUBMITTING)  # fmt: skip
        jo.update_order(journal, ticket.client_order_id, T0, "broker",
                        status=OrderStatus.FILLED, filled_qty=10.0, avg_price=100.0)  # fmt: skip
        spent.append(time.perf_counter() - t0)
    return spent


def measure(root: Path, label: str, repeats: int) -> None:
    for rep in range(repeats):
        os.environ[JOURNAL_SCHEMA_ENV] = f"bench_ops_{rep}"
        journal = open_journal(root / f"{label}-ops-{rep}")
        ops = bench_journal_ops(journal)
        journal.close()
        print(
            f"[{label}] journal writes per order (3 durable transactions) n={len(ops)} "
            f"p50={b.pct(ops, 0.5):.2f} ms p99={b.pct(ops, 0.99):.2f} ms"
        )
    for rep in range(repeats):
        os.environ[JOURNAL_SCHEMA_ENV] = f"bench_sim_{rep}"
        lat, _ = b.bench_latency_sim(root / f"{label}-sim-{rep}")
        print(
            f"[{label}] decision-to-submit (sim) n={len(lat)} p50={b.pct(lat, 0.5):.2f} ms "
            f"p99={b.pct(lat, 0.99):.2f} ms mean={statistics.mean(lat) * 1000:.2f} ms"
        )
    os.environ[JOURNAL_SCHEMA_ENV] = "bench_cycle"
    deciding, steady, sent = b.bench_cycle(root / f"{label}-cycle")
    print(
        f"[{label}] cycle with 1,000 deployments: deciding {deciding:.3f} s ({sent} sent), "
        f"steady {steady:.3f} s"
    )


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    os.environ.pop(DATABASE_ENV, None)
    with tempfile.TemporaryDirectory() as tmp:
        measure(Path(tmp), "sqlite", repeats)
        server = PostgresServer.start(fast=False)
        try:
            os.environ[DATABASE_ENV] = server.create_database("bench_journal")
            measure(Path(tmp), "postgres", repeats)
        finally:
            os.environ.pop(DATABASE_ENV, None)
            server.stop()


if __name__ == "__main__":
    main()
