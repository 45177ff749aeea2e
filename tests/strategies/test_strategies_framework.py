"""Strategy framework: registry, declared parameter spaces, config validation, failure capture."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from strategies.backtest.config import OptionsBacktestConfig
from strategies.base import (
    Param,
    ParamSpace,
    StrategyError,
    create_strategy,
    get_strategy_class,
    safe_decide,
    strategy_registry,
)
from strategies.equity import MACrossover, MACrossoverConfig, MomentumConfig, RSIReversionConfig
from strategies.models import NEW_YORK, Book, MarketSnapshot
from strategies.options import (
    ButterflyConfig,
    CoveredCallConfig,
    IronCondorConfig,
    MomentumOptionsConfig,
    WheelConfig,
)

FAMILIES = {
    "ma_crossover",
    "momentum",
    "rsi_reversion",
    "covered_call",
    "wheel",
    "iron_condor",
    "butterfly",
    "momentum_options",
}


def test_registry_holds_every_family() -> None:
    registry = strategy_registry()
    assert set(registry) >= FAMILIES
    for name, cls in registry.items():
        assert cls.name == name and cls.interface_version >= 1
        strategy = cls()  # defaults are valid
        assert strategy.params() and isinstance(cls.param_space(), ParamSpace)
    with pytest.raises(KeyError, match="unknown strategy 'nope'"):
        get_strategy_class("nope")


def test_create_with_params_validates() -> None:
    strategy = create_strategy("ma_crossover", {"fast": 5, "slow": 20})
    assert isinstance(strategy, MACrossover) and strategy.config.slow == 20
    with pytest.raises(ValueError, match="fast must be < slow"):
        create_strategy("ma_crossover", {"fast": 30, "slow": 20})


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: MACrossoverConfig(fast=50, slow=50), "fast"),
        (lambda: MACrossoverConfig(fast=0, slow=5), "fast"),
        (lambda: MACrossoverConfig(symbols=()), "symbols"),
        (lambda: MACrossoverConfig(allocation=1.5), "allocation"),
        (lambda: RSIReversionConfig(lower=70, upper=30), "lower"),
        (lambda: RSIReversionConfig(window=1), "window"),
        (lambda: MomentumConfig(enter=0.0, leave=0.01), "leave"),
        (lambda: MomentumConfig(trend=1), "trend"),
        (lambda: WheelConfig(put_delta=1.2), "delta"),
        (lambda: WheelConfig(dte=10, dte_min=20), "dte_min"),
        (lambda: WheelConfig(contracts=0), "contracts"),
        (lambda: WheelConfig(underlying="SP Y"), "underlying"),
        (lambda: WheelConfig(limit_fraction=0.9), "limit_fraction"),
        (lambda: CoveredCallConfig(profit_target=-0.5), "profit_target"),
        (lambda: IronCondorConfig(wing_width=0), "wing_width"),
        (lambda: IronCondorConfig(short_delta=0.6), "short_delta"),
        (lambda: ButterflyConfig(right="X"), "right"),
        (lambda: MomentumOptionsConfig(threshold=0), "threshold"),
        (lambda: MomentumOptionsConfig(exit_dte=-1), "exit_dte"),
        (lambda: OptionsBacktestConfig(initial_cash=0), "initial_cash"),
        (lambda: OptionsBacktestConfig(vega_unit="pct"), "vega_unit"),
    ],
)
def test_invalid_configs_name_the_parameter(make, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        make()


def test_param_space_grid_rejects_invalid_combinations() -> None:
    space = MACrossover.param_space()
    grid = list(space.grid())
    assert grid and all(p["fast"] < p["slow"] for p in grid)
    total = len(space.params[0].grid()) * len(space.params[1].grid())
    assert len(grid) < total  # fast >= slow pairs were dropped
    assert "fast must be < slow" in str(space.invalid_reason({"fast": 50, "slow": 20}))
    assert space.is_valid({"fast": 10, "slow": 20})


def test_param_space_sampling_is_seeded() -> None:
    space = ParamSpace(
        (
            Param("fast", low=2, high=60, integer=True),
            Param("slow", low=10, high=120, integer=True),
        ),
        MACrossoverConfig,
    )
    first, again = space.sample(50, seed=11), space.sample(50, seed=11)
    assert first == again and first != space.sample(50, seed=12)
    assert all(p["fast"] < p["slow"] for p in first)
    with pytest.raises(ValueError, match="could only draw"):
        ParamSpace(
            (Param("fast", values=(9,)), Param("slow", values=(5,))), MACrossoverConfig
        ).sample(3, seed=0)


def test_predicate_and_param_errors() -> None:
    space = get_strategy_class("iron_condor").param_space()
    assert not space.is_valid({"dte": 30, "exit_dte": 30})  # predicate: exit before expiry
    with pytest.raises(ValueError, match="values or low/high"):
        Param("x")
    with pytest.raises(ValueError, match="step"):
        Param("x", low=0, high=1).grid()


def _snapshot() -> MarketSnapshot:
    bars = pl.DataFrame(
        {
            "session": [date(2024, 1, 2)],
            "symbol": ["SPY"],
            "open": [1.0],
            "high": [1.0],
            "low": [1.0],
            "close": [1.0],
            "volume": [1.0],
        }
    )
    return MarketSnapshot(datetime(2024, 1, 2, 16, tzinfo=NEW_YORK), date(2024, 1, 2), {}, bars)


class _Broken(MACrossover):
    name = "broken_test_only"

    def __init__(self, result: object = None, exc: Exception | None = None) -> None:
        super().__init__()
        self._result, self._exc = result, exc

    __slots__ = ("_exc", "_result")

    def decide(self, snapshot, book):  # type: ignore[override]
        if self._exc is not None:
            raise self._exc
        return self._result


def test_a_raising_strategy_becomes_a_recordable_error() -> None:
    with pytest.raises(StrategyError, match="KeyError") as info:
        safe_decide(_Broken(exc=KeyError("close")), _snapshot(), Book.build(1.0))
    assert info.value.strategy == "broken_test_only" and isinstance(info.value.cause, KeyError)
    with pytest.raises(StrategyError, match="must return a list"):
        safe_decide(_Broken(result="buy"), _snapshot(), Book.build(1.0))
    with pytest.raises(StrategyError, match="not OrderIntents"):
        safe_decide(_Broken(result=[{"symbol": "SPY"}]), _snapshot(), Book.build(1.0))


def test_library_stays_pure() -> None:
    """strategies imports no orchestration/broker/tracking code and reads no clock."""
    import ast
    import pathlib
    import subprocess
    import sys

    code = (
        "import sys, strategies.base, strategies.models, strategies.equity, strategies.options, "
        "strategies.backtest; bad = [m for m in ('dagster', 'vectorbt', 'mlflow', 'alpaca', "
        "'requests', 'duckdb') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    root = pathlib.Path(__file__).resolve().parents[2] / "strategies"
    files = [root / "models.py", root / "base.py"]
    files += [p for d in ("equity", "options", "backtest") for p in (root / d).glob("*.py")]
    clock = {
        ("time", "time"),
        ("time", "perf_counter"),
        ("time", "monotonic"),
        ("datetime", "now"),
        ("datetime", "utcnow"),
        ("datetime", "today"),
        ("date", "today"),
    }
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            where = f"{path.name}:{node.lineno}"
            assert not (isinstance(fn, ast.Name) and fn.id == "open"), f"{where} opens a file"
            if isinstance(fn, ast.Attribute):
                owner = fn.value
                pair = (getattr(owner, "id", getattr(owner, "attr", "")), fn.attr)
                assert pair not in clock, f"{where} reads the clock"
                unseeded = pair[0] == "random" and fn.attr != "default_rng"
                assert not unseeded, f"{where} draws unseeded randomness"
