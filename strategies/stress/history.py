"""Historical stress windows: a past stretch of spots and implied vols replayed on today's book.

A window's path is the sessions from its start to its end with, per underlying, the close and
the 30-day ATM implied vol. Replaying it moves today's spots by the path's cumulative returns
since the window's first session, today's vols by the path's ATM-vol change in points, and the
calendar by the days elapsed (options expiring inside the window pay their intrinsic value), then
revalues the book in full with :func:`strategies.stress.scenarios.revalue`. The result is the
cumulative and per-day P&L and the worst day. :func:`find_windows` names the worst crash and the
largest vol spike of a history, so a synthetic lake with no famous dates still has its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from strategies.stress.book import StressBook
from strategies.stress.scenarios import revalue


@dataclass(frozen=True, slots=True)
class StressWindow:
    """A named stretch of sessions, ``start`` and ``end`` inclusive."""

    name: str
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"window {self.name!r} must end after it starts ({self.start}..)")


@dataclass(frozen=True, slots=True)
class HistoricalStress:
    """The replay of one window on a book.

    Attributes:
        name: The window's name.
        sessions: The window's sessions (the first is the base: P&L 0).
        cumulative: P&L since the window's start, per session.
        daily: P&L of each session over the one before (0 on the first).
    """

    name: str
    sessions: tuple[date, ...]
    cumulative: np.ndarray
    daily: np.ndarray

    @property
    def worst_day(self) -> tuple[date, float]:
        """The session with the lowest one-day P&L and that P&L."""
        i = int(np.argmin(self.daily[1:])) + 1
        return self.sessions[i], float(self.daily[i])

    @property
    def worst_cumulative(self) -> float:
        """The lowest P&L since the window's start (<= 0)."""
        return float(min(self.cumulative.min(), 0.0))


def _column(values: Mapping[str, Sequence[float] | np.ndarray], name: str, n: int) -> np.ndarray:
    arr = np.asarray(values[name], dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"path of {name} has {arr.size} values for {n} sessions")
    return arr


def replay_window(
    book: StressBook,
    sessions: Sequence[date],
    closes: Mapping[str, Sequence[float] | np.ndarray],
    atm_iv: Mapping[str, Sequence[float] | np.ndarray] | None = None,
    *,
    proxy: str | None = None,
    decay: bool = True,
    name: str = "window",
) -> HistoricalStress:
    """Replay the window's path onto ``book`` (see the module docstring).

    Args:
        book: Today's book.
        sessions: The window's sessions, ascending, at least two.
        closes: Close per session per underlying (the first close is the base).
        atm_iv: ATM implied vol per session per underlying (decimal); a missing vol keeps the
            last known one; None replays spot only.
        proxy: The path used for an underlying the window lacks (e.g. ``"SPY"``); without one a
            missing underlying is an error.
        decay: Roll the calendar forward by the days elapsed (True) or hold time still.
        name: The window's name.

    Raises:
        ValueError: naming an underlying without a path, or a path of the wrong length.
    """
    n = len(sessions)
    if n < 2 or any(b <= a for a, b in zip(sessions, sessions[1:], strict=False)):
        raise ValueError(f"window {name!r} needs two or more ascending sessions, got {n}")
    mult = np.ones((n, book.spot.size))
    shift = np.zeros_like(mult)
    for u, und in enumerate(book.underlyings):
        source = und if und in closes else proxy
        if source is None or source not in closes:
            raise ValueError(
                f"window {name!r} has no path for {und}; add its bars or pass proxy='SPY'"
            )
        close = _column(closes, source, n)
        if not (np.isfinite(close).all() and (close > 0).all()):
            raise ValueError(f"window {name!r}: closes of {source} must be positive numbers")
        mult[:, u] = close / close[0]
        if atm_iv is not None and source in atm_iv:
            iv = _column(atm_iv, source, n)
            filled = _forward_fill(iv)
            if np.isfinite(filled[0]):
                shift[:, u] = np.nan_to_num(filled - filled[0]) * 100.0
    elapsed = np.array([(s - sessions[0]).days for s in sessions], dtype=np.float64)
    days = elapsed if decay else np.zeros(n)
    cumulative = revalue(book, mult, shift, np.zeros(n), days)
    daily = np.diff(cumulative, prepend=cumulative[0])
    return HistoricalStress(name, tuple(sessions), cumulative, daily)


def _forward_fill(values: np.ndarray) -> np.ndarray:
    idx = np.where(np.isfinite(values), np.arange(values.size), 0)
    np.maximum.accumulate(idx, out=idx)
    return values[idx]


def find_windows(
    sessions: Sequence[date],
    close: Sequence[float] | np.ndarray,
    atm_iv: Sequence[float] | np.ndarray | None = None,
    length: int = 10,
) -> list[StressWindow]:
    """The worst ``length``-session crash (lowest return) and, given vols, the largest vol
    spike (highest rise in ATM vol) of one underlying's history.

    Raises:
        ValueError: when the history is not longer than ``length`` sessions.
    """
    c = np.asarray(close, dtype=np.float64)
    if length < 1 or c.size <= length or c.size != len(sessions):
        raise ValueError(
            f"find_windows needs more than {length} sessions with one close each, got {c.size}"
        )
    moves = c[length:] / c[:-length]
    i = int(np.nanargmin(moves))
    out = [StressWindow("crash", sessions[i], sessions[i + length])]
    if atm_iv is not None:
        iv = _forward_fill(np.asarray(atm_iv, dtype=np.float64))
        rises = iv[length:] - iv[:-length]
        if np.isfinite(rises).any():
            j = int(np.nanargmax(rises))
            out.append(StressWindow("vol_spike", sessions[j], sessions[j + length]))
    return out
