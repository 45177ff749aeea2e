"""Stream vs REST: every symbol-minute where the intraday stream disagrees with the nightly truth.

The live stream writes ``stream_bars_1m`` during the session (``alpaca-improved stream run``);
the nightly REST ``stock_bars_1m`` stays the truth. For each session this asset joins the two on
(symbol, minute) and writes one ``stream_reconciliation`` row per disagreement:

- ``only_stream``: the stream has a bar REST does not (a bar REST later dropped, or a clock bug);
- ``only_rest``: REST has a bar the stream never delivered, nor its gap backfill (a real gap);
- ``values``: both have the minute but a field differs beyond the tolerance: a price (open,
  high, low, close, vwap) by more than ``max(price_abs_tolerance, price_rel_tolerance_bps)`` of
  the REST price, or volume / trade count by more than ``volume_tolerance_pct`` %.

Only regular-hours minutes of the stream's symbols, within the stream's window (its first to
last minute of the session), are compared: a stream started at 11:00 has no disagreement at
10:00, and REST's forward-filled minutes (``filled = true``) are not bars. A session without a
stream partition gives an empty, labelled result (no partition written), not a failure.

The latest session reconciles itself: an eager automation condition (run by the
``stream_reconciliation_after_rest`` sensor, on by default) requests it once the nightly
``stock_bars_1m`` partition lands. Older sessions are materialized on demand.
"""

import datetime as dt
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.defs.market_data.assets import BACKFILL, stock_bars_1m
from alpaca_improved_pipelines.defs.market_data.bars import _table_md
from alpaca_improved_pipelines.defs.market_data.partitions import keys_to_sessions, trading_sessions
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from alpaca_improved_pipelines.resources.lake import LakeResource

TABLE = "stream_reconciliation"
STREAM = "stream_bars_1m"
REST = "stock_bars_1m"
PRICES = ("open", "high", "low", "close", "vwap")
COUNTS = ("volume", "trade_count")
WORST = 20
COUNTS_REPORTED = (
    "stream_bars",
    "stream_extended_hours_bars",
    "rest_bars",
    "matched_minutes",
    "only_stream",
    "only_rest",
    "values_outside_tolerance",
    "revisions",
    "backfills",
)

SCHEMA: dict[str, pl.DataType] = {
    "session": pl.Date(),
    "symbol": pl.String(),
    "ts": pl.Datetime("ns", "UTC"),
    "kind": pl.String(),  # only_stream | only_rest | values
    "stream_source": pl.String(),  # stream | revision | backfill (null for only_rest)
    "fields": pl.String(),  # the fields beyond tolerance, comma-separated ("" unless values)
    "max_price_diff_bps": pl.Float64(),
    "volume_diff_pct": pl.Float64(),
    "stream_close": pl.Float64(),
    "rest_close": pl.Float64(),
    "stream_volume": pl.Float64(),
    "rest_volume": pl.Float64(),
}


class StreamReconciliationConfig(dg.Config):
    """Tolerances: within them a stream bar agrees with the REST bar of its minute."""

    price_abs_tolerance: float = Field(
        default=0.005, description="Price difference always tolerated (USD, half a cent)."
    )
    price_rel_tolerance_bps: float = Field(
        default=1.0, description="Price difference tolerated relative to the REST price (bps)."
    )
    volume_tolerance_pct: float = Field(
        default=1.0, description="Volume and trade-count difference tolerated (% of REST)."
    )


