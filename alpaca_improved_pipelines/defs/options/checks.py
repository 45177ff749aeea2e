"""Quality gates on the options tables: blocking pandera contracts on option_chains and
vol_surface (a failure stops vol_surface in the same run), and a non-blocking put-call parity
scan that flags and never drops."""

import dagster as dg
import polars as pl

from alpaca_improved_pipelines.defs.market_data.bars import _table_md
from alpaca_improved_pipelines.defs.market_data.partitions import keys_to_sessions
from alpaca_improved_pipelines.defs.options.assets import option_chains, vol_surface
from alpaca_improved_pipelines.defs.options.schemas import (
    chain_schema,
    parity_deviations,
    parity_summary,
    surface_schema,
)
from alpaca_improved_pipelines.quality.schemas import validate
from alpaca_improved_pipelines.resources.lake import LakeResource

EXAMPLES = 20


def _read(context: dg.AssetCheckExecutionContext, lake: LakeResource, table: str) -> pl.DataFrame:
    # No schema coercion: a foreign column or type is the contract's failure to report.
    sessions = keys_to_sessions(context.partition_keys)
    return pl.concat([lake.read(table, [s]) for s in sessions], how="diagonal_relaxed")


def _contract_result(failures: pl.DataFrame) -> dg.AssetCheckResult:
    rules = sorted(set(failures["check"].to_list())) if failures.height else []
    return dg.AssetCheckResult(
        passed=failures.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "failures": failures.height,
            "failed_checks": dg.MetadataValue.json(rules),
            "examples": dg.MetadataValue.md(_table_md(failures.head(EXAMPLES).to_dicts())),
        },
    )


@dg.asset_check(
    asset=option_chains,
    name="pandera_schema",
    blocking=True,
    description="option_chains contract: bid <= ask, 0 < IV <= 5, delta signs, gamma >= 0, "
    "OCC symbols match their columns, expiry >= session",
)
def option_chains_schema(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    """Chains satisfy their data contract (blocking: a failure stops vol_surface)."""
    return _contract_result(validate(chain_schema(), _read(context, lake, "option_chains")))


@dg.asset_check(
    asset=option_chains,
    name="put_call_parity",
    blocking=False,
    description="flags call/put pairs whose quotes break the American put-call parity band",
)
def option_chains_parity(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    """Put-call parity deviations are reported (warning; nothing is dropped)."""
    pairs = parity_deviations(_read(context, lake, "option_chains"))
    summary = parity_summary(pairs)
    worst = (
        pairs.filter(pl.col("flagged"))
        .sort("deviation", descending=True)
        .head(EXAMPLES)
        .select(
            "underlying",
            "expiry",
            "strike",
            "c_minus_p_mid",
            "lower_bound",
            "upper_bound",
            "deviation",
        )
        .with_columns(pl.col(pl.Float64).round(4))
    )
    by_underlying = (
        pairs.group_by("underlying")
        .agg(pl.len().alias("pairs"), pl.col("flagged").sum().alias("flagged"))
        .sort("underlying")
    )
    return dg.AssetCheckResult(
        passed=summary["flagged"] == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            **summary,
            "by_underlying": dg.MetadataValue.md(_table_md(by_underlying.to_dicts())),
            "worst": dg.MetadataValue.md(_table_md(worst.to_dicts())),
        },
    )


@dg.asset_check(
    asset=vol_surface,
    name="pandera_schema",
    blocking=True,
    description="vol_surface contract: SVI bounds, fit errors >= 0, ATM vol and ranks in range",
)
def vol_surface_schema(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    """Surfaces satisfy their data contract."""
    return _contract_result(validate(surface_schema(), _read(context, lake, "vol_surface")))
