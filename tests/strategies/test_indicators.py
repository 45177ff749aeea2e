"""Indicators against TA-Lib / pandas per symbol, causality, resampling and config validation."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
import talib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategies.indicators import (
    IndicatorConfig,
    add_indicators,
    atr,
    bollinger,
    daily_from_minute,
    ema,
    macd,
    realized_vol,
    resample_bars,
    rsi,
    sma,
    true_range,
)

SYMBOLS = ("AAA", "BBB", "CCC")
START = dt.datetime(2021, 1, 4, tzinfo=dt.UTC)
TOL = 1e-9


def make_bars(n: int = 500, symbols: tuple[str, ...] = SYMBOLS, seed: int = 7) -> pl.DataFrame:
    """Seeded random-walk daily bars, symbols interleaved row by row (sorted by ts, symbol)."""
    rng = np.random.default_rng(seed)
    ts = [START + dt.timedelta(days=i) for i in range(n)]
    frames = []
    for k, sym in enumerate(symbols):
        close = (50.0 + 50 * k) * np.exp(np.cumsum(rng.normal(0.0, 0.015, n)))
        open_ = close * np.exp(rng.normal(0.0, 0.004, n))
        high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, 0.006, n)))
        low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0.0, 0.006, n)))
        volume = rng.integers(1_000, 100_000, n)
        frames.append(
            pl.DataFrame(
                {"symbol": sym, "ts": ts, "open": open_, "high": high, "low": low}
                | {"close": close, "volume": volume}
            )
        )
    return pl.concat(frames).sort("ts", "symbol")


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return make_bars()


def assert_like_talib(ours: pl.Series, ref: np.ndarray) -> None:
    """Null exactly where the reference is NaN, equal to 1e-9 elsewhere."""
    assert ours.dtype == pl.Float64
    assert not ours.is_nan().any(), f"{ours.name}: warm-up must be null, not NaN"
    warm = np.isnan(ref)
    assert (~warm).sum() > 0, "vacuous comparison"
    np.testing.assert_array_equal(ours.is_null().to_numpy(), warm, err_msg=f"{ours.name} warm-up")
    got = ours.to_numpy()
    np.testing.assert_allclose(got[~warm], ref[~warm], rtol=0, atol=TOL, err_msg=ours.name)


def per_symbol(df: pl.DataFrame, exprs: list[pl.Expr]):
    out = df.with_columns(exprs)
    for sym in SYMBOLS:
        g = out.filter(pl.col("symbol") == sym)
        yield g, {c: g[c].to_numpy().astype(float) for c in ("open", "high", "low", "close")}


@pytest.mark.parametrize("n", [2, 5, 20, 50])
def test_sma_ema_match_talib(bars: pl.DataFrame, n: int) -> None:
    for g, p in per_symbol(bars, [sma("close", n), ema("close", n)]):
        assert_like_talib(g[f"sma_{n}"], talib.SMA(p["close"], n))
        assert_like_talib(g[f"ema_{n}"], talib.EMA(p["close"], n))


@pytest.mark.parametrize("n", [2, 6, 14, 30])
def test_rsi_matches_talib(bars: pl.DataFrame, n: int) -> None:
    for g, p in per_symbol(bars, [rsi("close", n)]):
        assert_like_talib(g[f"rsi_{n}"], talib.RSI(p["close"], n))


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5), (3, 10, 1)])
def test_macd_matches_talib(bars: pl.DataFrame, fast: int, slow: int, signal: int) -> None:
    for g, p in per_symbol(bars, list(macd("close", fast, slow, signal))):
        line, sig, hist = talib.MACD(p["close"], fast, slow, signal)
        assert_like_talib(g["macd"], line)
        assert_like_talib(g["macd_signal"], sig)
        assert_like_talib(g["macd_hist"], hist)
        assert g["macd"].null_count() == slow + signal - 2


def test_macd_seeding_quirk_is_what_makes_it_match(bars: pl.DataFrame) -> None:
    """TA-Lib's MACD is not EMA(12) - EMA(26): its fast EMA is seeded at row 25, not 11."""
    for g, p in per_symbol(bars, list(macd("close"))):
        naive = talib.EMA(p["close"], 12) - talib.EMA(p["close"], 26)
        assert abs(g["macd"][33] - naive[33]) > 1e-4


