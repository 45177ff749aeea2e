"""The one accounting model: trades, marks, settlements, collateral, buying power and P&L."""

from __future__ import annotations

import math
from datetime import date

import pytest

from strategies.accounting import (
    OPTION_MULTIPLIER,
    Account,
    Holding,
    multiplier,
    option_requirement,
    requirement,
)
from strategies.models import AssetClass, Book, Position, Right

EXP = date(2024, 6, 21)
PUT_95, PUT_90 = "SPY240621P00095000", "SPY240621P00090000"
CALL_105, CALL_110 = "SPY240621C00105000", "SPY240621C00110000"


def opt(symbol: str) -> Holding:
    return Holding.of(symbol, AssetClass.US_OPTION)


def stock(symbol: str = "SPY") -> Holding:
    return Holding.of(symbol, AssetClass.US_EQUITY)


def test_the_multiplier_is_owned_here() -> None:
    assert OPTION_MULTIPLIER == 100
    assert multiplier(AssetClass.US_OPTION) == multiplier("us_option") == OPTION_MULTIPLIER
    assert multiplier(AssetClass.US_EQUITY) == multiplier("us_equity") == 1
    h = opt(PUT_95)
    assert (h.underlying, h.expiry, h.strike, h.is_call, h.multiplier) == (
        "SPY",
        EXP,
        95,
        False,
        100,
    )


def test_trades_average_realize_and_mark() -> None:
    a = Account(10_000.0)
    a.trade(stock(), 10, 100.0, fees=1.0)
    a.trade(stock(), 10, 110.0)  # adding averages
    assert a.holdings["SPY"].avg_price == pytest.approx(105.0)
    assert a.trade(stock(), -5, 120.0) == pytest.approx(5 * 15.0)  # reducing realizes
    assert a.holdings["SPY"].avg_price == pytest.approx(105.0)
    a.mark("SPY", 130.0)
    st = a.statement()
    assert st.cash == pytest.approx(10_000.0 - 1_000 - 1_100 + 600 - 1.0)
    assert st.market_value == pytest.approx(15 * 130.0)
    assert st.unrealized_pnl == pytest.approx(15 * 25.0)
    # equity - starting cash = realized + unrealized - fees + income
    assert st.equity - 10_000.0 == pytest.approx(st.realized_pnl + st.unrealized_pnl - st.fees)
    a.trade(stock(), -20, 90.0)  # flips short: the remainder opened at the fill
    assert (a.holdings["SPY"].qty, a.holdings["SPY"].avg_price) == (-5, 90.0)
    a.mark("SPY", math.nan)  # a missing price keeps the last mark
    assert a.holdings["SPY"].mark == 130.0


def test_option_cash_flows_use_the_multiplier() -> None:
    a = Account(0.0)
    a.trade(opt(PUT_95), -2, 1.50)
    assert a.cash == pytest.approx(300.0)
    assert a.holdings[PUT_95].mark == 1.50  # first mark: the fill (no template mark)
    a.mark(PUT_95, 0.50, (-0.2, 0.01, 0.05, -0.02))
    assert a.market_value() == pytest.approx(-100.0)
    assert a.greeks().delta == pytest.approx(-2 * 100 * -0.2)
    assert a.trade(opt(PUT_95), 2, 0.50) == pytest.approx(200.0)  # bought back
    assert not a.holdings and a.cash == pytest.approx(200.0)


@pytest.mark.parametrize(
    ("legs", "shares", "need"),
    [
        ([(95.0, False, -1)], 0, 9_500.0),  # cash-secured put: strike x 100
        ([(105.0, True, -1)], 100, 0.0),  # covered call
        ([(105.0, True, -1)], 99, math.inf),  # not a whole lot: naked
        ([(105.0, True, -2)], 100, math.inf),  # one covered, one naked
        ([(105.0, True, -1), (110.0, True, 1)], 0, 500.0),  # call credit spread: the width
        ([(95.0, False, -1), (90.0, False, 1)], 0, 500.0),  # put credit spread
        ([(95.0, False, 1), (90.0, False, -1)], 0, 0.0),  # put debit spread
        ([(95.0, False, -1), (90.0, False, 1), (105.0, True, -1), (110.0, True, 1)], 0, 500.0),
        ([(95.0, False, -1), (85.0, False, 1), (105.0, True, -1), (110.0, True, 1)], 0, 1_000.0),
        ([(90.0, True, 1), (100.0, True, -2), (110.0, True, 1)], 0, 0.0),  # long butterfly
        ([(90.0, True, -1), (100.0, True, 2), (110.0, True, -1)], 0, 1_000.0),  # short fly
        ([(100.0, False, 1)], 0, 0.0),  # long put
    ],
)
def test_collateral_is_the_max_loss(legs: list, shares: float, need: float) -> None:
    assert option_requirement(legs, shares) == need


