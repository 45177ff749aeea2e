"""The sweep families: a read-only view of the registered equity signal strategies.

Nothing here is declared per family. A family is declared once, by its strategy class in
``strategies/`` (parameter space, ``lookback_bars()`` on its config, ``signals()``, optional fused
fast path) and ``@register_strategy``; the research assets (``<family>_sweep``, ``walk_forward``)
and the candidates are generated from :func:`families`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alpaca_improved_pipelines.backtesting.data import (
    BAR_TABLE,
    CloseMatrix,
    load_for,
    with_intraday_features,
)
from strategies.equity.signal import SignalStrategy, signal_families
from strategies.models import Timeframe


@dataclass(frozen=True)
class Family:
    """How the pipeline sweeps one registered signal family."""

    name: str
    strategy: type[SignalStrategy]

    @property
    def title(self) -> str:
        """The strategy's one-line description (its docstring's first line)."""
        doc = (self.strategy.__doc__ or self.name).strip()
        return doc.splitlines()[0].strip()

    @property
    def timeframe(self) -> Timeframe:
        """The bars the family trades on (``Strategy.timeframe``): its data need."""
        return self.strategy.timeframe

    @property
    def table(self) -> str:
        """The lake table of bars the family is swept on."""
        return BAR_TABLE[self.timeframe]

    def load(
        self, lake: Path, start: dt.date | None = None, end: dt.date | None = None
    ) -> CloseMatrix:
        """The lake data this family is swept on: ``stock_bars_1d`` closes (with each
        session's intraday features from ``stock_bars_1m`` when the family sweeps an
        ``intraday_gate``), or ``stock_bars_1m`` on the session minute grid for a minute
        family."""
        data = load_for(self.timeframe, lake, start, end)
        if self.uses_intraday_features:
            return with_intraday_features(lake, data)
        return data

    @property
    def uses_intraday_features(self) -> bool:
        """A daily family sweeping an ``intraday_gate``: its sweep reads stock_bars_1m too."""
        return self.timeframe == "1d" and self.strategy.uses_intraday_features()

    def lookback(self, params: Mapping[str, Any]) -> int:
        """Bars before the first possible signal of ``params`` (ValueError when invalid)."""
        return self.strategy.lookback(params)

    def grid(self) -> list[dict[str, Any]]:
        return list(self.strategy.param_space().grid())

    def sample(self, n: int, seed: int) -> list[dict[str, Any]]:
        return self.strategy.param_space().sample(n, seed)

    def param_names(self) -> list[str]:
        return [p.name for p in self.strategy.param_space().params]

    def signals(
        self, params: Mapping[str, Any], symbols: list[str], close: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Entries/exits of ``params`` on ``close`` (a data's ``signal_input``)."""
        strategy = self.strategy.from_params({**params, "symbols": tuple(symbols)})
        entries, exits = strategy.signals(close)  # type: ignore[attr-defined]
        return np.asarray(entries, dtype=bool), np.asarray(exits, dtype=bool)

    @property
    def fast_path(self) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
        """The family's :meth:`~SignalStrategy.sweep_fast_path`: total return and trades per
        (point, symbol), shape ``(points, symbols)``."""
        return self.strategy.sweep_fast_path


def families() -> dict[str, Family]:
    """Every registered signal family the research pipeline sweeps, by name (sorted)."""
    return {name: Family(name, cls) for name, cls in signal_families().items()}


def family(name: str) -> Family:
    """The sweep view of ``name`` (ValueError listing the swept families)."""
    known = families()
    if name not in known:
        raise ValueError(f"unknown sweep family {name!r}; known: {sorted(known)}")
    return known[name]
