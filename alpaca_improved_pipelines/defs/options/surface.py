"""The work behind ``vol_surface``: per-expiry SVI smiles, ATM term structure, 25-delta risk
reversal and butterfly, and IV rank / IV percentile of the 30-day ATM vol.

One row per (underlying, session, expiry). Per-expiry columns: the SVI fit (``svi_*``: raw SVI
in total variance over ``k = ln(K/F)``; ``fit_rmse``: vega-weighted RMSE in vol; ``fit_status``),
``butterfly_free`` and ``calendar_free`` (static arbitrage over the log-moneyness range the
expiry quotes; the calendar against the previous fitted expiry), ``atm_iv`` (forward ATM),
``rr25`` (25-delta call vol minus 25-delta put vol, negative with put skew) and ``bf25`` (their
mean minus ATM). Per-underlying columns, repeated on each of its rows: constant-maturity
``atm_iv_30d/60d/90d`` (total variance linear in time, flat vol beyond the listed expiries),
``rr25_30d``, ``bf25_30d``, and ``iv_rank`` / ``iv_percentile`` of ``atm_iv_30d`` over the
trailing window of prior sessions (fractions in [0, 1]; null with ``iv_rank_status =
"short_history"`` when fewer than ``min_history`` prior sessions exist).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import polars as pl

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.defs.options.svi import (
    SVI,
    butterfly_free,
    fit_svi,
    strike_at_delta,
)

TENORS = (30, 60, 90)
SURFACE_SCHEMA: dict[str, pl.DataType] = {
    "underlying": pl.String(),
    "session": pl.Date(),
    "expiry": pl.Date(),
    "dte_days": pl.Int32(),
    "t_years": pl.Float64(),
    "forward": pl.Float64(),
    "n_quotes": pl.Int32(),
    **{f"svi_{p}": pl.Float64() for p in ("a", "b", "rho", "m", "sigma")},
    "fit_rmse": pl.Float64(),
    "fit_status": pl.String(),  # ok | too_few_quotes | no_convergence
    "butterfly_free": pl.Boolean(),
    "calendar_free": pl.Boolean(),
    "atm_iv": pl.Float64(),
    "rr25": pl.Float64(),
    "bf25": pl.Float64(),
    **{f"atm_iv_{d}d": pl.Float64() for d in TENORS},
    "rr25_30d": pl.Float64(),
    "bf25_30d": pl.Float64(),
    "iv_rank": pl.Float64(),
    "iv_percentile": pl.Float64(),
    "iv_history": pl.Int32(),
    "iv_rank_status": pl.String(),  # ok | short_history | no_atm_vol
}


def smile_quotes(chain: pl.DataFrame) -> pl.DataFrame:
    """Quotes a smile is fitted to: out of the money (puts below the forward, calls at or above),
    a positive bid, and a solved IV (American where solved, else European), with k and vega."""
    forward = (
        pl.col("underlying_price")
        * ((pl.col("rate") - pl.col("dividend_yield")) * pl.col("t_years")).exp()
    )
    american = pl.col("iv_american_status") == "OK"
    return (
        chain.with_columns(forward.alias("forward"))
        .with_columns(
            (pl.col("strike") / pl.col("forward")).log().alias("k"),
            pl.when(american).then(pl.col("iv_american")).otherwise(pl.col("iv")).alias("fit_iv"),
        )
        .filter(
            (pl.col("bid") > 0)
            & (pl.col("iv_status") == "OK")
            & (pl.col("vega") > 0)
            & pl.col("fit_iv").is_not_null()
            & pl.when(pl.col("right") == "P")
            .then(pl.col("strike") < pl.col("forward"))
            .otherwise(pl.col("strike") >= pl.col("forward"))
        )
    )


def _expiry_row(quotes: pl.DataFrame, t: float, q: float, min_quotes: int) -> dict[str, Any]:
    row: dict[str, Any] = {"n_quotes": quotes.height, "fit_status": "too_few_quotes"}
    if quotes.height < min_quotes:
        return row
    fit = fit_svi(quotes["k"].to_numpy(), quotes["fit_iv"].to_numpy(), t, quotes["vega"].to_numpy())
    if not fit.success or not math.isfinite(fit.rmse):
        return {**row, "fit_status": "no_convergence"}
    p = fit.params
    k = quotes["k"].to_numpy()
    quoted = np.linspace(k.min(), k.max(), 101)
    atm = float(p.vol(np.array([0.0]), t)[0])
    call25 = strike_at_delta(p, t, 0.25, q, call=True)[1]
    put25 = strike_at_delta(p, t, -0.25, q, call=False)[1]
    return {
        **row,
        **{f"svi_{name}": getattr(p, name) for name in ("a", "b", "rho", "m", "sigma")},
        "fit_rmse": fit.rmse,
        "fit_status": "ok",
        "butterfly_free": butterfly_free(p, quoted),
        "_k_range": (float(k.min()), float(k.max())),
        "atm_iv": atm,
        "rr25": call25 - put25,
        "bf25": 0.5 * (call25 + put25) - atm,
    }


def _calendar_flags(rows: list[dict[str, Any]]) -> None:
    """Mark each fitted expiry whose total variance dips below the previous fitted one's
    anywhere in the log-moneyness range both expiries quote."""
    prev: dict[str, Any] | None = None
    for row in rows:
        if row["fit_status"] != "ok":
            continue
        if prev is None:
            row["calendar_free"] = True
        else:
            lo = max(row["_k_range"][0], prev["_k_range"][0])
            hi = min(row["_k_range"][1], prev["_k_range"][1])
            k = np.linspace(lo, hi, 101) if hi > lo else np.zeros(1)
            w, w_prev = (_svi(r).total_variance(k) for r in (row, prev))
            row["calendar_free"] = bool(np.all(w >= w_prev - 1e-9))
        prev = row


def _svi(row: dict[str, Any]) -> SVI:
    return SVI(*(row[f"svi_{n}"] for n in ("a", "b", "rho", "m", "sigma")))


def term_structure(t: np.ndarray, atm: np.ndarray, days: float) -> float:
    """ATM vol at ``days`` calendar days: total variance linear in time, flat vol outside."""
    if t.size == 0:
        return math.nan
    x = days / 365.0
    if x <= t[0]:
        return float(atm[0])
    if x >= t[-1]:
        return float(atm[-1])
    return math.sqrt(float(np.interp(x, t, atm * atm * t)) / x)


def iv_rank_percentile(
    current: float, history: np.ndarray, min_history: int
) -> tuple[float | None, float | None, str]:
    """IV rank and IV percentile of ``current`` against prior values ``history``.

    Rank is ``(current - low) / (high - low)`` with low/high over history and current (so in
    [0, 1]); percentile is the share of prior values strictly below ``current``.

    Returns:
        ``(rank, percentile, status)``; None values with status ``short_history`` when fewer
        than ``min_history`` finite prior values exist, ``no_atm_vol`` when current is missing.
    """
    hist = np.asarray(history, dtype=np.float64)
    hist = hist[np.isfinite(hist)]
    if not math.isfinite(current):
        return None, None, "no_atm_vol"
    if hist.size < min_history:
        return None, None, "short_history"
    lo, hi = min(hist.min(), current), max(hist.max(), current)
    rank = (current - lo) / (hi - lo) if hi > lo else 0.5
    return float(rank), float(np.mean(hist < current)), "ok"


def fit_underlying(chain: pl.DataFrame, min_quotes: int) -> list[dict[str, Any]]:
    """Per-expiry rows (fits, ATM, RR/BF) plus the constant-maturity columns for one underlying
    on one session; ``iv_rank*`` are filled by the caller."""
    quotes = smile_quotes(chain)
    rows: list[dict[str, Any]] = []
    for (expiry,), group in chain.group_by(["expiry"], maintain_order=True):
        first = group.row(0, named=True)
        t, q = float(first["t_years"]), float(first["dividend_yield"])
        forward = first["underlying_price"] * math.exp((first["rate"] - q) * t)
        row = _expiry_row(quotes.filter(pl.col("expiry") == expiry), t, q, min_quotes)
        rows.append(
            {
                "underlying": first["underlying"],
                "session": first["session"],
                "expiry": expiry,
                "dte_days": first["dte_days"],
                "t_years": t,
                "forward": forward,
                **row,
            }
        )
    rows.sort(key=lambda r: r["t_years"])
    _calendar_flags(rows)
    ok = [r for r in rows if r["fit_status"] == "ok"]
    fitted_t = np.array([r["t_years"] for r in ok])
    atm = np.array([r["atm_iv"] for r in ok])
    summary: dict[str, Any] = {f"atm_iv_{d}d": term_structure(fitted_t, atm, d) for d in TENORS}
    for name in ("rr25", "bf25"):
        values = np.array([r[name] for r in ok])
        summary[f"{name}_30d"] = float(np.interp(30 / 365, fitted_t, values)) if ok else math.nan
    return [{**r, **summary} for r in rows]


def surface_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows to a frame in ``SURFACE_SCHEMA`` layout (NaN stored as null)."""
    frame = pl.DataFrame(rows, schema_overrides=SURFACE_SCHEMA, infer_schema_length=None)
    for col, dtype in SURFACE_SCHEMA.items():
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=dtype).alias(col))
    frame = frame.select(list(SURFACE_SCHEMA)).cast(SURFACE_SCHEMA)  # type: ignore[arg-type]
    floats = [c for c, t in SURFACE_SCHEMA.items() if t == pl.Float64()]
    return frame.with_columns(pl.col(floats).fill_nan(None)).sort("underlying", "expiry")


def window_start(session: dt.date, window: int) -> dt.date:
    """The first of the ``window`` sessions before ``session`` (the IV rank look-back)."""
    i = cal.session_index(session)
    return cal.all_sessions()[max(i - window, 0)].astype(dt.date)


def rank_history(
    history: pl.DataFrame, underlying: str, session: dt.date, window: int
) -> np.ndarray:
    """``atm_iv_30d`` of ``underlying`` over the ``window`` sessions before ``session``."""
    start = window_start(session, window)
    prior = history.filter(
        (pl.col("underlying") == underlying)
        & (pl.col("session") < session)
        & (pl.col("session") >= start)
    )
    return prior.sort("session")["atm_iv_30d"].to_numpy()
