"""Data contracts of the options tables (pandera polars) and the put-call parity scan.

Every rule is a named check, so a failure report says which rule broke; the blocking asset
checks run :func:`chain_schema` and :func:`surface_schema` through ``quality.schemas.validate``.
"""

from __future__ import annotations

from typing import Any

import pandera.polars as pa
import polars as pl

from alpaca_improved_pipelines.defs.options.chains import OPTION_CHAIN_SCHEMA
from alpaca_improved_pipelines.defs.options.surface import SURFACE_SCHEMA
from strategies.pricing import IVStatus

STATUSES = [s.name for s in IVStatus]
MAX_IV = 5.0


def _rule(expr: pl.Expr, name: str, error: str) -> pa.Check:
    return pa.Check(lambda d: d.lazyframe.select(expr), name=name, error=f"{name}: {error}")


def occ_matches() -> pl.Expr:
    """Contract is an OCC symbol whose root, expiry, right and strike match the columns (an
    adjusted root, the underlying plus one digit such as ``AAPL1``, is accepted)."""
    millis = (pl.col("strike") * 1000).round(0)
    expected = pl.concat_str(
        pl.col("expiry").dt.strftime("%y%m%d"),
        pl.col("right"),
        millis.cast(pl.Int64).cast(pl.String).str.zfill(8),
    )
    body = pl.col("contract").str.strip_prefix("O:")
    root = body.str.head(-15)
    return (
        body.str.contains(r"^[A-Z0-9]{1,6}[0-9]{6}[CP][0-9]{8}$")
        & (body.str.tail(15) == expected)
        & (root.str.replace(r"[0-9]$", "") == pl.col("underlying"))
        & ((pl.col("strike") * 1000 - millis).abs() < 1e-6)
    ).fill_null(False)


def chain_schema() -> pa.DataFrameSchema:
    """The option_chains contract: quotes, IV range, delta signs, gamma, OCC symbols, dates."""
    ok = pl.col("iv_status") == "OK"
    ok_am = pl.col("iv_american_status") == "OK"
    call, put = pl.col("right") == "C", pl.col("right") == "P"
    delta = pl.col("delta")
    cols = {
        "contract": pa.Column(pl.String, nullable=False),
        "underlying": pa.Column(pl.String, nullable=False),
        "session": pa.Column(pl.Date, nullable=False),
        "expiry": pa.Column(pl.Date, nullable=False),
        "strike": pa.Column(pl.Float64, pa.Check.gt(0), nullable=False),
        "right": pa.Column(pl.String, pa.Check.isin(["C", "P"]), nullable=False),
        "bid": pa.Column(pl.Float64, pa.Check.ge(0), nullable=True),
        "ask": pa.Column(pl.Float64, pa.Check.ge(0), nullable=True),
        "underlying_price": pa.Column(pl.Float64, pa.Check.gt(0), nullable=False),
        "gamma": pa.Column(pl.Float64, nullable=True),
        "iv_status": pa.Column(pl.String, pa.Check.isin(STATUSES), nullable=False),
        "iv_american_status": pa.Column(pl.String, pa.Check.isin(STATUSES), nullable=True),
    }
    checks = [
        _rule(
            pl.struct("session", "contract").is_unique(),
            "unique_session_contract",
            "one row per (session, contract)",
        ),
        _rule((pl.col("bid") <= pl.col("ask")).fill_null(True), "bid_le_ask", "bid <= ask"),
        _rule(
            ~ok | ((pl.col("iv") > 0) & (pl.col("iv") <= MAX_IV)).fill_null(False),
            "iv_in_range",
            f"0 < iv <= {MAX_IV} where iv_status is OK",
        ),
        _rule(
            ~ok_am.fill_null(False)
            | ((pl.col("iv_american") > 0) & (pl.col("iv_american") <= MAX_IV)).fill_null(False),
            "iv_american_in_range",
            f"0 < iv_american <= {MAX_IV} where iv_american_status is OK",
        ),
        _rule(
            ~call | delta.is_null() | ((delta >= 0) & (delta <= 1)),
            "call_delta_in_0_1",
            "call delta in [0, 1]",
        ),
        _rule(
            ~put | delta.is_null() | ((delta >= -1) & (delta <= 0)),
            "put_delta_in_-1_0",
            "put delta in [-1, 0]",
        ),
        _rule(
            pl.col("gamma").is_null() | (pl.col("gamma") >= 0), "gamma_nonnegative", "gamma >= 0"
        ),
        _rule(occ_matches(), "occ_symbol_matches", "OCC symbol parses and matches the columns"),
        _rule(
            pl.col("expiry") >= pl.col("session"), "expiry_on_or_after_session", "expiry >= session"
        ),
    ]
    return pa.DataFrameSchema(cols, checks=checks, strict=False, name="option_chains")


