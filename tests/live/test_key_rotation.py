"""An Alpaca key rotation mid-session, without a restart (issue #13 item 5).

The fake broker revokes the keys (it answers 401 ``40110000`` to the old pair); the runner must
halt new orders at once (``broker_auth``), re-read the mounted key files, and resume by itself
when valid keys appear. An order whose submit met the 401 was never processed: it stays unsent
and is sent once after the rotation, never rejected and never twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from live.brokers.alpaca import AlpacaBroker, settings_from_env
from live.brokers.credentials import read_keys
from live.clock import SystemClock
from live.errors import ConfigError
from live.journal import orders as jo
from live.orders.reports import OrderStatus
from live.risk.engine import TradingState
from live.runner.build import build_runner
from live.runner.config import RunnerConfig
from live.runner.core import Runner
from tests.fakes.alpaca_broker import FakeAlpacaBroker
from tests.live.runner_setup import LAST_CLOSE, MONDAY_10, make_home

OLD = ("AKOLDKEYROTATE1", "sEcReToLdRoTaTe1")
NEW = ("AKNEWKEYROTATE2", "sEcReTnEwRoTaTe2")


def key_files(tmp: Path, pair: tuple[str, str]) -> dict[str, str]:
    (tmp / "keys").mkdir(exist_ok=True)
    for name, value in zip(("api_key", "secret_key"), pair, strict=True):
        (tmp / "keys" / name).write_text(value + "\n")
    return {
        "ALPACA_API_KEY_FILE": str(tmp / "keys" / "api_key"),
        "ALPACA_SECRET_KEY_FILE": str(tmp / "keys" / "secret_key"),
    }


def runner_on_files(
    tmp: Path, fake: FakeAlpacaBroker, crash: Callable[[str], None] | None = None
) -> Runner:
    env = {**key_files(tmp, OLD), "ALPACA_TRADING_URL": fake.url}
    broker = AlpacaBroker(
        settings_from_env(env=env), SystemClock(), timeout=(1.0, 0.5), keys_env=env
    )
    fake.market_ts = MONDAY_10
    fake.prices["SPY"] = LAST_CLOSE
    config = RunnerConfig(home=make_home(tmp / "home"), broker="alpaca", cycle_seconds=0)
    runner, _ = build_runner(config, broker=broker, crash=crash)
    return runner


@pytest.fixture
def fake() -> Iterator[FakeAlpacaBroker]:
    with FakeAlpacaBroker(api_key=OLD[0], secret_key=OLD[1], timeout_s=1.0) as f:
        yield f


def test_revoked_keys_halt_new_orders_and_rotation_resumes_without_restart(
    tmp_path: Path, fake: FakeAlpacaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    runner = runner_on_files(tmp_path, fake)
    runner.start()
    assert runner.risk.state() is TradingState.ACTIVE
    fake.keys = NEW  # revoked mid-session: the old pair now gets 401
    runner.cycle()
    assert runner.risk.reasons()[""]["broker_auth"] == TradingState.HALTED.value
    assert fake.orders == {}, "no order may be sent while the keys are refused"
    runner.cycle()  # still the old files: still halted, still nothing sent
    assert runner.risk.state() is TradingState.HALTED and fake.orders == {}

    key_files(tmp_path, NEW)  # the secret is rotated: the mounted files change
    for _ in range(3):
        runner.cycle()
        if fake.orders:
            break
    assert "broker_auth" not in runner.risk.reasons().get("", {})
    assert runner.risk.state() is TradingState.ACTIVE
    assert len(fake.orders) == 1  # the session's decision, sent once after the rotation
    assert isinstance(runner.broker, AlpacaBroker)
    assert runner.broker.client._api_key == NEW[0]  # the same runner object: no restart
    logged = caplog.text
    assert not any(secret in logged for secret in (*OLD, *NEW))


def test_an_order_refused_with_401_is_sent_once_after_rotation_never_rejected(
    tmp_path: Path, fake: FakeAlpacaBroker
) -> None:
    def revoke_at_send(point: str) -> None:  # the keys go between the decision and the send
        if point == "before_send" and fake.keys == OLD:
            fake.keys = NEW

    runner = runner_on_files(tmp_path, fake, crash=revoke_at_send)
    runner.start()
    counts = runner.cycle()
    assert counts["intents"] == 1 and fake.orders == {}  # decided; the submit met the 401
    (row,) = jo.list_orders(runner.j)
    assert row.status is OrderStatus.UNKNOWN  # outcome looked up, not rejected
    assert runner.risk.state() is TradingState.HALTED  # the next broker call saw the 401 too
    key_files(tmp_path, NEW)
    for _ in range(3):
        runner.cycle()
    (row,) = jo.list_orders(runner.j)
    assert row.status is not OrderStatus.REJECTED
    sent = [o["client_order_id"] for o in fake.orders.values()]
    assert sent == [row.client_order_id]  # sent exactly once, after the rotation


def test_key_files_beat_the_environment_and_errors_name_the_file(tmp_path: Path) -> None:
    env = {**key_files(tmp_path, NEW), "ALPACA_API_KEY": "envkey", "ALPACA_SECRET_KEY": "envsec"}
    keys = read_keys(env)
    assert (keys.api_key, keys.secret_key) == NEW
    assert NEW[0] not in repr(keys) and "api_key" in keys.origin
    missing = {**env, "ALPACA_API_KEY_FILE": str(tmp_path / "nope")}
    with pytest.raises(ConfigError, match=r"ALPACA_API_KEY_FILE=.*nope.*cannot be read"):
        read_keys(missing)
    (tmp_path / "keys" / "secret_key").write_text("\n")
    with pytest.raises(ConfigError, match="ALPACA_SECRET_KEY_FILE=.* is empty"):
        read_keys(env)
