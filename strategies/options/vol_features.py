"""Vol-surface features a strategy decides on, with one definition for decisions and sweeps.

The lake's ``vol_surface`` table (one row per underlying, session and expiry; the per-underlying
columns repeated on each row) plus daily closes and the chain's volume and open interest give,
per underlying and session, a :class:`VolSurfaceFeatures`:

- ``iv_rank`` / ``iv_percentile``: the surface's rank and percentile of the 30-day ATM vol
  over its trailing window (fractions; NaN while the lake flags ``short_history``);
- ``atm_iv_30d`` / ``60d`` / ``90d``: constant-maturity ATM vols; ``term_slope`` =
  ``atm_iv_90d - atm_iv_30d`` (vol per 60 days; positive = contango), ``contango`` its sign;
- ``rr25`` / ``bf25``: the 30-day 25-delta risk reversal and butterfly;
- ``realized_vol``: annualized close-to-close vol of the last ``rv_window`` log returns
  (:func:`window_vol`), and ``iv_rv_premium`` = ``atm_iv_30d -
  realized_vol`` (the variance risk premium a premium seller harvests);
- ``put_call_volume`` / ``put_call_oi``: put over call contract volume and open interest.

:func:`vol_feature_frame` computes them for every session at once (the vectorized form sweeps
use). :func:`vol_features_asof` computes one session from inputs cut at that session (what the
live runner puts in ``MarketSnapshot.vol_features``); it runs the same frame function on the
cut inputs, and tests prove the two agree on every session and that a session's values never
change when later sessions are added. Missing inputs give NaN, never an older session's value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import date

import numpy as np
import polars as pl

RV_WINDOW = 20
NAN = float("nan")
_SURFACE = ("iv_rank", "iv_percentile", "atm_iv_30d", "atm_iv_60d", "atm_iv_90d")
_SURFACE_COLUMNS = (*_SURFACE, "rr25_30d", "bf25_30d")


@dataclass(frozen=True, slots=True)
class VolSurfaceFeatures:
    """Vol-surface features of one underlying as of one session (NaN where unavailable).

    Attributes:
        underlying: Underlying symbol.
        session: The session the features describe (never after the decision's).
        iv_rank: IV rank of the 30-day ATM vol in its trailing window, in [0, 1].
        iv_percentile: Share of prior sessions with a lower 30-day ATM vol, in [0, 1].
        atm_iv_30d: 30-day constant-maturity ATM implied vol.
        atm_iv_60d: 60-day constant-maturity ATM implied vol.
        atm_iv_90d: 90-day constant-maturity ATM implied vol.
        term_slope: ``atm_iv_90d - atm_iv_30d`` (positive: contango).
        contango: ``term_slope > 0`` (False when the slope is unknown).
        rr25: 30-day 25-delta risk reversal (call vol - put vol; negative with put skew).
        bf25: 30-day 25-delta butterfly (wing average minus ATM).
        realized_vol: Annualized realized vol of the last ``rv_window`` daily log returns.
        iv_rv_premium: ``atm_iv_30d - realized_vol``.
        put_call_volume: Put contract volume over call contract volume.
        put_call_oi: Put open interest over call open interest.
    """

    underlying: str
    session: date
    iv_rank: float = NAN
    iv_percentile: float = NAN
    atm_iv_30d: float = NAN
    atm_iv_60d: float = NAN
    atm_iv_90d: float = NAN
    term_slope: float = NAN
    contango: bool = False
    rr25: float = NAN
    bf25: float = NAN
    realized_vol: float = NAN
    iv_rv_premium: float = NAN
    put_call_volume: float = NAN
    put_call_oi: float = NAN


FEATURE_COLUMNS = tuple(f.name for f in fields(VolSurfaceFeatures))
_FLOATS = tuple(c for c in FEATURE_COLUMNS if c not in ("underlying", "session", "contango"))
FEATURE_SCHEMA: dict[str, pl.DataType] = {
    "underlying": pl.String(),
    "session": pl.Date(),
    **{c: pl.Float64() for c in _FLOATS},
    "contango": pl.Boolean(),
}


def _surface_rows(surface: pl.DataFrame) -> pl.DataFrame:
    """One row per (underlying, session): the surface's per-underlying columns."""
    missing = [c for c in ("underlying", "session", *_SURFACE_COLUMNS) if c not in surface.columns]
    if missing:
        raise ValueError(
            f"vol_surface frame lacks columns {missing}; pass the lake's vol_surface table "
            "(re-materialize vol_surface if it predates them)"
        )
    return (
        surface.select("underlying", pl.col("session").cast(pl.Date), *_SURFACE_COLUMNS)
        .unique(["underlying", "session"], keep="first", maintain_order=True)
        .rename({"rr25_30d": "rr25", "bf25_30d": "bf25"})
    )


def window_vol(close: np.ndarray, window: int) -> np.ndarray:
    """Annualized sample std (ddof 1) of the last ``window`` daily log returns at each close
    (NaN for the first ``window`` closes), each window computed on its own values only, so a
    value never depends on how much history precedes it (the live snapshot holds 260
    sessions, a sweep all of them). Same definition as
    :func:`strategies.indicators.realized_vol`; tests compare the two."""
    out = np.full(close.shape[0], np.nan)
    if close.shape[0] > window:
        returns = np.diff(np.log(close))
        windows = np.lib.stride_tricks.sliding_window_view(returns, window)
        out[window:] = windows.std(axis=1, ddof=1) * math.sqrt(252.0)
    return out


def _realized(bars: pl.DataFrame | None, window: int) -> pl.DataFrame:
    schema = {"underlying": pl.String(), "session": pl.Date(), "realized_vol": pl.Float64()}
    if window < 2:
        raise ValueError(f"rv_window must be >= 2, got {window}")
    if bars is None or bars.is_empty():
        return pl.DataFrame(schema=schema)
    frames = []
    closes = bars.select(
        pl.col("symbol").alias("underlying"), pl.col("session").cast(pl.Date), "close"
    ).sort("underlying", "session")
    for (_,), group in closes.group_by(["underlying"], maintain_order=True):
        rv = window_vol(group.get_column("close").cast(pl.Float64).to_numpy(), window)
        frames.append(group.with_columns(pl.Series("realized_vol", rv)))
    return pl.concat(frames).select(list(schema)).cast(schema)  # type: ignore[arg-type]


def option_flow(chains: pl.DataFrame | None) -> pl.DataFrame:
    """Put/call ratios of contract volume and open interest per (underlying, session).

    A chain without ``volume`` / ``open_interest`` columns (the engine's archive layout) gives
    no rows; a zero or missing call side gives NaN."""
    schema = {
        "underlying": pl.String(),
        "session": pl.Date(),
        "put_call_volume": pl.Float64(),
        "put_call_oi": pl.Float64(),
    }
    if chains is None or not {"right", "volume", "open_interest"} <= set(chains.columns):
        return pl.DataFrame(schema=schema)
    put, call = pl.col("right") == "P", pl.col("right") == "C"

    def ratio(col: str) -> pl.Expr:
        x = pl.col(col).cast(pl.Float64).fill_null(0.0)
        p, c = x.filter(put).sum(), x.filter(call).sum()
        return pl.when(c > 0).then(p / c).otherwise(None).alias(f"put_call_{col}")

    return (
        chains.with_columns(pl.col("session").cast(pl.Date))
        .group_by("underlying", "session")
        .agg(ratio("volume"), ratio("open_interest"))
        .rename({"put_call_open_interest": "put_call_oi"})
        .select(list(schema))
    )


def vol_feature_frame(
    surface: pl.DataFrame,
    bars: pl.DataFrame | None = None,
    chains: pl.DataFrame | None = None,
    rv_window: int = RV_WINDOW,
) -> pl.DataFrame:
    """Features of every (underlying, session) the surface has, in :data:`FEATURE_SCHEMA`.

    Args:
        surface: The lake's ``vol_surface`` rows (any sessions and underlyings).
        bars: Daily bars (``session``, ``symbol``, ``close``) for realized vol; None: NaN.
        chains: Option chains with ``right``, ``volume``, ``open_interest`` for the put/call
            ratios; None or another layout: NaN.
        rv_window: Log returns in the realized-vol window (>= 2).

    Returns:
        One row per (underlying, session), sorted; nulls stored as NaN.
    """
    frame = (
        _surface_rows(surface)
        .join(_realized(bars, rv_window), on=["underlying", "session"], how="left")
        .join(option_flow(chains), on=["underlying", "session"], how="left")
        .with_columns(pl.col(c).cast(pl.Float64) for c in (*_SURFACE, "rr25", "bf25"))
        .with_columns(
            (pl.col("atm_iv_90d") - pl.col("atm_iv_30d")).alias("term_slope"),
            (pl.col("atm_iv_30d") - pl.col("realized_vol")).alias("iv_rv_premium"),
        )
        .with_columns(
            # polars orders NaN above every number: test it apart
            ((pl.col("term_slope") > 0) & pl.col("term_slope").is_not_nan())
            .fill_null(False)
            .alias("contango"),
            pl.col(_FLOATS).fill_null(NAN),
        )
    )
    return frame.select(list(FEATURE_SCHEMA)).cast(FEATURE_SCHEMA).sort("underlying", "session")  # type: ignore[arg-type]


def features_by_session(frame: pl.DataFrame) -> dict[date, dict[str, VolSurfaceFeatures]]:
    """A feature frame as ``{session: {underlying: VolSurfaceFeatures}}`` (the stepped
    backtest's per-session lookup)."""
    out: dict[date, dict[str, VolSurfaceFeatures]] = {}
    for row in frame.select(FEATURE_COLUMNS).iter_rows(named=True):
        out.setdefault(row["session"], {})[row["underlying"]] = VolSurfaceFeatures(**row)
    return out


def vol_features_asof(
    session: date,
    surface: pl.DataFrame | None,
    bars: pl.DataFrame | None = None,
    chains: pl.DataFrame | None = None,
    rv_window: int = RV_WINDOW,
) -> dict[str, VolSurfaceFeatures]:
    """Features of each underlying on ``session`` from inputs cut at ``session`` (the
    snapshot's form): nothing after it is read, and an underlying without a surface row on
    ``session`` has no entry (never an older session's features)."""
    if surface is None or surface.is_empty():
        return {}
    on_day = pl.col("session").cast(pl.Date) == session
    cut_bars = None
    if bars is not None:
        cut_bars = bars.filter(pl.col("session").cast(pl.Date) <= session)
    cut_chains = None if chains is None else chains.filter(on_day)
    frame = vol_feature_frame(surface.filter(on_day), cut_bars, cut_chains, rv_window)
    return features_by_session(frame).get(session, {})


def finite(x: float) -> bool:
    """``x`` is a finite number (a known feature)."""
    return math.isfinite(x)
