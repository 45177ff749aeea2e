"""``gbm_signal``: long when a trained gradient-boosting model's probability of a positive
forward return is high, flat when it is low.

The config names the model three ways: ``model_name`` and ``model_version`` (where the live loader
fetches it, ``models:/<name>/<version>``) and ``model_sha256`` (what it must hash to; the one key
the strategy looks its predictor up by, see :mod:`strategies.ml.registry`). The family is
registered for manifests and the live runner but not swept (``sweep = False``): its parameters
come from a training run, not from a grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strategies.base import Param, ParamSpace, register_strategy
from strategies.equity.signal import SignalStrategy, check_allocation, check_symbols
from strategies.ml.features import FEATURE_SET_VERSION, LOOKBACK, complete_rows, features
from strategies.ml.registry import bound_predictor, check_sha256


@dataclass(frozen=True, slots=True)
class GBMSignalConfig:
    """Config of :class:`GBMSignal`.

    Attributes:
        symbols: Traded symbols.
        model_name: Registered model name (MLflow Model Registry).
        model_version: Registered model version, e.g. ``"3"``.
        model_sha256: sha256 of the model's serialized bytes; ``""`` only in the unbound default.
        feature_set: Feature-set version the model was trained on (must be this code's).
        horizon: Label horizon in bars the model was trained on (recorded, not traded on).
        enter: Enter while P(up) is above this.
        leave: Exit while P(up) is below this; must be < ``enter``.
        allocation: Fraction of equity split across symbols.
    """

    symbols: tuple[str, ...] = ("SPY",)
    model_name: str = "gbm_signal"
    model_version: str = ""
    model_sha256: str = ""
    feature_set: str = FEATURE_SET_VERSION
    horizon: int = 5
    enter: float = 0.55
    leave: float = 0.45
    allocation: float = 1.0

    def __post_init__(self) -> None:
        check_symbols(self.symbols)
        if self.model_sha256:
            check_sha256(self.model_sha256)
        if self.feature_set != FEATURE_SET_VERSION:
            raise ValueError(
                f"feature_set {self.feature_set!r} is not this code's {FEATURE_SET_VERSION!r}; "
                "retrain the model on the current features"
            )
        if self.horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {self.horizon}")
        if not 0.0 <= self.leave < self.enter <= 1.0:
            raise ValueError(f"need 0 <= leave < enter <= 1, got {self.leave}, {self.enter}")
        check_allocation(self.allocation)

    def lookback_bars(self) -> int:
        """Bars before the first complete feature row."""
        return LOOKBACK

    @property
    def model_label(self) -> str:
        """``name v<version>`` for messages."""
        return f"{self.model_name} v{self.model_version or '?'}"


@register_strategy
class GBMSignal(SignalStrategy):
    """Long while a gradient-boosting model's P(positive forward return) is high."""

    name = "gbm_signal"
    config_cls = GBMSignalConfig
    sweep = False  # trained (research.ml), not grid-searched
    __slots__ = ()

    @classmethod
    def param_space(cls) -> ParamSpace:
        """Entry and exit probability thresholds (the model itself is not a parameter)."""
        return ParamSpace(
            (Param("enter", values=(0.5, 0.55, 0.6)), Param("leave", values=(0.4, 0.45, 0.5))),
            GBMSignalConfig,
        )

    def probabilities(self, close: np.ndarray) -> np.ndarray:
        """P(up) per bar of one close series (NaN where the features are incomplete).

        Raises:
            ModelNotBoundError: The configured model is not bound in this process.
        """
        predict = bound_predictor(self.config.model_sha256, self.config.model_label)
        x = features(close)
        ok = complete_rows(x)
        out = np.full(x.shape[0], np.nan)
        if ok.any():
            p = np.asarray(predict(np.ascontiguousarray(x[ok])), dtype=np.float64)
            if p.shape != (int(ok.sum()),):
                raise ValueError(
                    f"model {self.config.model_label} returned shape {p.shape} for "
                    f"{int(ok.sum())} rows; a predictor returns one probability per row"
                )
            out[ok] = p
        return out

    def column_signals(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Enter above ``enter``, exit below ``leave`` (never on incomplete features)."""
        p = self.probabilities(close)
        with np.errstate(invalid="ignore"):
            return p > self.config.enter, p < self.config.leave
