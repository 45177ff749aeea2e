"""Blocking quality gates on every bar table: pandera contracts and great-expectations suites,
plus a non-blocking anomaly scan that flags and never drops."""

import dagster as dg
import polars as pl

from alpaca_improved_pipelines.defs.market_data.assets import (
    stock_bars_1d,
    stock_bars_1h,
    stock_bars_1m,
    stock_bars_5m,
)
from alpaca_improved_pipelines.defs.market_data.bars import _table_md
from alpaca_improved_pipelines.defs.market_data.partitions import keys_to_sessions
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from alpaca_improved_pipelines.quality import anomalies, schemas
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.resources.universe import UniverseResource

BAR_ASSETS = {
    "stock_bars_1m": stock_bars_1m,
    "stock_bars_1d": stock_bars_1d,
    "stock_bars_5m": stock_bars_5m,
    "stock_bars_1h": stock_bars_1h,
}


def _read(context: dg.AssetCheckExecutionContext, lake: LakeResource, table: str) -> pl.DataFrame:
    # Read without schema coercion so a foreign column or type is the check's failure to report;
    # an unreadable file raises a LakeError that names it.
    return pl.concat(
        [lake.read(table, [s]) for s in keys_to_sessions(context.partition_keys)],
        how="diagonal_relaxed",
    )


def _schema_check(table: str, asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="pandera_schema",
        blocking=True,
        description=f"pandera contract of {table} (types, OHLC, uniqueness, stamps)",
    )
    def _check(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        failures = schemas.validate(schemas.bar_schema(table), _read(context, lake, table))
        rows = failures.head(20).to_dicts() if failures.height else []
        return dg.AssetCheckResult(
            passed=failures.height == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "failures": failures.height,
                "failed_checks": dg.MetadataValue.json(
                    sorted(set(failures["check"].to_list())) if failures.height else []
                ),
                "examples": dg.MetadataValue.md(_table_md(rows)),
            },
        )

    return _check


def _expectations_check(table: str, asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="expectations",
        blocking=True,
        description=f"great-expectations suite for {table} (counts vs calendar, "
        "freshness, distributions); renders Data Docs",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, lake: LakeResource, universe: UniverseResource
    ) -> dg.AssetCheckResult:
        from pathlib import Path

        from alpaca_improved_pipelines.quality.expectations import run_suite

        frame = _read(context, lake, table)
        sessions = keys_to_sessions(context.partition_keys)
        n_symbols = frame.get_column("symbol").n_unique() if frame.height else len(universe.symbols)
        res = run_suite(Path(lake.home), table, frame, sessions, n_symbols)
        failed = [r for r in res.results if not r["success"]]
        return dg.AssetCheckResult(
            passed=res.success,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "expectations": len(res.results),
                "failed": len(failed),
                "results": dg.MetadataValue.md(_table_md(failed or res.results)),
                "data_docs": dg.MetadataValue.url(res.docs_index.resolve().as_uri()),
            },
        )

    return _check


def _anomaly_check(table: str, asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="anomalies",
        blocking=False,
        description=f"flags outlier returns, zero-volume runs, stale prices in {table}",
    )
    def _check(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        frame = lake.read(table, keys_to_sessions(context.partition_keys), BAR_SCHEMA)
        flags = anomalies.detect(frame, table)
        counts = flags.group_by("kind").len().to_dicts() if flags.height else []
        return dg.AssetCheckResult(
            passed=flags.height == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "flagged": flags.height,
                "by_kind": dg.MetadataValue.json(counts),
                "flags": dg.MetadataValue.md(_table_md(flags.head(20).to_dicts())),
            },
        )

    return _check


schema_checks = [_schema_check(t, a) for t, a in BAR_ASSETS.items()]
expectation_checks = [_expectations_check(t, a) for t, a in BAR_ASSETS.items()]
anomaly_checks = [
    _anomaly_check(t, a)
    for t, a in (("stock_bars_1m", stock_bars_1m), ("stock_bars_1d", stock_bars_1d))
]
