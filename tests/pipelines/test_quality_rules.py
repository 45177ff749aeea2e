"""Every pandera and great-expectations rule fails on an injected violation, and a failed
blocking check stops downstream assets in the same run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.defs.resources import build_resources
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.quality import anomalies
from alpaca_improved_pipelines.quality.expectations import run_suite
from alpaca_improved_pipelines.quality.schemas import bar_schema, validate
from alpaca_improved_pipelines.resources.sources import SyntheticSource
from alpaca_improved_pipelines.sources.synthetic_bars import daily_bars, minute_bars

from .conftest import make_settings, run_sessions, with_resources

DAY = dt.date(2024, 3, 8)
ROW = pl.int_range(pl.len()) == 7


def _set(col: str, value: pl.Expr) -> Callable[[pl.DataFrame], pl.DataFrame]:
    return lambda f: f.with_columns(pl.when(ROW).then(value).otherwise(pl.col(col)).alias(col))


VIOLATIONS: dict[str, tuple[Callable[[pl.DataFrame], pl.DataFrame], str]] = {
    "high_below_low": (_set("high", pl.col("low") * 0.99), "low <= min(open, close)"),
    "open_above_high": (_set("open", pl.col("high") * 1.01), "low <= min(open, close)"),
    "negative_price": (_set("low", pl.lit(-1.0)), "low must be finite and > 0"),
    "nan_close": (_set("close", pl.lit(float("nan"))), "close must be finite and > 0"),
    "negative_volume": (_set("volume", pl.lit(-5.0)), "greater_than_or_equal_to"),
    "vwap_outside_range": (_set("vwap", pl.col("high") * 2), "vwap between low and high"),
    "duplicate_bar": (lambda f: pl.concat([f, f.slice(7, 1)]), "one bar per (symbol, ts)"),
    "ts_not_increasing": (lambda f: f.reverse(), "ts strictly increasing"),
    "session_mismatch": (_set("session", pl.lit(dt.date(2024, 3, 7))), "session equals"),
    "unknown_source": (_set("source", pl.lit("yahoo")), "isin"),
    "bad_symbol": (_set("symbol", pl.lit("not a ticker")), "str_matches"),
    "null_symbol": (_set("symbol", pl.lit(None, pl.String)), "not_nullable"),
}


@pytest.fixture(scope="module")
def minute() -> pl.DataFrame:
    return minute_bars(7, ("SPY", "AAPL"), DAY)


def test_clean_data_passes(minute: pl.DataFrame) -> None:
    assert validate(bar_schema("stock_bars_1m"), minute).height == 0
    assert validate(bar_schema("stock_bars_1d"), daily_bars(7, ("SPY",), DAY)).height == 0


@pytest.mark.parametrize("name", sorted(VIOLATIONS))
def test_each_pandera_rule_fails_on_its_violation(minute: pl.DataFrame, name: str) -> None:
    inject, expected = VIOLATIONS[name]
    failures = validate(bar_schema("stock_bars_1m"), inject(minute))
    assert failures.height > 0
    text = " ".join(failures["check"].to_list())
    assert expected in text, text


def test_daily_stamp_rule(minute: pl.DataFrame) -> None:
    daily = daily_bars(7, ("SPY",), DAY).with_columns(pl.col("ts") + pl.duration(hours=1))
    failures = validate(bar_schema("stock_bars_1d"), daily)
    assert "00:00 America/New_York" in " ".join(failures["check"].to_list())


def test_extra_column_fails_strict_schema(minute: pl.DataFrame) -> None:
    failures = validate(bar_schema("stock_bars_1m"), minute.with_columns(pl.lit(1).alias("x")))
    assert failures.height > 0


GE_VIOLATIONS: dict[str, tuple[Callable[[pl.DataFrame], pl.DataFrame], str]] = {
    "missing_rows": (
        lambda f: f.filter(pl.col("symbol") != "AAPL"),
        "expect_table_row_count_to_be_between",
    ),
    "duplicates": (lambda f: pl.concat([f, f.head(3)]), "expect_compound_columns_to_be_unique"),
    "absurd_jump": (_set("close", pl.col("close") * 3), "expect_column_values_to_be_between"),
    "high_below_close": (
        _set("high", pl.col("close") * 0.9),
        "expect_column_pair_values_a_to_be_greater_than_b",
    ),
    "stale_session": (
        lambda f: f.filter(pl.col("session") < DAY),
        "expect_column_max_to_be_between",
    ),
}


@pytest.fixture(scope="module")
def two_days() -> pl.DataFrame:
    return pl.concat([minute_bars(7, ("SPY", "AAPL"), d) for d in (dt.date(2024, 3, 7), DAY)])


def test_ge_suite_passes_clean_data_and_writes_data_docs(
    two_days: pl.DataFrame, tmp_path: Path
) -> None:
    res = run_suite(tmp_path, "stock_bars_1m", two_days, [dt.date(2024, 3, 7), DAY], 2)
    assert res.success, [r for r in res.results if not r["success"]]
    assert res.docs_index.exists()
    assert "stock_bars_1m" in res.docs_index.read_text()


@pytest.mark.parametrize("name", sorted(GE_VIOLATIONS))
def test_each_ge_expectation_fails_on_its_violation(
    two_days: pl.DataFrame, tmp_path: Path, name: str
) -> None:
    inject, expected = GE_VIOLATIONS[name]
    res = run_suite(tmp_path, "stock_bars_1m", inject(two_days), [dt.date(2024, 3, 7), DAY], 2)
    assert not res.success
    assert expected in {r["expectation"] for r in res.results if not r["success"]}


def test_anomalies_flag_without_dropping() -> None:
    sessions = cal.sessions_between(dt.date(2024, 2, 1), dt.date(2024, 3, 29))
    daily = pl.concat([daily_bars(7, ("SPY",), d) for d in sessions])
    assert "outlier_return" not in anomalies.detect(daily, "stock_bars_1d")["kind"].to_list()
    spiked = daily.with_columns(
        pl.when(pl.col("session") == DAY)
        .then(pl.col("close") * 1.5)
        .otherwise(pl.col("close"))
        .alias("close")
    )
    flags = anomalies.detect(spiked, "stock_bars_1d")
    assert "outlier_return" in flags["kind"].to_list()
    stale = daily.with_columns(pl.lit(100.0).alias("close"))
    assert "stale_price" in anomalies.detect(stale, "stock_bars_1d")["kind"].to_list()
    zero = minute_bars(7, ("SPY",), DAY).with_columns(
        pl.when(pl.int_range(pl.len()).is_between(50, 60))
        .then(0.0)
        .otherwise(pl.col("volume"))
        .alias("volume")
    )
    assert "zero_volume_run" in anomalies.detect(zero, "stock_bars_1m")["kind"].to_list()
    assert spiked.height == daily.height  # detection never drops rows


class CorruptingSource(SyntheticSource):
    """A synthetic source whose daily bars break the OHLC rule (high below low)."""

    def stock_bars(self, symbols, session, timeframe):  # type: ignore[no-untyped-def]
        frame = super().stock_bars(symbols, session, timeframe)
        if timeframe == "1Min":
            return frame.with_columns(
                pl.when(ROW).then(pl.col("low") * 0.5).otherwise(pl.col("high")).alias("high")
            )
        return frame


def test_failed_blocking_check_stops_downstream_assets(
    project_defs: dg.Definitions, tmp_path: Path
) -> None:
    resources = build_resources(make_settings(tmp_path / "home"))
    resources["source"] = CorruptingSource(seed=7)
    defs = with_resources(project_defs, resources)
    with dg.instance_for_test() as instance:
        result = run_sessions(defs, instance, "2024-03-07", "2024-03-08")
    assert not result.success
    failed = {
        e.asset_check_key.name
        for e in result.get_asset_check_evaluations()
        if e.asset_check_key.asset_key == dg.AssetKey("stock_bars_1m") and not e.passed
    }
    assert "pandera_schema" in failed
    lake = tmp_path / "home" / "lake"
    assert storage.existing_sessions(lake, "stock_bars_1m") == ["2024-03-07", "2024-03-08"]
    # downstream of the failed gate: nothing materialized in the same run
    assert storage.existing_sessions(lake, "stock_bars_5m") == []
    assert storage.existing_sessions(lake, "stock_bars_1h") == []
    assert not result.asset_materializations_for_node("stock_bars_5m")


def test_gap_filling_is_explicit_and_marked(project_defs: dg.Definitions, tmp_path: Path) -> None:
    from alpaca_improved_pipelines.lake.gaps import fill_minute_gaps, minute_gaps

    day = dt.date(2024, 3, 8)
    bars = minute_bars(7, ("SPY",), day).filter(~pl.int_range(pl.len()).is_between(100, 109))
    gaps = minute_gaps(bars, day, ["SPY"])
    assert gaps.row(0, named=True)["missing_minutes"] >= 10
    filled = fill_minute_gaps(bars, day, ["SPY"])
    assert filled.height == 390
    marked = filled.filter(pl.col("filled"))
    assert marked.height == 390 - bars.height
    assert (marked["volume"] == 0).all()
    # a filled bar carries the previous close flat: open = high = low = close
    assert (marked["open"] == marked["close"]).all() and (marked["high"] == marked["low"]).all()
    assert validate(bar_schema("stock_bars_1m"), filled).height == 0
    # through the asset: off by default, on by run config, and the table records it
    resources = build_resources(make_settings(tmp_path / "home"))
    defs = with_resources(project_defs, resources)
    cfg = {"ops": {"stock_bars_1m": {"config": {"fill_gaps": True}}}}
    with dg.instance_for_test() as instance:
        res = run_sessions(
            defs, instance, "2024-03-08", "2024-03-08", run_config=cfg, bars_only=True
        )
    assert res.success
    meta = res.asset_materializations_for_node("stock_bars_1m")[0].metadata
    assert meta["gap_fill"].value.startswith("forward-fill")
    lake_file = storage.partition_path(tmp_path / "home" / "lake", "stock_bars_1m", "2024-03-08")
    written = pl.read_parquet(lake_file)
    assert written.group_by("symbol").len()["len"].to_list() == [390, 390, 390]


@pytest.mark.slow
def test_corrupted_upstream_partition_fails_the_run_with_a_clear_error(
    project_defs: dg.Definitions, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    defs = with_resources(project_defs, build_resources(make_settings(home)))
    with dg.instance_for_test() as instance:
        assert run_sessions(defs, instance, "2024-01-02", "2024-01-05").success
        bad = storage.partition_path(home / "lake", "stock_bars_1d", "2024-01-03")
        bad.write_bytes(b"garbage, not parquet")
        # indicators for 01-05 read the 01-03 daily partition as history
        res = run_sessions(defs, instance, "2024-01-05", "2024-01-05")
    assert not res.success
    text = " ".join(str(e.event_specific_data) for e in res.all_events if e.is_step_failure)
    assert "is corrupted or not Parquet" in text and "session=2024-01-03" in text
    # the good partition of the same table was not touched
    ok = storage.partition_path(home / "lake", "stock_bars_1d", "2024-01-05")
    assert pl.read_parquet(ok).height == 3


class ExplainedEmptySource(SyntheticSource):
    """A source that answers nothing for a session and says why (a vendor's coverage rule)."""

    @property
    def expected_empties(self):  # type: ignore[no-untyped-def]
        from alpaca_improved_pipelines.sources.vendors.availability import EmptyRecord

        return [EmptyRecord("alpaca", "stock_bars", dt.date(2024, 3, 8), "free-plan window")]

    def stock_bars(self, symbols, session, timeframe):  # type: ignore[no-untyped-def]
        return super().stock_bars(symbols, session, timeframe).head(0)


def test_expected_empty_stops_without_retries_or_files(
    project_defs: dg.Definitions, tmp_path: Path
) -> None:
    from alpaca_improved_pipelines.defs.market_data.assets import stock_bars_1d

    resources = build_resources(make_settings(tmp_path / "home"))
    resources["source"] = ExplainedEmptySource(seed=7)
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [stock_bars_1d],
            resources=resources,
            instance=instance,
            partition_key="2024-03-08",
            raise_on_error=False,
        )
    assert not res.success
    failures = [e for e in res.all_events if e.is_step_failure]
    assert len(failures) == 1 and not any(
        e.event_type_value == "STEP_UP_FOR_RETRY" for e in res.all_events
    )
    assert "no data, as expected" in str(failures[0].event_specific_data)
    assert "free-plan window" in str(failures[0].event_specific_data)
    assert not (tmp_path / "home" / "lake" / "stock_bars_1d").exists()
