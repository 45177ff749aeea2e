"""Blocking contract on indicators_1d."""

import dagster as dg
import pandera.polars as pa
import polars as pl

from alpaca_improved_pipelines.defs.features.assets import indicators_1d
from alpaca_improved_pipelines.defs.features.indicators import CONFIG
from alpaca_improved_pipelines.defs.market_data.bars import _table_md
from alpaca_improved_pipelines.defs.market_data.partitions import keys_to_sessions
from alpaca_improved_pipelines.quality.schemas import validate
from alpaca_improved_pipelines.resources.lake import LakeResource


def indicator_schema() -> pa.DataFrameSchema:
    """Indicators: RSI within [0, 100], Bollinger ordered, vol and ATR non-negative, unique rows."""
    between = lambda lo, hi: pa.Check.in_range(lo, hi)  # noqa: E731
    cols: dict[str, pa.Column] = {
        "symbol": pa.Column(pl.String, nullable=False),
        "session": pa.Column(pl.Date, nullable=False),
        "close": pa.Column(pl.Float64, pa.Check.gt(0)),
        "rsi_14": pa.Column(pl.Float64, between(0, 100), nullable=True),
        "atr_14": pa.Column(pl.Float64, pa.Check.ge(0), nullable=True),
        "rv_20": pa.Column(pl.Float64, pa.Check.ge(0), nullable=True),
        "rv_intraday": pa.Column(pl.Float64, pa.Check.ge(0), nullable=True),
    }
    order = pa.Check(
        lambda d: d.lazyframe.select(
            pl.col("bb_upper_20").is_null()
            | (
                (pl.col("bb_lower_20") <= pl.col("bb_middle_20"))
                & (pl.col("bb_middle_20") <= pl.col("bb_upper_20"))
            )
        ),
        name="bollinger_ordered",
        error="bb_lower <= bb_middle <= bb_upper",
    )
    unique = pa.Check(
        lambda d: d.lazyframe.select(pl.struct("symbol", "session").is_unique()),
        name="unique_symbol_session",
        error="one row per (symbol, session)",
    )
    return pa.DataFrameSchema(cols, checks=[order, unique], strict=False, name="indicators_1d")


@dg.asset_check(
    asset=indicators_1d,
    name="pandera_schema",
    blocking=True,
    description="pandera contract of indicators_1d (ranges, ordering, uniqueness)",
)
def indicators_schema(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    """Indicator values within their mathematical ranges."""
    sessions = keys_to_sessions(context.partition_keys)
    frame = pl.concat([lake.frame("indicators_1d", s) for s in sessions])
    failures = validate(indicator_schema(), frame)
    expected = set(CONFIG.columns())
    missing = sorted(expected - set(frame.columns))
    return dg.AssetCheckResult(
        passed=failures.height == 0 and not missing,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "failures": failures.height,
            "missing_columns": dg.MetadataValue.json(missing),
            "examples": dg.MetadataValue.md(_table_md(failures.head(20).to_dicts())),
        },
    )
