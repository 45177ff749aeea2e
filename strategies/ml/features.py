"""The ML signal family's features and labels on daily closes: a versioned, documented list.

Every feature at bar ``t`` is a function of the closes in a fixed window ending at ``t`` and of
nothing else (rolling statistics are computed per window, not by running sums or recursions), so

- no look-ahead: data after ``t`` never changes row ``t``;
- a live decision on any history of at least :data:`LOOKBACK` + 1 bars sees the same numbers,
  bit for bit, as the vectorized panel the model was trained and backtested on.

Feature set ``v1`` (:data:`FEATURE_NAMES`, in column order):

=============  ==================================================================
``ret_1``      close[t] / close[t-1] - 1
``ret_5``      close[t] / close[t-5] - 1
``ret_21``     close[t] / close[t-21] - 1
``ret_63``     close[t] / close[t-63] - 1
``rsi_14``     Cutler's RSI (simple means of gains and losses over 14 changes), 0-100
``sma_dist_20``  close[t] / SMA20[t] - 1
``sma_dist_50``  close[t] / SMA50[t] - 1
``vol_21``     annualized std (ddof=1) of the last 21 daily log returns
=============  ==================================================================

Feature set ``v2`` (:data:`FEATURE_NAMES_V2`) is ``v1`` followed by

===================  =============================================================
``volume_ratio_20``  log(volume[t] / mean of the last 20 volumes), NaN without volume
``iv_rank`` ...      the traded underlying's vol-surface features of session ``t``
                     (:data:`VOL_FEATURES`, as
                     :class:`~strategies.options.vol_features.VolSurfaceFeatures` names
                     them): IV rank and percentile, 30/60/90-day ATM vol, term slope,
                     25-delta risk reversal and butterfly, IV minus realized vol, put/call
                     volume and open-interest ratios
===================  =============================================================

The vol-surface columns of row ``t`` are session ``t``'s own (NaN where the lake has no surface
that session, never an older session's: the snapshot's ``vol_features`` rule), so they add no
look-ahead and no dependence on how much history precedes ``t``. A ``v2`` row is scored when its
``v1`` part is complete; the volume and vol-surface columns may be NaN (the model, scikit-learn's
HistGradientBoosting, routes missing values natively).

Labels: ``1`` when the forward ``h``-bar return ``close[t+h] / close[t] - 1`` is positive, else
``0``; the label ends at ``t1 = t + h`` (what purged CV purges on). Pure numpy: no I/O.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FEATURE_SET_VERSION = "v1"
FEATURE_NAMES: tuple[str, ...] = (
    "ret_1",
    "ret_5",
    "ret_21",
    "ret_63",
    "rsi_14",
    "sma_dist_20",
    "sma_dist_50",
    "vol_21",
)
LOOKBACK = 63  # bars before the first complete feature row (ret_63)
# the vol-surface features v2 reads, in column order (VolSurfaceFeatures attribute names)
VOL_FEATURES: tuple[str, ...] = (
    "iv_rank",
    "iv_percentile",
    "atm_iv_30d",
    "atm_iv_60d",
    "atm_iv_90d",
    "term_slope",
    "rr25",
    "bf25",
    "iv_rv_premium",
    "put_call_volume",
    "put_call_oi",
)
VOLUME_WINDOW = 20
FEATURE_NAMES_V2: tuple[str, ...] = (*FEATURE_NAMES, "volume_ratio_20", *VOL_FEATURES)
FEATURE_SETS: dict[str, tuple[str, ...]] = {"v1": FEATURE_NAMES, "v2": FEATURE_NAMES_V2}


def check_feature_set(feature_set: str) -> tuple[str, ...]:
    """The feature names of ``feature_set``; ValueError naming the known sets otherwise."""
    names = FEATURE_SETS.get(feature_set)
    if names is None:
        raise ValueError(
            f"feature_set {feature_set!r} is not one of this code's {sorted(FEATURE_SETS)}; "
            "retrain the model on the current features"
        )
    return names


def _windowed(x: np.ndarray, window: int, how: str) -> np.ndarray:
    """Per-window mean or std (ddof=1) aligned at the window's last bar (NaN before)."""
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] >= window:
        view = sliding_window_view(x, window)
        out[window - 1 :] = view.mean(axis=1) if how == "mean" else view.std(axis=1, ddof=1)
    return out


