"""Fallback between sources, and the cross-source agreement asset and check."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from alpaca_improved_pipelines.defs.market_data.cross_source import (
    CHECK,
    TABLE,
    build_cross_source_defs,
)
from alpaca_improved_pipelines.defs.resources import build_resources, build_source
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.settings import load_settings
from alpaca_improved_pipelines.sources import synthetic_bars
from alpaca_improved_pipelines.sources.vendors.compare import Tolerance, compare_bars, violations
from alpaca_improved_pipelines.sources.vendors.errors import PermanentVendorError
from alpaca_improved_pipelines.sources.vendors.fallback import FallbackSource
from tests.fakes.market import FakeMarket

SESSION = dt.date(2024, 3, 15)


def test_compare_counts_missing_bars_per_side_and_close_bps() -> None:
    a = synthetic_bars.minute_bars(7, ("SPY",), SESSION)
    b = a.slice(2).with_columns(pl.col("close") * 1.001)  # 2 bars fewer, closes +10 bps
    stats = compare_bars(a, b, "1Min").row(0, named=True)
    assert stats["missing_in_secondary"] == 2 and stats["missing_in_primary"] == 0
    assert stats["max_close_diff_bps"] == pytest.approx(10, rel=1e-3)
    assert violations(compare_bars(a, b, "1Min"), Tolerance(max_close_diff_bps=5)).height == 1
    assert violations(compare_bars(a, a, "1Min"), Tolerance(max_missing_bars=0)).height == 0


def test_fallback_records_provenance_and_never_hides_config_errors(
    alpaca_source, polygon_source, alpaca_market, monkeypatch
) -> None:
    both = FallbackSource(primary=alpaca_source, secondary=polygon_source)
    alpaca_market.set_fault("/v2/stocks/bars", "truncated")
    frame = both.stock_bars(("SPY",), SESSION, "1Day")
    assert set(frame["source"]) == {"polygon"} and "not valid JSON" in both.fallbacks[0]
    alpaca_market.set_fault("/v2/stocks/bars", None)
    assert set(both.stock_bars(("SPY",), SESSION, "1Day")["source"]) == {"alpaca"}
    monkeypatch.delenv("ALPACA_API_KEY")
    alpaca_source.with_runtime(alpaca_source._runtime)  # forget the client built with the key
    with pytest.raises(ConfigError, match="ALPACA_API_KEY"):
        both.stock_bars(("SPY",), SESSION, "1Day")


def test_fallback_fills_a_primary_expected_empty(
    alpaca_source, polygon_source, alpaca_market
) -> None:
    alpaca_market.market = FakeMarket(stock_history_start=dt.date(2016, 1, 4))
    both = FallbackSource(primary=alpaca_source, secondary=polygon_source)
    frame = both.stock_bars(("SPY",), dt.date(2012, 6, 1), "1Day")
    assert frame.height == 1 and frame["source"][0] == "polygon"


def test_both_failing_is_one_clear_error(
    alpaca_source, polygon_source, alpaca_market, polygon_fake
) -> None:
    alpaca_market.set_fault("/v2/stocks/bars", "401")
    polygon_fake.set_fault("/v2/aggs", "empty_object")
    with pytest.raises(PermanentVendorError, match="both sources failed") as info:
        FallbackSource(primary=alpaca_source, secondary=polygon_source).stock_bars(
            ("SPY",), SESSION, "1Day"
        )
    assert "keys were rejected" in str(info.value) and "no 'results'" in str(info.value)


def test_fallback_env_validation(monkeypatch, vendor_env, tmp_path: Path) -> None:
    monkeypatch.setenv("ALPACA_IMPROVED_HOME", str(tmp_path))
    monkeypatch.setenv("ALPACA_IMPROVED_SOURCE", "alpaca")
    monkeypatch.setenv("ALPACA_IMPROVED_FALLBACK_SOURCE", "alpaca")
    with pytest.raises(ConfigError, match="is the primary source too"):
        build_source(load_settings())
    monkeypatch.setenv("ALPACA_IMPROVED_FALLBACK_SOURCE", "bloomberg")
    with pytest.raises(ConfigError, match="ALPACA_IMPROVED_FALLBACK_SOURCE"):
        build_source(load_settings())
    monkeypatch.setenv("ALPACA_IMPROVED_FALLBACK_SOURCE", "polygon")
    monkeypatch.setenv("POLYGON_REQUESTS_PER_MINUTE", "5")
    assert build_source(load_settings()).secondary.requests_per_minute == 5
    monkeypatch.setenv("POLYGON_REQUESTS_PER_MINUTE", "fast")
    with pytest.raises(ConfigError, match="POLYGON_REQUESTS_PER_MINUTE"):
        build_source(load_settings())
    monkeypatch.delenv("POLYGON_REQUESTS_PER_MINUTE")
    monkeypatch.setenv("ALPACA_FEED", "nasdaq")
    with pytest.raises(ConfigError, match="ALPACA_FEED"):
        build_source(load_settings())


def test_cross_source_asset_only_when_configured(monkeypatch) -> None:
    from alpaca_improved_pipelines.defs.market_data import cross_source

    monkeypatch.delenv("ALPACA_IMPROVED_FALLBACK_SOURCE", raising=False)
    assert not list(cross_source.cross_source().assets or [])
    monkeypatch.setenv("ALPACA_IMPROVED_FALLBACK_SOURCE", "polygon")
    assert [a.key.to_user_string() for a in cross_source.cross_source().assets] == [TABLE]


@pytest.mark.parametrize("seed,agree", [(7, True), (8, False)])
def test_cross_source_materializes_report_and_check(
    monkeypatch, vendor_env, alpaca_market, tmp_path: Path, seed: int, agree: bool
) -> None:
    alpaca_market.market = FakeMarket(seed=seed)  # another seed: another market, disagreement
    for key, value in {
        "ALPACA_IMPROVED_HOME": str(tmp_path),
        "ALPACA_IMPROVED_SOURCE": "alpaca",
        "ALPACA_IMPROVED_FALLBACK_SOURCE": "polygon",
        "ALPACA_IMPROVED_SYMBOLS": "SPY,AAPL",
        "ALPACA_IMPROVED_FSYNC": "0",
    }.items():
        monkeypatch.setenv(key, value)
    asset = next(iter(build_cross_source_defs().assets))
    result = dg.materialize(
        [asset],
        partition_key=SESSION.isoformat(),
        resources=build_resources(load_settings()),
        raise_on_error=False,
    )
    assert result.success
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == CHECK and check.passed is agree
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert "alpaca** vs **polygon" in meta["report"].value
    stats = LakeResource(home=str(tmp_path), fsync=False).read(TABLE, [SESSION])
    assert stats.height == 4 and set(stats["timeframe"]) == {"1Day", "1Min"}
    if agree:
        assert stats["max_close_diff_bps"].max() == 0 and meta["missing_bars"].value == 0


def test_code_location_loads_with_a_fallback_configured(monkeypatch, tmp_path: Path) -> None:
    from alpaca_improved_pipelines.definitions import defs

    monkeypatch.setenv("ALPACA_IMPROVED_HOME", str(tmp_path))
    monkeypatch.setenv("ALPACA_IMPROVED_SOURCE", "alpaca")
    monkeypatch.setenv("ALPACA_IMPROVED_FALLBACK_SOURCE", "polygon")
    for var in ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "POLYGON_API_KEY"):
        monkeypatch.delenv(var, raising=False)  # keys are needed to fetch, not to load
    loaded = defs()
    dg.Definitions.validate_loadable(loaded)
    keys = {k.to_user_string() for k in loaded.resolve_asset_graph().get_all_asset_keys()}
    assert TABLE in keys and "stock_bars_1d" in keys
    assert loaded.resources is not None
    source = loaded.resources["source"]
    assert isinstance(source, FallbackSource) and source.name == "alpaca (fallback polygon)"
