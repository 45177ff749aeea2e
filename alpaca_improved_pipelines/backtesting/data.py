"""Research inputs from the lake: a close matrix and the content hash of every partition read."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA


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
    keys = [dt.date.fromisoformat(k) for k in storage.existing_sessions(lake, "stock_bars_1d")]
    chosen = [d for d in keys if (start is None or d >= start) and (end is None or d <= end)]
    if not chosen:
        raise ConfigError(
            f"no stock_bars_1d partitions between {start} and {end} in {lake}; "
            "materialize market data first (alpaca-improved backfill)"
        )
    frame = storage.read_partitions(lake, "stock_bars_1d", chosen, BAR_SCHEMA)
    if symbols:
        frame = frame.filter(pl.col("symbol").is_in(symbols))
    wide = frame.pivot(on="symbol", index="session", values="close").sort("session")
    names = sorted(c for c in wide.columns if c != "session")
    if wide.select(names).null_count().sum_horizontal().item() > 0:
        raise ConfigError("some symbols are missing on some sessions; backfill the gaps first")
    versions = {
        f"stock_bars_1d/session={d.isoformat()}": storage.file_sha256(
            storage.partition_path(lake, "stock_bars_1d", d)
        )
        for d in chosen
    }
    return CloseMatrix(chosen, names, wide.select(names).to_numpy().astype(np.float64), versions)