def _ret(close: np.ndarray, k: int) -> np.ndarray:
    out = np.full(close.shape[0], np.nan)
    out[k:] = close[k:] / close[:-k] - 1.0
    return out


def _rsi(close: np.ndarray, n: int) -> np.ndarray:
    diff = np.full(close.shape[0], np.nan)
    diff[1:] = np.diff(close)
    gain = _windowed(np.where(diff > 0, diff, 0.0), n, "mean")
    loss = _windowed(np.where(diff < 0, -diff, 0.0), n, "mean")
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = np.where(total > 0, 100.0 * gain / total, 50.0)
    rsi[:n] = np.nan  # the first window includes the undefined change at bar 0
    return rsi


def features(close: np.ndarray) -> np.ndarray:
    """Feature matrix ``(bars, len(FEATURE_NAMES))`` of one close series (NaN while a window is
    incomplete or a close is missing/non-positive)."""
    c = np.asarray(close, dtype=np.float64)
    if c.ndim != 1:
        raise ValueError(f"features take one close series, got {c.ndim} dimensions")
    c = np.where(c > 0, c, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        logret = np.full(c.shape[0], np.nan)
        logret[1:] = np.log(c[1:] / c[:-1])
        cols = [
            _ret(c, 1),
            _ret(c, 5),
            _ret(c, 21),
            _ret(c, 63),
            _rsi(c, 14),
            c / _windowed(c, 20, "mean") - 1.0,
            c / _windowed(c, 50, "mean") - 1.0,
            _windowed(logret, 21, "std") * np.sqrt(252.0),
        ]
    return np.column_stack(cols)


def volume_ratio(volume: np.ndarray | None, bars: int) -> np.ndarray:
    """``log(volume[t] / mean(volume[t-19..t]))`` (NaN while the window is incomplete or holds
    a missing or non-positive volume; all NaN when ``volume`` is None)."""
    if volume is None:
        return np.full(bars, np.nan)
    v = np.asarray(volume, dtype=np.float64)
    if v.shape != (bars,):
        raise ValueError(f"volume has shape {v.shape}, the closes ({bars},)")
    v = np.where(v > 0, v, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(v / _windowed(v, VOLUME_WINDOW, "mean"))


def features_v2(
    close: np.ndarray, volume: np.ndarray | None = None, vol: np.ndarray | None = None
) -> np.ndarray:
    """Feature matrix ``(bars, len(FEATURE_NAMES_V2))`` of one symbol: :func:`features` of the
    closes, the volume ratio, and ``vol`` ``(bars, len(VOL_FEATURES))``, row ``t`` = session
    ``t``'s vol-surface features (NaN where none; None: all NaN), copied as they are."""
    x = features(close)
    bars = x.shape[0]
    if vol is None:
        surf = np.full((bars, len(VOL_FEATURES)), np.nan)
    else:
        surf = np.asarray(vol, dtype=np.float64)
        if surf.shape != (bars, len(VOL_FEATURES)):
            raise ValueError(
                f"vol features have shape {surf.shape}, need ({bars}, {len(VOL_FEATURES)}): "
                "one row per close, columns VOL_FEATURES"
            )
    return np.column_stack([x, volume_ratio(volume, bars), surf])


def feature_matrix(
    feature_set: str,
    close: np.ndarray,
    volume: np.ndarray | None = None,
    vol: np.ndarray | None = None,
) -> np.ndarray:
    """The features of ``feature_set`` for one symbol (``v1`` ignores volume and vol)."""
    check_feature_set(feature_set)
    return features(close) if feature_set == "v1" else features_v2(close, volume, vol)


def complete_rows(x: np.ndarray) -> np.ndarray:
    """Rows a model may score: every ``v1`` (close) feature finite; the ``v2`` volume and
    vol-surface columns may be NaN."""
    return np.isfinite(x[:, : len(FEATURE_NAMES)]).all(axis=1)


def labels(close: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """``(label, known)`` of one close series: ``1.0`` when ``close[t+h] > close[t]``, and
    whether the label is known (the last ``horizon`` bars' are not)."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 bar, got {horizon}")
    c = np.asarray(close, dtype=np.float64)
    fwd = np.full(c.shape[0], np.nan)
    fwd[:-horizon] = c[horizon:] / c[:-horizon] - 1.0
    known = np.isfinite(fwd)
    return np.where(known, (fwd > 0).astype(np.float64), np.nan), known