@pytest.mark.parametrize(("n", "k"), [(20, 2.0), (5, 1.5), (2, 3.0)])
def test_bollinger_matches_talib(bars: pl.DataFrame, n: int, k: float) -> None:
    for g, p in per_symbol(bars, list(bollinger("close", n, k))):
        upper, middle, lower = talib.BBANDS(p["close"], n, k, k, 0)
        assert_like_talib(g[f"bb_upper_{n}"], upper)
        assert_like_talib(g[f"bb_middle_{n}"], middle)
        assert_like_talib(g[f"bb_lower_{n}"], lower)


@pytest.mark.parametrize("n", [1, 2, 14, 30])
def test_atr_and_true_range_match_talib(bars: pl.DataFrame, n: int) -> None:
    for g, p in per_symbol(bars, [atr(n), true_range()]):
        assert_like_talib(g[f"atr_{n}"], talib.ATR(p["high"], p["low"], p["close"], n))
        assert_like_talib(g["tr"], talib.TRANGE(p["high"], p["low"], p["close"]))


@pytest.mark.parametrize(("n", "ppy"), [(20, 252), (2, 252), (60, 252 * 390)])
def test_realized_vol_matches_pandas(bars: pl.DataFrame, n: int, ppy: float) -> None:
    out = bars.with_columns(realized_vol("close", n, ppy))
    pdf = bars.to_pandas()
    log_ret = np.log(pdf["close"]).groupby(pdf["symbol"]).diff()
    ref = log_ret.groupby(pdf["symbol"]).rolling(n).std(ddof=1).droplevel(0).sort_index()
    assert_like_talib(out[f"rv_{n}"], ref.to_numpy() * math.sqrt(ppy))


def test_add_indicators_matches_the_single_indicators(bars: pl.DataFrame) -> None:
    config = IndicatorConfig(sma_windows=(5, 20), rv_windows=(10, 20))
    out = add_indicators(bars, config)
    assert out.columns == bars.columns + config.columns()
    assert out.select(bars.columns).equals(bars)  # row order and inputs untouched
    for g, p in per_symbol(out, []):
        c = p["close"]
        assert_like_talib(g["sma_5"], talib.SMA(c, 5))
        assert_like_talib(g["ema_20"], talib.EMA(c, 20))
        assert_like_talib(g["rsi_14"], talib.RSI(c, 14))
        assert_like_talib(g["macd_hist"], talib.MACD(c)[2])
        assert_like_talib(g["bb_lower_20"], talib.BBANDS(c, 20, 2, 2, 0)[2])
        assert_like_talib(g["atr_14"], talib.ATR(p["high"], p["low"], c, 14))
        assert g["rv_10"].null_count() == 10


def test_row_interleaving_does_not_change_values(bars: pl.DataFrame) -> None:
    interleaved = add_indicators(bars)
    grouped = add_indicators(bars.sort("symbol", "ts"))
    assert interleaved.sort("symbol", "ts").equals(grouped)


def test_flat_prices_match_talib_zero_conventions() -> None:
    """Flat start: RSI is 0 (not 50, not NaN) and the bands collapse, exactly as TA-Lib."""
    close = np.r_[np.full(40, 100.0), 100.0 + np.cumsum(np.linspace(-1, 1, 60))]
    df = pl.DataFrame({"close": close, "high": close + 1, "low": close - 1})
    out = df.with_columns(rsi("close", 14, by=None), *bollinger("close", 20, by=None))
    assert_like_talib(out["rsi_14"], talib.RSI(close, 14))
    assert out["rsi_14"][14] == 0.0
    assert_like_talib(out["bb_upper_20"], talib.BBANDS(close, 20, 2, 2, 0)[0])
    assert out["bb_upper_20"][19] == 100.0


