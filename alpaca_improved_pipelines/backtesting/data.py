"""Research inputs from the lake: a close matrix and the content hash of every partition read.

A family's data need follows from its ``timeframe``: daily families get the session closes of
``stock_bars_1d``; minute families (``"1m"``) get ``stock_bars_1m`` on the session minute grid
(:class:`MinuteMatrix`), whose returns the sweep reads at each session's last minute, so
walk-forward, significance and gates see one return per session for every family alike. A daily
family that sweeps an ``intraday_gate`` also gets each session's intraday features from
``stock_bars_1m`` (:class:`GatedCloseMatrix`; a session without minute bars has NaN features,
which close the gate).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from contracts.calendar import session_open_close
from research.timeframes import session_bounds
from strategies.equity.intraday import MinutePanel
from strategies.equity.intraday_gate import DailyInputs
from strategies.indicators.session_features import (
    FEATURE_SCHEMA,
    IntradayFeatureMatrix,
    intraday_feature_frame,
)
from strategies.models import Timeframe


@dataclass(frozen=True)
class CloseMatrix:
    """Daily closes (sessions x symbols) and the data version of each input partition."""

    sessions: list[dt.date]
    symbols: list[str]
    close: np.ndarray  # shape (len(sessions), len(symbols)), float64
    data_versions: dict[str, str]  # "stock_bars_1d/session=YYYY-MM-DD" -> sha256

    @property
    def partition_range(self) -> str:
        return f"{self.sessions[0].isoformat()}..{self.sessions[-1].isoformat()}"

    @property
    def table(self) -> str:
        """The lake table the data came from."""
        return BAR_TABLE["1d"]

    @property
    def signal_input(self) -> object:
        """What the family's ``signals()`` takes: the close matrix."""
        return self.close

    @property
    def session_rows(self) -> np.ndarray:
        """Row of each session's last bar (where a session's return is read)."""
        return np.arange(len(self.sessions))

    @property
    def row_sessions(self) -> list[dt.date]:
        """The session of each row."""
        return self.sessions

    @property
    def row_ts(self) -> np.ndarray | None:
        """Start of each row's bar in ns since the epoch (UTC) for intraday rows, else None."""
        return None


@dataclass(frozen=True)
class MinuteMatrix(CloseMatrix):
    """Minute closes on the session grid (``close`` is the panel's forward-filled close) plus
    the :class:`MinutePanel` the family's ``signals()`` reads."""

    panel: MinutePanel

    @property
    def table(self) -> str:
        return BAR_TABLE["1m"]

    @property
    def signal_input(self) -> object:
        return self.panel

    @property
    def session_rows(self) -> np.ndarray:
        return self.panel.session_last_rows

    @property
    def row_sessions(self) -> list[dt.date]:
        return [self.sessions[i] for i in self.panel.session_index]

    @property
    def row_ts(self) -> np.ndarray | None:
        return self.panel.ts


@dataclass(frozen=True)
class GatedCloseMatrix(CloseMatrix):
    """Daily closes plus each session's intraday features on the same grid (the input of a
    daily family gating on them); ``data_versions`` name the minute partitions read too."""

    intraday: IntradayFeatureMatrix

    @property
    def signal_input(self) -> object:
        return DailyInputs(self.close, self.intraday)

    @property
    def sessions_without_minutes(self) -> int:
        """Sessions with no ``stock_bars_1m`` partition (gated variants never enter on them)."""
        return len(self.sessions) - sum(k.startswith("stock_bars_1m/") for k in self.data_versions)


def with_intraday_features(lake: Path, data: CloseMatrix, batch: int = 20) -> GatedCloseMatrix:
    """``data`` with the intraday features of its sessions from ``stock_bars_1m`` (read
    ``batch`` partitions at a time; sessions without a partition get NaN features)."""
    have = set(storage.existing_sessions(lake, "stock_bars_1m"))
    present = [d for d in data.sessions if d.isoformat() in have]
    frames = []
    for i in range(0, len(present), batch):
        days = present[i : i + batch]
        bars = storage.read_partitions(lake, "stock_bars_1m", days, BAR_SCHEMA)
        bars = bars.filter(pl.col("symbol").is_in(data.symbols))
        frames.append(intraday_feature_frame(bars, session_bounds(days)))
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=FEATURE_SCHEMA)
    matrix = IntradayFeatureMatrix.from_frame(frame, data.sessions, data.symbols)
    versions = {**data.data_versions, **partition_versions(lake, "stock_bars_1m", present)}
    return GatedCloseMatrix(data.sessions, data.symbols, data.close, versions, matrix)


