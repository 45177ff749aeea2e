"""The work behind the bar assets: fetch per session, validate completeness, write atomically."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from alpaca_improved_pipelines.defs.market_data.partitions import keys_to_sessions
from alpaca_improved_pipelines.errors import SourceError
from alpaca_improved_pipelines.lake import lineage
from alpaca_improved_pipelines.lake.gaps import fill_minute_gaps, minute_gaps
from alpaca_improved_pipelines.lake.resample import resample_minutes
from alpaca_improved_pipelines.lake.storage import WrittenPartition
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from alpaca_improved_pipelines.plots import line_plot_markdown
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.resources.sources import MarketDataSource, Timeframe
from alpaca_improved_pipelines.resources.universe import UniverseResource

MAX_TABLE_ROWS = 15


class BarsConfig(dg.Config):
    """Run options for the bar assets."""

    symbols: list[str] = Field(
        default_factory=list,
        description="Restrict the run to these symbols (merged into existing partitions); "
        "empty means the whole universe.",
    )
    fill_gaps: bool = Field(
        default=False,
        description="1-minute bars: forward-fill missing minutes as zero-volume bars marked "
        "filled=true. Off by default: gaps are reported, never silently filled.",
    )


def _require_symbols(
    frame: pl.DataFrame, symbols: tuple[str, ...], table: str, session: dt.date, source: str
) -> None:
    got = set(frame.get_column("symbol").unique().to_list()) if frame.height else set()
    missing = sorted(set(symbols) - got)
    if missing:
        raise SourceError(
            f"{source} returned no {table} rows for {missing} on {session.isoformat()}; "
            "refusing to write a partition with less data (check the symbols and the source)"
        )


def _stop_on_expected_empty(
    frame: pl.DataFrame, source: MarketDataSource, table: str, session: dt.date
) -> None:
    """An empty answer the source explains (before its history, a plan's recent window) stops
    the run with that explanation and no retries; nothing is written."""
    if frame.height:
        return
    records = [r for r in getattr(source, "expected_empties", []) if r.session == session]
    if records:
        raise dg.Failure(
            description=f"{table} {session.isoformat()}: no data, as expected ({records[-1]}); "
            "choose sessions the source covers",
            metadata={"expected_empty": str(records[-1])},
            allow_retries=False,
        )


def _merge_subset(
    lake: LakeResource, table: str, session: dt.date, frame: pl.DataFrame, symbols: tuple[str, ...]
) -> pl.DataFrame:
    """Replace only ``symbols`` inside an existing partition (a ``--symbols`` run)."""
    if not lake.has(table, session):
        return frame
    old = lake.read(table, [session], BAR_SCHEMA)
    keep = old.filter(~pl.col("symbol").is_in(list(symbols)))
    return pl.concat([keep, frame]).sort("symbol", "ts")


def replace_requested(context: dg.AssetExecutionContext) -> bool:
    """True when the run was asked to replace partitions whose lineage differs."""
    return context.run.tags.get(lineage.REPLACE_TAG, "").strip().lower() == "true"


def guard_lineage(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    table: str,
    planned: dict[dt.date, dict[str, Any]],
) -> None:
    """Fail the run before anything is written when it would change existing partitions of
    ``table`` (another universe, source or history), unless the run asked to replace them."""
    if replace_requested(context):
        return
    found = lineage.conflicts(lake.root, table, planned)
    if found:
        raise dg.Failure(
            description=lineage.refusal(
                found,
                f"rerun with `alpaca-improved backfill --replace` (run tag "
                f"{lineage.REPLACE_TAG}=true)",
            ),
            allow_retries=False,
        )


def _table_md(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "none"
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in rows[:MAX_TABLE_ROWS]]
    if len(rows) > MAX_TABLE_ROWS:
        lines.append(f"| … {len(rows) - MAX_TABLE_ROWS} more | " + " | " * (len(head) - 1))
    return "\n".join(lines)


def _metadata(
    table: str, written: list[tuple[dt.date, WrittenPartition]], symbols: tuple[str, ...], plot: str
) -> dict[str, Any]:
    first, last = written[0][0], written[-1][0]
    version = hashlib.sha256("".join(w.sha256 for _, w in written).encode()).hexdigest()
    return {
        "dagster/row_count": sum(w.rows for _, w in written),
        "symbols": dg.MetadataValue.json(list(symbols)),
        "sessions": f"{first.isoformat()} .. {last.isoformat()} ({len(written)})",
        "bytes": sum(w.bytes for _, w in written),
        "lake_path": dg.MetadataValue.path(str(written[-1][1].path.parent.parent)),
        "data_version": version,
        "partitions": dg.MetadataValue.md(
            _table_md(
                [
                    {"session": s.isoformat(), "rows": w.rows, "sha256": w.sha256[:16]}
                    for s, w in written
                ]
            )
        ),
        "plot": dg.MetadataValue.md(plot or "no data"),
        "query": dg.MetadataValue.md(
            f"```sql\nSELECT * FROM {table} WHERE session = '{last.isoformat()}' LIMIT 10\n```"
        ),
    }


def fetch_and_write(
    context: dg.AssetExecutionContext,
    config: BarsConfig,
    source: MarketDataSource,
    lake: LakeResource,
    universe: UniverseResource,
    table: str,
    timeframe: Timeframe,
) -> dg.MaterializeResult:
    """Fetch each session of the run from ``source`` and write its partition of ``table``."""
    symbols = universe.resolve(config.symbols or None)
    source.validate_symbols(symbols)
    sessions = keys_to_sessions(context.partition_keys)
    src = lineage.source_id(source)
    planned = {}
    for session in sessions:  # a --symbols run merges: it keeps the partition's other symbols
        old = lineage.stored(lake.root, table, session) if config.symbols else None
        keep = tuple(old.get("symbols", ())) if old else ()
        planned[session] = lineage.bars(tuple(sorted({*keep, *symbols})), src)
    guard_lineage(context, lake, table, planned)
    written: list[tuple[dt.date, WrittenPartition]] = []
    gap_rows: list[dict[str, Any]] = []
    frame = pl.DataFrame()
    with lake.batch():  # one commit of the table for the step's partitions
        for session in sessions:
            frame = source.stock_bars(symbols, session, timeframe)
            _stop_on_expected_empty(frame, source, table, session)
            _require_symbols(frame, symbols, table, session, source.name)
            if timeframe == "1Min":
                gaps = minute_gaps(frame, session, list(symbols))
                gap_rows += gaps.with_columns(
                    pl.col("session").cast(pl.String), pl.col("first_missing").cast(pl.String)
                ).to_dicts()
                if config.fill_gaps:
                    frame = fill_minute_gaps(frame, session, list(symbols))
            if config.symbols:
                frame = _merge_subset(lake, table, session, frame, symbols)
            held = tuple(frame.get_column("symbol").unique().to_list()) if frame.height else symbols
            written.append((session, lake.write(table, session, frame, lineage.bars(held, src))))
    rep = symbols[0]
    plot_src = frame if timeframe == "1Min" else lake.read(table, [s for s, _ in written])
    plot = line_plot_markdown(
        plot_src.filter(pl.col("symbol") == rep), "ts", "close", f"{rep} close ({table})"
    )
    meta = _metadata(table, written, symbols, plot)
    if timeframe == "1Min":
        meta["missing_minutes"] = sum(int(str(r["missing_minutes"])) for r in gap_rows)
        meta["gaps"] = dg.MetadataValue.md(_table_md(gap_rows))
        meta["gap_fill"] = "forward-fill, marked filled=true" if config.fill_gaps else "off"
    meta["adjustment"] = (
        "raw (synthetic has no corporate actions)"
        if source.name == "synthetic"
        else "as configured on the source"
    )
    return dg.MaterializeResult(
        metadata=meta, data_version=dg.DataVersion(str(meta["data_version"]))
    )


def derive_and_write(
    context: dg.AssetExecutionContext, lake: LakeResource, table: str, every: str
) -> dg.MaterializeResult:
    """Resample each session's 1-minute partition into ``table``."""
    written: list[tuple[dt.date, WrittenPartition]] = []
    symbols: set[str] = set()
    sessions = keys_to_sessions(context.partition_keys)
    # derived bars carry the lineage of the 1-minute partition they are resampled from
    planned = {s: lineage.stored(lake.root, "stock_bars_1m", s) or {} for s in sessions}
    guard_lineage(context, lake, table, planned)
    with lake.batch():
        for session in sessions:
            bars = resample_minutes(lake.read("stock_bars_1m", [session], BAR_SCHEMA), every)
            symbols |= set(bars.get_column("symbol").unique().to_list())
            written.append((session, lake.write(table, session, bars, planned[session] or None)))
    meta = _metadata(table, written, tuple(sorted(symbols)), "")
    return dg.MaterializeResult(
        metadata=meta, data_version=dg.DataVersion(str(meta["data_version"]))
    )