def test_short_history_is_all_null_like_talib(bars: pl.DataFrame) -> None:
    short = bars.filter(pl.col("symbol") == "AAA").head(20).with_columns(symbol=pl.lit("NEW"))
    out = add_indicators(pl.concat([bars, short]))
    new = out.filter(pl.col("symbol") == "NEW")
    # 20 rows: warm-up as TA-Lib's lookback, all null where the lookback is >= 20 (MACD: 33).
    lookback = {"sma_20": 19, "ema_20": 19, "bb_upper_20": 19, "rsi_14": 14, "atr_14": 14}
    lookback |= {"macd": 20, "macd_signal": 20, "macd_hist": 20, "rv_20": 20}
    assert {c: new[c].null_count() for c in lookback} == lookback
    close = new["close"].to_numpy()
    assert_like_talib(new["rsi_14"], talib.RSI(close, 14))
    assert np.isnan(talib.MACD(close)[0]).all()
    assert out.filter(pl.col("symbol") == "AAA").equals(
        add_indicators(bars).filter(pl.col("symbol") == "AAA")
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(min_value=0, max_value=498), seed=st.integers(0, 2**32 - 1))
def test_no_look_ahead(bars: pl.DataFrame, cut: int, seed: int) -> None:
    """Rewriting every bar after `cut` (or dropping them) leaves all earlier values unchanged."""
    config = IndicatorConfig(sma_windows=(3, 20), rsi_windows=(2, 14), rv_windows=(2, 20))
    cutoff = START + dt.timedelta(days=cut)
    future = pl.col("ts") > cutoff
    rng = np.random.default_rng(seed)
    shock = pl.Series(rng.lognormal(0.0, 0.2, bars.height))
    changed = bars.with_columns(
        [pl.when(future).then(pl.col(c) * shock).otherwise(pl.col(c)) for c in ("high", "low")]
        + [pl.when(future).then(pl.col("close") / shock).otherwise(pl.col("close"))]
    ).with_columns(high=pl.max_horizontal("high", "close"), low=pl.min_horizontal("low", "close"))
    base = add_indicators(bars, config).filter(~future)
    assert add_indicators(changed, config).filter(~future).equals(base)
    assert add_indicators(bars.filter(~future), config).equals(base)


# --- resampling ---------------------------------------------------------------------------


def _utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def minute_bars() -> pl.DataFrame:
    """Two symbols, a winter (EST) and a summer (EDT) session, pre- and after-hours included."""
    times = (
        [_utc(2024, 1, 16, 9, 0)]  # 04:00 New York, pre-market of Jan 16
        + [_utc(2024, 1, 16, 14, 30) + dt.timedelta(minutes=i) for i in range(12)]
        + [_utc(2024, 1, 17, 0, 30)]  # 19:30 New York on Jan 16: still that session
        + [_utc(2024, 7, 1, 13, 30) + dt.timedelta(minutes=i) for i in range(7)]
        + [_utc(2024, 7, 1, 23, 59)]
    )
    rng = np.random.default_rng(3)
    rows = []
    for sym in ("XYZ", "ABC"):
        for t in times:
            o, c = rng.uniform(99, 101, 2)
            rows.append(
                {"symbol": sym, "ts": t, "open": o, "high": max(o, c) + rng.uniform(0, 0.5)}
                | {"low": min(o, c) - rng.uniform(0, 0.5), "close": c}
                | {"volume": int(rng.integers(0, 500)), "vwap": (o + c) / 2}
                | {"trade_count": int(rng.integers(1, 50))}
            )
    rows[3]["volume"] = 0  # zero-volume bars must not break the VWAP
    return pl.DataFrame(rows).sort("ts", "symbol")


def _hand_aggregate(rows: list[dict], key) -> dict:
    """Reference aggregation with plain Python loops; rows are in ascending ts per symbol."""
    out: dict = {}
    for r in sorted(rows, key=lambda r: (r["symbol"], r["ts"])):
        k = (r["symbol"], key(r))
        if k not in out:
            out[k] = {"open": r["open"], "high": r["high"], "low": r["low"], "pv": 0.0}
            out[k] |= {"volume": 0, "trade_count": 0}
        b = out[k]
        b["high"], b["low"] = max(b["high"], r["high"]), min(b["low"], r["low"])
        b["close"] = r["close"]
        b["volume"] += r["volume"]
        b["trade_count"] += r["trade_count"]
        b["pv"] += r["vwap"] * r["volume"]
    for b in out.values():
        b["vwap"] = b.pop("pv") / b["volume"] if b["volume"] else None
    return out


