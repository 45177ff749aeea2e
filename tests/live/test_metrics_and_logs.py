"""Operations: the runner's Prometheus /metrics and its JSON log lines (issue #13 item 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from live.clock import SimClock
from live.runner import control
from live.runner.build import build_runner
from live.runner.config import RunnerConfig
from tests.live.runner_setup import MONDAY_10, make_home

SECRET = "sEcReTmEtRiCsLoGs4242"


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_follow_cycles_orders_and_the_risk_state(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    config = RunnerConfig(home=home, broker="sim", cycle_seconds=60, health_port=0)
    runner, health = build_runner(config, clock=SimClock(MONDAY_10, None))
    assert health is not None
    try:
        runner.start()
        for _ in range(3):
            runner.cycle()
        runner.notifier.flush(2.0)
        got = scrape(health.port)
        assert got[("alpaca_improved_cycles_total", ())] == 3
        assert got[("alpaca_improved_intents_total", ())] == 1  # the SMA cross: one order
        assert got[("alpaca_improved_orders_submitted_total", ())] == 1
        assert got[("alpaca_improved_cycle_seconds_count", ())] == 3
        assert got[("alpaca_improved_risk_state", ())] == 0
        assert got[("alpaca_improved_deployments", ())] == 1

        control.halt(home)
        runner.cycle()
        got = scrape(health.port)
        assert got[("alpaca_improved_risk_state", ())] == 2
        halted = [k for k, v in got.items() if k[0] == "alpaca_improved_risk_reason" and v == 1]
        assert halted, "the halt's reason is exported"
        control.resume(home)
        runner.cycle()
        runner.cycle()
        got = scrape(health.port)
        assert got[("alpaca_improved_risk_state", ())] == 0
        assert all(v == 0 for k, v in got.items() if k[0] == "alpaca_improved_risk_reason")
    finally:
        health.close()
        runner.close()


def test_json_log_lines_from_the_runner_process_never_hold_a_secret(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    env = {
        **os.environ,
        "ALPACA_IMPROVED_LOG_FORMAT": "json",
        "ALPACA_SECRET_KEY": SECRET,
        "PYTHONWARNINGS": "ignore",
    }
    out = subprocess.run(
        [sys.executable, "-m", "live.cli", "run", "--broker", "sim", "--home", str(home),
         "--cycles", "3", "--sim-start", MONDAY_10.isoformat()],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines, "the runner logged nothing"
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    assert any(r["logger"].startswith("live") for r in records)
    assert SECRET not in out.stderr and SECRET not in out.stdout
