"""An optional intraday gate on daily signal families: enter only after a session whose own
minute bars confirm the move.

A daily family opts in with a config field ``intraday_gate`` (one of :data:`GATES`, ``"off"``
by default, so an ungated variant decides exactly as before) and lists it in its
``param_space``, so sweeps, walk-forward and the gates treat it like any other parameter. The
gate reads the session features of :mod:`strategies.indicators.session_features` of the
decision's own session (the daily decision is taken at its close, so every minute of it is
closed):

- ``above_vwap``: ``vwap_distance > 0``, the session closed above its VWAP;
- ``last_hour_up``: ``last_hour_return > 0``, the last hour rose into the close;
- ``orb_up``: ``orb_breakout > 0``, the close broke above the opening range.

Only entries are gated; exits never are. Missing minute data closes the gate: a session (or
symbol) without minute bars has NaN features, and a new entry needs positive evidence.

The vectorized form reads an :class:`DailyInputs` (daily closes plus the
:class:`~strategies.indicators.session_features.IntradayFeatureMatrix` on the same grid) and
masks row ``t``'s entries with session ``t``'s features; ``decide()`` masks its entry with
``snapshot.intraday_features[symbol]`` when they are of ``snapshot.session`` (any other session's
features close the gate). Both compare one float with one threshold, so they agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strategies.indicators.session_features import IntradayFeatureMatrix
from strategies.models import MarketSnapshot

# gate name -> (feature, threshold): open where feature > threshold (NaN: closed)
GATES: dict[str, tuple[str, float]] = {
    "above_vwap": ("vwap_distance", 0.0),
    "last_hour_up": ("last_hour_return", 0.0),
    "orb_up": ("orb_breakout", 0.0),
}
OFF = "off"


def check_gate(gate: str) -> None:
    """ValueError unless ``gate`` is ``"off"`` or one of :data:`GATES`."""
    if gate != OFF and gate not in GATES:
        raise ValueError(f"intraday_gate must be 'off' or one of {sorted(GATES)}, got {gate!r}")


@dataclass(frozen=True)
class DailyInputs:
    """Daily closes ``(sessions, symbols)`` and the intraday features on the same grid: what a
    daily family's ``signals()`` takes when a variant gates on intraday features."""

    close: np.ndarray
    intraday: IntradayFeatureMatrix

    def __post_init__(self) -> None:
        shape = (len(self.intraday.sessions), len(self.intraday.symbols))
        if np.shape(self.close) != shape:
            raise ValueError(
                f"DailyInputs: close has shape {np.shape(self.close)}, the intraday features "
                f"{shape}; lay both on the same sessions and symbols"
            )


def gate_mask(features: IntradayFeatureMatrix, gate: str) -> np.ndarray:
    """Boolean ``(sessions, symbols)``: where ``gate`` lets an entry through."""
    check_gate(gate)
    name, threshold = GATES[gate]
    return np.asarray(features.values[name] > threshold, dtype=np.bool_)


def gate_open(snapshot: MarketSnapshot, symbol: str, gate: str) -> bool:
    """Whether ``gate`` lets an entry of ``symbol`` through at the snapshot's decision."""
    check_gate(gate)
    feats = snapshot.intraday_features.get(symbol)
    if feats is None or feats.session != snapshot.session:
        return False  # no minute data of the decision's session: closed
    name, threshold = GATES[gate]
    return bool(np.float64(getattr(feats, name)) > threshold)
