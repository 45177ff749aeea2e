"""The deployment manifest: one typed model, written by the pipelines and read by the runner."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from contracts.errors import ContractError
from contracts.limits import RiskLimits, derived_risk_limits
from contracts.manifest import (
    Approval,
    DeploymentManifest,
    OptionsCosts,
    SignalCosts,
    fingerprint,
    parse_manifest,
    read_manifest,
    write_manifest,
)
from live.deployments.manifests import load_manifest
from strategies.backtest.config import FeeSchedule


def approved(**over: Any) -> DeploymentManifest:
    """A manifest as the approval builds it (every field set)."""
    fields: dict[str, Any] = {
        "manifest_id": "rsi_reversion-0123abcd",
        "strategy": "rsi_reversion",
        "interface_version": 1,
        "params": {"symbols": ["SPY", "XOM"], "window": 7, "lower": 40.0, "upper": 60.0},
        "capital": 250_000.0,
        "risk_limits": derived_risk_limits(250_000.0, 100.0),
        "costs": SignalCosts(fees=0.002, slippage=0.001),
        "git_sha": "a" * 40,
        "data_versions": {"stock_bars_1d": "f" * 64},
        "mlflow_run_id": "run-1",
        "approval": Approval(
            approver="qa",
            reason="test",
            at=dt.datetime(2025, 1, 2, 15, tzinfo=dt.UTC),
            gates_passed=True,
            reference_symbol="XOM",
            reference_price=100.0,
            reference_session=dt.date(2024, 12, 31),
            limits_set=("max_daily_loss",),
        ),
    }
    return DeploymentManifest(**{**fields, **over})


def as_json(manifest: DeploymentManifest) -> dict[str, Any]:
    return manifest.model_dump(mode="json")


def test_a_written_manifest_loads_in_the_runner_unchanged(tmp_path: Path) -> None:
    manifest = approved()
    path = write_manifest(tmp_path / "deployments" / "rsi.json", manifest)
    assert read_manifest(path) == manifest
    dep = load_manifest(path)  # the live runner's loader: same model, strategy built
    assert dep.manifest == manifest and dep.id == "rsi"
    assert dep.manifest.risk_limits.max_daily_loss == pytest.approx(5_000.0)
    assert dep.manifest.costs == SignalCosts(fees=0.002, slippage=0.001)
    assert dep.strategy.config.symbols == ("SPY", "XOM")
    # the canonical JSON makes the fingerprint a function of the content only
    again = write_manifest(tmp_path / "again.json", read_manifest(path))
    assert again.read_bytes() == path.read_bytes()
    assert fingerprint(read_manifest(again)) == fingerprint(manifest)


def _set(path: str, value: Any) -> Callable[[dict], None]:
    *parents, leaf = path.split(".")

    def change(data: dict) -> None:
        for key in parents:
            data = data[key]
        if value is DROP:
            del data[leaf]
        else:
            data[leaf] = value

    return change


DROP = object()


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (_set("riskLimits", {}), "Extra inputs are not permitted"),
        (_set("risk_limits", {"max_daily_loss": 1.0}), "must list every limit"),
        (_set("risk_limits.greeks", {"delta": 1.0}), "greeks.gamma"),
        (_set("risk_limits.max_quote_age_s", DROP), "max_quote_age_s"),
        (_set("risk_limits.max_daily_loss", None), "needs a daily-loss limit"),
        (_set("costs", DROP), "costs"),
        (_set("costs", {"kind": "options"}), "is backtested with 'signal' costs"),
        (_set("costs.slippage", DROP), "slippage"),
        (_set("capital", 0), "greater than 0"),
        (_set("approval.reason", DROP), "reason"),
    ],
)
def test_a_manifest_that_breaks_the_contract_is_refused(
    change: Callable[[dict], None], needle: str
) -> None:
    data = as_json(approved())
    change(data)
    with pytest.raises(ContractError, match=needle):
        parse_manifest(data, "bad.json")


def test_the_runner_reports_a_broken_manifest_as_its_config_error(tmp_path: Path) -> None:
    from live.errors import ConfigError

    data = as_json(approved())
    data["risk_limits"]["max_daily_loss"] = None
    path = tmp_path / "nolimit.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="nolimit.json: invalid deployment manifest"):
        load_manifest(path)


def test_options_costs_carry_the_engine_fee_schedule() -> None:
    costs = OptionsCosts(fill_fraction=0.4)
    assert costs.fees.schedule() == FeeSchedule()  # same fields, same defaults
    config = costs.backtest_config(initial_cash=5_000.0)
    assert (config.fill_fraction, config.fees, config.initial_cash) == (0.4, FeeSchedule(), 5e3)
    wheel = approved(
        strategy="wheel", params={"underlying": "SPY"}, costs=costs, manifest_id="wheel-1"
    )
    assert parse_manifest(wheel.model_dump_json(), "w").costs == costs


def test_derived_limits_follow_the_documented_rules() -> None:
    limits = derived_risk_limits(100_000.0, 50.0)
    assert limits.max_daily_loss == 2_000.0  # 2% of capital
    assert limits.max_order_notional == 100_000.0  # the capital
    assert limits.max_drawdown == 0.20
    assert limits.greeks.delta == 4_000.0  # 2 x capital / price, in shares
    assert limits.greeks.gamma == pytest.approx(4_000.0 / 2.5)  # a 5% move adds one delta cap
    assert (limits.greeks.vega, limits.greeks.theta) == (1_000.0, 200.0)
    assert limits.max_order_shares == limits.max_position_shares == 4_000.0
    counts = ("max_order_contracts", "max_position_contracts", "max_open_orders")
    assert all(getattr(limits, c) == getattr(RiskLimits(), c) for c in counts)
    with pytest.raises(ValueError, match="must be > 0"):
        derived_risk_limits(100_000.0, 0.0)
