"""The runner: same decide() as the backtest, deployments between cycles, kill switch and
flatten on a running runner, stale-order replace, health endpoint and notification fan-out."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from live.clock import SimClock
from live.journal import orders as jo
from live.journal.store import Journal
from live.market.snapshot import LakeSnapshotProvider, snapshot_quotes
from live.notify import Event, FanOut, Sink, WebhookSink
from live.orders.manager import REPRICE
from live.orders.reports import OrderStatus, Quote
from live.runner.health import HealthServer
from strategies.base import create_strategy
from strategies.models import OrderType
from tests.fakes.alpaca_broker import FakeAlpacaBroker
from tests.live.helpers import CALL_A, CALL_B, T0, deploy, equity_ticket, manifest, spread_ticket
from tests.live.runner_setup import (
    MONDAY_10,
    alpaca_runner,
    fake_positions,
    kill_switch_and_flatten,
    local_positions,
    make_home,
    sim_runner,
)


class Recorder(Sink):
    name = "recorder"

    def __init__(self) -> None:
        self.events: list[Event] = []

    def send(self, event: Event) -> None:
        self.events.append(event)


def test_runner_calls_the_same_decide_as_the_backtest(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    runner = sim_runner(home)
    runner.run(cycles=2)
    snapshot = LakeSnapshotProvider(home).latest(MONDAY_10)
    strategy = create_strategy(
        "ma_crossover", {"symbols": ("SPY",), "fast": 3, "slow": 10, "allocation": 0.5}
    )
    book = runner.ledger.book("ma-spy", 100_000.0, snapshot_quotes(snapshot))
    empty = type(book).build(100_000.0)
    expected = strategy.decide(snapshot, empty)
    (order,) = jo.list_orders(runner.j)
    assert [order.intent] == expected  # the same intents, through the journal round-trip
    assert order.status is OrderStatus.FILLED and book.shares("SPY") == 510
    runner.cycle()  # the same session: no second decision
    assert len(jo.list_orders(runner.j)) == 1


def test_many_deployments_decide_once_each_per_session(tmp_path: Path) -> None:
    runner = sim_runner(make_home(tmp_path, deployments=5), sim={"cash": 1_000_000.0})
    runner.run(cycles=2)
    orders = jo.list_orders(runner.j)
    assert sorted(o.deployment_id for o in orders) == sorted(runner.deployments.active)
    assert len({o.client_order_id for o in orders}) == 5
    assert all(o.status is OrderStatus.FILLED for o in orders)
    assert runner.broker.positions()[0].qty == sum(
        runner.ledger.qty(d, "SPY") for d in runner.deployments.active
    )


def test_deployments_are_picked_up_between_cycles_never_mid_order(
    tmp_path: Path, fake: FakeAlpacaBroker
) -> None:
    fake.auto_fill = False  # orders stay open until the test fills them
    home = make_home(tmp_path)
    runner = alpaca_runner(home, fake)
    runner.run(cycles=1)
    (order,) = jo.list_orders(runner.j)
    old = runner.deployments.active["ma-spy"].fingerprint
    deploy(home, "ma-spy", capital=50_000.0)  # changed while its order is open
    deploy(home, "ma-qqq", symbols=("QQQ",))  # a new deployment
    (home / "live" / "deployments" / "broken.json").write_text(
        json.dumps({**manifest("broken"), "typo_field": 1})
    )
    runner.cycle()
    assert runner.deployments.active["ma-spy"].fingerprint == old  # deferred: mid-order
    assert "ma-qqq" in runner.deployments.active and "broken" not in runner.deployments.active
    fake.fill(order.client_order_id)
    runner.cycle()  # the fill is booked; the deployment is idle; its new manifest applies
    assert runner.deployments.active["ma-spy"].manifest.capital == 50_000.0


def test_kill_switch_and_flatten_on_a_running_runner(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    journal = Journal(home / "live" / "journal.sqlite")  # a second connection, like the CLI's
    runner, status = kill_switch_and_flatten(home, journal)
    assert status["state"] == "halted" and status["positions"] == []
    flat = [o for o in jo.list_orders(journal) if o.intent.tag == "flatten"]
    assert len(flat) == 1 and flat[0].status is OrderStatus.FILLED
    assert runner.broker.positions() == []


def test_stale_limit_orders_are_replaced_under_a_new_id(
    tmp_path: Path, fake: FakeAlpacaBroker
) -> None:
    runner = alpaca_runner(make_home(tmp_path), fake)
    runner.start()
    ticket = equity_ticket(qty=5, order_type=OrderType.LIMIT, limit_price=90.0)
    jo.record_decision(
        runner.j, "ma-spy", "2024-03-01", T0, [(0, ticket.intent, ticket.client_order_id)], T0
    )
    runner.manager.send(jo.get_order(runner.j, ticket.client_order_id))
    assert jo.get_order(runner.j, ticket.client_order_id).status is OrderStatus.NEW
    runner.manager.reprice_stale(runner.quotes, stale_after_s=1e-9)
    new_cid = ticket.client_order_id + "-r1"
    assert jo.get_order(runner.j, ticket.client_order_id).status is OrderStatus.REPLACED
    assert jo.get_order(runner.j, new_cid).status is OrderStatus.FILLED  # re-priced: marketable
    live = [o for o in fake.orders.values() if o["status"] not in ("replaced", "canceled")]
    assert [o["client_order_id"] for o in live] == [new_cid]


def test_stale_spreads_are_cancelled_then_resubmitted_once_at_the_net_mid(
    tmp_path: Path, fake: FakeAlpacaBroker
) -> None:
    runner = alpaca_runner(make_home(tmp_path), fake)
    runner.start()
    fake.prices.update({CALL_A: 5.0, CALL_B: 3.0})  # net debit 2.00: a 0.50 limit rests
    ticket = spread_ticket(qty=2, limit_price=0.5)
    jo.record_decision(  # decided at the market's time: the re-priced attempt is in its session
        runner.j, "ma-spy", "2024-03-01", MONDAY_10, [(0, ticket.intent, ticket.client_order_id)],
        T0,
    )  # fmt: skip
    cid = ticket.client_order_id
    runner.manager.send(jo.get_order(runner.j, cid))
    assert jo.get_order(runner.j, cid).status is OrderStatus.NEW
    greeks = (0.5, 0.01, 0.1, -0.05)
    runner.quotes.update(
        {
            CALL_A: Quote(4.9, 5.1, 5.0, MONDAY_10, greeks),
            CALL_B: Quote(2.9, 3.1, 3.0, MONDAY_10, greeks),
        }
    )
    runner.manager.reprice_stale(runner.quotes, stale_after_s=1e-9)
    assert jo.get_order(runner.j, cid).status is OrderStatus.CANCELED  # no mleg replace at Alpaca
    new = jo.get_order(runner.j, cid + "-r1")
    assert new is not None and new.status is OrderStatus.PENDING_SUBMIT
    assert (new.qty, new.limit_price, new.attempt) == (2.0, 2.0, 1)
    assert runner.manager.requeue_repriced(runner.quotes) == 0  # one new attempt per cancel
    sent = runner.submitter.send(runner.prepare())  # through the risk engine like any order
    assert sent == 1 and jo.get_order(runner.j, cid + "-r1").status is OrderStatus.FILLED
    at_broker = sorted((o["client_order_id"], o["status"]) for o in fake.orders.values())
    assert at_broker == [(cid, "canceled"), (cid + "-r1", "filled")]
    assert local_positions(runner) == fake_positions(fake) == {CALL_A: 2.0, CALL_B: -2.0}


def test_a_halt_cancel_is_never_resubmitted(tmp_path: Path, fake: FakeAlpacaBroker) -> None:
    runner = alpaca_runner(make_home(tmp_path), fake)
    runner.start()
    fake.prices.update({CALL_A: 5.0, CALL_B: 3.0})
    ticket = spread_ticket(qty=1, limit_price=0.5)
    jo.record_decision(
        runner.j, "ma-spy", "2024-03-01", T0, [(0, ticket.intent, ticket.client_order_id)], T0
    )
    cid = ticket.client_order_id
    runner.manager.send(jo.get_order(runner.j, cid))
    # a re-price cancel was asked for earlier but never went through; then the kill switch
    jo.update_order(runner.j, cid, MONDAY_10, REPRICE, note="cancel to re-price")
    quotes = {c: Quote(1.0, 1.2, 1.1, MONDAY_10) for c in (CALL_A, CALL_B)}
    runner.manager.cancel_all()
    assert jo.get_order(runner.j, cid).status is OrderStatus.CANCELED
    assert runner.manager.requeue_repriced(quotes) == 0
    assert [o.client_order_id for o in jo.list_orders(runner.j)] == [ticket.client_order_id]


def test_health_endpoint_reports_state_last_cycle_and_limits(tmp_path: Path) -> None:
    runner = sim_runner(make_home(tmp_path))
    server = HealthServer(runner.status, 0)
    try:
        runner.run(cycles=1)
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=5) as r:
            data = json.loads(r.read())
    finally:
        server.close()
    assert data["state"] == "active" and data["broker"] == "sim" and data["paper"] is True
    assert data["last_cycle"]["seq"] == 1 and data["last_counts"]["submitted"] == 1
    assert data["account_limits"]["max_submits_per_minute"] == 60
    assert data["limits"]["ma-spy"]["max_drawdown"] == 0.5


def test_a_failing_webhook_never_blocks_trading(tmp_path: Path) -> None:
    recorder = Recorder()
    dead = WebhookSink("http://127.0.0.1:9/hook", timeout=0.5)  # port 9: nothing listens
    runner = sim_runner(make_home(tmp_path), sinks=[dead, recorder])
    started = time.monotonic()
    runner.run(cycles=2)
    assert time.monotonic() - started < 15
    assert runner.notifier.flush(10)
    assert jo.list_orders(runner.j)[0].status is OrderStatus.FILLED  # trading went on
    assert any(e.kind == "deployments" for e in recorder.events)  # the other sink got them
    assert runner.notifier.failures.get("webhook", 0) >= 1


def test_fan_out_isolates_a_raising_sink() -> None:
    class Boom(Sink):
        name = "boom"

        def send(self, event: Event) -> None:
            raise RuntimeError("down")

    recorder = Recorder()
    fan = FanOut([Boom(), recorder])
    for k in range(5):
        fan.notify("k", str(k))
    assert fan.flush(5) and len(recorder.events) == 5 and fan.failures["boom"] == 5
    fan.close()
    assert SimClock(T0).now() == T0
