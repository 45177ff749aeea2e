"""gbm_signal's feature set v2 (v1 + volume + the underlying's vol surface): v1 columns bit for
bit, the vol columns exactly the sweep frame's, no look-ahead (hypothesis), and decide() on a
snapshot whose vol_features come from the live as-of form equal to the vectorized row t, with the
surface present on some sessions and absent on others."""

from __future__ import annotations

import hashlib
from datetime import datetime

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.ml import (
    FEATURE_NAMES,
    FEATURE_NAMES_V2,
    LOOKBACK,
    VOL_FEATURES,
    GBMSignal,
    GBMSignalConfig,
    MLInputs,
    bind_model,
    features,
    features_v2,
    unbind_model,
    vol_matrix,
)
from strategies.models import NEW_YORK, Book, MarketSnapshot, Position
from strategies.options.vol_features import vol_feature_frame, vol_features_asof
from tests.strategies.vol_lake import UNDERLYINGS, vol_lake

N = 180
SURFACE, BARS0, FLOWS = vol_lake(N, seed=5)
VOLUME = np.random.default_rng(1).lognormal(13.0, 0.4, BARS0.height)
BARS = BARS0.sort("symbol", "session").with_columns(volume=pl.Series(VOLUME))
SESSIONS = sorted(BARS.get_column("session").unique().to_list())
FRAME = vol_feature_frame(SURFACE, BARS, FLOWS)
SHA = hashlib.sha256(b"toy v2 model").hexdigest()
K = len(FEATURE_NAMES)


def _wide(column: str) -> np.ndarray:
    wide = BARS.pivot(on="symbol", index="session", values=column).sort("session")
    return wide.select(UNDERLYINGS).to_numpy().astype(np.float64)


CLOSE, VOL_UME = _wide("close"), _wide("volume")
INPUTS = MLInputs(CLOSE, VOL_UME, vol_matrix(FRAME, SESSIONS, UNDERLYINGS))


def _toy(x: np.ndarray) -> np.ndarray:
    """A stand-in model leaning on the vol surface (NaN surface: a different branch, as a
    tree's missing-value routing), momentum and volume."""
    assert x.shape[1] == len(FEATURE_NAMES_V2)
    ivr = x[:, K + 1 + VOL_FEATURES.index("iv_rank")]
    rr = x[:, K + 1 + VOL_FEATURES.index("rr25")]
    pcv = x[:, K + 1 + VOL_FEATURES.index("put_call_volume")]
    z = 10.0 * x[:, 1] + np.where(np.isnan(ivr), -0.4, 2.0 * (ivr - 0.5))
    z += np.where(np.isnan(rr), 0.0, 40.0 * (rr + 0.03)) + np.nan_to_num(0.3 * (pcv - 1.0))
    z += np.nan_to_num(0.5 * x[:, K])
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture
def bound() -> object:
    bind_model(SHA, _toy)
    yield
    unbind_model(SHA)


def test_v2_columns_v1_bit_for_bit_volume_by_pandas_vol_as_the_frame() -> None:
    close, volume, vol = INPUTS.column(0)
    x = features_v2(close, volume, vol)
    assert x.shape == (N, len(FEATURE_NAMES_V2)) and FEATURE_NAMES_V2[:K] == FEATURE_NAMES
    np.testing.assert_array_equal(x[:, :K], features(close))
    v = pd.Series(volume)
    np.testing.assert_allclose(x[:, K], np.log(v / v.rolling(20).mean()).to_numpy(), rtol=1e-12)
    spy = FRAME.filter(pl.col("underlying") == "SPY").sort("session")
    assert spy.height == N
    np.testing.assert_array_equal(x[:, K + 1 :], spy.select(VOL_FEATURES).to_numpy())
    qqq = INPUTS.vol[:, 1, :]  # type: ignore[index]
    missing = ~np.isin(SESSIONS, FRAME.filter(pl.col("underlying") == "QQQ")["session"])
    assert missing.sum() == N // 5 and np.isnan(qqq[missing]).all()
    assert np.isfinite(qqq[~missing][:, VOL_FEATURES.index("rr25")]).all()


