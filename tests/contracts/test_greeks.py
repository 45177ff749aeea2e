"""Greek units: the lake stores vega per 1.00 of vol and theta per year; traders use per vol
point and per day. One conversion, used by the live snapshots and the chain asset alike."""

from __future__ import annotations

import polars as pl
import pytest

from alpaca_improved_pipelines.defs.options.chains import VENDOR_SCALE
from contracts import greeks
from strategies.pricing import bs_greeks


def test_lake_units_convert_to_position_units() -> None:
    g = bs_greeks(S=100.0, K=100.0, T=30 / 365, r=0.04, sigma=0.25, q=0.0, is_call=True)
    delta, gamma, vega, theta = (float(x) for x in (g.delta, g.gamma, g.vega, g.theta))
    lake = pl.DataFrame({"delta": [delta], "gamma": [gamma], "vega": [vega], "theta": [theta]})
    pos = greeks.chain_to_position_units(lake)
    assert pos["delta"][0] == delta and pos["gamma"][0] == gamma
    assert pos["vega"][0] == pytest.approx(greeks.vega_to_position(vega))
    assert pos["theta"][0] == pytest.approx(greeks.theta_to_position(theta))
    # an ATM 30-day option: about 0.11 $ per vol point and a few cents per day
    assert 0.05 < pos["vega"][0] < 0.2 and -0.2 < pos["theta"][0] < 0.0


def test_vendors_send_position_units() -> None:
    assert VENDOR_SCALE is greeks.VENDOR_TO_LAKE
    assert greeks.VENDOR_TO_LAKE["vega"] == greeks.VOL_POINTS_PER_UNIT
    assert greeks.VENDOR_TO_LAKE["theta"] == greeks.DAYS_PER_YEAR
