"""The synthetic chain generator: determinism, expiries, strikes, smile, term structure, spreads,
and our IV recovering the generator's model vol from the mid."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from alpaca_improved_pipelines.lake.tables import CHAIN_RAW_SCHEMA
from alpaca_improved_pipelines.resources.sources import SyntheticSource
from alpaca_improved_pipelines.sources import option_expiries
from alpaca_improved_pipelines.sources.synthetic_options import (
    ChainSpec,
    smile_model,
    strikes,
    synthetic_chain,
)

from .conftest import SEED, SESSION

OTM = pl.when(pl.col("right") == "P").then(pl.col("delta") > -0.5).otherwise(pl.col("delta") < 0.5)


def test_chain_layout_and_determinism() -> None:
    a = SyntheticSource(seed=SEED).option_chain("AAPL", SESSION)
    assert a.schema == pl.Schema(CHAIN_RAW_SCHEMA)
    assert a["contract"].is_unique().all() and a["source"].unique().to_list() == ["synthetic"]
    synthetic_chain(SEED, "AAPL", dt.date(2024, 1, 9))  # other sessions in between change nothing
    assert synthetic_chain(SEED, "AAPL", SESSION).equals(a)
    assert not synthetic_chain(SEED + 1, "AAPL", SESSION).equals(a)
    close = a["underlying_price"].unique()
    assert close.len() == 1
    spot = float(close[0])
    from alpaca_improved_pipelines.sources.synthetic_bars import daily_bars

    assert spot == pytest.approx(daily_bars(SEED, ("AAPL",), SESSION)["close"][0], abs=0.006)
    assert a["quote_ts"].dt.convert_time_zone("America/New_York").dt.hour().unique().to_list() == [
        16
    ]


def test_expiries_weekly_monthly_and_holidays() -> None:
    exps = option_expiries.expiries(SESSION)
    assert exps[0] == dt.date(2024, 1, 12) and all(e > SESSION for e in exps)
    assert (exps[-1] - SESSION).days > 300  # quarterlies / LEAPS-style out to about a year
    assert sum(option_expiries.is_monthly(e) for e in exps) >= 6
    assert len(option_expiries.weekly_expiries(SESSION)) == 6
    # Good Friday 2024-03-29: the weekly expires on Thursday, the previous session.
    assert option_expiries.listed_expiry(dt.date(2024, 3, 29)) == dt.date(2024, 3, 28)
    assert dt.date(2024, 3, 28) in option_expiries.expiries(dt.date(2024, 3, 25))
    assert option_expiries.third_friday(2024, 6) == dt.date(2024, 6, 21)


def test_strike_grid_by_price_level() -> None:
    assert np.allclose(np.diff(strikes(472.0, True, 0.4)), 1.0)  # ETFs list $1 strikes
    aapl = strikes(185.0, False, 0.4)
    assert np.allclose(np.diff(aapl), 2.5) and aapl[0] >= 111 and aapl[-1] <= 259
    assert np.allclose(np.diff(strikes(48.0, False, 0.4)), 1.0)
    assert np.allclose(np.diff(strikes(370.0, False, 0.4)), 5.0)
    assert strikes(185.0, False, 0.4, count=250).size == 250
    wide = strikes(48.0, False, 0.4, sd=0.55)  # a year of NVDA: wider range, coarser step
    assert wide[0] < 48 * 0.3 and np.diff(wide).min() >= 1.0


def test_smile_has_negative_skew_and_curvature(chain: pl.DataFrame) -> None:
    for u in ("SPY", "AAPL"):
        m = smile_model(SEED, u, SESSION, 0.045)
        t = np.full(3, 30 / 365)
        lo, atm, hi = m.vol(m.spot * np.array([0.9, 1.0, 1.1]), t)
        assert lo > atm > hi  # negative skew
        assert (lo + hi) / 2 > m.vol(np.array([m.spot]), t[:1])[0]  # curvature (convex)
    spy = chain.filter((pl.col("underlying") == "SPY") & (pl.col("expiry") == dt.date(2024, 2, 16)))
    quoted = spy.filter((pl.col("bid") > 0) & OTM & (pl.col("iv_status") == "OK")).sort("strike")
    iv = quoted["iv"].to_numpy()
    assert iv[0] > iv[len(iv) // 2] > iv[-1]  # our IV from mids shows the skew too


def test_term_structure_follows_current_garch_vol(chain: pl.DataFrame) -> None:
    for u in ("SPY", "AAPL", "NVDA"):
        m = smile_model(SEED, u, SESSION, 0.045)
        t = np.array([7, 30, 90, 365]) / 365
        atm = np.sqrt(m.atm_total_variance(t) / t)
        slope = np.sign(np.diff(atm))
        assert (slope == np.sign(m.v_bar - m.v_now)).all()  # mean reversion toward long-run vol
        assert abs(atm[-1] - atm[0]) > 0.005
    near = chain.filter(
        (pl.col("underlying") == "SPY") & (pl.col("vendor_delta").abs() - 0.5).abs().lt(0.05)
    )
    by_expiry = near.group_by("expiry").agg(pl.col("vendor_iv").mean()).sort("expiry")
    assert by_expiry["vendor_iv"].n_unique() == by_expiry.height  # not flat


def test_spreads_widen_away_from_the_money(chain: pl.DataFrame) -> None:
    quoted = chain.filter((pl.col("bid") > 0) & OTM).with_columns(
        ((pl.col("ask") - pl.col("bid")) / pl.col("mid")).alias("rel_spread"),
        pl.col("vendor_delta").abs().alias("absdelta"),
    )
    for u in ("SPY", "AAPL", "NVDA"):
        q = quoted.filter(pl.col("underlying") == u)
        atm = q.filter(pl.col("absdelta").is_between(0.4, 0.6))["rel_spread"].median()
        wing = q.filter(pl.col("absdelta").is_between(0.05, 0.15))["rel_spread"].median()
        far = q.filter(pl.col("absdelta") < 0.05)["rel_spread"].median()
        assert atm < wing < far, (u, atm, wing, far)
    deep = chain.filter((pl.col("underlying") == "AAPL") & (pl.col("vendor_delta").abs() > 0.95))
    near = chain.filter(
        (pl.col("underlying") == "AAPL") & (pl.col("vendor_delta").abs() - 0.5).abs().lt(0.1)
    )
    spread = lambda f: (f["ask"] - f["bid"]).median()  # noqa: E731
    assert spread(deep) > spread(near)  # in dollars too, deep in the money


def test_tick_rounding_and_activity(chain: pl.DataFrame) -> None:
    def on_grid(x: pl.Series, tick: float) -> bool:
        return bool((((x / tick).round(0) * tick - x).abs() < 1e-9).all())

    spy = chain.filter(pl.col("underlying") == "SPY")
    assert on_grid(spy["bid"], 0.01) and on_grid(spy["ask"], 0.01)
    aapl = chain.filter((pl.col("underlying") == "AAPL") & (pl.col("bid") >= 3.0))
    assert on_grid(aapl["bid"], 0.05)
    assert (chain["bid"] <= chain["ask"]).all() and (chain["bid"] >= 0).all()
    aapl = chain.filter(pl.col("underlying") == "AAPL").with_columns(
        pl.col("delta").abs().alias("d")
    )
    atm_oi = aapl.filter(pl.col("d").is_between(0.4, 0.6))["open_interest"].median()
    wing_oi = aapl.filter(pl.col("d") < 0.05)["open_interest"].median()
    assert atm_oi > 5 * wing_oi
    assert chain.filter(pl.col("volume") == 0)["last"].null_count() == (chain["volume"] == 0).sum()


def test_our_iv_recovers_the_model_vol_from_mid(chain: pl.DataFrame) -> None:
    """Stated tolerance: for quoted out-of-the-money contracts, |iv_american - model vol| is
    within half a tick divided by vega (the mid is within half a tick of the model price) plus
    1e-4; the median error is below 5e-4."""
    forward = (
        pl.col("underlying_price")
        * ((pl.col("rate") - pl.col("dividend_yield")) * pl.col("t_years")).exp()
    )
    otm = (
        pl.when(pl.col("right") == "P")
        .then(pl.col("strike") < forward)
        .otherwise(pl.col("strike") >= forward)
    )
    q = chain.filter((pl.col("bid") > 0) & otm)
    assert (q["iv_american_status"] == "OK").all() and q.height > 1000
    err = (q["iv_american"] - q["vendor_iv"]).abs().to_numpy()
    tick = np.where((q["underlying"] == "SPY").to_numpy() | (q["mid"] < 3).to_numpy(), 0.01, 0.05)
    bound = 0.5 * tick / (q["vendor_vega"].to_numpy() * 100.0) + 1e-4
    assert (err <= bound).all(), float((err - bound).max())
    assert np.median(err) < 5e-4


def test_forced_strike_count_for_benchmarks() -> None:
    frame = synthetic_chain(SEED, "NVDA", SESSION, ChainSpec(strikes_per_expiry=250))
    per_expiry = frame.group_by("expiry").len()["len"].unique().to_list()
    assert per_expiry == [500] and frame["strike"].min() > 0