def test_requirement_is_per_underlying() -> None:
    qqq = Holding.of("QQQ240621C00400000", AssetClass.US_OPTION)
    pairs = [(opt(CALL_105), -1.0), (stock("SPY"), 100.0), (qqq, -1.0), (stock("QQQ"), 0.0)]
    assert requirement(pairs) == math.inf  # the QQQ call is naked; SPY shares do not cover it
    assert requirement(pairs[:2]) == 0.0


def test_buying_power_check_refuses_naked_calls_and_shortfalls() -> None:
    a = Account(1_000.0)
    assert "uncovered short call" in (a.check([(opt(CALL_105), -1, 2.0, 0.0)]) or "")
    condor = [(opt(PUT_95), -1, 1.2, 0.0), (opt(PUT_90), 1, 0.5, 0.0),
              (opt(CALL_105), -1, 1.1, 0.0), (opt(CALL_110), 1, 0.4, 0.0)]  # fmt: skip
    assert a.check(condor) is None  # 1,000 + 140 credit - 500 width
    assert Account(300.0).check(condor) is not None  # 300 + 140 - 500 < 0
    for h, q, px, f in condor:
        a.trade(h, q, px, f)
    assert (a.collateral(), a.buying_power()) == (500.0, pytest.approx(640.0))
    poor = Account(-100.0)  # short of buying power: only what reduces the shortfall passes
    poor.trade(stock(), 100, 0.0)
    assert poor.check([(poor.holdings["SPY"], -10, 50.0, 0.0)]) is None
    assert poor.check([(stock("QQQ"), 1, 50.0, 0.0)]) is not None


def test_assignment_is_physical_and_realizes_the_premium() -> None:
    a = Account(10_000.0)
    a.trade(opt(PUT_95), -1, 2.0)
    a.mark(PUT_95, 3.0)
    [event] = a.expire(EXP, lambda h: 91.0)
    assert (event.kind, event.shares, event.spot) == ("assignment", 100.0, 91.0)
    assert event.pnl == pytest.approx(-100.0)  # short 1 x 100: intrinsic 4 against the mark 3
    spy = a.holdings["SPY"]
    assert (spy.qty, spy.avg_price, spy.mark) == (100.0, 95.0, 91.0)
    assert a.cash == pytest.approx(10_000.0 + 200.0 - 9_500.0)
    assert a.realized == pytest.approx(200.0)  # the premium; the stock's basis is the strike
    assert a.equity() == pytest.approx(10_000.0 + 200.0 - 400.0)


def test_calls_are_called_away_and_otm_options_expire() -> None:
    a = Account(0.0)
    a.trade(stock(), 100, 100.0)
    a.trade(opt(CALL_105), -1, 1.0)
    a.trade(opt(PUT_90), 1, 0.5)
    events = a.expire(EXP, lambda h: 107.0)
    assert [(e.kind, e.shares) for e in events] == [("assignment", -100.0), ("expiry", 0.0)]
    assert not a.holdings
    assert a.cash == pytest.approx(-10_000 + 100 - 50 + 10_500)
    assert a.realized == pytest.approx(100 + 500 - 50)
    assert a.expire(EXP, lambda h: 107.0) == []
    b = Account(0.0)
    b.trade(opt(PUT_95), -1, 1.0)
    assert [e.kind for e in b.expire(EXP, lambda h: 94.995)] == ["expiry"]  # under $0.01 ITM
    c = Account(0.0)
    c.trade(opt(PUT_95), -1, 1.0)
    assert [e.kind for e in c.expire(EXP, lambda h: math.nan)] == ["expiry"]  # no spot


def test_books_round_trip_and_carry_capital() -> None:
    a = Account(0.0)  # a live deployment's book counts cash flows
    a.trade(opt(PUT_95), -1, 2.0)
    book = a.book(capital=50_000.0, peak_equity=60_000.0)
    assert (book.cash, book.collateral, book.buying_power) == (50_200.0, 9_500.0, 40_700.0)
    assert book.peak_equity == 60_000.0
    [p] = book.positions
    assert (p.underlying, p.expiry, p.strike, p.right) == ("SPY", EXP, 95.0, Right.PUT)
    again = Account.from_book(book)
    assert again.collateral() == 9_500.0 and again.buying_power() == book.buying_power
    shares = Book.build(0.0, (Position("SPY", 100, 90.0, 95.0, underlying="SPY"),))
    assert Account.from_book(shares).check([(opt(CALL_105), -1, 1.0, 0.0)]) is None
