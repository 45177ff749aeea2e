"""The ML family's training inputs from the lake for a feature set.

``v1`` reads the close matrix alone. ``v2`` adds each session's volumes (``stock_bars_1d``) and
the vol-surface features of every traded symbol through the reader the options sweeps use
(:func:`~alpaca_improved_pipelines.defs.research.options_backtest.load_vol_features`: the
``vol_surface`` partitions, realized vol from the daily bars, put/call ratios from the
``option_chains`` volumes and open interest), laid on the close matrix's sessions; a session or
symbol the lake has no surface for is NaN. The vol_surface and option_chains partitions of those
sessions join the data versions, so a re-materialized surface is a new data version.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from alpaca_improved_pipelines.backtesting.data import CloseMatrix, partition_versions
from alpaca_improved_pipelines.defs.research.options_backtest import load_vol_features
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from alpaca_improved_pipelines.tracking import repro
from research.ml import Dataset
from strategies.ml import VOL_FEATURES, MLInputs, vol_matrix

SURFACE_TABLES = ("vol_surface", "option_chains")


def ml_inputs(lake: Path, data: CloseMatrix, feature_set: str) -> tuple[object, dict[str, str]]:
    """What ``build_dataset`` and ``GBMSignal.signals()`` take for ``feature_set`` (the close
    matrix for ``v1``, :class:`~strategies.ml.MLInputs` for ``v2``) and the data versions of
    every partition read (``data.data_versions`` plus the surfaces' and chains')."""
    if feature_set == "v1":
        return data.close, dict(data.data_versions)
    bars = storage.read_partitions(lake, "stock_bars_1d", data.sessions, BAR_SCHEMA)
    bars = bars.filter(pl.col("symbol").is_in(data.symbols))
    wide = bars.pivot(on="symbol", index="session", values="volume").sort("session")
    volume = wide.select(data.symbols).cast(pl.Float64).to_numpy()
    frame = load_vol_features(lake, data.symbols, bars)  # every symbol in one read
    vol = vol_matrix(frame, data.sessions, data.symbols)
    versions = {**data.data_versions, **surface_versions(lake, data.sessions)}
    return MLInputs(data.close, volume, vol), versions


def surface_versions(lake: Path, sessions: list[dt.date]) -> dict[str, str]:
    """``"<table>/session=<d>" -> sha256`` of the vol_surface and option_chains partitions the
    sessions have."""
    out: dict[str, str] = {}
    for table in SURFACE_TABLES:
        present = set(storage.existing_sessions(lake, table))
        out |= partition_versions(lake, table, [d for d in sessions if d.isoformat() in present])
    return out


def table_versions(versions: dict[str, str]) -> dict[str, str]:
    """One combined version per lake table read (``stock_bars_1d``; ``v2`` also the surfaces)."""
    tables = sorted({key.split("/", 1)[0] for key in versions})
    return {
        t: repro.combined_version({k: v for k, v in versions.items() if k.startswith(f"{t}/")})
        for t in tables
    }


def example_rows(ds: Dataset, n: int = 5) -> np.ndarray:
    """The model's input example: the first ``n`` samples with every feature known (``v2``
    rows before the lake's first surface are NaN there), else the first ``n``."""
    rows = np.flatnonzero(np.isfinite(ds.x).all(axis=1))[:n]
    return ds.x[rows] if rows.size else ds.x[:n]


def surface_coverage(inputs: object, symbols: list[str]) -> dict[str, float]:
    """Share of sessions with a vol surface (a known 30-day ATM vol) per symbol; empty for
    ``v1`` inputs. A symbol at 0 is outside the option_chains universe: its v2 columns are NaN
    in training and live alike."""
    if not isinstance(inputs, MLInputs) or inputs.vol is None:
        return {}
    known = np.isfinite(inputs.vol[:, :, VOL_FEATURES.index("atm_iv_30d")])
    return {s: round(float(known[:, j].mean()), 4) for j, s in enumerate(symbols)}
