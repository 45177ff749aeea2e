"""Stress tests of options books: scenario grids and historical replays by full revaluation.

Example:
    >>> from datetime import date
    >>> from strategies.stress import OptionPosition, StressBook, stress_grid
    >>> put = OptionPosition.from_occ("SPY240315P00480000", qty=-2, iv=0.22)
    >>> book = StressBook.build([put], {"SPY": 500.0}, as_of=date(2024, 2, 14))
    >>> grid = stress_grid(book)  # spot -10%..+10% x vol -10..+10 points
    >>> grid.worst[1:]  # the short put loses most when spot falls and vol rises
    (-0.1, 10.0)
"""

from strategies.stress.book import OptionPosition, Position, StockPosition, StressBook
from strategies.stress.history import HistoricalStress, StressWindow, find_windows, replay_window
from strategies.stress.scenarios import (
    STANDARD_SPOT_SHOCKS,
    STANDARD_VOL_POINTS,
    Scenario,
    StressGrid,
    base_values,
    revalue,
    scenario_pnl,
    stress_grid,
)

__all__ = [
    "STANDARD_SPOT_SHOCKS",
    "STANDARD_VOL_POINTS",
    "HistoricalStress",
    "OptionPosition",
    "Position",
    "Scenario",
    "StockPosition",
    "StressBook",
    "StressGrid",
    "StressWindow",
    "base_values",
    "find_windows",
    "replay_window",
    "revalue",
    "scenario_pnl",
    "stress_grid",
]
