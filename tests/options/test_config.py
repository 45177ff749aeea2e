"""Run configuration of the options assets: rate curve, dividend yields, underlyings, schedule."""

from __future__ import annotations

import datetime as dt
from functools import partial

import dagster as dg
import numpy as np
import polars as pl
import pytest

from alpaca_improved_pipelines.defs.options.chains import agreement, enrich
from alpaca_improved_pipelines.defs.options.config import (
    ChainConfig,
    RatePoint,
    curve_rates,
    dividend_yield,
    resolve_underlyings,
)
from alpaca_improved_pipelines.defs.options.jobs import nightly_options
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.sources.synthetic_options import synthetic_chain

from .conftest import SEED, SESSION


def test_rate_curve_interpolates_and_validates() -> None:
    curve = [RatePoint(days=365, rate=0.04), RatePoint(days=30, rate=0.05)]
    got = curve_rates(curve, np.array([1 / 365, 30 / 365, 197.5 / 365, 2.0]))
    assert got == pytest.approx([0.05, 0.05, 0.045, 0.04])
    with pytest.raises(ConfigError, match="empty"):
        curve_rates([], np.array([0.1]))
    with pytest.raises(ConfigError, match="duplicate"):
        curve_rates([RatePoint(days=30, rate=0.05), RatePoint(days=30, rate=0.04)], np.ones(1))


def test_dividend_yields_and_underlyings() -> None:
    config = ChainConfig(dividend_yields={"SPY": 0.02})
    assert dividend_yield(config, "SPY") == 0.02
    assert dividend_yield(config, "XOM") == pytest.approx(0.035)  # synthetic catalog reference
    assert dividend_yield(config, "ZZZZ") == 0.0
    universe = ("SPY", "KO", "AAPL", "BAC")
    assert resolve_underlyings(ChainConfig(), universe) == ("SPY", "AAPL")
    assert resolve_underlyings(ChainConfig(underlyings=["ko"]), universe) == ("KO",)
    with pytest.raises(ConfigError, match="not in the universe"):
        resolve_underlyings(ChainConfig(underlyings=["TSLA"]), universe)
    with pytest.raises(ConfigError, match="none of the default"):
        resolve_underlyings(ChainConfig(), ("KO",))


def test_configured_rate_and_yield_reach_iv_and_greeks() -> None:
    raw = synthetic_chain(SEED, "KO", SESSION)
    base = enrich(raw, SESSION, lambda t: np.full_like(t, 0.045), {"KO": 0.031}, american=False)
    high = enrich(raw, SESSION, lambda t: np.full_like(t, 0.08), {"KO": 0.031}, american=False)
    assert base["rate"].unique().to_list() == [0.045] and high["rate"].unique().to_list() == [0.08]
    call = pl.col("right") == "C"
    assert (high.filter(call)["iv"] < base.filter(call)["iv"]).mean() > 0.9  # more carry in price
    assert {r["field"] for r in agreement(base)} == {"iv", "delta", "gamma", "vega", "theta", "rho"}
    vendorless = enrich(
        raw.with_columns(pl.lit(None, dtype=pl.Float64).alias("vendor_iv")),
        SESSION,
        partial(curve_rates, ChainConfig().rate_curve),
        {},
        american=False,
    )
    assert "iv" not in {r["field"] for r in agreement(vendorless)}
    assert vendorless["dividend_yield"].unique().to_list() == [0.0]


def test_run_config_is_accepted_by_the_job(project_defs: dg.Definitions) -> None:
    job = project_defs.resolve_job_def("options_job")
    config = {
        "ops": {
            "option_chains": {
                "config": {
                    "underlyings": ["SPY"],
                    "rate_curve": [{"days": 0, "rate": 0.05}, {"days": 365, "rate": 0.04}],
                    "dividend_yields": {"SPY": 0.012},
                    "american_iv": False,
                }
            },
            "vol_surface": {"config": {"rank_window": 126, "min_history": 10}},
        }
    }
    assert dg.validate_run_config(job, config)
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(
            job, {"ops": {"vol_surface": {"config": {"rank_window": 5, "bogus": 1}}}}
        )


def test_nightly_schedule_targets_the_session_and_skips_holidays() -> None:
    def tick(day: dt.date) -> object:
        when = dt.datetime(day.year, day.month, day.day, 18, 45, tzinfo=dt.UTC)
        return nightly_options(dg.build_schedule_context(scheduled_execution_time=when))

    request = tick(dt.date(2024, 1, 10))
    assert isinstance(request, dg.RunRequest) and request.partition_key == "2024-01-10"
    assert isinstance(tick(dt.date(2024, 3, 29)), dg.SkipReason)  # Good Friday
    assert nightly_options.default_status == dg.DefaultScheduleStatus.RUNNING


def test_a_quote_at_intrinsic_value_has_a_status_and_no_iv_or_greeks() -> None:
    """A mid at the no-arbitrage bound solves to vol 0 (AT_INTRINSIC): stored as null, not 0."""
    raw = synthetic_chain(SEED, "KO", SESSION)
    spot = raw["underlying_price"][0]
    itm_put = (pl.col("right") == "P") & (pl.col("strike") > spot * 1.2)
    assert raw.filter(itm_put).height > 0
    at_bound = raw.with_columns(
        pl.when(itm_put).then(pl.col("strike") - spot).otherwise(pl.col(c)).alias(c)
        for c in ("bid", "ask")
    )
    chain = enrich(at_bound, SESSION, lambda t: np.zeros_like(t), {}, american=True)
    puts = chain.filter(itm_put)
    assert set(puts["iv_status"].to_list()) == {"AT_INTRINSIC"}
    assert puts["iv"].null_count() == puts.height
    assert puts["delta"].null_count() == puts.height
    assert puts["iv_american"].null_count() == puts.height
    others = chain.filter(~itm_put & (pl.col("iv_status") == "OK"))
    assert others.height > 0 and others["iv"].null_count() == 0
