"""Vol-surface features: one definition for snapshots and sweeps, by hand, and causal."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime

import numpy as np
import polars as pl
import pytest

from strategies.backtest.options_engine import run_options_backtest
from strategies.indicators import realized_vol
from strategies.models import NEW_YORK, Book, MarketSnapshot, OrderIntent
from strategies.options import IronCondor, IronCondorConfig
from strategies.options.vol_features import (
    FEATURE_COLUMNS,
    VolSurfaceFeatures,
    vol_feature_frame,
    vol_features_asof,
    window_vol,
)
from tests.strategies.vol_lake import spy_chains, vol_lake

SURFACE, BARS, FLOWS = vol_lake()
SESSIONS = sorted(BARS.get_column("session").unique().to_list())


def same(a: VolSurfaceFeatures, b: VolSurfaceFeatures) -> bool:
    """Equal field by field, NaN equal to NaN (values exactly equal otherwise)."""
    for x, y in zip(asdict(a).values(), asdict(b).values(), strict=True):
        if isinstance(x, float) and math.isnan(x):
            if not (isinstance(y, float) and math.isnan(y)):
                return False
        elif x != y:
            return False
    return True


def rows(frame: pl.DataFrame) -> dict[tuple, VolSurfaceFeatures]:
    return {
        (r["underlying"], r["session"]): VolSurfaceFeatures(**r)
        for r in frame.select(FEATURE_COLUMNS).iter_rows(named=True)
    }


def test_snapshot_form_equals_sweep_form_on_every_session() -> None:
    full = rows(vol_feature_frame(SURFACE, BARS, FLOWS))
    seen = 0
    for s in SESSIONS:
        asof = vol_features_asof(s, SURFACE, BARS, FLOWS)
        expected = {u: f for (u, day), f in full.items() if day == s}
        assert asof.keys() == expected.keys(), s
        for u, f in asof.items():
            assert same(f, expected[u]), (s, u, f, expected[u])
            seen += 1
    assert seen == len(full) == 60 + 48  # QQQ misses every fifth session's surface
    # and the values are not all unknown: every feature is finite somewhere
    frame = vol_feature_frame(SURFACE, BARS, FLOWS)
    for c in FEATURE_COLUMNS[2:]:
        if c != "contango":
            assert frame.get_column(c).is_finite().any(), c


@pytest.mark.parametrize("cut", [0, 9, 10, 25, 59])
def test_a_session_never_changes_when_later_sessions_are_added(cut: int) -> None:
    t = SESSIONS[cut]
    full = rows(vol_feature_frame(SURFACE, BARS, FLOWS))
    surface, bars, flows = (f.filter(pl.col("session") <= t) for f in (SURFACE, BARS, FLOWS))
    truncated = rows(vol_feature_frame(surface, bars, flows))
    later = pl.col("session") > t  # and later data changed wholesale changes nothing up to t
    noisy = (
        SURFACE.with_columns(pl.when(later).then(pl.col("atm_iv_30d") * 3).otherwise("atm_iv_30d")),
        BARS.with_columns(pl.when(later).then(pl.col("close") * 0.5).otherwise("close")),
        FLOWS.with_columns(pl.when(later).then(pl.col("volume") + 1e6).otherwise("volume")),
    )
    perturbed = rows(vol_feature_frame(*noisy))
    upto = {k: f for k, f in full.items() if k[1] <= t}
    assert upto and truncated.keys() == upto.keys()
    for k, f in upto.items():
        assert same(truncated[k], f) and same(perturbed[k], f), k
    assert any(not same(perturbed[k], f) for k, f in full.items() if k[1] > t) or cut == 59


def test_values_by_hand() -> None:
    frame = vol_feature_frame(SURFACE, BARS, FLOWS)
    s = SESSIONS[30]
    got = rows(frame)[("SPY", s)]
    src = SURFACE.filter((pl.col("underlying") == "SPY") & (pl.col("session") == s)).row(
        0, named=True
    )
    assert got.term_slope == pytest.approx(src["atm_iv_90d"] - src["atm_iv_30d"], abs=1e-15)
    assert got.contango is (got.term_slope > 0)
    assert (got.rr25, got.bf25, got.iv_rank) == (src["rr25_30d"], src["bf25_30d"], src["iv_rank"])
    closes = (
        BARS.filter((pl.col("symbol") == "SPY") & (pl.col("session") <= s))
        .sort("session")
        .get_column("close")
        .to_numpy()
    )
    rv = np.std(np.diff(np.log(closes[-21:])), ddof=1) * np.sqrt(252)
    assert got.realized_vol == pytest.approx(rv, rel=1e-12)
    assert got.iv_rv_premium == pytest.approx(src["atm_iv_30d"] - rv, rel=1e-12)
    day = FLOWS.filter((pl.col("underlying") == "SPY") & (pl.col("session") == s))
    put = day.filter(pl.col("right") == "P").select(pl.sum("volume", "open_interest")).row(0)
    call = day.filter(pl.col("right") == "C").select(pl.sum("volume", "open_interest")).row(0)
    assert got.put_call_volume == pytest.approx(put[0] / call[0], rel=1e-12)
    assert got.put_call_oi == pytest.approx(put[1] / call[1], rel=1e-12)
    # unknowns are NaN, never borrowed from another session
    early = rows(frame)[("SPY", SESSIONS[3])]  # no 90-day vol that session, no rank yet
    assert math.isnan(early.term_slope) and early.contango is False and math.isnan(early.iv_rank)
    assert math.isnan(rows(frame)[("SPY", SESSIONS[5])].realized_vol)  # 5 returns < 20
    assert ("QQQ", SESSIONS[4]) not in rows(frame)


def test_a_session_does_not_depend_on_how_much_history_precedes_it() -> None:
    """The live snapshot holds the last 260 sessions, a sweep all of them: bit-identical."""
    full = rows(vol_feature_frame(SURFACE, BARS, FLOWS))
    for t in (25, 40, 59):
        s = SESSIONS[t]
        for keep in (21, 26):  # the realized-vol window needs 21 closes
            recent = BARS.filter(pl.col("session").is_in(SESSIONS[t - keep + 1 : t + 1]))
            for u, f in vol_features_asof(s, SURFACE, recent, FLOWS).items():
                assert same(f, full[(u, s)]), (t, keep, u)


def test_realized_vol_is_the_indicator_librarys() -> None:
    close = 100 * np.exp(np.cumsum(np.random.default_rng(9).normal(0, 0.02, 400)))
    ours = window_vol(close, 20)
    lib = pl.DataFrame({"c": close}).select(realized_vol("c", 20, by=None)).to_series()
    np.testing.assert_allclose(ours, lib.to_numpy(), rtol=1e-12, equal_nan=True)
    assert np.isnan(ours[:20]).all() and np.isfinite(ours[20:]).all()


def test_a_bad_surface_names_the_missing_columns() -> None:
    with pytest.raises(ValueError, match=r"lacks columns \['iv_rank'\]"):
        vol_feature_frame(SURFACE.drop("iv_rank"))


def test_a_snapshot_refuses_features_after_its_session() -> None:
    s, later = SESSIONS[10], SESSIONS[11]
    ts = datetime.combine(s, datetime.min.time(), NEW_YORK).replace(hour=16, minute=30)
    history = BARS.filter(pl.col("session") <= s)
    ok = MarketSnapshot(ts, s, {}, history, vol_features={"SPY": VolSurfaceFeatures("SPY", s)})
    assert ok.vol_features["SPY"].session == s
    with pytest.raises(ValueError, match="vol_features\\['SPY'\\] are of"):
        MarketSnapshot(ts, s, {}, history, vol_features={"SPY": VolSurfaceFeatures("SPY", later)})


class SeenCondor(IronCondor):
    """An iron condor that records the vol features each decision saw."""

    log: list[tuple] = []  # noqa: RUF012 - reset by the test

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        self.log.append((snapshot.session, dict(snapshot.vol_features)))
        return super().decide(snapshot, book)


def test_the_stepped_backtest_hands_each_decision_its_sessions_features() -> None:
    chains = spy_chains()
    frame = vol_feature_frame(SURFACE, BARS, FLOWS)
    seen = SeenCondor(IronCondorConfig("SPY"))
    SeenCondor.log = []
    run_options_backtest(seen, chains, bars=BARS, vol_features=frame)
    assert len(seen.log) == 60
    for session, feats in seen.log:
        asof = vol_features_asof(session, SURFACE, BARS, FLOWS)
        assert feats.keys() == asof.keys()
        assert all(same(feats[u], asof[u]) and feats[u].session == session for u in feats)
