"""Promotion: candidates that pass the gates, human approval, and the approved manifests."""

import datetime as dt
import json
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from alpaca_improved_pipelines.backtesting.data import BAR_TABLE
from alpaca_improved_pipelines.defs.promotion.approval import (
    ApprovalConfig,
    approved_limits,
    limit_overrides,
    reference_close,
    underlyings,
)
from alpaca_improved_pipelines.defs.promotion.gates import (
    GateConfig,
    gate_reasons,
    quality_checks_passed,
)
from alpaca_improved_pipelines.defs.promotion.manifests import manifest_path, write_json_atomic
from alpaca_improved_pipelines.defs.research.assets import leaderboard
from alpaca_improved_pipelines.defs.research.leaderboard import leaderboard_frame
from alpaca_improved_pipelines.defs.resources import MLFLOW_POOL
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.resources.tracking import TrackingResource
from alpaca_improved_pipelines.resources.universe import UniverseResource
from alpaca_improved_pipelines.tracking import repro
from contracts import paths
from contracts.manifest import (
    Approval,
    DeploymentManifest,
    fingerprint,
    manifest_json,
    write_manifest,
)
from strategies.base import get_strategy_class, strategy_registry


def bars_table(name: str) -> str:
    """The bar table family ``name`` trades on (by its ``timeframe``; daily when unknown)."""
    cls = strategy_registry().get(name)
    return BAR_TABLE[cls.timeframe] if cls is not None else BAR_TABLE["1d"]


@dg.asset(group_name="promotion", deps=[leaderboard], kinds={"json"})
def candidates(
    context: dg.AssetExecutionContext, config: GateConfig, lake: LakeResource
) -> dg.MaterializeResult:
    """Best variant per family, with the gates it passes or fails (out-of-sample, DSR, data)."""
    home = Path(lake.home)
    board = leaderboard_frame(home)
    rows = []
    for row in board.iter_rows(named=True):
        detail = lake_row(home, row["family"])
        reasons = gate_reasons({**row, **detail}, config)
        if config.require_quality_checks:
            bars = bars_table(row["family"])
            why = quality_checks_passed(context.instance, detail["start"], detail["end"], bars)
            if why:
                reasons.append(why)
        rows.append(
            {
                **{
                    k: row[k]
                    for k in (
                        "family",
                        "params",
                        "sharpe_ratio",
                        "dsr",
                        "oos_sharpe",
                        "max_drawdown",
                    )
                },
                **detail,
                "passed": not reasons,
                "reasons": "; ".join(reasons),
            }
        )
    write_json_atomic(paths.candidates_path(home), {"candidates": rows})
    table = pl.DataFrame(rows).select(
        "family", "params", "dsr", "oos_sharpe", "trades", "passed", "reasons"
    )
    return dg.MaterializeResult(
        metadata={
            "candidates": dg.MetadataValue.md(table.to_pandas().to_markdown(index=False)),
            "passed": sum(r["passed"] for r in rows),
        }
    )


def lake_row(home: Path, family: str) -> dict:
    from alpaca_improved_pipelines.backtesting.research_tables import read_family

    b = read_family(paths.lake_dir(home), "backtest_runs", family).filter(pl.col("rank") == 1)
    r = b.row(0, named=True)
    return {
        "start": r["start"],
        "end": r["end"],
        "trades": r["trades"],
        "mlflow_run_id": r["mlflow_run_id"],
        "data_version": r["data_version"],
        "git_sha": r["git_sha"],
        # the costs of the backtest that ranked it (older tables lack them: re-run the sweep)
        "costs": r.get("costs"),
    }


