"""OCC option symbols: parse/format round trips, Polygon prefix, vectorized parsing, bad input."""

from __future__ import annotations

import dataclasses
import doctest
from datetime import date

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from strategies.occ import OptionSymbol, format_symbol, parse, parse_many


def test_parse_known_symbols() -> None:
    assert parse("SPY240426C00555000") == OptionSymbol("SPY", date(2024, 4, 26), "C", 555.0)
    assert parse("O:AAPL250117P00012500") == OptionSymbol("AAPL", date(2025, 1, 17), "P", 12.5)
    assert parse("SPY   240426P00555500").strike == 555.5  # 21-char space-padded OSI
    assert parse("BRKB261218C00000001").strike == 0.001
    assert parse("AAPL1240119C00150000").root == "AAPL1"  # adjusted series
    assert not parse("SPY240426P00555000").is_call


def test_format_with_and_without_polygon_prefix() -> None:
    sym = OptionSymbol("SPXW", date(2024, 12, 20), "P", 5875.0)
    assert format_symbol(sym) == "SPXW241220P05875000"
    assert format_symbol(sym, polygon=True) == "O:SPXW241220P05875000"
    assert sym.to_occ(polygon=True) == "O:SPXW241220P05875000"


symbols = st.builds(
    OptionSymbol,
    root=st.from_regex(r"[A-Z][A-Z0-9]{0,5}", fullmatch=True),
    expiry=st.dates(date(2000, 1, 1), date(2099, 12, 31)),
    right=st.sampled_from(["C", "P"]),
    strike=st.integers(1, 99_999_999).map(lambda millis: millis / 1000.0),
)


@given(symbols, st.booleans())
def test_round_trip_symbol_text_symbol(sym: OptionSymbol, polygon: bool) -> None:
    text = format_symbol(sym, polygon=polygon)
    assert parse(text) == sym
    assert format_symbol(parse(text), polygon=polygon) == text
    assert len(text) == len(sym.root) + 15 + (2 if polygon else 0)


@pytest.mark.parametrize(
    "bad",
    [
        "SPY240426X00555000",  # right
        "SPY240426C0055500",  # 7-digit strike
        "spy240426C00555000",  # lower case root
        "TOOLONGROOT240426C00555000",
        "SPY24042C00555000",  # short date
        "SPY240426C00555000\n",
        "X:SPY240426C00555000",  # wrong prefix
        "",
    ],
)
def test_bad_symbols_raise_with_the_input_in_the_message(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        parse(bad)
    assert repr(bad) in str(info.value)


def test_bad_dates_strikes_and_types() -> None:
    with pytest.raises(ValueError, match=r"'240231'.*SPY240231C00555000"):
        parse("SPY240231C00555000")
    with pytest.raises(ValueError, match="SPY240426C00000000"):
        parse("SPY240426C00000000")
    with pytest.raises(ValueError, match="None"):
        parse(None)  # type: ignore[arg-type]


def test_option_symbol_validates_and_is_frozen() -> None:
    with pytest.raises(ValueError, match="right"):
        OptionSymbol("SPY", date(2024, 4, 26), "X", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="0.0005"):
        OptionSymbol("SPY", date(2024, 4, 26), "C", 0.0005)
    with pytest.raises(ValueError, match="100000"):
        OptionSymbol("SPY", date(2024, 4, 26), "C", 100_000.0)
    with pytest.raises(ValueError, match="1999"):
        OptionSymbol("SPY", date(1999, 4, 26), "C", 10.0)
    with pytest.raises(ValueError, match="'S P Y'"):
        OptionSymbol("S P Y", date(2024, 4, 26), "C", 10.0)
    sym = OptionSymbol("SPY", date(2024, 4, 26), "C", 10.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sym.strike = 11.0  # type: ignore[misc]


@pytest.mark.parametrize("container", [list, pd.Series, pl.Series, np.array])
def test_parse_many_columns(container) -> None:
    raw = ["SPY240426C00555000", "O:QQQ240503P00420500", "SPY   240426P00555000"]
    cols = parse_many(container(raw))
    assert list(cols["root"]) == ["SPY", "QQQ", "SPY"]
    np.testing.assert_array_equal(
        cols["expiry"], np.array(["2024-04-26", "2024-05-03", "2024-04-26"], dtype="datetime64[D]")
    )
    assert list(cols["right"]) == ["C", "P", "P"]
    np.testing.assert_array_equal(cols["is_call"], [True, False, False])
    np.testing.assert_array_equal(cols["strike"], [555.0, 420.5, 555.0])
    assert len(pl.DataFrame(cols)) == 3 and len(pd.DataFrame(cols)) == 3


def test_parse_many_matches_scalar_parse() -> None:
    rng = np.random.default_rng(0)
    syms = [
        OptionSymbol("SPY", date(2024, 1, 1 + int(d)), "CP"[int(c)], int(m) / 1000.0)
        for d, c, m in zip(
            rng.integers(0, 28, 500),
            rng.integers(0, 2, 500),
            rng.integers(1, 10**8, 500),
            strict=True,
        )
    ]
    cols = parse_many([format_symbol(s, polygon=bool(i % 2)) for i, s in enumerate(syms)])
    assert [s.strike for s in syms] == list(cols["strike"])
    assert [np.datetime64(s.expiry, "D") for s in syms] == list(cols["expiry"])


def test_parse_many_reports_bad_entries() -> None:
    with pytest.raises(ValueError, match=r"3 invalid.*'BAD'.*None.*'SPY240231C00555000'"):
        parse_many(["SPY240426C00555000", "BAD", None, "SPY240231C00555000"])
    empty = parse_many([])
    assert empty["strike"].shape == (0,)


def test_docstring_examples() -> None:
    import strategies.occ

    assert doctest.testmod(strategies.occ).failed == 0


@given(st.text(max_size=30))
def test_parse_never_fails_with_anything_but_value_error(text: str) -> None:
    try:
        sym = parse(text)
    except ValueError as exc:
        assert repr(text) in str(exc)
    else:
        assert format_symbol(sym) == text.removeprefix("O:").replace(" ", "")