def _assert_bars_equal(got: pl.DataFrame, expected: dict, ts_of) -> None:
    assert got.height == len(expected)
    for row in got.iter_rows(named=True):
        key = (row["symbol"], ts_of(row))
        exp = expected[key]
        for col in ("open", "high", "low", "close", "volume", "trade_count"):
            assert row[col] == exp[col], (key, col)
        if exp["vwap"] is None:
            assert row["vwap"] is None
        else:
            assert row["vwap"] == pytest.approx(exp["vwap"], rel=1e-12)


def _ny_date(t: dt.datetime) -> dt.date:
    return t.astimezone(dt.timezone(dt.timedelta(hours=-5 if t.month == 1 else -4))).date()


def test_daily_from_minute_equals_hand_computation(minute_bars: pl.DataFrame) -> None:
    daily = daily_from_minute(minute_bars)
    expected = _hand_aggregate(minute_bars.to_dicts(), lambda r: _ny_date(r["ts"]))
    _assert_bars_equal(daily, expected, lambda r: r["session"])
    assert daily.columns[:3] == ["symbol", "ts", "session"]
    assert daily["volume"].dtype == pl.Int64
    # Stamped at midnight New York (05:00Z in winter, 04:00Z in summer), sorted by symbol, ts.
    assert daily["ts"].to_list()[:2] == [_utc(2024, 1, 16, 5), _utc(2024, 7, 1, 4)]
    assert daily["symbol"].to_list() == ["ABC", "ABC", "XYZ", "XYZ"]


def test_session_column_wins_over_the_clock(minute_bars: pl.DataFrame) -> None:
    # A provider labels the after-hours bar as part of the next session; we follow its label.
    label = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date()
    moved = pl.when(pl.col("ts") == _utc(2024, 1, 17, 0, 30)).then(dt.date(2024, 1, 17))
    df = minute_bars.with_columns(session=moved.otherwise(label))
    daily = resample_bars(df, "1d", by_session=True)
    expected = _hand_aggregate(df.to_dicts(), lambda r: r["session"])
    _assert_bars_equal(daily, expected, lambda r: r["session"])
    assert daily.height == 6


def test_daily_by_utc_day_without_sessions(minute_bars: pl.DataFrame) -> None:
    daily = resample_bars(minute_bars, "1d", by_session=False)
    expected = _hand_aggregate(minute_bars.to_dicts(), lambda r: r["ts"].date())
    _assert_bars_equal(daily, expected, lambda r: r["ts"].date())
    assert "session" not in daily.columns


@pytest.mark.parametrize(("every", "minutes"), [("5m", 5), ("1h", 60)])
def test_intraday_resample_equals_hand_computation(
    minute_bars: pl.DataFrame, every: str, minutes: int
) -> None:
    def bucket(t: dt.datetime) -> dt.datetime:
        return t - dt.timedelta(minutes=(t.hour * 60 + t.minute) % minutes)

    out = resample_bars(minute_bars, every, by_session=True)
    _assert_bars_equal(
        out, _hand_aggregate(minute_bars.to_dicts(), lambda r: bucket(r["ts"])), lambda r: r["ts"]
    )


def test_resample_without_vwap_uses_typical_price(minute_bars: pl.DataFrame) -> None:
    df = minute_bars.drop("vwap", "trade_count").filter(pl.col("symbol") == "XYZ")
    out = resample_bars(df, "1h").filter(pl.col("ts") == _utc(2024, 7, 1, 13))
    src = df.filter(pl.col("ts").is_between(_utc(2024, 7, 1, 13), _utc(2024, 7, 1, 13, 59)))
    typical = (src["high"] + src["low"] + src["close"]) / 3
    assert out["vwap"].item() == pytest.approx(
        (typical * src["volume"]).sum() / src["volume"].sum()
    )
    assert "trade_count" not in out.columns


