"""Domain models: order intent validation (Alpaca's shapes), book arithmetic, snapshot guards."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from strategies.models import (
    NEW_YORK,
    AssetClass,
    Book,
    Leg,
    MarketSnapshot,
    OrderIntent,
    OrderType,
    Position,
    PositionIntent,
    Right,
    Side,
    TimeInForce,
)
from strategies.options.chain import OptionChainView, occ_symbol

SESSION = date(2024, 3, 12)
TS = datetime(2024, 3, 12, 15, 45, tzinfo=NEW_YORK)


def opt_leg(symbol: str, side: Side = Side.SELL, ratio: int = 1) -> Leg:
    intent = PositionIntent.SELL_TO_OPEN if side is Side.SELL else PositionIntent.BUY_TO_OPEN
    return Leg(symbol, side, ratio, AssetClass.US_OPTION, intent)


def bars(last: date, days: int = 5) -> pl.DataFrame:
    sessions = [last - timedelta(days=k) for k in reversed(range(days))]
    close = [100.0 + k for k in range(days)]
    return pl.DataFrame(
        {
            "session": sessions,
            "symbol": ["SPY"] * days,
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": [1e6] * days,
        }
    )


def chain(session: date) -> pl.DataFrame:
    expiry = date(2024, 4, 19)
    rows = [(occ_symbol("SPY", expiry, r, k), r, k) for r in ("C", "P") for k in (95.0, 100.0)]
    return pl.DataFrame(
        {
            "contract": [c for c, _, _ in rows],
            "underlying": ["SPY"] * 4,
            "session": [session] * 4,
            "expiry": [expiry] * 4,
            "strike": [k for _, _, k in rows],
            "right": [r for _, r, _ in rows],
            "bid": [6.0, 2.0, 1.0, 3.0],
            "ask": [6.2, 2.2, 1.2, 3.2],
            "mid": [6.1, 2.1, 1.1, 3.1],
            "underlying_price": [100.5] * 4,
            "dte": [(expiry - session).days] * 4,
            "iv": [0.2] * 4,
            "delta": [0.8, 0.5, -0.2, -0.5],
            "gamma": [0.02] * 4,
            "vega": [0.1] * 4,
            "theta": [-0.03] * 4,
        }
    )


class TestLegAndIntent:
    def test_simple_equity_order(self) -> None:
        leg = Leg("SPY", Side.BUY, 1, AssetClass.US_EQUITY)
        intent = OrderIntent("s", (leg,), 10)
        assert not intent.is_mleg and not intent.has_options
        assert intent.leg_quantities() == (10.0,)

    def test_option_leg_needs_matching_position_intent(self) -> None:
        with pytest.raises(ValueError, match="position_intent is required"):
            Leg("SPY240419C00100000", Side.BUY, 1, AssetClass.US_OPTION)
        with pytest.raises(ValueError, match="contradicts side"):
            Leg(
                "SPY240419C00100000", Side.BUY, 1, AssetClass.US_OPTION, PositionIntent.SELL_TO_OPEN
            )

    @pytest.mark.parametrize("ratio", [0, -1, 1.5, True])
    def test_ratio_qty_positive_int(self, ratio: object) -> None:
        with pytest.raises(ValueError, match="ratio_qty"):
            Leg("SPY", Side.BUY, ratio, AssetClass.US_EQUITY)  # type: ignore[arg-type]

    def test_mleg_credit_is_negative_limit(self) -> None:
        legs = (opt_leg("A240419P00095000", Side.BUY), opt_leg("A240419P00100000"))
        intent = OrderIntent("s", legs, 2, OrderType.LIMIT, -1.25)
        assert intent.is_mleg and intent.leg_quantities() == (2.0, -2.0)

    def test_mleg_leg_count_and_uniqueness(self) -> None:
        five = tuple(opt_leg(f"A240419P0009{k}000") for k in range(5))
        with pytest.raises(ValueError, match="2-4"):
            OrderIntent("s", five, 1)
        with pytest.raises(ValueError, match="unique"):
            OrderIntent("s", (opt_leg("A240419P00095000"), opt_leg("A240419P00095000")), 1)
        with pytest.raises(ValueError, match="1 \\(simple\\)"):
            OrderIntent("s", (), 1)

    def test_options_need_whole_contracts(self) -> None:
        with pytest.raises(ValueError, match="whole contracts"):
            OrderIntent("s", (opt_leg("A240419P00095000"),), 1.5)
        with pytest.raises(ValueError, match="ratio_qty 1"):
            OrderIntent("s", (opt_leg("A240419P00095000", ratio=2),), 1)

    def test_prices_by_order_type(self) -> None:
        legs = (opt_leg("A240419P00095000"),)
        with pytest.raises(ValueError, match="limit_price is required"):
            OrderIntent("s", legs, 1, OrderType.LIMIT)
        with pytest.raises(ValueError, match="None for market"):
            OrderIntent("s", legs, 1, OrderType.MARKET, 1.0)
        with pytest.raises(ValueError, match="> 0 for a simple order"):
            OrderIntent("s", legs, 1, OrderType.LIMIT, -1.0)
        two = (opt_leg("A240419P00095000", Side.BUY), opt_leg("A240419P00100000"))
        with pytest.raises(ValueError, match="non-zero"):
            OrderIntent("s", two, 1, OrderType.LIMIT, 0.0)

    def test_fractional_equity_only_day(self) -> None:
        leg = Leg("SPY", Side.BUY, 1, AssetClass.US_EQUITY)
        assert OrderIntent("s", (leg,), 0.5).qty == 0.5
        with pytest.raises(ValueError, match="fractional"):
            OrderIntent("s", (leg,), 0.5, time_in_force=TimeInForce.GTC)

    @pytest.mark.parametrize("qty", [0, -1, float("nan"), float("inf"), True])
    def test_bad_qty(self, qty: object) -> None:
        with pytest.raises(ValueError, match="qty"):
            OrderIntent("s", (Leg("SPY", Side.BUY, 1, AssetClass.US_EQUITY),), qty)  # type: ignore[arg-type]

    def test_tag_fits_client_order_id(self) -> None:
        leg = Leg("SPY", Side.BUY, 1, AssetClass.US_EQUITY)
        with pytest.raises(ValueError, match="tag"):
            OrderIntent("s", (leg,), 1, tag="x" * 25)
        with pytest.raises(ValueError, match="tag"):
            OrderIntent("s", (leg,), 1, tag="has space")

    def test_frozen(self) -> None:
        intent = OrderIntent("s", (Leg("SPY", Side.BUY, 1, AssetClass.US_EQUITY),), 1)
        with pytest.raises(AttributeError):
            intent.qty = 2  # type: ignore[misc]


class TestBook:
    def test_build_derives_equity_greeks_and_drawdown(self) -> None:
        stock = Position("SPY", 100, 95.0, 100.0, underlying="SPY")
        put = Position(
            "SPY240419P00095000",
            -2,
            1.5,
            1.0,
            AssetClass.US_OPTION,
            "SPY",
            date(2024, 4, 19),
            95.0,
            Right.PUT,
            -0.25,
            0.02,
            0.10,
            -0.03,
        )
        book = Book.build(5_000.0, (stock, put), collateral=19_000.0, peak_equity=20_000.0)
        # equity = 5,000 + 100 x 100 - 2 x 1.00 x 100 = 14,800
        assert book.equity == pytest.approx(14_800.0)
        assert book.buying_power == pytest.approx(-14_000.0)
        assert book.drawdown == pytest.approx(1 - 14_800 / 20_000)
        # delta = 100 shares + (-2 x 100 x -0.25) = 150; theta = -200 x -0.03 = +6
        assert book.greeks.delta == pytest.approx(150.0)
        assert book.greeks.theta == pytest.approx(6.0)
        assert put.unrealized_pnl == pytest.approx(100.0)  # sold at 1.50, marked at 1.00
        assert book.shares("SPY") == 100 and book.options("SPY") == (put,)
        assert put.dte(date(2024, 4, 9)) == 10

    def test_new_high_has_no_drawdown(self) -> None:
        book = Book.build(10_000.0, peak_equity=9_000.0)
        assert book.peak_equity == 10_000.0 and book.drawdown == 0.0


class TestSnapshot:
    def test_cannot_expose_history_after_its_session(self) -> None:
        with pytest.raises(ValueError, match="after the snapshot session"):
            MarketSnapshot(TS, SESSION, {"SPY": 100.0}, bars(SESSION + timedelta(days=1)))

    def test_cannot_expose_chain_after_its_session(self) -> None:
        with pytest.raises(ValueError, match="SPY holds data for 2024-03-13"):
            MarketSnapshot(
                TS, SESSION, {}, bars(SESSION), chains={"SPY": chain(SESSION + timedelta(days=1))}
            )

    def test_close_array_is_shared_read_only_and_in_session_order(self) -> None:
        frame = bars(SESSION)
        shuffled = frame.sample(fraction=1.0, shuffle=True, seed=3)
        snap = MarketSnapshot(TS, SESSION, {"SPY": 104.0}, shuffled)
        first = snap.close_array("SPY")
        assert first.tolist() == [100.0, 101.0, 102.0, 103.0, 104.0]
        assert snap.close_array("SPY") is first  # one extraction per snapshot and symbol
        with pytest.raises(ValueError, match="read-only"):
            first[0] = 0.0  # a strategy cannot corrupt what the next deployment sees
        assert snap.close_array("QQQ").size == 0

    def test_accepts_data_up_to_and_including_session(self) -> None:
        snap = MarketSnapshot(TS, SESSION, {"SPY": 104.0}, bars(SESSION), {"SPY": chain(SESSION)})
        assert snap.closes("SPY").to_list() == [100.0, 101.0, 102.0, 103.0, 104.0]
        view = snap.chain("SPY")
        quote = view.quote(occ_symbol("SPY", date(2024, 4, 19), "P", 95.0))
        assert quote is not None and quote.mid == 1.1 and quote.right is Right.PUT
        assert view.quote("NOPE") is None
        with pytest.raises(KeyError, match="QQQ"):
            snap.chain("QQQ")

    def test_needs_aware_time_not_before_session(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            MarketSnapshot(datetime(2024, 3, 12, 15), SESSION, {}, bars(SESSION))  # noqa: DTZ001
        with pytest.raises(ValueError, match="before session"):
            MarketSnapshot(datetime(2024, 3, 11, 20, tzinfo=UTC), SESSION, {}, bars(SESSION))

    def test_mappings_are_read_only(self) -> None:
        prices = {"SPY": 100.0}
        snap = MarketSnapshot(TS, SESSION, prices, bars(SESSION))
        prices["SPY"] = 1.0
        assert snap.prices["SPY"] == 100.0
        with pytest.raises(TypeError):
            snap.prices["SPY"] = 2.0  # type: ignore[index]

    def test_chain_view_requires_columns(self) -> None:
        with pytest.raises(ValueError, match="lacks columns"):
            OptionChainView(chain(SESSION).drop("delta"))


def test_occ_symbol_format() -> None:
    assert occ_symbol("SPY", date(2024, 4, 26), "C", 555) == "SPY240426C00555000"
    assert occ_symbol("AAPL", date(2023, 11, 3), Right.PUT, 172.5) == "AAPL231103P00172500"
