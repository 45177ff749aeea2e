"""Equity signal families the sweeps know: their grid, lookback and fast-path evaluator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from strategies.backtest.signal_fastpath import ma_crossover_sweep, rsi_reversion_sweep
from strategies.base import get_strategy_class


@dataclass(frozen=True)
class Family:
    """How to sweep one signal strategy family."""

    name: str
    lookback: Callable[[dict[str, Any]], int]  # bars before the first possible signal
    fast_path: Callable[..., pl.DataFrame]  # total return and trades for many points at once
    point_tuple: Callable[[dict[str, Any]], tuple]

    def grid(self) -> list[dict[str, Any]]:
        return list(get_strategy_class(self.name).param_space().grid())

    def sample(self, n: int, seed: int) -> list[dict[str, Any]]:
        return get_strategy_class(self.name).param_space().sample(n, seed)

    def signals(
        self, params: dict[str, Any], symbols: list[str], close: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        strategy = get_strategy_class(self.name).from_params({**params, "symbols": tuple(symbols)})
        entries, exits = strategy.signals(close)  # type: ignore[attr-defined]
        return np.asarray(entries, dtype=bool), np.asarray(exits, dtype=bool)


FAMILIES: dict[str, Family] = {
    "ma_crossover": Family(
        "ma_crossover",
        lambda p: int(p["slow"]),
        ma_crossover_sweep,
        lambda p: (int(p["fast"]), int(p["slow"])),
    ),
    "rsi_reversion": Family(
        "rsi_reversion",
        lambda p: int(p["window"]) * 3,
        rsi_reversion_sweep,
        lambda p: (int(p["window"]), float(p["lower"]), float(p["upper"])),
    ),
}


def family(name: str) -> Family:
    """The sweep description of ``name`` (ValueError listing the known ones)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown sweep family {name!r}; known: {sorted(FAMILIES)}") from None