def test_multi_timeframe_daily_indicators_from_minute() -> None:
    rng = np.random.default_rng(11)
    sessions = [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(60)]
    minutes = [dt.timedelta(hours=14, minutes=30 + i) for i in range(30)]
    ts = [dt.datetime.combine(d, dt.time(), tzinfo=dt.UTC) + m for d in sessions for m in minutes]
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, len(ts))))
    minute = pl.DataFrame(
        {"symbol": "XYZ", "ts": ts, "open": close, "high": close * 1.001, "low": close * 0.999}
        | {"close": close, "volume": rng.integers(1, 100, len(ts))}
    )
    daily = add_indicators(daily_from_minute(minute))
    assert daily.height == 60
    closes = minute.group_by_dynamic("ts", every="1d").agg(pl.col("close").last())["close"]
    assert_like_talib(daily["ema_20"], talib.EMA(closes.to_numpy(), 20))


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"sma_windows": (20, 0)}, "sma_windows"),
        ({"ema_windows": (-3,)}, "ema_windows"),
        ({"rsi_windows": (14, 14)}, "rsi_windows"),
        ({"bb_windows": (2.5,)}, "bb_windows"),
        ({"atr_windows": 14}, "atr_windows"),
        ({"rv_windows": (1,)}, "rv_windows"),
        ({"bb_k": 0}, "bb_k"),
        ({"bb_k": float("nan")}, "bb_k"),
        ({"periods_per_year": -252}, "periods_per_year"),
        ({"macd_fast": 26}, "macd_fast"),
        ({"macd_fast": 30, "macd_slow": 26}, "macd_fast"),
        ({"macd_signal": 0}, "macd_signal"),
        ({"macd_slow": True}, "macd_slow"),
        ({"price_col": ""}, "price_col"),
    ],
)
def test_bad_config_raises_naming_the_parameter(kwargs: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        IndicatorConfig(**kwargs)


def test_config_is_frozen_and_hashable() -> None:
    config = IndicatorConfig(sma_windows=[10, 50])  # type: ignore[arg-type]
    assert config.sma_windows == (10, 50)
    assert hash(config) == hash(IndicatorConfig(sma_windows=(10, 50)))
    from_grid = IndicatorConfig(rsi_windows=(np.int64(9),), macd_signal=np.int32(5))
    assert from_grid.rsi_windows == (9,) and type(from_grid.macd_signal) is int
    with pytest.raises(AttributeError):
        config.bb_k = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: sma("close", 0), "n"),
        (lambda: ema("close", -1), "n"),
        (lambda: rsi("close", 0), "n"),
        (lambda: atr(0), "n"),
        (lambda: bollinger("close", 20, k=-2), "k"),
        (lambda: macd("close", 26, 12), "fast"),
        (lambda: macd("close", 12, 26, 0), "signal"),
        (lambda: realized_vol("close", 1), "n"),
        (lambda: realized_vol("close", 20, 0), "periods_per_year"),
        (lambda: resample_bars(make_bars(5), "2d"), "every"),
        (lambda: resample_bars(make_bars(5), "30s"), "every"),
    ],
)
def test_bad_arguments_raise_naming_the_parameter(call, named: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{named}\b"):
        call()


def test_add_indicators_rejects_bad_bars(bars: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="missing column"):
        add_indicators(bars.drop("high"))
    with pytest.raises(ValueError, match="strictly ascending"):
        add_indicators(bars.sort("ts", descending=True))
    with pytest.raises(ValueError, match="'close' has 1 null"):
        add_indicators(
            bars.with_columns(
                pl.when(pl.int_range(pl.len()) == 7)
                .then(None)
                .otherwise(pl.col("close"))
                .alias("close")
            )
        )
    with pytest.raises(ValueError, match="already have"):
        add_indicators(add_indicators(bars))
    with pytest.raises(ValueError, match="timezone-aware"):
        resample_bars(bars.with_columns(pl.col("ts").dt.replace_time_zone(None)), "1h")