def load_for(
    timeframe: Timeframe,
    lake: Path,
    start: dt.date | None = None,
    end: dt.date | None = None,
    symbols: list[str] | None = None,
) -> CloseMatrix:
    """The research input a family of ``timeframe`` trades on (ValueError for an unknown one)."""
    if timeframe not in _LOADERS:
        raise ValueError(f"no research data for timeframe {timeframe!r}; known: {sorted(_LOADERS)}")
    return _LOADERS[timeframe](lake, start, end, symbols)


def _chosen(lake: Path, table: str, start: dt.date | None, end: dt.date | None) -> list[dt.date]:
    keys = [dt.date.fromisoformat(k) for k in storage.existing_sessions(lake, table)]
    chosen = [d for d in keys if (start is None or d >= start) and (end is None or d <= end)]
    if not chosen:
        raise ConfigError(
            f"no {table} partitions between {start} and {end} in {lake}; "
            "materialize market data first (alpaca-improved backfill)"
        )
    return chosen


def partition_versions(lake: Path, table: str, chosen: list[dt.date]) -> dict[str, str]:
    """``"<table>/session=<d>" -> sha256`` of each chosen partition (the data versions)."""
    return {
        f"{table}/session={d.isoformat()}": storage.digest(
            lake, storage.partition_path(lake, table, d)
        )
        for d in chosen
    }


def load_minutes(
    lake: Path,
    start: dt.date | None = None,
    end: dt.date | None = None,
    symbols: list[str] | None = None,
) -> MinuteMatrix:
    """Minute bars of ``stock_bars_1m`` for every lake session in [start, end] on the session
    minute grid (half days included, from the exchange calendar).

    Raises:
        ConfigError: no sessions in range, or a symbol without a single bar on some session.
    """
    chosen = _chosen(lake, "stock_bars_1m", start, end)
    frame = storage.read_partitions(lake, "stock_bars_1m", chosen, BAR_SCHEMA)
    if symbols:
        frame = frame.filter(pl.col("symbol").is_in(symbols))
    names = sorted(frame.get_column("symbol").unique().to_list())
    per_session = frame.group_by("session").agg(pl.col("symbol").n_unique().alias("n"))
    if per_session.height < len(chosen) or (per_session["n"] < len(names)).any():
        raise ConfigError(
            "some symbols have no stock_bars_1m on some sessions; backfill the gaps first"
        )
    panel = MinutePanel.build(frame, names, [session_open_close(d) for d in chosen])
    versions = partition_versions(lake, "stock_bars_1m", chosen)
    return MinuteMatrix(chosen, names, panel.close, versions, panel)


def load_closes(
    lake: Path,
    start: dt.date | None = None,
    end: dt.date | None = None,
    symbols: list[str] | None = None,
) -> CloseMatrix:
    """Closes of ``stock_bars_1d`` for every lake session in [start, end].

    Raises:
        ConfigError: no sessions in range, or a symbol missing on some session.
    """
    chosen = _chosen(lake, "stock_bars_1d", start, end)
    frame = storage.read_partitions(lake, "stock_bars_1d", chosen, BAR_SCHEMA)
    if symbols:
        frame = frame.filter(pl.col("symbol").is_in(symbols))
    wide = frame.pivot(on="symbol", index="session", values="close").sort("session")
    names = sorted(c for c in wide.columns if c != "session")
    if wide.select(names).null_count().sum_horizontal().item() > 0:
        raise ConfigError("some symbols are missing on some sessions; backfill the gaps first")
    versions = partition_versions(lake, "stock_bars_1d", chosen)
    return CloseMatrix(chosen, names, wide.select(names).to_numpy().astype(np.float64), versions)


# What each Strategy.timeframe trades on: its loader and the lake table it reads.
_LOADERS = {"1d": load_closes, "1m": load_minutes}
BAR_TABLE: dict[str, str] = {"1d": "stock_bars_1d", "1m": "stock_bars_1m"}
