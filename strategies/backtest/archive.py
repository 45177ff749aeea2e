"""A chain archive prepared once for the day loop: sorted, partitioned by session, numpy-indexed.

Rows are sorted by ``(session, key)`` where ``key`` packs (underlying, expiry, right with calls
first, strike) into one int64 (the order of OCC symbols for one underlying), so one session's
rows are a contiguous block ``[day_start[i], day_start[i + 1])`` and a held contract is found in
a session with one binary search instead of a DataFrame filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from strategies.models import CHAIN_COLUMNS, CHAIN_FLOAT_COLUMNS

_STRIKE_BITS = 36  # strike in thousandths of a dollar, up to ~$68M
_EXPIRY_BITS = 16  # days since 1970, up to 2149
_MAX_UNDERLYINGS = 1 << 10


@dataclass(frozen=True, slots=True)
class ChainArchive:
    """Sorted chain archive with per-session offsets and numpy columns (see module docstring).

    Attributes:
        frame: The archive sorted by session and contract key (the input columns).
        sessions: Session dates in order.
        day_start: Row offset of each session (length ``len(sessions) + 1``).
        underlyings: Underlying symbols; ``und`` holds each row's index into it.
        und_price: ``(sessions, underlyings)`` underlying price (NaN where absent).
        cols: Float numpy columns by name plus ``key``, ``und``, ``expiry`` (days), ``is_call``.
    """

    frame: pl.DataFrame
    sessions: tuple[date, ...]
    day_start: np.ndarray
    underlyings: tuple[str, ...]
    und_price: np.ndarray
    cols: dict[str, np.ndarray]

    @classmethod
    def from_frame(cls, chains: pl.DataFrame) -> ChainArchive:
        """Validate, sort (only when needed) and index an archive with the :data:`CHAIN_COLUMNS`.

        An archive already ordered by session then OCC symbol (one underlying) needs no sort;
        otherwise one ``lexsort`` and gather put it in order.
        """
        missing = [c for c in CHAIN_COLUMNS if c not in chains.columns]
        if missing:
            raise ValueError(f"chain archive lacks columns {missing}")
        if chains.height == 0:
            raise ValueError("chain archive is empty")
        frame = chains
        if frame.schema["session"] != pl.Date or frame.schema["expiry"] != pl.Date:
            frame = frame.with_columns(
                pl.col("session").cast(pl.Date), pl.col("expiry").cast(pl.Date)
            )
        underlyings = tuple(sorted(frame.get_column("underlying").unique().to_list()))
        if len(underlyings) >= _MAX_UNDERLYINGS:
            raise ValueError(f"at most {_MAX_UNDERLYINGS - 1} underlyings per archive")
        session, key, und, expiry, put = _keys(frame, underlyings)
        step = np.diff(session)
        if not np.all((step > 0) | ((step == 0) & (np.diff(key) > 0))):
            order = np.lexsort((key, session))
            frame, session, key = frame[order], session[order], key[order]
            und, expiry, put = und[order], expiry[order], put[order]
            step = np.diff(session)
            if np.any((step == 0) & (np.diff(key) == 0)):
                raise ValueError("chain archive has duplicate contracts within a session")
        cols = {"key": key, "und": und, "expiry": expiry, "is_call": ~put}
        return cls._index(frame, underlyings, session, cols)

    @classmethod
    def _index(
        cls,
        frame: pl.DataFrame,
        underlyings: tuple[str, ...],
        session: np.ndarray,
        cols: dict[str, np.ndarray],
    ) -> ChainArchive:
        boundaries = np.flatnonzero(np.diff(session)) + 1
        day_start = np.concatenate(([0], boundaries, [frame.height])).astype(np.int64)
        for name in CHAIN_FLOAT_COLUMNS:  # zero-copy for null-free Float64; nulls become NaN
            series = frame.get_column(name)
            cols[name] = np.asarray(series.to_numpy(), dtype=np.float64)
        und = cols["und"]
        und_price = np.full((day_start.size - 1, len(underlyings)), np.nan)
        firsts = np.concatenate(([0], np.flatnonzero(np.diff(und) != 0) + 1))
        firsts = np.union1d(firsts, day_start[:-1])
        day_of_row = np.searchsorted(day_start, firsts, side="right") - 1
        und_price[day_of_row, und[firsts]] = cols["underlying_price"][firsts]
        sessions = tuple(frame.get_column("session").gather(day_start[:-1]).to_list())
        return cls(frame, sessions, day_start, underlyings, und_price, cols)

    def __len__(self) -> int:
        return len(self.sessions)

    def find(self, day: int, key: int) -> int:
        """Row of ``key`` in session ``day``, or -1 when the contract is not quoted that day."""
        start, stop = self.day_start[day], self.day_start[day + 1]
        keys = self.cols["key"][start:stop]
        j = int(np.searchsorted(keys, key))
        return int(start + j) if j < keys.size and keys[j] == key else -1

    def find_symbol(self, day: int, symbol: str) -> int:
        """Row of contract ``symbol`` in session ``day``, or -1."""
        start, stop = int(self.day_start[day]), int(self.day_start[day + 1])
        contracts = self.frame.get_column("contract").slice(start, stop - start)
        hits = np.flatnonzero((contracts == symbol).to_numpy())  # faster than index_of here
        return -1 if hits.size == 0 else start + int(hits[0])

    def chains(self, day: int) -> dict[str, pl.DataFrame]:
        """Session ``day``'s chain per underlying (zero-copy slices of :attr:`frame`)."""
        start, stop = int(self.day_start[day]), int(self.day_start[day + 1])
        if len(self.underlyings) == 1:
            return {self.underlyings[0]: self.frame.slice(start, stop - start)}
        und = self.cols["und"][start:stop]
        edges = np.searchsorted(und, np.arange(len(self.underlyings) + 1))
        return {
            name: self.frame.slice(start + int(a), int(b - a))
            for name, a, b in zip(self.underlyings, edges[:-1], edges[1:], strict=True)
            if b > a
        }


def _keys(frame: pl.DataFrame, underlyings: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """Per-row session day number, packed key, underlying code, expiry day number, put flag."""
    session = frame.get_column("session").cast(pl.Int32).to_numpy().astype(np.int64)
    if len(underlyings) == 1:
        und = np.zeros(frame.height, dtype=np.int64)
    else:
        codes = {u: i for i, u in enumerate(underlyings)}
        und = frame.get_column("underlying").replace_strict(codes, return_dtype=pl.Int64).to_numpy()
    expiry = frame.get_column("expiry").cast(pl.Int32).to_numpy()
    right = frame.get_column("right")
    put = (right == "P").to_numpy()
    if not np.all(put | (right == "C").to_numpy()):
        raise ValueError("right must hold only 'C' and 'P'")
    strike = np.rint(frame.get_column("strike").cast(pl.Float64).to_numpy() * 1000).astype(np.int64)
    key = ((und << _EXPIRY_BITS) + expiry) * 2 + put
    return session, (key << _STRIKE_BITS) + strike, und, expiry, put


def bars_from_chains(archive: ChainArchive) -> pl.DataFrame:
    """Daily bars (close = underlying price, volume 0) derived from the archive itself."""
    rows = np.argwhere(np.isfinite(archive.und_price))
    sessions = pl.Series("session", archive.sessions, dtype=pl.Date).gather(rows[:, 0])
    close = archive.und_price[rows[:, 0], rows[:, 1]]
    return pl.DataFrame(
        {
            "session": sessions,
            "symbol": [archive.underlyings[j] for j in rows[:, 1]],
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": np.zeros(close.size),
        }
    )
