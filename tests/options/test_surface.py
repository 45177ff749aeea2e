"""SVI fitting, 25-delta measures, term-structure interpolation and IV rank / percentile math."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import norm

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.defs.options.surface import (
    fit_underlying,
    iv_rank_percentile,
    rank_history,
    surface_frame,
    term_structure,
)
from alpaca_improved_pipelines.defs.options.svi import SVI, butterfly_free, fit_svi, strike_at_delta
from alpaca_improved_pipelines.sources.synthetic_options import smile_model

from .conftest import SEED, SESSION


@pytest.mark.parametrize("underlying", ["SPY", "NVDA"])
@pytest.mark.parametrize("days", [2, 30, 180, 365])
def test_svi_recovers_the_generators_smiles_exactly(underlying: str, days: int) -> None:
    m = smile_model(SEED, underlying, SESSION, 0.045)
    t = days / 365
    sd = math.sqrt(float(m.atm_total_variance(np.array([t]))[0]))
    k = np.linspace(-3 * sd, 2.5 * sd, 60)
    iv = m.vol(m.spot * np.exp(k + (m.rate - m.dividend_yield) * t), np.full(k.size, t))
    fit = fit_svi(k, iv, t)
    assert fit.success and fit.rmse < 1e-6
    assert np.abs(fit.params.vol(k, t) - iv).max() < 1e-5
    assert butterfly_free(fit.params, k)


def test_svi_fit_on_noisy_quotes_recovers_parameters() -> None:
    true = SVI(a=0.02, b=0.12, rho=-0.55, m=0.03, sigma=0.15)
    k = np.linspace(-0.5, 0.4, 80)
    noise = np.random.default_rng(0).normal(0, 0.002, k.size)
    fit = fit_svi(k, true.vol(k, 0.5) + noise, 0.5)
    assert fit.rmse == pytest.approx(0.002, rel=0.3)
    assert fit.params.rho == pytest.approx(true.rho, abs=0.1)
    assert np.abs(fit.params.vol(k, 0.5) - true.vol(k, 0.5)).max() < 0.002


def test_svi_fit_rejects_too_few_quotes() -> None:
    fit = fit_svi(np.array([-0.1, 0.0, 0.1]), np.array([0.3, 0.25, 0.24]), 0.1)
    assert not fit.success and math.isnan(fit.params.a)


def test_butterfly_arbitrage_is_detected() -> None:
    # Axel Vogt's raw-SVI example (Gatheral & Jacquier 2014): g(k) < 0 near k = 0.
    vogt = SVI(a=-0.0410, b=0.1331, rho=0.3060, m=0.3586, sigma=0.4153)
    assert not butterfly_free(vogt, np.linspace(-1.5, 1.5, 301))
    assert butterfly_free(SVI(0.04, 0.1, -0.5, 0.0, 0.2), np.linspace(-1.5, 1.5, 301))


def test_strike_at_delta_hits_the_target_delta() -> None:
    p, t, q = SVI(0.01, 0.1, -0.6, 0.0, 0.1), 0.25, 0.01
    for target, call in ((0.25, True), (-0.25, False)):
        k, vol = strike_at_delta(p, t, target, q, call)
        d1 = (-k + 0.5 * vol * vol * t) / (vol * math.sqrt(t))
        delta = math.exp(-q * t) * (norm.cdf(d1) if call else -norm.cdf(-d1))
        assert delta == pytest.approx(target, abs=2e-3)
    flat = SVI(0.04 * t, 0.0, 0.0, 0.0, 0.1)  # b = 0: constant 20% vol, no skew, no fly
    assert strike_at_delta(flat, t, 0.25)[1] == pytest.approx(0.2)


def test_fit_on_the_synthetic_chain(chain: pl.DataFrame) -> None:
    rows = fit_underlying(chain.filter(pl.col("underlying") == "SPY"), min_quotes=6)
    surface = surface_frame(rows)
    ok = surface.filter(pl.col("fit_status") == "ok")
    assert ok.height == surface.height >= 9
    assert ok["fit_rmse"].max() < 2e-3  # tick-rounded quotes, vega-weighted vol RMSE
    assert (ok["rr25"] < 0).all() and (ok["bf25"] > 0).all()  # put skew and smile curvature
    assert ok["butterfly_free"].all() and ok["calendar_free"].all()
    m = smile_model(SEED, "SPY", SESSION, 0.045)
    t = ok["t_years"].to_numpy()
    model_atm = np.sqrt(m.atm_total_variance(t) / t)
    assert np.abs(ok["atm_iv"].to_numpy() - model_atm).max() < 2e-3
    assert surface["atm_iv_30d"].n_unique() == 1
    assert surface["atm_iv_30d"][0] == pytest.approx(term_structure(t, model_atm, 30), abs=2e-3)


def test_term_structure_interpolates_total_variance() -> None:
    t, atm = np.array([0.1, 0.3]), np.array([0.2, 0.3])
    w = np.interp(0.2, t, atm**2 * t)
    assert term_structure(t, atm, 0.2 * 365) == pytest.approx(math.sqrt(w / 0.2))
    assert term_structure(t, atm, 5) == 0.2 and term_structure(t, atm, 400) == 0.3
    assert math.isnan(term_structure(np.array([]), np.array([]), 30))


def test_iv_rank_and_percentile_on_a_hand_built_series() -> None:
    hist = np.array([0.10, 0.20, 0.30, 0.40])
    assert iv_rank_percentile(0.25, hist, 4) == (pytest.approx(0.5), 0.5, "ok")
    assert iv_rank_percentile(0.50, hist, 4) == (1.0, 1.0, "ok")  # a new high
    assert iv_rank_percentile(0.05, hist, 4) == (0.0, 0.0, "ok")  # a new low
    assert iv_rank_percentile(0.40, hist, 4) == (1.0, 0.75, "ok")  # ties are not "below"
    assert iv_rank_percentile(0.25, np.array([0.1, np.nan, 0.4]), 2)[:2] == (
        pytest.approx(0.5),
        0.5,
    )
    assert iv_rank_percentile(0.2, np.full(5, 0.2), 5) == (0.5, 0.0, "ok")  # flat history
    assert iv_rank_percentile(0.25, hist, 5) == (None, None, "short_history")
    assert iv_rank_percentile(math.nan, hist, 2) == (None, None, "no_atm_vol")


def test_rank_history_uses_only_the_trailing_window() -> None:
    sessions = cal.sessions_between(dt.date(2023, 1, 3), dt.date(2024, 6, 28))
    end = sessions.index(dt.date(2024, 3, 1))
    history = pl.DataFrame(
        {
            "underlying": "SPY",
            "session": sessions,
            "atm_iv_30d": np.arange(len(sessions), dtype=float),
        }
    )
    got = rank_history(history, "SPY", sessions[end], 252)
    assert got.tolist() == list(range(end - 252, end))  # 252 prior sessions, none after
    assert rank_history(history, "QQQ", sessions[end], 252).size == 0
