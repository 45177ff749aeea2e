"""Promotion gates: which research variants are candidates for live trading."""

from __future__ import annotations

import datetime as dt

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

BLOCKING_INPUT_CHECKS = (
    dg.AssetCheckKey(dg.AssetKey("stock_bars_1d"), "pandera_schema"),
    dg.AssetCheckKey(dg.AssetKey("stock_bars_1d"), "expectations"),
)


class GateConfig(dg.Config):
    """Thresholds a variant must pass to become a candidate."""

    min_oos_sharpe: float = 0.0
    min_dsr: float = 0.5
    max_drawdown: float = 0.35  # as a positive fraction
    min_trades: int = 10
    require_quality_checks: bool = True


def _sessions_of(run: dg.DagsterRun | None) -> tuple[dt.date, dt.date] | None:
    if run is None:
        return None
    tags = run.tags
    start = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
    end = tags.get("dagster/asset_partition_range_end") or tags.get("dagster/partition")
    if not start or not end:
        return None
    return dt.date.fromisoformat(start), dt.date.fromisoformat(end)


def quality_checks_passed(
    instance: dg.DagsterInstance, start: dt.date, end: dt.date, table: str = "stock_bars_1d"
) -> str:
    """ "" if every input session's latest blocking-check result on ``table`` (the bars the
    family was backtested on) passed, else why not."""
    keys = [dg.AssetCheckKey(dg.AssetKey(table), k.name) for k in BLOCKING_INPUT_CHECKS]
    for key in keys:
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=5000)
        latest: dict[tuple[dt.date, dt.date], AssetCheckExecutionRecordStatus] = {}
        for rec in history:  # newest first
            span = _sessions_of(instance.get_run_by_id(rec.run_id))
            if span and span not in latest and span[0] <= end and span[1] >= start:
                latest[span] = rec.status
        if not latest:
            return f"no {key.name} result on {key.asset_key.to_user_string()} for {start}..{end}"
        failed = [
            s for s, status in latest.items() if status != AssetCheckExecutionRecordStatus.SUCCEEDED
        ]
        if failed:
            first = min(failed)
            return (
                f"{key.asset_key.to_user_string()} {key.name} did not pass for "
                f"{first[0]}..{first[1]}"
            )
    return ""


def gate_reasons(row: dict, cfg: GateConfig) -> list[str]:
    """Why a leaderboard row fails the gates (empty when it passes)."""
    reasons = []
    oos = row.get("oos_sharpe")
    if oos is None or oos < cfg.min_oos_sharpe:
        reasons.append(f"out-of-sample Sharpe {oos} < {cfg.min_oos_sharpe}")
    if row.get("dsr") is None or row["dsr"] < cfg.min_dsr:
        reasons.append(f"Deflated Sharpe {row.get('dsr')} < {cfg.min_dsr}")
    if row.get("max_drawdown") is None or -row["max_drawdown"] > cfg.max_drawdown:
        reasons.append(f"max drawdown {row.get('max_drawdown')} beyond -{cfg.max_drawdown}")
    if (row.get("trades") or 0) < cfg.min_trades:
        reasons.append(f"{row.get('trades')} trades < {cfg.min_trades}")
    return reasons
