"""OCC option symbols (OSI): ``SPY240426C00555000`` = root + YYMMDD + C|P + strike x 1000.

The root is 1-6 upper-case letters or digits (digits mark adjusted series, e.g. ``AAPL1``); the
strike is the price in thousandths, zero-padded to 8 digits (so at most 99,999.999). Polygon
prefixes option tickers with ``O:``; :func:`parse` accepts it and :func:`format_symbol` adds it on
request. The space-padded 21-character OSI form (``"SPY   240426C00555000"``) is accepted too.
Two-digit years are read as 20YY (OSI dates from 2010).

Example:
    >>> sym = parse("O:SPY240426C00555000")
    >>> sym
    OptionSymbol(root='SPY', expiry=datetime.date(2024, 4, 26), right='C', strike=555.0)
    >>> format_symbol(sym)
    'SPY240426C00555000'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import numpy as np
import polars as pl

POLYGON_PREFIX = "O:"
_PATTERN = r"^(?:O:)?([A-Z0-9]{1,6}) *([0-9]{6})([CP])([0-9]{8})$"
_REGEX = re.compile(_PATTERN)
_ROOT = re.compile(r"^[A-Z0-9]{1,6}$")
_MAX_STRIKE_MILLIS = 99_999_999


@dataclass(frozen=True, slots=True)
class OptionSymbol:
    """One listed option contract as named by its OCC symbol.

    Attributes:
        root: Underlying root, 1-6 upper-case letters or digits.
        expiry: Expiration date (2000-2099).
        right: ``"C"`` for a call, ``"P"`` for a put.
        strike: Strike price; a multiple of 0.001 below 100,000.
    """

    root: str
    expiry: date
    right: Literal["C", "P"]
    strike: float

    def __post_init__(self) -> None:
        if not isinstance(self.root, str) or not _ROOT.match(self.root):
            raise ValueError(f"OCC root must be 1-6 upper-case letters/digits, got {self.root!r}")
        if not isinstance(self.expiry, date) or not 2000 <= self.expiry.year <= 2099:
            raise ValueError(f"OCC expiry must be a date in 2000-2099, got {self.expiry!r}")
        if self.right not in ("C", "P"):
            raise ValueError(f"OCC right must be 'C' or 'P', got {self.right!r}")
        millis = float(self.strike) * 1000.0
        if not (0 < millis <= _MAX_STRIKE_MILLIS and abs(millis - round(millis)) < 1e-6):
            raise ValueError(
                f"OCC strike must be a positive multiple of 0.001 below 100000, got {self.strike!r}"
            )

    @property
    def is_call(self) -> bool:
        """True for calls."""
        return self.right == "C"

    def to_occ(self, *, polygon: bool = False) -> str:
        """Format as an OCC symbol; see :func:`format_symbol`."""
        return format_symbol(self, polygon=polygon)


def parse(symbol: str) -> OptionSymbol:
    """Parse one OCC symbol (optionally ``O:``-prefixed or space-padded OSI).

    Raises:
        ValueError: naming the symbol when it is not a valid OCC option symbol.
    """
    match = _REGEX.fullmatch(symbol) if isinstance(symbol, str) else None
    if match is None:
        raise ValueError(
            f"not an OCC option symbol: {symbol!r} (expected ROOT+YYMMDD+C|P+8-digit strike x1000,"
            " e.g. 'SPY240426C00555000', optionally prefixed 'O:')"
        )
    root, yymmdd, right, strike = match.groups()
    try:
        expiry = date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
    except ValueError as exc:
        raise ValueError(f"invalid expiry date {yymmdd!r} in OCC symbol {symbol!r}") from exc
    if int(strike) == 0:
        raise ValueError(f"zero strike in OCC symbol {symbol!r}")
    return OptionSymbol(root, expiry, right, int(strike) / 1000.0)  # type: ignore[arg-type]


def format_symbol(symbol: OptionSymbol, *, polygon: bool = False) -> str:
    """Format an :class:`OptionSymbol` as ``ROOTYYMMDD[C|P]SSSSSSSS`` (``O:`` first if polygon)."""
    millis = round(symbol.strike * 1000.0)
    body = f"{symbol.root}{symbol.expiry:%y%m%d}{symbol.right}{millis:08d}"
    return POLYGON_PREFIX + body if polygon else body


def parse_many(symbols: Any) -> dict[str, np.ndarray]:
    """Parse many OCC symbols at once (list, numpy array, pandas or polars Series).

    Returns:
        Columns as numpy arrays: ``root`` (object), ``expiry`` (datetime64[D]), ``right``
        (object, 'C'/'P'), ``is_call`` (bool) and ``strike`` (float64). Feed them straight to
        ``pl.DataFrame(...)`` or ``pd.DataFrame(...)``.

    Raises:
        ValueError: listing (up to five of) the symbols that do not parse, with the count.
    """
    series = pl.Series("symbol", list(symbols) if not isinstance(symbols, pl.Series) else symbols)
    series = series.cast(pl.Utf8, strict=False)
    parts = series.str.extract_groups(_PATTERN).struct.unnest()
    frame = (
        pl.DataFrame({"symbol": series})
        .hstack(parts)
        .with_columns(
            pl.concat_str(pl.lit("20"), pl.col("2"))
            .str.to_date("%Y%m%d", strict=False)
            .alias("expiry"),
            pl.col("4").cast(pl.Int64, strict=False).alias("millis"),
        )
    )
    bad = frame.filter(
        pl.col("expiry").is_null() | pl.col("millis").is_null() | (pl.col("millis") == 0)
    )["symbol"]
    if bad.len():
        raise ValueError(
            f"{bad.len()} invalid OCC symbol(s), e.g. {bad.head(5).to_list()!r} (expected "
            "ROOT+YYMMDD+C|P+8-digit strike x1000, optionally prefixed 'O:')"
        )
    right = frame["3"].to_numpy().astype(object)
    return {
        "root": frame["1"].to_numpy().astype(object),
        "expiry": frame["expiry"].to_numpy().astype("datetime64[D]"),
        "right": right,
        "is_call": right == "C",
        "strike": frame["millis"].to_numpy() / 1000.0,
    }
