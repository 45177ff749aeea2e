"""Walk-forward and leaderboard asset bodies."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from alpaca_improved_pipelines.backtesting import research_tables
from alpaca_improved_pipelines.backtesting.families import family
from alpaca_improved_pipelines.defs.research.walk_forward import walk_forward
from alpaca_improved_pipelines.tracking.mlflow_store import RunTags, Tracker
from contracts import paths
from research import lakehouse


def run_walk_forward(
    context: dg.AssetExecutionContext,
    names: Sequence[str],
    train: int,
    test: int,
    anchored: bool,
    home: Path,
    tracker: Tracker,
) -> dg.MaterializeResult:
    """Walk forward each of ``names``' latest sweep; one MLflow run and one lake file per family
    (LakeError naming the sweep asset to materialize when a family has no sweep yet)."""
    lake = paths.lake_dir(home)
    rows: list[dict[str, Any]] = []
    for name in names:
        results = research_tables.read_family(lake, "sweep_results", name)
        wf = walk_forward(results, train, test, anchored)
        board = research_tables.read_family(lake, "backtest_runs", name)
        tags = RunTags(
            context.run_id,
            context.asset_key.to_user_string(),
            f"{board['start'][0]}..{board['end'][0]}",
            {family(name).table: str(board["data_version"][0])},
        )
        run_id = tracker.start_run(name, f"{name} walk-forward", "walk_forward", tags)
        tracker.log(
            run_id,
            params={
                "train": train,
                "test": test,
                "anchored": anchored,
                "sweep_run_id": board["sweep_run_id"][0],
            },
            metrics={**wf["oos_metrics"], "folds": wf["folds"].height},
        )
        tracker.log_frame(run_id, wf["folds"], "folds.parquet")
        tracker.finish(run_id)
        research_tables.write_family(
            lake,
            "walk_forward",
            name,
            wf["folds"].with_columns(
                pl.lit(name).alias("family"),
                pl.lit(wf["oos_sharpe"]).alias("oos_sharpe"),
                pl.lit(run_id).alias("mlflow_run_id"),
            ),
        )
        rows.append(
            {
                "family": name,
                "folds": wf["folds"].height,
                "oos_sharpe": round(wf["oos_sharpe"], 4),
                "oos_total_return": round(wf["oos_metrics"]["oos_total_return"], 4),
                "distinct_choices": len(wf["chosen"]),
            }
        )
    md = pl.DataFrame(rows).to_pandas().to_markdown(index=False)
    return dg.MaterializeResult(
        metadata={
            "walk_forward": dg.MetadataValue.md(md),
            "train_sessions": train,
            "test_sessions": test,
            "anchored": anchored,
        }
    )


LEADERBOARD_SQL = """
SELECT b.family, b.params, b.sharpe_ratio, b.dsr, b.psr, b.n_trials, b.total_return,
       b.max_drawdown, b.trades, w.oos_sharpe, b.mlflow_run_id
FROM backtest_runs b
LEFT JOIN (SELECT DISTINCT family, oos_sharpe FROM walk_forward) w USING (family)
WHERE b.rank = 1
ORDER BY b.dsr DESC NULLS LAST
"""


def leaderboard_frame(home: Path) -> pl.DataFrame:
    """The leaderboard: each family's best in-sample variant, ranked by Deflated Sharpe."""
    con = lakehouse.connect(home)
    return con.sql(LEADERBOARD_SQL).pl()


def build_leaderboard(home: Path) -> dg.MaterializeResult:
    board = leaderboard_frame(home)
    md = board.with_columns(pl.col(pl.Float64).round(4)).to_pandas().to_markdown(index=False)
    return dg.MaterializeResult(
        metadata={
            "leaderboard": dg.MetadataValue.md(md),
            "families": board.height,
            "query": dg.MetadataValue.md(f"```sql{LEADERBOARD_SQL}```"),
        }
    )
