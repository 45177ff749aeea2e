"""Messages and charts: byte-identical PNGs for the same inputs (different inputs differ, no
version or date inside), the platforms' length limits with the lineage line kept, and the
probe marker as the first button."""

from __future__ import annotations

import datetime as dt

from signals import charts, render
from signals.model import Channel, EventKind, Lineage, SignalEvent, TargetKind
from tests.signals.outbox_fixtures import T0

POINTS = [("2026-03-02T15:00:00+00:00", 0.0), ("2026-03-03T15:00:00+00:00", 50.0),
          ("2026-03-04T15:00:00+00:00", -20.0)]  # fmt: skip
LEGS = [charts.OptionLeg("SPY260417C00500000", 1, 6.5),
        charts.OptionLeg("SPY260417C00510000", -1, 2.5)]  # fmt: skip


def test_equity_chart_is_byte_identical_and_input_sensitive() -> None:
    a = charts.equity_chart(POINTS, "dep-1 (ma_crossover)")
    assert a == charts.equity_chart(list(POINTS), "dep-1 (ma_crossover)")
    assert a[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"Software" not in a and b"matplotlib" not in a.lower()
    assert a != charts.equity_chart([*POINTS[:2], (POINTS[2][0], -21.0)], "dep-1 (ma_crossover)")


def test_payoff_chart_is_byte_identical_and_greeks_are_sane() -> None:
    day = dt.date(2026, 3, 4)
    a = charts.payoff_chart(LEGS, 505.0, day, "dep-2 (call spread)")
    assert a == charts.payoff_chart(LEGS, 505.0, day, "dep-2 (call spread)")
    assert a != charts.payoff_chart(LEGS, 506.0, day, "dep-2 (call spread)")
    g = charts.position_greeks(LEGS, 505.0, day, 0.04, 0.25)
    assert 0 < g["delta"] < 100  # a long call spread: long delta, under one contract's worth
    import numpy as np

    pnl = charts.payoff_at_expiry(LEGS, np.array([400.0, 600.0]))
    assert pnl.tolist() == [-400.0, 600.0]  # debit 4.00 x 100; max gain (10 - 4) x 100


def decision(n_intents: int) -> SignalEvent:
    lin = Lineage("dep-1", "man-1", "ma_crossover", "run-9", tuple(f"cid-{i}" for i in range(3)))
    intents = [f"BUY {i} SPY LMT 500 (reason {'x' * 40})" for i in range(n_intents)]
    return SignalEvent(f"decision:dep-1:{n_intents}", EventKind.DECISION, T0, lin,
                       "ma_crossover decided", {"intents": intents})  # fmt: skip


class _Row:
    def __init__(self, channel: Channel) -> None:
        self.idem_key, self.channel, self.target = "0123456789abcdef" * 2, channel.value, "-1"
        self.target_kind = TargetKind.CHANNEL.value


def test_limits_keep_title_and_lineage() -> None:
    big = decision(500)
    tg = render.outbound(big, _Row(Channel.TELEGRAM))
    dc = render.outbound(big, _Row(Channel.DISCORD))
    assert len(tg.text) <= render.TELEGRAM_TEXT and len(dc.text) <= render.DISCORD_TEXT
    lineage = "deployment dep-1 | manifest man-1 | MLflow run run-9 | orders cid-0, cid-1, cid-2"
    for msg in (tg, dc):
        assert msg.text.endswith(lineage) and "..." in msg.text
        assert msg.text.startswith("[decision] ma_crossover decided")
    assert tg.buttons[0].callback_data == "sig:0123456789abcdef"
    small = render.outbound(decision(2), _Row(Channel.TELEGRAM))
    assert "..." not in small.text and small.text.count("\n- ") == 2


def test_fill_with_chart_fits_the_caption() -> None:
    lin = Lineage("dep-1", "man-1", "ma_crossover", "run-9", ("c" * 60,) * 30)
    chart = {"kind": "equity", "points": [list(p) for p in POINTS]}
    facts = {"symbol": "SPY", "qty": 10, "price": 500.0, "chart": chart}
    ev = SignalEvent("fill:x", EventKind.FILL, T0, lin, "BUY 10 SPY @ 500", facts)
    msg = render.outbound(ev, _Row(Channel.TELEGRAM))
    assert msg.image is not None and msg.image == charts.equity_chart(
        POINTS, "dep-1 (ma_crossover)"
    )
    assert len(msg.text) <= render.TELEGRAM_CAPTION


def test_prices_keep_their_digits() -> None:
    """A fill at 512.25 is never shown as 512.2 (the old 4-significant-digit format)."""
    from signals.model import price_text

    assert price_text(512.25) == "512.25"
    assert price_text(512.0) == "512.00"
    assert price_text(1234.5) == "1,234.50"
    assert price_text(0.0525) == "0.0525"
    assert price_text(3.14159) == "3.1416"
