"""live_replay: past sessions through the live runner in sim, held against the backtest.

The runner is a separate process (``python -m live.cli replay``: the live package never runs
inside Dagster), replaying the lake's last sessions for every deployment into a journal of its
own. Its filled orders must be the backtest's orders: same session, symbol and side, nothing
missing, nothing extra. Signal strategies are held to vectorbt; quantities and prices are
reported, not matched (the runner buys whole shares from the deployment's shared equity, the
backtest fractional shares with each symbol's capital share). Options strategies are held to the
options engine leg by leg over the archived chains, deciding after each close like the runner.
"""

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl

from alpaca_improved_pipelines.backtesting.families import families
from alpaca_improved_pipelines.backtesting.reference import (
    compare_orders,
    deployment_reference,
    is_options_family,
    live_legs,
    manifests,
)
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.resources.lake import LakeResource
from contracts import paths

CHECK = "replay_matches_backtest"
TABLE_SCHEMA = {
    "session": pl.Date, "symbol": pl.String, "side": pl.String, "live_qty": pl.Float64,
    "live_price": pl.Float64, "backtest_qty": pl.Float64, "backtest_price": pl.Float64,
    "match": pl.String, "price_diff_bps": pl.Float64, "deployment_id": pl.String,
}  # fmt: skip


class ReplayConfig(dg.Config):
    """Which sessions and deployments to replay."""

    sessions: int = 20  # the lake's last N sessions (ignored when start and end are given)
    start: str | None = None  # YYYY-MM-DD
    end: str | None = None  # YYYY-MM-DD
    deployments: list[str] = []  # default: every deployment manifest


def replay_window(home: Path, config: ReplayConfig) -> tuple[str, str]:
    """``(start, end)`` sessions of the replay (ConfigError when the lake is too short)."""
    if config.start and config.end:
        return config.start, config.end
    sessions = storage.existing_sessions(paths.lake_dir(home), "stock_bars_1d")
    if len(sessions) < config.sessions:
        raise ConfigError(
            f"the lake has {len(sessions)} daily sessions, fewer than the {config.sessions} "
            "to replay (backfill more, or set start/end)"
        )
    return sessions[-config.sessions], sessions[-1]


def run_replay(home: Path, start: str, end: str, deployments: list[str]) -> dict:
    """``python -m live.cli replay ... --json`` (ConfigError with its stderr on failure)."""
    cmd = [sys.executable, "-m", "live.cli", "replay", "--home", str(home),
           "--start", start, "--end", end, "--json"]  # fmt: skip
    for dep in deployments:
        cmd += ["--deployment", dep]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise ConfigError(f"live replay failed: {out.stderr.strip()[-1500:]}")
    return json.loads(out.stdout)


@dg.asset(
    group_name="monitoring",
    kinds={"python", "parquet"},
    deps=["approved_manifest"],
    check_specs=[dg.AssetCheckSpec(CHECK, asset="live_replay")],
)
def live_replay(
    context: dg.AssetExecutionContext, config: ReplayConfig, lake: LakeResource
) -> dg.MaterializeResult:
    """Replays the lake's last sessions through the live runner in sim and compares its orders
    with each deployment's backtest over the same sessions (table ``live_replay``)."""
    home = Path(lake.home).resolve()
    start, end = replay_window(home, config)
    deployed = manifests(home)
    chosen = config.deployments or sorted(deployed)
    out = run_replay(home, start, end, chosen)
    frames, summary, skipped = [], {}, {}
    window = (dt.date.fromisoformat(out["start"]), dt.date.fromisoformat(out["end"]))
    for dep in chosen:
        strategy = deployed[dep].strategy
        if strategy not in families() and not is_options_family(strategy):
            skipped[dep] = f"{strategy} has no backtest to hold it to"
            continue
        # vectorbt for signal strategies, the options engine for options ones; leg by leg
        # (a simple order is its one leg)
        ref = deployment_reference(home, deployed[dep], *window)
        legs = live_legs([o for o in out["orders"] if o["deployment_id"] == dep])
        cmp = compare_orders(legs, ref.orders)
        counts = dict(cmp.group_by("match").len().iter_rows())
        summary[dep] = {m: int(counts.get(m, 0)) for m in ("both", "live_only", "backtest_only")}
        frames.append(cmp.with_columns(pl.lit(dep).alias("deployment_id")))
    table = pl.concat([pl.DataFrame(schema=TABLE_SCHEMA), *frames], how="diagonal_relaxed")
    # the window's partitions hold exactly this replay (sessions without orders are emptied)
    for session in storage.existing_sessions(paths.lake_dir(home), "stock_bars_1d"):
        day = dt.date.fromisoformat(session)
        if window[0] <= day <= window[1]:
            lake.write("live_replay", day, table.filter(pl.col("session") == day))
    mismatched = {d: s for d, s in summary.items() if s["live_only"] or s["backtest_only"]}
    context.log.info(f"replay {out['start']}..{out['end']}: {summary}")
    preview = table.head(50).to_pandas().to_markdown(index=False) if table.height else "no orders"
    return dg.MaterializeResult(
        metadata={
            "window": f"{out['start']}..{out['end']}",
            "cycles": out["cycles"],
            "replay_home": dg.MetadataValue.path(out["home"]),
            "orders": dg.MetadataValue.json(summary),
            "skipped": dg.MetadataValue.json(skipped),
            "comparison": dg.MetadataValue.md(preview),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CHECK,
                passed=not mismatched and bool(summary),
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "mismatched": dg.MetadataValue.json(mismatched or {}),
                    "deployments": len(summary),
                },  # fmt: skip
                description="every filled live order is a backtest order (session, symbol, "
                "side) and every backtest order filled live",
            )
        ],
    )
