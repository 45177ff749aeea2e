"""The work behind ``option_chains``: mid, time to expiry, our IV and Greeks, vendor agreement.

Conventions of the stored table (``OPTION_CHAIN_SCHEMA``):

* ``t_years`` runs from the session's close to the close of the expiry session (16:00 New York,
  13:00 on early closes), ACT/365; ``dte_days`` counts calendar days.
* ``iv`` and the Greeks are European Black-Scholes-Merton with the configured rate (curve at
  ``t_years``) and dividend yield, from the mid; units as ``strategies.pricing``: vega per 1.00
  vol, theta per year, rho per 1.00 rate. ``iv_american`` inverts the same mid with the
  Leisen-Reimer American pricer (US equity options are American). ``*_status`` name the
  ``IVStatus`` (``OK``, ``BELOW_INTRINSIC``, ...); values are null unless the status is ``OK``.
* ``vendor_*`` columns are kept exactly as the vendor sent them (Polygon/Alpaca units: theta per
  calendar day, vega and rho per point); :func:`agreement` converts before comparing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.lake.tables import CHAIN_RAW_SCHEMA
from alpaca_improved_pipelines.sources.option_expiries import is_monthly
from alpaca_improved_pipelines.sources.synthetic_options import YEAR_SECONDS, expiry_close
from contracts.greeks import VENDOR_TO_LAKE
from strategies.pricing import IVStatus, american_implied_vol, iv_and_greeks

GREEKS = ("delta", "gamma", "vega", "theta", "rho")
VENDOR_SCALE = VENDOR_TO_LAKE  # vendor (position) units -> ours (lake units)
STATUS_NAMES = np.array([s.name for s in sorted(IVStatus, key=int)], dtype=object)

_RAW = dict(CHAIN_RAW_SCHEMA)
OPTION_CHAIN_SCHEMA: dict[str, pl.DataType] = {
    **{c: _RAW[c] for c in ("contract", "underlying", "session", "expiry")},
    "expiry_kind": pl.String(),  # "monthly" (third Friday) or "weekly"
    **{c: _RAW[c] for c in ("strike", "right", "bid", "ask")},
    "mid": pl.Float64(),
    **{c: _RAW[c] for c in ("last", "volume", "open_interest", "underlying_price", "quote_ts")},
    "dte_days": pl.Int32(),
    "t_years": pl.Float64(),
    "rate": pl.Float64(),
    "dividend_yield": pl.Float64(),
    "iv": pl.Float64(),
    "iv_status": pl.String(),
    **{g: pl.Float64() for g in GREEKS},
    "iv_american": pl.Float64(),
    "iv_american_status": pl.String(),
    **{c: t for c, t in _RAW.items() if c.startswith("vendor_")},
    "source": pl.String(),
}


def empty_chain() -> pl.DataFrame:
    """A zero-row frame in the option_chains layout."""
    return pl.DataFrame(schema=OPTION_CHAIN_SCHEMA)


def _years_to_expiry(session: dt.date, expiries: pl.Series) -> pl.Series:
    close = cal.session_open_close(session)[1]
    years = {e: (expiry_close(e) - close).total_seconds() / YEAR_SECONDS for e in expiries.unique()}
    return expiries.replace_strict(years, return_dtype=pl.Float64)


def _status(codes: np.ndarray) -> pl.Series:
    return pl.Series(STATUS_NAMES[codes.astype(np.intp)], dtype=pl.String)


def _null_nan(values: np.ndarray) -> pl.Series:
    return pl.Series(values, dtype=pl.Float64).fill_nan(None)


def enrich(
    raw: pl.DataFrame,
    session: dt.date,
    rates: Any,
    yields: dict[str, float],
    american: bool = True,
) -> pl.DataFrame:
    """Add mid, time to expiry, our IV/Greeks (and American IV) to a raw chain of ``session``.

    Args:
        raw: Chains of one session in ``CHAIN_RAW_SCHEMA`` (any number of underlyings).
        session: The session the snapshot belongs to.
        rates: Callable mapping an array of year fractions to continuously compounded rates.
        yields: Continuous dividend yield per underlying.
        american: Also solve ``iv_american``.

    Returns:
        The chain in ``OPTION_CHAIN_SCHEMA`` layout, sorted by (underlying, contract).
    """
    if raw.is_empty():
        return empty_chain()
    kinds = {e: "monthly" if is_monthly(e) else "weekly" for e in raw["expiry"].unique()}
    frame = raw.with_columns(
        pl.when((pl.col("ask") >= pl.col("bid")) & (pl.col("ask") > 0))
        .then((pl.col("bid") + pl.col("ask")) / 2)
        .otherwise(None)
        .alias("mid"),
        (pl.col("expiry") - pl.col("session")).dt.total_days().cast(pl.Int32).alias("dte_days"),
        _years_to_expiry(session, raw["expiry"]).alias("t_years"),
        pl.col("underlying")
        .replace_strict(yields, default=0.0, return_dtype=pl.Float64)
        .alias("dividend_yield"),
        pl.col("expiry").replace_strict(kinds, return_dtype=pl.String).alias("expiry_kind"),
    )
    t = frame["t_years"].to_numpy()
    r = np.asarray(rates(t), dtype=np.float64)
    q = frame["dividend_yield"].to_numpy()
    price = frame["mid"].fill_null(np.nan).to_numpy()
    spot = frame["underlying_price"].fill_null(np.nan).to_numpy()
    strike = frame["strike"].to_numpy()
    is_call = (frame["right"] == "C").to_numpy()
    res = iv_and_greeks(price, spot, strike, t, r, q, is_call)
    ok = res.status == int(IVStatus.OK)  # AT_INTRINSIC solves to vol 0: a bound, not an IV
    cols: dict[str, pl.Series] = {
        "rate": pl.Series(r),
        "iv": _null_nan(np.where(ok, res.iv, np.nan)),
        "iv_status": _status(res.status),
        **{g: _null_nan(np.where(ok, getattr(res, g), np.nan)) for g in GREEKS},
    }
    if american:
        iv_am, st_am = american_implied_vol(
            price, spot, strike, t, r, q, is_call, return_status=True
        )
        cols["iv_american"] = _null_nan(np.where(st_am == int(IVStatus.OK), iv_am, np.nan))
        cols["iv_american_status"] = _status(st_am)
    out = frame.with_columns(**cols)
    for col, dtype in OPTION_CHAIN_SCHEMA.items():
        if col not in out.columns:
            out = out.with_columns(pl.lit(None, dtype=dtype).alias(col))
    out = out.select(list(OPTION_CHAIN_SCHEMA)).cast(OPTION_CHAIN_SCHEMA)  # type: ignore[arg-type]
    return out.sort("underlying", "contract")


def _num(value: Any) -> float:
    return float(value) if value is not None else float("nan")


def agreement(chain: pl.DataFrame) -> list[dict[str, Any]]:
    """Median and 90th-percentile |ours - vendor| per field, vendor values converted to our units.

    Returns:
        One row per field with at least one (ours, vendor) pair; empty when the vendor sent no
        IV or Greeks.
    """
    pairs = [("iv", "vendor_iv"), ("iv_american", "vendor_iv")]
    pairs += [(g, f"vendor_{g}") for g in GREEKS]
    rows = []
    for ours, vendor in pairs:
        if ours not in chain.columns or vendor not in chain.columns:
            continue
        scale = VENDOR_SCALE.get(ours, 1.0)
        diff: pl.DataFrame = chain.select(
            (pl.col(ours) - pl.col(vendor) * scale).abs().alias("d"),
            (pl.col(vendor) * scale).abs().alias("v"),
        ).drop_nulls()
        if diff.is_empty():
            continue
        rows.append(
            {
                "field": ours,
                "pairs": diff.height,
                "median_abs_diff": f"{_num(diff['d'].median()):.3g}",
                "p90_abs_diff": f"{_num(diff['d'].quantile(0.9)):.3g}",
                "median_abs_vendor": f"{_num(diff['v'].median()):.3g}",
            }
        )
    return rows


def status_counts(chain: pl.DataFrame) -> list[dict[str, Any]]:
    """Contracts per IV status (European and, when solved, American)."""
    counts = chain.group_by("iv_status").len().sort("iv_status")
    rows = [{"solver": "european", "status": s, "contracts": n} for s, n in counts.iter_rows()]
    if chain["iv_american_status"].null_count() < chain.height:
        counts = chain.group_by("iv_american_status").len().sort("iv_american_status")
        rows += [{"solver": "american", "status": s, "contracts": n} for s, n in counts.iter_rows()]
    return rows