def surface_schema() -> pa.DataFrameSchema:
    """The vol_surface contract: SVI bounds, non-negative errors, vols and ranks in range."""
    frac = pa.Check.in_range(0.0, 1.0)
    cols = {
        "underlying": pa.Column(pl.String, nullable=False),
        "session": pa.Column(pl.Date, nullable=False),
        "expiry": pa.Column(pl.Date, nullable=False),
        "svi_b": pa.Column(pl.Float64, pa.Check.ge(0), nullable=True),
        "svi_rho": pa.Column(pl.Float64, pa.Check.in_range(-1.0, 1.0), nullable=True),
        "svi_sigma": pa.Column(pl.Float64, pa.Check.gt(0), nullable=True),
        "fit_rmse": pa.Column(pl.Float64, pa.Check.ge(0), nullable=True),
        "atm_iv": pa.Column(pl.Float64, pa.Check.in_range(0.0, MAX_IV), nullable=True),
        "iv_rank": pa.Column(pl.Float64, frac, nullable=True),
        "iv_percentile": pa.Column(pl.Float64, frac, nullable=True),
    }
    checks = [
        _rule(
            pl.struct("underlying", "session", "expiry").is_unique(),
            "unique_underlying_session_expiry",
            "one row per (underlying, session, expiry)",
        ),
        _rule(
            (pl.col("fit_status") != "ok") | pl.col("svi_a").is_not_null(),
            "fitted_rows_have_parameters",
            "fit_status ok implies SVI parameters",
        ),
    ]
    return pa.DataFrameSchema(cols, checks=checks, strict=False, name="vol_surface")


def parity_deviations(chain: pl.DataFrame, tolerance: float = 0.01) -> pl.DataFrame:
    """Call/put pairs whose quotes violate the American put-call parity band.

    For American options with yield q: ``S e^{-qT} - K <= C - P <= S - K e^{-rT}``. A pair is
    flagged when even the most favourable quotes (``C_ask - P_bid`` against the lower bound,
    ``C_bid - P_ask`` against the upper) are more than ``tolerance`` outside. Pairs need both
    bids positive.

    Returns:
        One row per checked pair with ``deviation`` (0 inside the band) and ``flagged``.
    """
    keys = ["session", "underlying", "expiry", "strike"]
    side = ["bid", "ask", "underlying_price", "t_years", "rate", "dividend_yield"]
    quoted = chain.filter(pl.col("bid") > 0).select(*keys, "right", *side)
    calls = quoted.filter(pl.col("right") == "C").drop("right")
    puts = quoted.filter(pl.col("right") == "P").select(*keys, "bid", "ask")
    pairs = calls.join(puts, on=keys, suffix="_put")
    s, k, t = pl.col("underlying_price"), pl.col("strike"), pl.col("t_years")
    lower = s * (-pl.col("dividend_yield") * t).exp() - k
    upper = s - k * (-pl.col("rate") * t).exp()
    below = lower - (pl.col("ask") - pl.col("bid_put"))
    above = (pl.col("bid") - pl.col("ask_put")) - upper
    return pairs.with_columns(
        lower.alias("lower_bound"),
        upper.alias("upper_bound"),
        ((pl.col("bid") + pl.col("ask")) / 2 - (pl.col("bid_put") + pl.col("ask_put")) / 2).alias(
            "c_minus_p_mid"
        ),
        pl.max_horizontal(below, above, pl.lit(0.0)).alias("deviation"),
    ).with_columns((pl.col("deviation") > tolerance).alias("flagged"))


def parity_summary(pairs: pl.DataFrame) -> dict[str, Any]:
    """Counts and the largest deviation of a :func:`parity_deviations` result."""
    flagged = pairs.filter(pl.col("flagged"))
    return {
        "pairs": pairs.height,
        "flagged": flagged.height,
        "max_deviation": float(pairs["deviation"].max() or 0.0) if pairs.height else 0.0,  # type: ignore[arg-type]
    }


__all__ = ["OPTION_CHAIN_SCHEMA", "SURFACE_SCHEMA", "chain_schema", "surface_schema"]
