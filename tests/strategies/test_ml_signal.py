"""The ML signal family: features against pandas, no look-ahead (hypothesis), labels by hand,
the hash-bound predictor, and decide() at bar t equal to the vectorized signal at row t."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.base import get_strategy_class
from strategies.equity.signal import signal_families
from strategies.ml import (
    FEATURE_NAMES,
    LOOKBACK,
    GBMSignal,
    GBMSignalConfig,
    ModelNotBoundError,
    bind_model,
    features,
    labels,
    unbind_model,
)
from strategies.models import NEW_YORK, Book, MarketSnapshot, Position, Side

SHA = hashlib.sha256(b"toy model").hexdigest()


def _close(n: int, seed: int = 3) -> np.ndarray:
    return 100 * np.random.default_rng(seed).lognormal(0.0003, 0.015, n).cumprod()


def _toy(x: np.ndarray) -> np.ndarray:
    """A deterministic stand-in model: P(up) rises with 5-day momentum, falls with RSI."""
    return 1.0 / (1.0 + np.exp(-(20.0 * x[:, 1] - 0.03 * (x[:, 4] - 50.0))))


@pytest.fixture
def bound() -> object:
    bind_model(SHA, _toy)
    yield
    unbind_model(SHA)


def test_features_match_pandas() -> None:
    close = _close(300)
    s = pd.Series(close)
    x = features(close)
    assert x.shape == (300, len(FEATURE_NAMES))
    for col, k in zip(range(4), (1, 5, 21, 63), strict=True):
        np.testing.assert_allclose(x[:, col], s.pct_change(k).to_numpy(), rtol=1e-12)
    d = s.diff()
    gain = d.clip(lower=0).rolling(14).mean()
    loss = (-d).clip(lower=0).rolling(14).mean()
    np.testing.assert_allclose(x[:, 4], (100 * gain / (gain + loss)).to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(x[:, 5], (s / s.rolling(20).mean() - 1).to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(x[:, 6], (s / s.rolling(50).mean() - 1).to_numpy(), rtol=1e-10)
    vol = np.log(s).diff().rolling(21).std() * np.sqrt(252)
    np.testing.assert_allclose(x[:, 7], vol.to_numpy(), rtol=1e-10)
    assert np.isfinite(x[LOOKBACK]).all() and not np.isfinite(x[LOOKBACK - 1]).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(70, 200), st.integers(1, 60), st.integers(0, 10_000))
def test_adding_data_after_t_never_changes_features_at_t(n: int, extra: int, seed: int) -> None:
    full = _close(n + extra, seed)
    np.testing.assert_array_equal(features(full[:n]), features(full)[:n])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 60), st.integers(0, 10_000))
def test_a_row_depends_only_on_its_window(cut: int, seed: int) -> None:
    """What live needs: a shorter history (the snapshot's window) gives the same last rows."""
    full = _close(200, seed)
    np.testing.assert_array_equal(features(full[cut:])[-50:], features(full)[-50:])


def test_labels_by_hand() -> None:
    y, known = labels(np.array([10, 11, 10.5, 10.5, 12.0]), 2)
    assert known.tolist() == [True, True, True, False, False]
    assert y[:3].tolist() == [1.0, 0.0, 1.0]  # 10.5 > 10, 10.5 < 11, 12 > 10.5
    with pytest.raises(ValueError, match="horizon"):
        labels(np.ones(5), 0)


def test_family_is_registered_but_not_swept() -> None:
    assert get_strategy_class("gbm_signal") is GBMSignal
    assert "gbm_signal" not in signal_families()


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="model_sha256 must be 64"):
        GBMSignalConfig(model_sha256="abc")
    with pytest.raises(ValueError, match="feature_set 'v0'"):
        GBMSignalConfig(feature_set="v0")
    with pytest.raises(ValueError, match="leave < enter"):
        GBMSignalConfig(enter=0.5, leave=0.5)


def test_unbound_model_is_a_clear_error() -> None:
    strategy = GBMSignal(GBMSignalConfig(model_name="m", model_version="7", model_sha256=SHA))
    with pytest.raises(ModelNotBoundError, match="model m v7 .* not bound"):
        strategy.signals(_close(100))


def _snapshot(close: np.ndarray) -> MarketSnapshot:
    sessions = [date(2024, 1, 1) + timedelta(days=k) for k in range(close.size)]
    bars = pl.DataFrame(
        {"session": sessions, "symbol": "A", "open": close, "high": close, "low": close,
         "close": close, "volume": 1.0}
    )  # fmt: skip
    ts = datetime.combine(sessions[-1], datetime.min.time(), NEW_YORK)
    return MarketSnapshot(ts, sessions[-1], {"A": float(close[-1])}, bars)


@pytest.mark.usefixtures("bound")
def test_decide_at_t_equals_the_vectorized_signal_at_row_t() -> None:
    close = _close(260, seed=11)
    config = GBMSignalConfig(symbols=("A",), model_sha256=SHA, enter=0.6, leave=0.4)
    strategy = GBMSignal(config)
    entries, exits = strategy.signals(close)
    assert entries.sum() > 5 and exits.sum() > 5 and not entries[:LOOKBACK].any()
    flat, long_ = Book.build(10_000.0), Book.build(10_000.0, (Position("A", 10, 100.0, 100.0),))
    for t in range(LOOKBACK, close.size):
        window = close[max(0, t - 100) : t + 1]  # a live snapshot holds a window of history
        buys = strategy.decide(_snapshot(window), flat)
        sells = strategy.decide(_snapshot(window), long_)
        assert bool(buys) == bool(entries[t] and not exits[t]), t
        assert bool(sells) == bool(exits[t] and not entries[t]), t
        if sells:
            assert sells[0].legs[0].side is Side.SELL and sells[0].qty == 10
