"""Cross-source validation of bars: defined only when ``ALPACA_IMPROVED_FALLBACK_SOURCE`` names a
secondary source, so the default asset graph is unchanged."""

import dagster as dg
import polars as pl
from pydantic import Field

from alpaca_improved_pipelines.defs.market_data.assets import BACKFILL, RETRY
from alpaca_improved_pipelines.defs.market_data.partitions import keys_to_sessions, trading_sessions
from alpaca_improved_pipelines.defs.resources import fallback_source_name
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.resources.sources import MarketDataSource
from alpaca_improved_pipelines.resources.universe import UniverseResource
from alpaca_improved_pipelines.sources.vendors.compare import (
    Tolerance,
    compare_bars,
    report_markdown,
    violations,
)

TABLE = "cross_source_bars"
CHECK = "sources_agree"


class CrossSourceConfig(dg.Config):
    """Tolerances for the agreement check."""

    max_close_diff_bps: float = Field(default=5.0, description="Largest close difference (bps).")
    max_volume_diff_pct: float = Field(default=5.0, description="Largest volume difference (%).")
    max_missing_bars: int = Field(default=5, description="Most bars missing on either side.")


def _sessions_stats(
    context: dg.AssetExecutionContext,
    source: MarketDataSource,
    lake: LakeResource,
    symbols: tuple[str, ...],
) -> pl.DataFrame:
    primary, secondary = getattr(source, "primary", None), getattr(source, "secondary", None)
    if primary is None or secondary is None:
        raise ConfigError(f"{TABLE} compares two sources; set ALPACA_IMPROVED_FALLBACK_SOURCE")
    out = []
    for session in keys_to_sessions(context.partition_keys):
        stats = pl.concat(
            [
                compare_bars(
                    primary.stock_bars(symbols, session, tf),
                    secondary.stock_bars(symbols, session, tf),
                    tf,
                )
                for tf in ("1Day", "1Min")
            ]
        ).with_columns(pl.lit(session).alias("session"))
        lake.write(TABLE, session, stats)
        out.append(stats)
    return pl.concat(out)


def build_cross_source_defs() -> dg.Definitions:
    """The cross-source asset and its check (call only when a secondary source exists)."""

    @dg.asset(
        name=TABLE,
        partitions_def=trading_sessions,
        group_name="market_data",
        retry_policy=RETRY,
        backfill_policy=BACKFILL,
        kinds={"parquet", "polars"},
        check_specs=[
            dg.AssetCheckSpec(
                CHECK,
                asset=TABLE,
                description="Primary and secondary sources agree within tolerance.",
            )
        ],
    )
    def cross_source_bars(
        context: dg.AssetExecutionContext,
        config: CrossSourceConfig,
        source: MarketDataSource,
        lake: LakeResource,
        universe: UniverseResource,
    ) -> dg.MaterializeResult:
        """Agreement of daily and minute bars between the primary and secondary sources."""
        stats = _sessions_stats(context, source, lake, universe.resolve(None))
        tol = Tolerance(
            config.max_close_diff_bps, config.max_volume_diff_pct, config.max_missing_bars
        )
        bad = violations(stats, tol)
        names = (source.primary.name, source.secondary.name)  # type: ignore[attr-defined]
        report = dg.MetadataValue.md(report_markdown(stats, tol, *names))
        top = stats.select(pl.col("max_close_diff_bps", "volume_diff_pct").max()).row(0)
        summary = {
            "max_close_diff_bps": float(top[0] or 0.0),
            "max_volume_diff_pct": float(top[1] or 0.0),
            "missing_bars": int(
                (stats["missing_in_primary"] + stats["missing_in_secondary"]).sum()
            ),
            "violations": bad.height,
        }
        check = dg.AssetCheckResult(
            check_name=CHECK,
            passed=bad.height == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                **summary,
                "outside_tolerance": dg.MetadataValue.md(
                    report_markdown(bad, tol, *names) if bad.height else "none"
                ),
            },
        )
        return dg.MaterializeResult(
            metadata={"dagster/row_count": stats.height, **summary, "report": report},
            check_results=[check],
        )

    return dg.Definitions(assets=[cross_source_bars])


@dg.definitions
def cross_source() -> dg.Definitions:
    """Nothing unless a secondary source is configured."""
    return build_cross_source_defs() if fallback_source_name() else dg.Definitions()
