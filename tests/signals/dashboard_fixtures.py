"""Builders for the dashboard tests: a real journal (live.journal APIs), a real signals database
with outbox rows, the lake tables the P&L section reads, planted secrets, and the dashboard
served by uvicorn on 127.0.0.1:0 in a thread."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from contracts import lake_store, paths
from live.journal import orders as jo
from live.journal.pg import open_journal
from live.journal.store import Journal
from live.orders.ids import client_order_id
from live.orders.reports import OrderStatus
from signals.db import make_engine, outbox, signal_events
from signals.local.uvicorn_thread import UvicornThread
from strategies.models import AssetClass, Leg, OrderIntent, Side
from tests.live.helpers import manifest

T0 = datetime(2024, 3, 4, 21, 0, tzinfo=UTC)
SESSIONS = [date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)]
DEP_BT, DEP_NOBT = "ma-spy", "ma-qqq"  # with and without a backtest in the lake
RUN_ID = "run0123456789abcdef"
DAILY_PNL = [150.0, -40.0, 90.0]  # DEP_BT's live_pnl per session
ANNUAL_RETURN = 0.12


@dataclass
class Secrets:
    """Values a test plants in the environment and in the data; none may ever be served."""

    token: str = field(default_factory=lambda: f"7{secrets.randbelow(10**9):09d}:"
                       f"{secrets.token_urlsafe(27)}")  # fmt: skip
    db_password: str = field(default_factory=lambda: "pw-" + secrets.token_hex(10))
    stray_password: str = field(default_factory=lambda: "stray-" + secrets.token_hex(8))
    dash_password: str = field(default_factory=lambda: "dash-" + secrets.token_hex(8))

    def environ(self, auth: bool = False) -> dict[str, str]:
        env = {
            "TELEGRAM_BOT_TOKEN": self.token,
            "SIGNALS_REPLICA_URL": f"postgresql://signals:{self.db_password}@db.internal/sig",
        }
        if auth:
            env["ALPACA_IMPROVED_DASHBOARD_USER"] = "ops"
            env["ALPACA_IMPROVED_DASHBOARD_PASSWORD"] = self.dash_password
        return env

    def all(self) -> list[str]:
        return [self.token, self.db_password, self.stray_password, self.dash_password]


def _intent(dep: str, symbol: str, side: Side, qty: float) -> OrderIntent:
    return OrderIntent(dep, (Leg(symbol, side, 1, AssetClass.US_EQUITY),), qty)


def build_journal(home: Path, planted: Secrets) -> Journal:
    """Two deployments, three orders (one open), two fills, positions, a halt reason, a cycle
    (in ``<home>/live/journal.sqlite``, or Postgres when ALPACA_IMPROVED_DATABASE_URL is set)."""
    j = open_journal(home)
    bt = manifest(DEP_BT, mlflow_run_id=RUN_ID)
    bt["params"]["note"] = f"webhook secret {planted.token}"  # never copied to the page
    j.upsert_deployment(DEP_BT, bt, "fp-bt", T0)
    j.upsert_deployment(DEP_NOBT, manifest(DEP_NOBT, symbols=("QQQ",)), "fp-nobt", T0)
    for k, (dep, symbol, qty) in enumerate([(DEP_BT, "SPY", 10.0), (DEP_NOBT, "QQQ", 5.0)]):
        cid = client_order_id(dep, T0, 0, 1)
        jo.record_decision(j, dep, "2024-03-04", T0, [(0, _intent(dep, symbol, Side.BUY, qty),
                                                      cid)], T0)  # fmt: skip
        jo.update_order(j, cid, T0, "broker", status=OrderStatus.FILLED, filled_qty=qty,
                        avg_price=500.0 + k, broker_id=f"b-{k}")  # fmt: skip
    open_cid = client_order_id(DEP_BT, T0 + timedelta(days=1), 0, 1)
    jo.record_decision(j, DEP_BT, "2024-03-05", T0 + timedelta(days=1),
                       [(0, _intent(DEP_BT, "SPY", Side.SELL, 4.0), open_cid)], T0)  # fmt: skip
    jo.update_order(j, open_cid, T0, "broker", status=OrderStatus.NEW, broker_id="b-open")
    jo.record_fills(j, [
        jo.FillRow("x-1", client_order_id(DEP_BT, T0, 0, 1), DEP_BT, "SPY", "us_equity", 10.0,
                   500.0, T0),
        jo.FillRow("x-2", client_order_id(DEP_NOBT, T0, 0, 1), DEP_NOBT, "QQQ", "us_equity", 5.0,
                   501.0, T0),
    ])  # fmt: skip
    jo.save_positions(j, {(DEP_BT, "SPY"): (10.0, 500.0, "us_equity"),
                          (DEP_NOBT, "QQQ"): (5.0, 501.0, "us_equity")}, T0)  # fmt: skip
    j.set_meta("risk_reasons", {"account": {"max_drawdown": "halted"}})
    j.set_meta("risk_since", {"account": {"max_drawdown": {"state": "halted", "at": "2024-03-05"}}})
    j.set_meta("risk_details", {"max_drawdown": f"postgresql://signals:{planted.db_password}@db"})
    seq = j.start_cycle(T0, "active")
    j.finish_cycle(seq, T0, "halted", {"deployments": 2, "intents": 1, "submitted": 1})
    return j


def add_fill(j: Journal, exec_id: str, qty: float, price: float) -> None:
    """One more fill of DEP_BT (the live-refresh tests)."""
    jo.record_fills(j, [jo.FillRow(exec_id, None, DEP_BT, "SPY", "us_equity", qty, price, T0)])


def build_outbox(home: Path, planted: Secrets, environ: dict[str, str] | None = None) -> Engine:
    """Signals database with 6 outbox rows: 2 sent, 2 pending (1 retried), 1 inflight, 1 dead
    (SQLite under ``home`` unless ``environ`` names a database)."""
    engine = make_engine(home, environ=environ or {})
    event = {"event_id": "ev-1", "kind": "fill", "ts": T0, "deployment_id": DEP_BT,
             "strategy": "ma_crossover", "event_json": "{}", "created_at": T0}  # fmt: skip
    rows = [
        ("telegram", "sent", 1, ""),
        ("discord", "sent", 1, ""),
        ("telegram", "pending", 0, ""),
        ("telegram", "pending", 2, "429 Too Many Requests: retry after 5"),
        ("discord", "inflight", 1, ""),
        ("telegram", "dead", 5, f"POST https://api.telegram.org/bot{planted.token}/sendMessage: "
                               f"403 bot was blocked; via postgresql://u:{planted.stray_password}@h"),
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sa.insert(signal_events), [event])
        for k, row in enumerate(rows):
            conn.execute(sa.insert(outbox), [outbox_row(k, *row)])
    return engine


def outbox_row(k: int, channel: str, status: str, attempts: int, error: str) -> dict[str, Any]:
    return {
        "idem_key": f"idem-{k}", "event_id": "ev-1", "channel": channel, "target_kind": "chat",
        "target": f"10000{k}", "plan_id": "realtime", "subscriber_id": f"sub-{k}",
        "not_before": T0, "status": status, "attempts": attempts,
        "next_attempt_at": T0 + timedelta(seconds=k), "created_at": T0, "last_error": error,
    }  # fmt: skip


def write_part(home: Path, table: str, value: date | str, frame: pl.DataFrame) -> None:
    """One partition through the configured lake store (local files, or the S3 bucket)."""
    store = lake_store.from_env(paths.lake_dir(home))
    store.write(frame.to_arrow(), store.partition(table, value))


def build_lake(home: Path) -> None:
    """live_pnl for DEP_BT over SESSIONS, its backtest run, and one replay session."""
    for session, pnl in zip(SESSIONS, DAILY_PNL, strict=True):
        write_part(home, "live_pnl", session, pl.DataFrame({
            "deployment_id": [DEP_BT], "session": [session], "market_value": [5000.0],
            "cash_flow": [0.0], "pnl": [pnl], "realized_pnl": [10.0], "unrealized_pnl": [pnl],
            "collateral": [0.0]}))  # fmt: skip
    write_part(home, "backtest_runs", "ma_crossover", pl.DataFrame({
        "family": ["ma_crossover", "ma_crossover"], "rank": [1, 2],
        "mlflow_run_id": [RUN_ID, "another-run"], "total_return": [0.3, 0.1],
        "annual_return": [ANNUAL_RETURN, 0.04], "sharpe_ratio": [1.4, 0.5],
        "max_drawdown": [0.08, 0.2], "start": ["2022-01-03", "2022-01-03"],
        "end": ["2023-12-29", "2023-12-29"]}))  # fmt: skip
    write_part(home, "live_replay", SESSIONS[1], pl.DataFrame({
        "session": [SESSIONS[1]] * 3, "symbol": ["SPY"] * 3, "side": ["buy", "sell", "buy"],
        "match": ["both", "both", "live_only"], "price_diff_bps": [2.0, 4.0, None],
        "deployment_id": [DEP_BT] * 3}))  # fmt: skip


def expected_equity(capital: float = 100_000.0) -> list[float]:
    out, total = [], 0.0
    for pnl in DAILY_PNL:
        total += pnl
        out.append(capital + total)
    return out


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1:<free port> in a thread; yields its base URL."""
    server = UvicornThread(app, name="dashboard").start()
    try:
        yield server.url
    finally:
        server.stop()


# --- the browser: Debian's Chromium through playwright, never a downloaded one ------------------
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update"]  # fmt: skip


def chromium_or_skip() -> Path:
    """Debian's Chromium with playwright, or a skip (a failure when ``REQUIRE_BROWSER=1``)."""
    import os

    import pytest

    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "the playwright python module is not installed (uv sync --group dev)"
    if reason is None and not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        reason = f"{CHROMIUM} is absent; install Debian's chromium (make browser)"
    if reason is not None:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return CHROMIUM
