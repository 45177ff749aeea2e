"""great-expectations suites for the bar tables: what pandera cannot say well.

Row counts against the NYSE calendar and the universe, distribution bounds on returns, freshness
of the newest session, plus the OHLC and uniqueness rules, validated by a file-backed GX context
under the data root that renders human-readable
Data Docs HTML under ``<home>/data_docs/<table>/`` after every run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from alpaca_improved_pipelines import calendar as cal


@dataclass(frozen=True, slots=True)
class SuiteResult:
    """Outcome of one suite run: overall success, per-expectation rows, and the Data Docs page."""

    success: bool
    results: list[dict[str, object]]
    docs_index: Path


def expected_rows(table: str, sessions: list[dt.date], n_symbols: int) -> tuple[int, int]:
    """(min, max) row count the calendar allows for ``table`` over ``sessions``."""
    if table == "stock_bars_1d":
        n = len(sessions) * n_symbols
        return n, n
    per_bar = {"stock_bars_1m": 1, "stock_bars_5m": 5, "stock_bars_1h": 60}[table]
    total = 0
    for s in sessions:
        opn, cls = cal.session_open_close(s)
        total += -(-int((cls - opn).total_seconds() // 60) // per_bar)
    # halts and no-trade minutes legitimately remove a few bars; more than 5% missing is a gap
    return int(total * n_symbols * 0.95), total * n_symbols


def _expectations(table: str, sessions: list[dt.date], n_symbols: int) -> list[object]:
    import great_expectations.expectations as gxe

    lo, hi = expected_rows(table, sessions, n_symbols)
    max_move = 0.5 if table == "stock_bars_1d" else 0.25
    exps: list[object] = [
        gxe.ExpectTableRowCountToBeBetween(min_value=lo, max_value=hi),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["symbol", "ts"]),
        gxe.ExpectColumnValuesToNotBeNull(column="close"),
        gxe.ExpectColumnValuesToBeBetween(
            column="close", min_value=0, strict_min=True, max_value=1e6
        ),
        gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(
            column="abs_log_return", min_value=0, max_value=max_move, mostly=0.999
        ),
        gxe.ExpectColumnValuesToBeInSet(column="ts_increasing", value_set=[True]),
        gxe.ExpectColumnDistinctValuesToEqualSet(
            column="session", value_set=[s.isoformat() for s in sessions]
        ),
        gxe.ExpectColumnMaxToBeBetween(
            column="session",
            min_value=max(sessions).isoformat(),  # type: ignore[arg-type]
        ),
    ]
    for col in ("open", "close", "low"):
        exps.append(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="high", column_B=col, or_equal=True
            )
        )
    for col in ("open", "close"):
        exps.append(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=col, column_B="low", or_equal=True)
        )
    return exps


def _prepare(frame: pl.DataFrame) -> object:
    """Pandas frame with the derived columns the suite reads (per-symbol return, monotonicity)."""
    return (
        frame.sort("symbol", "ts", maintain_order=True)
        .with_columns(
            (pl.col("close") / pl.col("close").shift(1).over("symbol"))
            .log()
            .abs()
            .fill_null(0.0)
            .alias("abs_log_return"),
            (pl.col("ts").diff().over("symbol") > pl.duration(nanoseconds=0))
            .fill_null(True)
            .alias("ts_increasing"),
            pl.col("session").cast(pl.String),
        )
        .to_pandas()
    )


def _context(docs_dir: Path) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # An ephemeral context per validation: nothing shared on disk but the rendered Data Docs, so
    # concurrent runs never race on GX's own config and store files.
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    ctx.add_data_docs_site(
        site_name="lake",
        site_config={
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
        },
    )
    return ctx


def data_docs_index(home: Path, table: str) -> Path:
    """Where the Data Docs of ``table`` are rendered under the data root."""
    return home / "data_docs" / table / "index.html"


def run_suite(
    home: Path, table: str, frame: pl.DataFrame, sessions: list[dt.date], n_symbols: int
) -> SuiteResult:
    """Validate ``frame`` against the ``table`` suite and render Data Docs under ``home``."""
    import great_expectations as gx

    docs = data_docs_index(home, table)
    ctx = _context(docs.parent)
    batch = (
        ctx.data_sources.add_pandas("lake")  # type: ignore[attr-defined]
        .add_dataframe_asset(table)
        .add_batch_definition_whole_dataframe("partitions")
    )
    suite = ctx.suites.add(gx.ExpectationSuite(name=table))  # type: ignore[attr-defined]
    for exp in _expectations(table, sessions, n_symbols):
        suite.add_expectation(exp)
    vd = ctx.validation_definitions.add(  # type: ignore[attr-defined]
        gx.ValidationDefinition(name=f"validate_{table}", data=batch, suite=suite)
    )
    checkpoint = ctx.checkpoints.add(
        gx.Checkpoint(  # type: ignore[attr-defined]
            name=f"checkpoint_{table}",
            validation_definitions=[vd],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["lake"])],
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": _prepare(frame)})
    rows: list[dict[str, object]] = []
    for run in result.run_results.values():
        for r in run.results:
            cfg = r.expectation_config
            rows.append(
                {
                    "expectation": cfg.type,
                    "column": cfg.kwargs.get("column", ""),
                    "success": bool(r.success),
                    "observed": str(
                        r.result.get("observed_value", r.result.get("unexpected_count", ""))
                    ),
                }
            )
    return SuiteResult(bool(result.success), rows, docs)
