"""Property 10: paper by default, live only with an explicit opt-in and the right host, keys
only from the environment and never in a log line, no redirect followed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from live.brokers.alpaca import LIVE_OPT_IN, AlpacaBroker, settings_from_env
from live.cli import app
from live.clock import SystemClock
from live.errors import ConfigError, LiveModeRefused, MalformedResponse
from tests.fakes.alpaca_broker import FakeAlpacaBroker
from tests.live.conftest import alpaca_env, make_alpaca
from tests.live.helpers import KEY, SECRET
from tests.live.runner_setup import alpaca_runner, make_home

KEYS = {"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET}


def test_paper_is_the_default() -> None:
    settings = settings_from_env(env=KEYS)
    assert settings.base_url == "https://paper-api.alpaca.markets" and not settings.live
    broker = AlpacaBroker(settings, SystemClock())  # no request is made here
    assert broker.paper and broker.session.host == "paper-api.alpaca.markets"


@pytest.mark.parametrize(("live", "env", "needle"), [
    (True, {}, LIVE_OPT_IN),  # live without the opt-in
    (True, {LIVE_OPT_IN: "1"}, LIVE_OPT_IN),  # only "yes" opts in
    (True, {LIVE_OPT_IN: "yes", "ALPACA_TRADING_URL": "https://paper-api.alpaca.markets"},
     "must call"),
    (True, {LIVE_OPT_IN: "yes", "ALPACA_TRADING_URL": "http://api.alpaca.markets"}, "must call"),
    (False, {"ALPACA_TRADING_URL": "https://api.alpaca.markets"}, "LIVE host"),  # override wins
    (False, {"ALPACA_TRADING_URL": "https://evil.example.com"}, "loopback"),
])  # fmt: skip
def test_live_needs_opt_in_and_the_live_host(live: bool, env: dict, needle: str) -> None:
    with pytest.raises(LiveModeRefused, match=needle):
        settings_from_env(live=live, env={**KEYS, **env})


def test_live_with_opt_in_resolves_the_live_host() -> None:
    settings = settings_from_env(live=True, env={**KEYS, LIVE_OPT_IN: "yes"})
    broker = AlpacaBroker(settings, SystemClock())
    assert not broker.paper and broker.session.host == "api.alpaca.markets"


def test_keys_come_from_the_environment_and_stay_out_of_reprs() -> None:
    with pytest.raises(ConfigError, match="ALPACA_API_KEY"):
        settings_from_env(env={})
    settings = settings_from_env(env=KEYS)
    assert KEY not in repr(settings) and SECRET not in repr(settings)


def test_requests_are_pinned_to_the_resolved_host(fake: FakeAlpacaBroker) -> None:
    broker = make_alpaca(fake)
    with pytest.raises(LiveModeRefused):
        broker.session.request("GET", "https://api.alpaca.markets/v2/account")
    assert fake.requests == []


def test_redirects_are_never_followed(fake: FakeAlpacaBroker) -> None:
    broker = make_alpaca(fake)
    fake.set_fault("GET /v2/account", "301")
    with pytest.raises(MalformedResponse, match="redirect"):
        broker.account()
    assert len(fake.requests) == 1  # no retry, no follow to the Location host


def test_cli_refuses_live_without_opt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(LIVE_OPT_IN, raising=False)
    result = CliRunner().invoke(
        app, ["run", "--broker", "alpaca", "--live", "--home", str(tmp_path), "--cycles", "1"]
    )
    assert result.exit_code == 2 and LIVE_OPT_IN in result.output
    assert SECRET not in result.output and KEY not in result.output


def test_no_secret_in_any_log_line(
    tmp_path: Path, fake: FakeAlpacaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # everything, urllib3 included
    # (the kubernetes client, imported by dagster-k8s in the deploy tests, raises urllib3's level)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    runner = alpaca_runner(make_home(tmp_path), fake)
    fake.queue_faults("POST /v2/orders", ["504@commit"])
    fake.queue_faults("GET /v2/positions", ["html502", "malformed"])
    runner.run(cycles=2)
    wrong = {**alpaca_env(fake), "ALPACA_SECRET_KEY": SECRET[::-1]}
    intruder = AlpacaBroker(settings_from_env(env=wrong), SystemClock(), timeout=(1.0, 0.5))
    with pytest.raises(Exception) as err:  # 401: the error names the problem, not the key
        intruder.account()
    logging.getLogger("test").error("broker said: %s", err.value)
    assert runner.notifier.flush(5)
    text = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert "GET /v2/account" in text or "/v2/account" in text  # the logs are really captured
    for secret in (KEY, SECRET, SECRET[::-1]):
        assert secret not in text
