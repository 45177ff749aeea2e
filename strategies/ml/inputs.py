"""What ``gbm_signal`` reads beyond closes under feature set ``v2``, in its two forms.

- Vectorized (training, backtests): :class:`MLInputs`, the closes ``(sessions, symbols)`` with the
  volumes and the vol-surface features on the same grid; :func:`vol_matrix` lays a
  :func:`~strategies.options.vol_features.vol_feature_frame` (what the options sweeps load from
  the lake) on that grid, NaN where the frame has no row for a (session, underlying).
- One decision: :func:`snapshot_columns` takes the same numbers from a
  :class:`~strategies.models.MarketSnapshot` (history's volumes, ``vol_features[symbol]`` when
  they are of the snapshot's session, else NaN), so row ``t`` of both forms is identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from strategies.ml.features import VOL_FEATURES
from strategies.models import MarketSnapshot


@dataclass(frozen=True)
class MLInputs:
    """Closes, volumes and vol-surface features of the traded symbols on one session grid.

    Attributes:
        close: ``(sessions, symbols)`` float64.
        volume: ``(sessions, symbols)`` float64, or None (the volume feature is then NaN).
        vol: ``(sessions, symbols, len(VOL_FEATURES))`` float64, or None (all NaN).
    """

    close: np.ndarray
    volume: np.ndarray | None = None
    vol: np.ndarray | None = None

    def __post_init__(self) -> None:
        shape = np.shape(self.close)
        if len(shape) != 2:
            raise ValueError(f"MLInputs.close must be (sessions, symbols), got shape {shape}")
        if self.volume is not None and np.shape(self.volume) != shape:
            raise ValueError(f"MLInputs.volume has shape {np.shape(self.volume)}, close {shape}")
        if self.vol is not None and np.shape(self.vol) != (*shape, len(VOL_FEATURES)):
            raise ValueError(
                f"MLInputs.vol has shape {np.shape(self.vol)}, need "
                f"{(*shape, len(VOL_FEATURES))} (close's grid x VOL_FEATURES)"
            )

    def column(self, j: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Symbol ``j``'s closes, volumes and vol features (contiguous)."""
        volume = None if self.volume is None else np.ascontiguousarray(self.volume[:, j])
        vol = None if self.vol is None else np.ascontiguousarray(self.vol[:, j, :])
        return np.ascontiguousarray(self.close[:, j]), volume, vol


def vol_matrix(
    frame: pl.DataFrame | None, sessions: Sequence[date], symbols: Sequence[str]
) -> np.ndarray:
    """``(sessions, symbols, len(VOL_FEATURES))``: the frame's row of each (session, underlying)
    (NaN where it has none; None or an empty frame: all NaN)."""
    out = np.full((len(sessions), len(symbols), len(VOL_FEATURES)), np.nan)
    if frame is None or frame.is_empty():
        return out
    row = {s: i for i, s in enumerate(sessions)}
    col = {s: j for j, s in enumerate(symbols)}
    picked = frame.select("underlying", pl.col("session").cast(pl.Date), *VOL_FEATURES)
    for underlying, session, *values in picked.iter_rows():
        i, j = row.get(session), col.get(underlying)
        if i is not None and j is not None:
            out[i, j] = [np.nan if v is None else v for v in values]
    return out


def snapshot_columns(
    snapshot: MarketSnapshot, symbol: str, bars: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(volume, vol)`` of ``symbol`` for the ``bars`` rows of ``snapshot.close_array(symbol)``:
    the history's volumes, and a vol matrix whose last row is ``vol_features[symbol]`` when
    they are of the snapshot's session (every other row, and a missing surface, NaN)."""
    rows = snapshot.history.filter(pl.col("symbol") == symbol).sort("session")
    volume = np.full(bars, np.nan)
    if "volume" in rows.columns and rows.height == bars:
        volume = rows.get_column("volume").cast(pl.Float64).fill_null(np.nan).to_numpy()
    vol = np.full((bars, len(VOL_FEATURES)), np.nan)
    feats = snapshot.vol_features.get(symbol)
    last = rows.get_column("session")[-1] if rows.height else None
    if feats is not None and feats.session == snapshot.session == last:
        vol[-1] = [float(getattr(feats, name)) for name in VOL_FEATURES]
    return np.ascontiguousarray(volume, dtype=np.float64), vol