@dg.asset(group_name="promotion", deps=[candidates], kinds={"json", "mlflow"}, pool=MLFLOW_POOL)
def approved_manifest(
    context: dg.AssetExecutionContext,
    config: ApprovalConfig,
    lake: LakeResource,
    tracking: TrackingResource,
    universe: UniverseResource,
) -> dg.MaterializeResult:
    """The approved, versioned manifest the live runner deploys (also an MLflow model version)."""
    home = Path(lake.home)
    cands = {
        c["family"]: c for c in json.loads(paths.candidates_path(home).read_text())["candidates"]
    }
    if config.family not in cands:
        raise ConfigError(f"{config.family!r} is not a candidate; candidates: {sorted(cands)}")
    cand = cands[config.family]
    if not cand["passed"] and not config.allow_failed_gates:
        raise ConfigError(
            f"{config.family} failed its gates ({cand['reasons']}); fix the "
            "research or set allow_failed_gates with a reason"
        )
    manifest = build_manifest(context.run_id, config, cand, home, universe.symbols)
    write_manifest(manifest_path(home, manifest.manifest_id), manifest)
    version = register_model(tracking, manifest)
    fp = fingerprint(manifest)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(fp[:16]),
        metadata={
            "manifest_id": manifest.manifest_id,
            "fingerprint": fp,
            "mlflow_model_version": version,
            "demo_approval": config.demo,
            "risk_limits": dg.MetadataValue.json(manifest.risk_limits.model_dump(mode="json")),
            "limits_set_by_approver": dg.MetadataValue.json(list(limit_overrides(config))),
            "costs": dg.MetadataValue.json(manifest.costs.model_dump(mode="json")),
            "manifest": dg.MetadataValue.json(manifest.model_dump(mode="json")),
        },
    )


def build_manifest(
    run_id: str,
    config: ApprovalConfig,
    cand: dict[str, Any],
    home: Path,
    universe: tuple[str, ...] | list[str],
) -> DeploymentManifest:
    """The manifest of an approved candidate: its params and costs, the approved capital and
    limits (unset ones derived from the capital), versions and the approval record."""
    if not cand.get("costs"):
        raise ConfigError(
            f"backtest_runs of {config.family} does not record its costs (written before they "
            f"were); re-materialize {config.family}'s backtest, then candidates"
        )
    cls = get_strategy_class(config.family)
    params = {**json.loads(cand["params"]), "symbols": list(universe)}
    symbol, price, session = reference_close(home, underlyings(params))
    limits = approved_limits(config, price)
    # the lake table the candidate was backtested on (a minute family sweeps stock_bars_1m)
    table = "option_chains" if "underlying" in params else BAR_TABLE[cls.timeframe]
    try:
        return DeploymentManifest(
            manifest_id=f"{config.family}-{cand['data_version'][:8]}",
            strategy=config.family,
            interface_version=cls.interface_version,
            params=params,
            capital=config.capital,
            risk_limits=limits,
            costs=json.loads(cand["costs"]),
            git_sha=repro.git_sha(),
            data_versions={table: cand["data_version"]},
            mlflow_run_id=cand["mlflow_run_id"] or "",
            approval=Approval(
                approver=config.approver,
                reason=config.reason,
                demo=config.demo,
                at=dt.datetime.now(dt.UTC),
                dagster_run_id=run_id,
                gates_passed=cand["passed"],
                gate_notes=cand["reasons"],
                reference_symbol=symbol,
                reference_price=price,
                reference_session=session,
                limits_set=tuple(limit_overrides(config)),
            ),
        )
    except ValueError as exc:  # pydantic's ValidationError and our ContractError are ValueErrors
        raise ConfigError(f"approval of {config.family}: invalid manifest: {exc}") from None


def register_model(tracking: TrackingResource, manifest: DeploymentManifest) -> str:
    """Register the manifest as a model version of ``alpaca-improved-<family>``, alias ``live``."""
    tracker = tracking.tracker()
    client = tracker.client
    name = f"alpaca-improved-{manifest.strategy}"
    run_id = manifest.mlflow_run_id
    if not run_id:
        return ""
    tracker.log_text(run_id, manifest_json(manifest), "manifest/manifest.json")
    try:
        client.get_registered_model(name)
    except Exception:  # noqa: BLE001 - MLflow raises RestException for a missing model
        client.create_registered_model(name)
    run = client.get_run(run_id)
    mv = client.create_model_version(
        name,
        f"{run.info.artifact_uri}/manifest",
        run_id=run_id,
        tags={"manifest_id": manifest.manifest_id},
    )
    client.set_registered_model_alias(name, "live", mv.version)
    return str(mv.version)
