"""``IndicatorConfig`` and ``add_indicators``: the standard indicator columns in one call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from strategies.indicators import panel
from strategies.indicators._common import check_int, check_positive
from strategies.indicators._frame import PanelLayout, panel_layout
from strategies.indicators.moving import ema, macd, sma
from strategies.indicators.oscillators import atr, bollinger, realized_vol, rsi

_WINDOW_FIELDS = {  # field -> smallest valid window
    "sma_windows": 1,
    "ema_windows": 1,
    "rsi_windows": 1,
    "bb_windows": 1,
    "atr_windows": 1,
    "rv_windows": 2,
}


def _windows(name: str, value: object, minimum: int) -> tuple[int, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"IndicatorConfig.{name} must be a sequence of integers, got {value!r}")
    out = tuple(check_int(f"IndicatorConfig.{name}[{i}]", v, minimum) for i, v in enumerate(value))
    if len(set(out)) != len(out):
        raise ValueError(f"IndicatorConfig.{name} has duplicate windows: {out}")
    return out


@dataclass(frozen=True, slots=True)
class IndicatorConfig:
    """Which indicators ``add_indicators`` computes; an empty window tuple switches one off.

    Attributes:
        price_col: Column the price-based indicators read (ATR always reads high/low/close).
        sma_windows: SMA periods -> ``sma_{n}``.
        ema_windows: EMA periods -> ``ema_{n}``.
        rsi_windows: RSI periods -> ``rsi_{n}``.
        bb_windows: Bollinger periods -> ``bb_upper_{n}``, ``bb_middle_{n}``, ``bb_lower_{n}``.
        bb_k: Bollinger band width in standard deviations.
        atr_windows: ATR periods -> ``atr_{n}``.
        rv_windows: Realized-volatility windows (>= 2 returns) -> ``rv_{n}``.
        periods_per_year: Bars per year for annualizing ``rv_{n}`` (252 daily, 252*390 minute).
        include_macd: Whether to add ``macd``, ``macd_signal``, ``macd_hist``.
        macd_fast: MACD fast period (< macd_slow).
        macd_slow: MACD slow period.
        macd_signal: MACD signal period.

    Raises:
        ValueError: On construction, naming the first invalid field.
    """

    price_col: str = "close"
    sma_windows: tuple[int, ...] = (20,)
    ema_windows: tuple[int, ...] = (20,)
    rsi_windows: tuple[int, ...] = (14,)
    bb_windows: tuple[int, ...] = (20,)
    bb_k: float = 2.0
    atr_windows: tuple[int, ...] = (14,)
    rv_windows: tuple[int, ...] = (20,)
    periods_per_year: float = 252.0
    include_macd: bool = True
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9

    def __post_init__(self) -> None:
        if not isinstance(self.price_col, str) or not self.price_col:
            raise ValueError(
                f"IndicatorConfig.price_col must be a column name, got {self.price_col!r}"
            )
        for name, minimum in _WINDOW_FIELDS.items():
            # Lists are accepted and frozen into tuples so the config stays hashable.
            object.__setattr__(self, name, _windows(name, getattr(self, name), minimum))
        object.__setattr__(self, "bb_k", check_positive("IndicatorConfig.bb_k", self.bb_k))
        ppy = check_positive("IndicatorConfig.periods_per_year", self.periods_per_year)
        object.__setattr__(self, "periods_per_year", ppy)
        for name in ("macd_fast", "macd_slow", "macd_signal"):
            object.__setattr__(
                self, name, check_int(f"IndicatorConfig.{name}", getattr(self, name), 1)
            )
        if self.macd_fast >= self.macd_slow:
            raise ValueError(
                "IndicatorConfig.macd_fast must be < macd_slow, got "
                f"macd_fast={self.macd_fast}, macd_slow={self.macd_slow}"
            )

    def columns(self) -> list[str]:
        """Names of the columns ``add_indicators`` adds, in order."""
        names = [f"sma_{n}" for n in self.sma_windows] + [f"ema_{n}" for n in self.ema_windows]
        names += [f"rsi_{n}" for n in self.rsi_windows]
        if self.include_macd:
            names += ["macd", "macd_signal", "macd_hist"]
        for n in self.bb_windows:
            names += [f"bb_upper_{n}", f"bb_middle_{n}", f"bb_lower_{n}"]
        names += [f"atr_{n}" for n in self.atr_windows] + [f"rv_{n}" for n in self.rv_windows]
        return names

    def input_columns(self) -> list[str]:
        """Columns a frame needs besides ``symbol`` and ``ts``."""
        cols = [self.price_col]
        if self.atr_windows:
            cols += [c for c in ("high", "low", "close") if c not in cols]
        return cols


def indicator_exprs(config: IndicatorConfig, *, by: str = "symbol") -> list[pl.Expr]:
    """``add_indicators``' columns as per-symbol polars expressions (same values; composable in
    a lazy query, slower), in ``config.columns()`` order."""
    p = config.price_col
    exprs = [sma(p, n, by=by) for n in config.sma_windows]
    exprs += [ema(p, n, by=by) for n in config.ema_windows]
    exprs += [rsi(p, n, by=by) for n in config.rsi_windows]
    if config.include_macd:
        exprs += macd(p, config.macd_fast, config.macd_slow, config.macd_signal, by=by)
    for n in config.bb_windows:
        exprs += bollinger(p, n, config.bb_k, by=by)
    exprs += [atr(n, by=by) for n in config.atr_windows]
    exprs += [realized_vol(p, n, config.periods_per_year, by=by) for n in config.rv_windows]
    return exprs


def _validate_bars(df: pl.DataFrame, config: IndicatorConfig) -> None:
    needed = ["symbol", "ts", *config.input_columns()]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"add_indicators: bars are missing column(s) {missing}")
    clash = [c for c in config.columns() if c in df.columns]
    if clash:
        raise ValueError(f"add_indicators: bars already have indicator column(s) {clash}")
    for c in config.input_columns():
        if not df.schema[c].is_numeric():
            raise ValueError(f"add_indicators: column {c!r} must be numeric, got {df.schema[c]}")
        x = pl.col(c).cast(pl.Float64)
        bad = df.select((x.is_null() | ~x.is_finite()).sum()).item()
        if bad:
            raise ValueError(
                f"add_indicators: column {c!r} has {bad} null/NaN/inf value(s); fill or drop "
                "those bars first (one bad value would poison every later EMA value)"
            )
    if df["ts"].null_count():
        raise ValueError(f"add_indicators: ts has {df['ts'].null_count()} null value(s)")


def _layout(df: pl.DataFrame) -> PanelLayout:
    layout = panel_layout(df)
    if layout.unordered:
        raise ValueError(
            f"add_indicators: ts must be strictly ascending within each symbol; "
            f"{layout.unordered} row(s) are not (sort by ['symbol', 'ts'] and drop duplicate bars)"
        )
    return layout


def _panel_columns(
    df: pl.DataFrame, config: IndicatorConfig, layout: PanelLayout, threads: int | None
) -> dict[str, list[np.ndarray]]:
    """Every ``config.columns()`` entry as panels (one per layout shape), NaN on warm-up rows."""
    inputs = {c: layout.panels(df[c].cast(pl.Float64).to_numpy()) for c in config.input_columns()}
    prices = inputs[config.price_col]
    out: dict[str, list[np.ndarray]] = {name: [] for name in config.columns()}
    th = {"threads": threads}
    for k, x in enumerate(prices):
        cols = {f"sma_{n}": panel.sma(x, n, **th) for n in config.sma_windows}
        cols |= {f"ema_{n}": panel.ema(x, n, **th) for n in config.ema_windows}
        cols |= {f"rsi_{n}": panel.rsi(x, n, **th) for n in config.rsi_windows}
        if config.include_macd:
            fast, slow, signal = config.macd_fast, config.macd_slow, config.macd_signal
            lines = panel.macd(x, fast, slow, signal, **th)
            cols |= dict(zip(("macd", "macd_signal", "macd_hist"), lines, strict=True))
        for n in config.bb_windows:
            bands = panel.bollinger(x, n, config.bb_k, **th)
            names = (f"bb_upper_{n}", f"bb_middle_{n}", f"bb_lower_{n}")
            cols |= dict(zip(names, bands, strict=True))
        if config.atr_windows:
            hlc = (inputs["high"][k], inputs["low"][k], inputs["close"][k])
            cols |= {f"atr_{n}": panel.atr(*hlc, n, **th) for n in config.atr_windows}
        ppy = config.periods_per_year
        cols |= {f"rv_{n}": panel.realized_vol(x, n, ppy, **th) for n in config.rv_windows}
        for name, values in cols.items():
            out[name].append(values)
    return out


def add_indicators(
    df: pl.DataFrame, config: IndicatorConfig | None = None, *, threads: int | None = 1
) -> pl.DataFrame:
    """Add the standard indicator columns to a frame of bars, per symbol, without look-ahead.

    Rows keep their order (symbols may be interleaved); each indicator is computed over each
    symbol's rows in their given order, which must be ascending ``ts``. Warm-up rows are null
    exactly where TA-Lib returns NaN (see each indicator's docstring).

    Args:
        df: Bars with ``symbol``, ``ts`` and the price columns (``open, high, low, close``).
        config: Which indicators to add; defaults to ``IndicatorConfig()``.
        threads: Threads per indicator kernel (``None``: numba's count; see
            :mod:`strategies.indicators.panel`); values do not depend on it.

    Returns:
        ``df`` with ``config.columns()`` appended.

    Raises:
        ValueError: If a column is missing, not numeric or has nulls/NaNs, an indicator column
            already exists, or ``ts`` is not strictly ascending within a symbol.
    """
    config = IndicatorConfig() if config is None else config
    _validate_bars(df, config)
    # The compiled panel kernels (strategies.indicators.panel) on the symbols' columns; the
    # polars expressions (indicator_exprs) give the same values, an order of magnitude slower.
    layout = _layout(df)
    panels = _panel_columns(df, config, layout, threads)
    return df.with_columns(
        pl.Series(name, layout.column(panels[name]), dtype=pl.Float64, nan_to_null=True)
        for name in config.columns()
    )


__all__ = ["IndicatorConfig", "add_indicators", "indicator_exprs"]
