"""PSR, DSR, expected maximum Sharpe and MinTRL against the Bailey & López de Prado papers.

References:
* [SEF] Bailey & López de Prado, "The Sharpe Ratio Efficient Frontier", J. of Risk 15(2), 2012.
* [DSR] Bailey & López de Prado, "The Deflated Sharpe Ratio", J. Portfolio Mgmt 40(5), 2014.
* [PM]  Bailey, Borwein, López de Prado & Zhu, "Pseudo-Mathematics and Financial Charlatanism",
  Notices of the AMS 61(5), 2014.

The [DSR] numerical example (section "A numerical example") is rebuilt here from the formula,
intermediate by intermediate, instead of trusting remembered outputs: N = 100 trials whose
annualized Sharpe ratios have variance 1/2, the selected strategy's annualized SR = 2.5 over
T = 1250 daily observations (five years of 250 days, the paper's annualization), skewness -3 and
kurtosis 10 (raw). Every intermediate below reproduces: SR0 = 0.1132 per day (1.789 annualized)
and DSR = 0.9004.

We are not confident of the exact figures of the [SEF] worked examples, so MinTRL is tested by its
definition (PSR at n = MinTRL equals the confidence level), against the classical normal-case
formula (Lo 2002 / Mertens 2002) and against a Monte Carlo of the Sharpe estimator instead.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats
from vectorbt.returns import metrics as vbt_metrics

import strategies.analytics as sa

GAMMA = 0.5772156649  # Euler-Mascheroni, as printed in [DSR]

# ---- [DSR] numerical example -------------------------------------------------------------------
DAYS = 250  # [DSR] converts with sqrt(250): 2.5 / sqrt(250) = 0.1581 per day
N_TRIALS, V_ANNUAL, T_OBS, SKEW, KURT = 100, 0.5, 1250, -3.0, 10.0
SR_ANNUAL = 2.5


def test_dsr_example_intermediates() -> None:
    v_daily = V_ANNUAL / DAYS
    assert v_daily == pytest.approx(0.002)
    z_n = stats.norm.ppf(1 - 1 / N_TRIALS)
    z_ne = stats.norm.ppf(1 - 1 / (N_TRIALS * np.e))
    assert z_n == pytest.approx(2.3263, abs=1e-4)
    assert z_ne == pytest.approx(2.6802, abs=1e-4)
    e_max_std_units = (1 - GAMMA) * z_n + GAMMA * z_ne
    assert e_max_std_units == pytest.approx(2.5306, abs=1e-4)
    sr0 = sa.expected_max_sharpe(N_TRIALS, v_daily)
    assert sr0 == pytest.approx(np.sqrt(v_daily) * e_max_std_units, rel=1e-9)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)  # "SR0 ~ 0.1132" (non-annualized)
    assert sr0 * np.sqrt(DAYS) == pytest.approx(1.7894, abs=5e-4)  # annualized threshold
    sr = SR_ANNUAL / np.sqrt(DAYS)
    assert sr == pytest.approx(0.1581, abs=5e-5)
    factor = 1 - SKEW * sr + (KURT - 1) / 4 * sr**2
    assert factor == pytest.approx(1.5306, abs=1e-4)
    z = (sr - sr0) * np.sqrt(T_OBS - 1) / np.sqrt(factor)
    assert z == pytest.approx(1.2838, abs=1e-4)


def test_dsr_example_final_value() -> None:
    sr = SR_ANNUAL / np.sqrt(DAYS)
    dsr = sa.deflated_sharpe_ratio(sr, V_ANNUAL / DAYS, N_TRIALS, T_OBS, SKEW, KURT)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_dsr_matches_vectorbt_formula_given_raw_kurtosis() -> None:
    # vectorbt's pure formula (returns.metrics.deflated_sharpe_ratio) is an independent
    # implementation of the same equation; its *accessor* feeds it excess kurtosis (see below).
    sr = SR_ANNUAL / np.sqrt(DAYS)
    ref = vbt_metrics.deflated_sharpe_ratio(
        est_sharpe=np.array([sr]),
        var_sharpe=V_ANNUAL / DAYS,
        nb_trials=N_TRIALS,
        backtest_horizon=T_OBS,
        skew=np.array([SKEW]),
        kurtosis=np.array([KURT]),
    )[0]
    ours = sa.deflated_sharpe_ratio(sr, V_ANNUAL / DAYS, N_TRIALS, T_OBS, SKEW, KURT)
    assert ours == pytest.approx(ref, rel=1e-12)
    # Passing excess kurtosis (7) -- the vectorbt accessor trap -- is caught: the paper's moments
    # sit exactly on Pearson's bound kurtosis >= 1 + skew**2 (= 10), so 7 is impossible.
    with pytest.raises(ValueError, match="excess"):
        sa.deflated_sharpe_ratio(sr, V_ANNUAL / DAYS, N_TRIALS, T_OBS, SKEW, KURT - 3)


def test_dsr_from_trial_srs_uses_their_sample_variance() -> None:
    trial_srs = np.random.default_rng(1).normal(0.0, 0.04, 50)
    sr = 0.12
    from_trials = sa.deflated_sharpe_ratio(sr, n_obs=1000, trial_srs=trial_srs)
    explicit = sa.deflated_sharpe_ratio(sr, np.var(trial_srs, ddof=1), 50, 1000)
    assert from_trials == pytest.approx(explicit, rel=1e-12)
    with pytest.raises(ValueError, match="exactly one"):
        sa.deflated_sharpe_ratio(sr, 0.01, 10, 1000, trial_srs=trial_srs)
    with pytest.raises(ValueError, match="trial_srs="):
        sa.deflated_sharpe_ratio(sr, trial_srs, 10, 1000)


def test_dsr_decreases_as_trials_grow() -> None:
    sr = SR_ANNUAL / np.sqrt(DAYS)
    dsrs = [
        sa.deflated_sharpe_ratio(sr, V_ANNUAL / DAYS, n, T_OBS, SKEW, KURT)
        for n in (1, 2, 5, 10, 100, 1_000, 10_000)
    ]
    assert all(a > b for a, b in zip(dsrs, dsrs[1:], strict=False))
    # One trial means no selection bias: DSR is the PSR against 0.
    assert dsrs[0] == pytest.approx(
        sa.probabilistic_sharpe_ratio(sr, 0.0, T_OBS, SKEW, KURT), rel=1e-12
    )


# ---- expected maximum Sharpe ---------------------------------------------------------------------
def test_expected_max_sharpe_pseudo_mathematics_examples() -> None:
    # [PM]: with N = 10 independent trials E[max] ~ 1.57 standard deviations; and with 5 years of
    # data "no more than 45 independent model configurations should be tried" for an expected
    # maximum annualized Sharpe of 1 (annualized SR variance 1/years -> E[max] / sqrt(5) ~ 1).
    assert sa.expected_max_sharpe(10, 1.0) == pytest.approx(1.57, abs=0.01)
    assert sa.expected_max_sharpe(45, 1.0) / np.sqrt(5) == pytest.approx(1.0, abs=0.01)
    assert sa.expected_max_sharpe(46, 1.0) / np.sqrt(5) > 1.0


@pytest.mark.parametrize("n", [10, 100, 1000])
def test_expected_max_sharpe_approximates_the_exact_expectation(n: int) -> None:
    # Exact E[max of n iid N(0,1)] = integral of x * n * phi(x) * Phi(x)**(n-1).
    exact = integrate.quad(
        lambda x: x * n * stats.norm.pdf(x) * stats.norm.cdf(x) ** (n - 1), -12, 12
    )[0]
    approx = sa.expected_max_sharpe(n, 4.0, sr_mean=0.3)
    assert (approx - 0.3) / 2.0 == pytest.approx(exact, rel=0.025)


def test_expected_max_sharpe_validates_inputs() -> None:
    assert sa.expected_max_sharpe(1, 0.5, sr_mean=0.2) == 0.2
    with pytest.raises(ValueError):
        sa.expected_max_sharpe(0, 0.5)
    with pytest.raises(ValueError):
        sa.expected_max_sharpe(10, -0.1)


# ---- PSR -----------------------------------------------------------------------------------------
def _classical_psr(sr: float, sr_star: float, n: int) -> float:
    # Lo (2002) / Mertens (2002) i.i.d. normal case: Var(SR) = (1 + SR**2 / 2) / (n - 1).
    return stats.norm.cdf((sr - sr_star) / np.sqrt((1 + sr**2 / 2) / (n - 1)))


@pytest.mark.parametrize(
    ("sr", "sr_star", "n"), [(0.1, 0.0, 250), (0.05, 0.02, 1000), (0.3, 0.1, 36)]
)
def test_psr_with_normal_moments_is_the_classical_formula(
    sr: float, sr_star: float, n: int
) -> None:
    assert sa.probabilistic_sharpe_ratio(sr, sr_star, n_obs=n) == pytest.approx(
        _classical_psr(sr, sr_star, n), rel=1e-12
    )
    assert sa.probabilistic_sharpe_ratio(sr, sr_star, n, skew=0, kurtosis=3) == pytest.approx(
        _classical_psr(sr, sr_star, n), rel=1e-12
    )


def test_psr_from_normal_returns_estimates_raw_kurtosis_near_3() -> None:
    r = np.random.default_rng(12).normal(0.0008, 0.01, 20_000)
    assert stats.kurtosis(r, fisher=False) == pytest.approx(3.0, abs=0.1)
    sr = r.mean() / r.std(ddof=1)
    assert sa.probabilistic_sharpe_ratio(r, 0.07) == pytest.approx(
        _classical_psr(sr, 0.07, r.size), abs=2e-3
    )


def test_psr_from_returns_uses_sample_moments_with_raw_kurtosis() -> None:
    r = np.random.default_rng(5).standard_t(4, 500) * 0.01 + 0.001
    r_with_nan = np.insert(r, [3, 100], np.nan)  # NaNs are dropped
    sr, g3, g4 = r.mean() / r.std(ddof=1), stats.skew(r), stats.kurtosis(r, fisher=False)
    expected = stats.norm.cdf(
        sr * np.sqrt(r.size - 1) / np.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    )
    assert sa.probabilistic_sharpe_ratio(r_with_nan) == pytest.approx(expected, rel=1e-12)
    assert sa.probabilistic_sharpe_ratio(r, 0.0, r.size, g3, g4) == pytest.approx(
        expected, rel=1e-12
    )


def test_psr_rejects_excess_kurtosis() -> None:
    with pytest.raises(ValueError, match="excess"):
        sa.probabilistic_sharpe_ratio(0.1, 0.0, n_obs=250, skew=0.0, kurtosis=0.0)


def test_sharpe_standard_error_matches_monte_carlo_for_skewed_returns() -> None:
    # Exp(1) - 0.5 has SR 0.5, skew 2, raw kurtosis 9: the PSR variance factor is
    # 1 - 2 * 0.5 + (9 - 1) / 4 * 0.25 = 0.5, vs 1.125 if normality were assumed and 0.3125 if
    # excess kurtosis (6) were plugged in. The simulated spread of SR estimates must pick 0.5.
    n, reps = 500, 4000
    x = np.random.default_rng(2024).exponential(1.0, (reps, n)) - 0.5
    sr_hat = x.mean(axis=1) / x.std(axis=1, ddof=1)
    factor = 1 - 2 * 0.5 + (9 - 1) / 4 * 0.5**2
    assert sr_hat.std() == pytest.approx(np.sqrt(factor / (n - 1)), rel=0.06)
    # ...and the PSR against the true SR is then ~uniform: P(PSR(0.5) < 0.05) ~ 5 %.
    psr = stats.norm.cdf((sr_hat - 0.5) / np.sqrt(factor / (n - 1)))
    assert np.mean(psr > 0.95) == pytest.approx(0.05, abs=0.02)


# ---- MinTRL ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sr", "sr_star", "skew", "kurt"),
    [(0.1, 0.0, 0.0, 3.0), (0.15, 0.05, -1.0, 8.0), (0.4, 0.2, 0.5, 4.0)],
)
def test_min_track_record_length_is_where_psr_reaches_the_confidence(
    sr: float, sr_star: float, skew: float, kurt: float
) -> None:
    n_star = sa.min_track_record_length(sr, sr_star, 0.95, skew, kurt)
    assert sa.probabilistic_sharpe_ratio(sr, sr_star, n_star, skew, kurt) == pytest.approx(
        0.95, abs=1e-12
    )


def test_min_track_record_length_normal_case_closed_form() -> None:
    # Normal returns, annualized SR 1 observed monthly vs SR* = 0 at 95 %:
    # 1 + (1 + SR**2 / 2) * (1.6449 / SR)**2 with SR = 1/sqrt(12) -> 34.82 months (2.9 years).
    sr = 1 / np.sqrt(12)
    months = sa.min_track_record_length(sr)
    assert months == pytest.approx(1 + (1 + sr**2 / 2) * (stats.norm.ppf(0.95) / sr) ** 2)
    assert months == pytest.approx(34.82, abs=0.01)
    # Negative skew and fat tails lengthen the required track record.
    assert sa.min_track_record_length(sr, skew=-2.0, kurtosis=10.0) > months
    assert sa.min_track_record_length(0.05, sr_benchmark=0.05) == np.inf