def reconcile(
    stream: pl.DataFrame,
    rest: pl.DataFrame,
    config: StreamReconciliationConfig,
    session: dt.date,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Every disagreement of one session's stream and REST bars, and the session's counts.

    Only regular-hours minutes are compared (``stock_bars_1m`` holds no others; the stream's
    extended-hours bars are counted, not reported).
    """
    opens, closes = (t.to_pydatetime() for t in cal.session_open_close(session))
    regular = pl.col("ts").is_between(opens, closes, closed="left")
    extended = stream.filter(~regular).height
    stream = stream.filter(regular)
    rest = rest.filter(~pl.col("filled"), regular)
    symbols = stream.get_column("symbol").unique()
    counts: dict[str, int] = {
        "stream_bars": stream.height,
        "stream_extended_hours_bars": extended,
        "rest_bars": rest.height,
        "revisions": stream.filter(pl.col("source") == "revision").height,
        "backfills": stream.filter(pl.col("source") == "backfill").height,
    }
    if stream.height:
        first, last = stream["ts"].min(), stream["ts"].max()
        rest = rest.filter(
            pl.col("symbol").is_in(symbols.implode()), pl.col("ts").is_between(first, last)
        )
    else:
        rest = rest.clear()
    cols = ["symbol", "ts", *PRICES, *COUNTS]
    joined = stream.select(*cols, "source").join(
        rest.select(cols), on=["symbol", "ts"], how="full", coalesce=True, suffix="_rest"
    )
    in_stream, in_rest = pl.col("source").is_not_null(), pl.col("close_rest").is_not_null()
    price_bps = [
        ((pl.col(f) - pl.col(f"{f}_rest")).abs() / pl.col(f"{f}_rest").abs() * 1e4).alias(f)
        for f in PRICES
    ]
    price_bad = [
        (
            (pl.col(f) - pl.col(f"{f}_rest")).abs()
            > pl.max_horizontal(
                pl.lit(config.price_abs_tolerance),
                pl.col(f"{f}_rest").abs() * config.price_rel_tolerance_bps / 1e4,
            )
        ).alias(f)
        for f in PRICES
    ]
    count_bad = [
        (
            (pl.col(f).cast(pl.Float64) - pl.col(f"{f}_rest")).abs()
            > pl.col(f"{f}_rest").abs() * config.volume_tolerance_pct / 100
        ).alias(f)
        for f in COUNTS
    ]
    fields = pl.concat_str(
        [pl.when(bad).then(pl.lit(bad.meta.output_name())) for bad in [*price_bad, *count_bad]],
        separator=",",
        ignore_nulls=True,
    )
    out = (
        joined.with_columns(
            pl.when(in_stream & in_rest)
            .then(pl.lit("values"))
            .when(in_stream)
            .then(pl.lit("only_stream"))
            .otherwise(pl.lit("only_rest"))
            .alias("kind"),
            pl.when(in_stream & in_rest).then(fields).otherwise(pl.lit("")).alias("fields"),
            pl.max_horizontal(price_bps).alias("max_price_diff_bps"),
            ((pl.col("volume") - pl.col("volume_rest")).abs() / pl.col("volume_rest") * 100)
            .fill_nan(None)
            .alias("volume_diff_pct"),
        )
        .filter((pl.col("kind") != "values") | (pl.col("fields") != ""))
        .select(
            pl.lit(None, pl.Date()).alias("session"),
            "symbol",
            "ts",
            "kind",
            pl.col("source").alias("stream_source"),
            "fields",
            "max_price_diff_bps",
            "volume_diff_pct",
            pl.col("close").alias("stream_close"),
            pl.col("close_rest").alias("rest_close"),
            pl.col("volume").alias("stream_volume"),
            pl.col("volume_rest").alias("rest_volume"),
        )
        .cast(SCHEMA)  # type: ignore[arg-type]
        .sort("symbol", "ts")
    )
    matched = joined.filter(in_stream & in_rest).height
    counts |= {
        "matched_minutes": matched,
        "only_stream": out.filter(pl.col("kind") == "only_stream").height,
        "only_rest": out.filter(pl.col("kind") == "only_rest").height,
        "values_outside_tolerance": out.filter(pl.col("kind") == "values").height,
    }
    return out, counts


def _worst(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """The worst disagreements first: missing minutes, then the largest price difference."""
    order = pl.col("kind").replace_strict({"only_rest": 0, "only_stream": 1, "values": 2})
    top = frame.sort(
        [order, pl.col("max_price_diff_bps").fill_null(0)], descending=[False, True]
    ).head(WORST)
    return [
        {
            "session": r["session"],
            "symbol": r["symbol"],
            "minute": r["ts"].strftime("%H:%M UTC"),
            "kind": r["kind"],
            "source": r["stream_source"] or "-",
            "fields": r["fields"] or "-",
            "price diff bps": "-" if (b := r["max_price_diff_bps"]) is None else f"{b:.1f}",
            "stream close": r["stream_close"],
            "rest close": r["rest_close"],
        }
        for r in top.iter_rows(named=True)
    ]  # fmt: skip


@dg.asset(
    name=TABLE,
    partitions_def=trading_sessions,
    group_name="monitoring",
    deps=[stock_bars_1m],
    backfill_policy=BACKFILL,
    kinds={"parquet", "polars"},
    # the latest session, once its nightly REST partition lands (older ones: materialize them)
    automation_condition=dg.AutomationCondition.eager(),
)
def stream_reconciliation(
    context: dg.AssetExecutionContext, config: StreamReconciliationConfig, lake: LakeResource
) -> dg.MaterializeResult:
    """Every symbol-minute where the intraday stream (stream_bars_1m) disagrees with the nightly
    REST bars (stock_bars_1m): minutes on one side only, values beyond tolerance."""
    frames: list[pl.DataFrame] = []
    totals: dict[str, int] = {}
    per_session: list[dict[str, Any]] = []
    without_stream: list[str] = []
    for session in keys_to_sessions(context.partition_keys):
        if not lake.has(STREAM, session):
            without_stream.append(session.isoformat())
            continue
        stream = lake.read(STREAM, [session], BAR_SCHEMA)
        rest = lake.read(REST, [session], BAR_SCHEMA)
        found, counts = reconcile(stream, rest, config, session)
        found = found.with_columns(pl.lit(session).alias("session"))
        lake.write(TABLE, session, found)
        frames.append(found)
        per_session.append({"session": session.isoformat(), **counts})
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
    disagreements = pl.concat(frames) if frames else pl.DataFrame(schema=SCHEMA)
    tolerance = (
        f"prices within max({config.price_abs_tolerance} USD, "
        f"{config.price_rel_tolerance_bps} bps); volume and trade count within "
        f"{config.volume_tolerance_pct} %"
    )
    status = (
        f"no {STREAM} partition for {', '.join(without_stream)}: nothing to reconcile (the "
        "stream did not run that session; `alpaca-improved stream run` writes it)"
        if without_stream
        else "reconciled"
    )
    if without_stream and frames:
        status = f"reconciled {len(frames)} session(s); {status}"
    metadata: dict[str, Any] = {
        "dagster/row_count": disagreements.height,
        "status": status,
        "tolerance": tolerance,
        "sessions_reconciled": len(frames),
        "sessions_without_stream": dg.MetadataValue.json(without_stream),
        **{k: totals.get(k, 0) for k in COUNTS_REPORTED},
        "sessions": dg.MetadataValue.md(_table_md(per_session)),
        "worst": dg.MetadataValue.md(_table_md(_worst(disagreements))),
    }
    if frames:
        metadata["query"] = dg.MetadataValue.md(
            f"```sql\nSELECT * FROM {TABLE} WHERE session = '{per_session[-1]['session']}' "
            "ORDER BY kind, max_price_diff_bps DESC LIMIT 20\n```"
        )
    return dg.MaterializeResult(metadata=metadata)


stream_reconciliation_sensor = dg.AutomationConditionSensorDefinition(
    "stream_reconciliation_after_rest",
    target=dg.AssetSelection.assets(TABLE),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reconciles the latest session's stream with its REST bars as soon as the "
    "nightly stock_bars_1m partition is materialized.",
)

__all__ = ["stream_reconciliation", "stream_reconciliation_sensor", "reconcile"]