def test_no_surface_or_volume_is_nan_not_an_error() -> None:
    x = features_v2(CLOSE[:, 0])
    assert np.isnan(x[:, K:]).all()
    np.testing.assert_array_equal(x[:, :K], features(CLOSE[:, 0]))
    with pytest.raises(ValueError, match="vol features have shape"):
        features_v2(CLOSE[:, 0], None, np.zeros((N, 3)))
    with pytest.raises(ValueError, match="MLInputs.vol has shape"):
        MLInputs(CLOSE, None, np.zeros((N, 2, 3)))


@settings(max_examples=40, deadline=None)
@given(st.integers(70, 150), st.integers(1, 29), st.integers(0, 1))
def test_adding_sessions_after_t_never_changes_v2_features_at_t(n: int, extra: int, j: int) -> None:
    """The frame computed on sessions <= n-1 only (surface, bars, chains cut there) gives the
    same rows as the full frame: the vol columns are as-of, the close/volume ones windowed."""
    cut = SESSIONS[n - 1]
    short = vol_feature_frame(
        SURFACE.filter(pl.col("session") <= cut),
        BARS.filter(pl.col("session") <= cut),
        FLOWS.filter(pl.col("session") <= cut),
    )
    rows = slice(0, n)
    early = features_v2(
        CLOSE[rows, j], VOL_UME[rows, j], vol_matrix(short, SESSIONS[:n], UNDERLYINGS)[:, j]
    )
    later = slice(0, min(n + extra, N))
    full = features_v2(CLOSE[later, j], VOL_UME[later, j], INPUTS.vol[later, j])  # type: ignore[index]
    np.testing.assert_array_equal(early, full[:n])


def _snapshot(t: int, window: int = 100) -> MarketSnapshot:
    """What the live provider builds at session ``t``'s close: a window of history, and the
    vol features as of that session from inputs cut there (vol_features_asof)."""
    s = SESSIONS[t]
    history = BARS.filter(pl.col("session").is_between(SESSIONS[max(0, t - window)], s))
    vol = vol_features_asof(s, SURFACE.filter(pl.col("session") <= s), history, FLOWS)
    prices = dict(history.filter(pl.col("session") == s).select("symbol", "close").iter_rows())
    ts = datetime.combine(s, datetime.min.time(), NEW_YORK).replace(hour=16)
    return MarketSnapshot(ts, s, prices, history, vol_features=vol)


@pytest.mark.usefixtures("bound")
def test_decide_at_t_equals_the_vectorized_v2_signal_at_row_t() -> None:
    config = GBMSignalConfig(
        symbols=UNDERLYINGS, model_sha256=SHA, feature_set="v2", enter=0.6, leave=0.4
    )
    strategy = GBMSignal(config)
    entries, exits = strategy.signals(INPUTS)
    assert entries.shape == (N, 2) and not entries[:LOOKBACK].any()
    assert entries.sum() > 10 and exits.sum() > 10
    # the surface matters: without it (NaN) the signals differ on many rows
    bare = MLInputs(CLOSE, VOL_UME, None)
    assert (strategy.signals(bare)[0] != entries).sum() > 10
    flat = Book.build(100_000.0)
    held = Book.build(100_000.0, tuple(Position(u, 10, 100.0, 100.0) for u in UNDERLYINGS))
    absent = 0
    for t in range(LOOKBACK, N):
        snap = _snapshot(t)
        absent += "QQQ" not in snap.vol_features
        buys = {i.legs[0].symbol for i in strategy.decide(snap, flat)}
        sells = {i.legs[0].symbol for i in strategy.decide(snap, held)}
        for j, u in enumerate(UNDERLYINGS):
            assert (u in buys) == bool(entries[t, j] and not exits[t, j]), (t, u)
            assert (u in sells) == bool(exits[t, j] and not entries[t, j]), (t, u)
    assert absent >= (N - LOOKBACK) // 5 - 1  # QQQ decided without a surface on those


def test_v2_on_bare_closes_is_one_clear_error() -> None:
    strategy = GBMSignal(GBMSignalConfig(model_sha256=SHA, feature_set="v2"))
    with pytest.raises(ValueError, match="feature_set='v2' reads volumes and vol surfaces"):
        strategy.signals(CLOSE)
