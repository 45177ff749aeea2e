"""``gbm_signal``: long when a trained gradient-boosting model's probability of a positive
forward return is high, flat when it is low.

The config names the model three ways: ``model_name`` and ``model_version`` (where the live loader
fetches it, ``models:/<name>/<version>``) and ``model_sha256`` (what it must hash to; the one key
the strategy looks its predictor up by, see :mod:`strategies.ml.registry`). The family is
registered for manifests and the live runner but not swept (``sweep = False``): its parameters
come from a training run, not from a grid.

``feature_set`` selects the features (:mod:`strategies.ml.features`): ``v1`` reads closes only,
``v2`` also the volumes and the underlying's vol surface, so its vectorized form takes
:class:`~strategies.ml.inputs.MLInputs` and ``decide()`` reads ``snapshot.vol_features``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from strategies.base import Param, ParamSpace, register_strategy
from strategies.equity.signal import SignalStrategy, check_allocation, check_symbols, like
from strategies.ml.features import (
    FEATURE_SET_VERSION,
    LOOKBACK,
    check_feature_set,
    complete_rows,
    feature_matrix,
)
from strategies.ml.inputs import MLInputs, snapshot_columns
from strategies.ml.registry import bound_predictor, check_sha256
from strategies.models import MarketSnapshot


@dataclass(frozen=True, slots=True)
class GBMSignalConfig:
    """Config of :class:`GBMSignal`.

    Attributes:
        symbols: Traded symbols.
        model_name: Registered model name (MLflow Model Registry).
        model_version: Registered model version, e.g. ``"3"``.
        model_sha256: sha256 of the model's serialized bytes; ``""`` only in the unbound default.
        feature_set: Feature set the model was trained on (``"v1"`` or ``"v2"``).
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
        check_feature_set(self.feature_set)
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

    def probabilities(
        self,
        close: np.ndarray,
        volume: np.ndarray | None = None,
        vol: np.ndarray | None = None,
        last_only: bool = False,
    ) -> np.ndarray:
        """P(up) per bar of one symbol (NaN where the close features are incomplete); ``v2``
        also reads its ``volume`` and ``vol`` features (None: NaN). ``last_only`` scores the
        last bar alone (the others NaN; a row's value never depends on the other rows).

        Raises:
            ModelNotBoundError: The configured model is not bound in this process.
        """
        predict = bound_predictor(self.config.model_sha256, self.config.model_label)
        x = feature_matrix(self.config.feature_set, close, volume, vol)
        ok = complete_rows(x)
        if last_only:
            ok[:-1] = False
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

    def _thresholds(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore"):
            return p > self.config.enter, p < self.config.leave

    def column_signals(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Enter above ``enter``, exit below ``leave`` (never on incomplete features); ``v2``
        on closes alone has NaN volume and vol-surface features (:meth:`signals` with
        :class:`~strategies.ml.inputs.MLInputs` gives it the real ones)."""
        return self._thresholds(self.probabilities(close))

    def signals(self, close: Any) -> tuple[Any, Any]:
        """Vectorized entries/exits of closes (as every signal family) or of
        :class:`~strategies.ml.inputs.MLInputs` (2-D arrays; ``v2`` reads its volumes and
        vol-surface features). Row ``t`` depends only on rows ``<= t``.

        Raises:
            ValueError: ``v2`` given bare closes (its model would score NaN vol features).
        """
        if not isinstance(close, MLInputs):
            if self.config.feature_set != "v1":
                raise ValueError(
                    f"gbm_signal feature_set={self.config.feature_set!r} reads volumes and vol "
                    "surfaces: pass strategies.ml.MLInputs(close, volume, vol_matrix(...)) "
                    "(the ML training pipeline does)"
                )
            return super().signals(close)
        n, k = close.close.shape
        entries = np.zeros((n, k), dtype=np.bool_)
        exits = np.zeros((n, k), dtype=np.bool_)
        for j in range(k):
            entries[:, j], exits[:, j] = self._thresholds(self.probabilities(*close.column(j)))
        return like(entries, close.close), like(exits, close.close)

    def last_signals(
        self, snapshot: MarketSnapshot, symbol: str, close: np.ndarray
    ) -> tuple[bool, bool]:
        """The vectorized signal's last row; ``v2`` with the snapshot's volumes and the
        symbol's ``vol_features`` of the snapshot's session (absent: NaN, as in the frame)."""
        if self.config.feature_set == "v1":
            return super().last_signals(snapshot, symbol, close)
        volume, vol = snapshot_columns(snapshot, symbol, close.size)
        p = self.probabilities(close, volume, vol, last_only=True)[-1:]
        entries, exits = self._thresholds(p)
        return bool(entries[0]), bool(exits[0])
