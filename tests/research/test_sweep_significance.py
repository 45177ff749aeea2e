"""A sweep's PSR and DSR, computed for all variants at once, are the per-variant analytics calls'
values exactly; returns the block path cannot take go row by row."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from alpaca_improved_pipelines.backtesting import significance
from alpaca_improved_pipelines.backtesting.significance import add_significance
from strategies import analytics


def _sweep(rows: list[np.ndarray]) -> pl.DataFrame:
    n = len(rows)
    return pl.DataFrame(
        {
            "params": [f'{{"k": {i}}}' for i in range(n)],
            "sharpe_ratio": [analytics.sharpe_ratio(r) for r in rows],
            "error": pl.Series([None] * n, dtype=pl.String),
            "returns": [r.tolist() for r in rows],
        }
    ).vstack(  # a failed trial: no returns, no significance
        pl.DataFrame(
            {"params": ['{"k": -1}'], "sharpe_ratio": [None], "error": ["ValueError: bad"]},
            schema_overrides={"sharpe_ratio": pl.Float64},
        ).with_columns(pl.lit(None, dtype=pl.List(pl.Float64)).alias("returns"))
    )


def _variants(n: int, sessions: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = [
        rng.normal(rng.uniform(-5e-4, 1e-3), rng.uniform(0.003, 0.03), sessions) for _ in range(n)
    ]
    rows[0] = np.zeros(sessions)  # never traded: undefined Sharpe
    rows[1] = np.full(sessions, 0.001)  # constant positive: infinite Sharpe, undefined
    rows[2] = rng.standard_t(3, sessions) * 0.02  # fat tails
    rows[3] = np.where(rng.random(sessions) < 0.05, rng.normal(0, 0.05, sessions), 0.0)  # sparse
    return rows


def _row_by_row(frame: pl.DataFrame, n_trials: int) -> pl.DataFrame:
    """The per-variant analytics calls, with the block path switched off."""
    ok = frame.filter(pl.col("error").is_null())
    dsr, psr, _ = significance._row_by_row(ok.get_column("returns"), n_trials)
    return pl.DataFrame({"dsr": dsr, "psr": psr})


@pytest.mark.parametrize(("n", "sessions", "trials"), [(300, 252, 300), (40, 2516, 250_000)])
def test_block_path_equals_the_per_variant_calls_bit_for_bit(
    n: int, sessions: int, trials: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(significance, "BLOCK", 64)  # several blocks, the last one partial
    frame = _sweep(_variants(n, sessions, seed=n))
    got = add_significance(frame, trials)
    ok = got.filter(pl.col("error").is_null())
    want = _row_by_row(frame, trials)
    np.testing.assert_array_equal(ok["dsr"].to_numpy(), want["dsr"].to_numpy())
    np.testing.assert_array_equal(ok["psr"].to_numpy(), want["psr"].to_numpy())
    assert np.isnan(ok["dsr"].to_numpy()[:2]).all() and np.isfinite(ok["dsr"].to_numpy()[2:]).all()
    assert ok["n_trials"].unique().to_list() == [trials]
    failed = got.filter(pl.col("error").is_not_null())
    assert failed.height == 1 and failed["dsr"].is_null().all()
    # and the reference is the library's own per-variant answer
    r = np.asarray(ok["returns"][2])
    assert ok["psr"][2] == analytics.probabilistic_sharpe_ratio(r)
    assert ok["dsr"][2] == analytics.deflated_sharpe_ratio(
        analytics.sharpe_ratio(r) / np.sqrt(252),
        ok["sr_variance"][0],
        trials,
        len(r),
        float(stats.skew(r)),
        float(stats.kurtosis(r, fisher=False)),
    )


def test_ragged_or_nan_returns_go_row_by_row() -> None:
    rows = _variants(12, 300, seed=5)
    rows[4] = rows[4][:200]  # a shorter series
    rows[6] = rows[6].copy()
    rows[6][10] = np.nan
    for case in (rows[:6], [r for i, r in enumerate(rows) if i != 4]):
        frame = _sweep(case)
        assert significance._row_stats(frame.filter(pl.col("error").is_null())["returns"]) is None
        got = add_significance(frame, 1_000).filter(pl.col("error").is_null())
        want = _row_by_row(frame, 1_000)
        np.testing.assert_array_equal(got["dsr"].to_numpy(), want["dsr"].to_numpy())


def test_every_variant_constant_has_no_significance() -> None:
    frame = _sweep([np.zeros(100), np.full(100, 0.002), np.full(100, -0.001)])
    got = add_significance(frame, 10).filter(pl.col("error").is_null())
    assert got["sr_variance"][0] == 0.0 and np.isnan(got["dsr"].to_numpy()).all()


def test_moments_are_scipys_on_each_row_bit_for_bit() -> None:
    rets = np.ascontiguousarray(np.stack(_variants(400, 252, seed=9)[2:]))
    skew, kurt = significance._moments(rets, rets.mean(axis=1))
    np.testing.assert_array_equal(skew, [stats.skew(r) for r in rets])
    np.testing.assert_array_equal(kurt, [stats.kurtosis(r, fisher=False) for r in rets])
