"""Vendor payloads into our frames: the only place Alpaca and Polygon field names appear.

Every parser takes the JSON as the vendor sent it (dicts straight from the response body) so
timestamps keep all nine fractional digits (alpaca-py's models and ``datetime.fromisoformat``
stop at microseconds) and strings-as-numbers are converted in one strict step. A missing required
field or a value of the wrong type raises ``PermanentVendorError``: a malformed page is never
written, and retrying it will not fix it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.lake.tables import BAR_COLUMNS, CHAIN_RAW_COLUMNS, CHAIN_RAW_SCHEMA
from alpaca_improved_pipelines.sources.vendors.errors import PermanentVendorError

NY = "America/New_York"
RFC3339 = "%Y-%m-%dT%H:%M:%S%.f%#z"
OCC_RE = r"^(?:O:)?([A-Z0-9.]{1,6})(\d{6})([CP])(\d{8})$"
_F, _I, _S = pl.Float64(), pl.Int64(), pl.String()
BAR_WIRE = {"symbol": _S, "t": _S, "o": _F, "h": _F, "l": _F, "c": _F, "v": _F, "vw": _F, "n": _I}
BAR_REQUIRED = ("t", "o", "h", "l", "c", "v")
CONTRACT_SCHEMA: dict[str, pl.DataType] = {
    "contract": _S,
    "underlying": _S,
    "expiry": pl.Date(),
    "strike": _F,
    "right": _S,
    "open_interest": _F,
    "close_price": _F,
}


def _frame(
    rows: list[dict[str, Any]],
    schema: Mapping[str, pl.DataType],
    what: str,
    required: Iterable[str],
) -> pl.DataFrame:
    """Rows into a frame of ``schema``; wrong types or missing required fields raise."""
    try:
        frame = (
            pl.from_dicts(rows, schema=dict(schema), strict=True)
            if rows
            else pl.DataFrame(schema=dict(schema))
        )
    except (pl.exceptions.PolarsError, TypeError, ValueError) as err:
        raise PermanentVendorError(f"malformed {what}: a field has the wrong type ({err})") from err
    nulls = (
        {
            c: n
            for c, n in frame.select(pl.col(list(required)).null_count()).row(0, named=True).items()
            if n
        }
        if frame.height
        else {}
    )
    if nulls:
        raise PermanentVendorError(f"malformed {what}: required fields missing {nulls}")
    return frame


def _ts(col: pl.Expr) -> pl.Expr:
    return col.str.to_datetime(format=RFC3339, time_unit="ns", time_zone="UTC", strict=True)


def _session(ts: pl.Expr) -> pl.Expr:
    """The New York calendar date of a UTC timestamp (DST-correct)."""
    return ts.dt.convert_time_zone(NY).dt.date()


def _bars(frame: pl.DataFrame, ts: pl.Expr, source: str, adjustment: str) -> pl.DataFrame:
    try:
        out = frame.with_columns(ts.alias("ts"))
    except pl.exceptions.PolarsError as err:
        raise PermanentVendorError(f"malformed {source} bar timestamp ({err})") from err
    return (
        out.select(
            pl.col("symbol"),
            pl.col("ts"),
            _session(pl.col("ts")).alias("session"),
            pl.col("o").alias("open"),
            pl.col("h").alias("high"),
            pl.col("l").alias("low"),
            pl.col("c").alias("close"),
            pl.col("v").alias("volume"),
            pl.col("vw").alias("vwap"),
            pl.col("n").alias("trade_count"),
            pl.lit(source).alias("source"),
            pl.lit(adjustment).alias("adjustment"),
            pl.lit(False).alias("filled"),
        )
        .select(BAR_COLUMNS)
        .sort("symbol", "ts")
    )


def alpaca_bars(
    bars: Mapping[str, list[dict[str, Any]]], source: str = "alpaca", adjustment: str = "raw"
) -> pl.DataFrame:
    """The ``bars`` object of ``/v2/stocks/bars`` (symbol -> list of bars) in BAR_SCHEMA."""
    if not isinstance(bars, Mapping):
        raise PermanentVendorError(f"malformed alpaca bars: expected an object, got {type(bars)}")
    rows = [{**bar, "symbol": sym} for sym, lst in bars.items() for bar in (lst or [])]
    frame = _frame(rows, BAR_WIRE, "alpaca bars", BAR_REQUIRED)
    return _bars(frame, _ts(pl.col("t")), source, adjustment)


def alpaca_barset(barset: Any, source: str = "alpaca", adjustment: str = "raw") -> pl.DataFrame:
    """An alpaca-py ``BarSet`` in BAR_SCHEMA (microsecond timestamps: the model truncates)."""
    rows = [
        {
            "symbol": b.symbol,
            "t": b.timestamp.isoformat(),
            "o": b.open,
            "h": b.high,
            "l": b.low,
            "c": b.close,
            "v": b.volume,
            "vw": b.vwap,
            "n": None if b.trade_count is None else int(b.trade_count),
        }
        for lst in barset.data.values()
        for b in lst
    ]
    frame = _frame(rows, BAR_WIRE, "alpaca BarSet", BAR_REQUIRED)
    return _bars(frame, _ts(pl.col("t")), source, adjustment)


def polygon_aggs(
    ticker: str, results: list[dict[str, Any]], source: str = "polygon", adjustment: str = "raw"
) -> pl.DataFrame:
    """Polygon ``/v2/aggs`` ``results`` (epoch-millisecond ``t``) for ``ticker`` in BAR_SCHEMA."""
    rows = [{**r, "symbol": ticker, "t_ms": r.get("t"), "t": None} for r in results]
    wire = {**BAR_WIRE, "t_ms": _I}
    frame = _frame(rows, wire, f"polygon aggs for {ticker}", ("t_ms", "o", "h", "l", "c", "v"))
    ts = (pl.col("t_ms") * 1_000_000).cast(pl.Datetime("ns", "UTC"))
    return _bars(frame, ts, source, adjustment)


def restrict_to_session(bars: pl.DataFrame, session: dt.date, timeframe: str) -> pl.DataFrame:
    """Keep the bars of ``session``: regular hours for minute bars, the New York date for daily.

    Vendors include pre- and post-market minutes; the lake holds regular hours only.
    """
    day = bars.filter(pl.col("session") == session)
    if timeframe != "1Min":
        return day
    opn, cls = cal.session_open_close(session)
    lo, hi = opn.to_pydatetime(), cls.to_pydatetime()
    return day.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))


def dedupe_bars(bars: pl.DataFrame, what: str) -> tuple[pl.DataFrame, int]:
    """Drop exact duplicate bars (a repeated page); conflicting duplicates raise."""
    unique = bars.unique(maintain_order=True)
    dropped = bars.height - unique.height
    if unique.select(pl.struct("symbol", "ts").is_duplicated().any()).item():
        raise PermanentVendorError(
            f"{what}: the vendor sent two different bars for one "
            "(symbol, ts); refusing to guess which is right"
        )
    return unique.sort("symbol", "ts"), dropped


def _occ(col: pl.Expr) -> list[pl.Expr]:
    parts = col.str.extract_groups(OCC_RE)
    return [
        parts.struct.field("2").str.to_date("%y%m%d", strict=False).alias("expiry"),
        (parts.struct.field("4").cast(pl.Int64, strict=False) / 1000.0).alias("strike"),
        parts.struct.field("3").alias("right"),
    ]


def _chain(
    frame: pl.DataFrame, underlying: str, session: dt.date, source: str, what: str
) -> pl.DataFrame:
    out = frame.with_columns(
        pl.col("contract").str.replace(r"^O:", ""),
        *_occ(pl.col("contract")),
        pl.lit(underlying).alias("underlying"),
        pl.lit(session).alias("session"),
        pl.lit(source).alias("source"),
    )
    bad = out.filter(pl.col("expiry").is_null() | pl.col("strike").is_null())
    if bad.height:
        raise PermanentVendorError(
            f"malformed {what}: not OCC option symbols "
            f"{bad.get_column('contract').head(3).to_list()}"
        )
    for col, dtype in CHAIN_RAW_SCHEMA.items():
        if col not in out.columns:
            out = out.with_columns(pl.lit(None, dtype=dtype).alias(col))
    return out.select(CHAIN_RAW_COLUMNS).cast(pl.Schema(CHAIN_RAW_SCHEMA)).sort("contract")


def alpaca_option_snapshots(
    snapshots: Mapping[str, dict[str, Any]],
    underlying: str,
    session: dt.date,
    source: str = "alpaca",
) -> pl.DataFrame:
    """Alpaca ``snapshots`` (OCC symbol -> snapshot) in CHAIN_RAW_SCHEMA.

    Volume, open interest and the underlying price are not in the snapshot (null here; the
    source joins them from option bars, contracts and stock bars).
    """
    rows = []
    for sym, snap in snapshots.items():
        q, t, g = (
            snap.get("latestQuote") or {},
            snap.get("latestTrade") or {},
            snap.get("greeks") or {},
        )
        rows.append(
            {
                "contract": sym,
                "bid": q.get("bp"),
                "ask": q.get("ap"),
                "last": t.get("p"),
                "quote_t": q.get("t"),
                "vendor_iv": snap.get("impliedVolatility"),
                **{f"vendor_{k}": g.get(k) for k in ("delta", "gamma", "theta", "vega", "rho")},
            }
        )
    wire = {
        "contract": _S,
        "bid": _F,
        "ask": _F,
        "last": _F,
        "quote_t": _S,
        "vendor_iv": _F,
        **{f"vendor_{k}": _F for k in ("delta", "gamma", "theta", "vega", "rho")},
    }
    frame = _frame(rows, wire, "alpaca option snapshots", ("contract",))
    try:
        frame = frame.with_columns(_ts(pl.col("quote_t")).alias("quote_ts"))
    except pl.exceptions.PolarsError as err:
        raise PermanentVendorError(f"malformed alpaca option quote timestamp ({err})") from err
    return _chain(frame, underlying, session, source, "alpaca option snapshots")


def polygon_option_snapshots(
    results: list[dict[str, Any]], underlying: str, session: dt.date, source: str = "polygon"
) -> pl.DataFrame:
    """Polygon ``/v3/snapshot/options/{underlying}`` ``results`` in CHAIN_RAW_SCHEMA."""
    rows = []
    for r in results:
        d, q, t, g = (r.get(k) or {} for k in ("details", "last_quote", "last_trade", "greeks"))
        rows.append(
            {
                "contract": d.get("ticker"),
                "bid": q.get("bid"),
                "ask": q.get("ask"),
                "last": t.get("price"),
                "volume": (r.get("day") or {}).get("volume"),
                "open_interest": r.get("open_interest"),
                "quote_ns": q.get("last_updated"),
                "underlying_price": (r.get("underlying_asset") or {}).get("price"),
                "vendor_iv": r.get("implied_volatility"),
                **{f"vendor_{k}": g.get(k) for k in ("delta", "gamma", "theta", "vega")},
            }
        )
    wire = {
        "contract": _S,
        "bid": _F,
        "ask": _F,
        "last": _F,
        "volume": _F,
        "open_interest": _F,
        "quote_ns": _I,
        "underlying_price": _F,
        "vendor_iv": _F,
        **{f"vendor_{k}": _F for k in ("delta", "gamma", "theta", "vega")},
    }
    frame = _frame(rows, wire, "polygon option snapshots", ("contract",))
    frame = frame.with_columns(pl.col("quote_ns").cast(pl.Datetime("ns", "UTC")).alias("quote_ts"))
    return _chain(frame, underlying, session, source, "polygon option snapshots")


def alpaca_option_contracts(contracts: list[Any]) -> pl.DataFrame:
    """alpaca-py ``OptionContract`` models (strings for quantities on the wire) as contracts."""
    rows = [
        {
            "contract": c.symbol,
            "underlying": c.underlying_symbol,
            "expiry": c.expiration_date,
            "strike": c.strike_price,
            "right": "C" if str(getattr(c.type, "value", c.type)) == "call" else "P",
            "open_interest": c.open_interest,
            "close_price": c.close_price,
        }
        for c in contracts
    ]
    return _frame(
        rows, CONTRACT_SCHEMA, "alpaca option contracts", ("contract", "expiry", "strike", "right")
    )


def _iso_date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def polygon_option_contracts(results: list[dict[str, Any]]) -> pl.DataFrame:
    """Polygon ``/v3/reference/options/contracts`` ``results`` as contracts."""
    rows = [
        {
            "contract": (r.get("ticker") or "").removeprefix("O:") or None,
            "underlying": r.get("underlying_ticker"),
            "expiry": _iso_date(r.get("expiration_date")),
            "strike": r.get("strike_price"),
            "right": {"call": "C", "put": "P"}.get(str(r.get("contract_type"))),
            "open_interest": None,
            "close_price": None,
        }
        for r in results
    ]
    return _frame(
        rows, CONTRACT_SCHEMA, "polygon option contracts", ("contract", "expiry", "strike", "right")
    )
