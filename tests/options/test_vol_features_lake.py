"""Vol features on a synthetic lake the real pipeline wrote: the live snapshot provider's
``vol_features`` and the sweeps' frame (``load_vol_features``) agree on every session."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict
from pathlib import Path

import polars as pl
import pytest

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.defs.options import work
from alpaca_improved_pipelines.defs.options.config import ChainConfig, SurfaceConfig
from alpaca_improved_pipelines.defs.research.options_backtest import load_vol_features
from alpaca_improved_pipelines.defs.resources import build_resources
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.settings import Settings
from alpaca_improved_pipelines.sources.synthetic_bars import daily_bars
from live.market.snapshot import LakeSnapshotProvider, session_close
from strategies.options.vol_features import FEATURE_COLUMNS, VolSurfaceFeatures

SESSIONS = cal.sessions_between(dt.date(2024, 1, 2), dt.date(2024, 2, 16))  # 33 sessions
CHAIN_SESSIONS = SESSIONS[-6:]
UNDERLYINGS = ("SPY", "AAPL")


@pytest.fixture(scope="module")
def lake_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Daily bars for every session; chains and surfaces (real pipeline work) for the last 6."""
    home = tmp_path_factory.mktemp("vol_features") / "home"
    for s in SESSIONS:
        storage.write_partition(
            daily_bars(7, UNDERLYINGS, s), home / "lake", "stock_bars_1d", s, fsync=False
        )
    res = build_resources(Settings(home=home, symbols=UNDERLYINGS, fsync=False))  # type: ignore[arg-type]
    chains = ChainConfig(underlyings=list(UNDERLYINGS), american_iv=False)
    work.chains_for_run(chains, res["source"], res["lake"], res["universe"], CHAIN_SESSIONS)  # type: ignore[arg-type]
    surfaces = SurfaceConfig(min_history=2)
    work.surfaces_for_run(surfaces, res["lake"], CHAIN_SESSIONS)  # type: ignore[arg-type]
    return home


def _same(a: VolSurfaceFeatures, b: VolSurfaceFeatures) -> bool:
    pairs = zip(asdict(a).values(), asdict(b).values(), strict=True)
    return all(
        (isinstance(x, float) and math.isnan(x) and math.isnan(y)) or x == y for x, y in pairs
    )


def test_live_snapshots_and_the_sweep_frame_agree_on_every_session(lake_home: Path) -> None:
    provider = LakeSnapshotProvider(lake_home)
    lake = lake_home / "lake"
    bars = storage.read_partitions(lake, "stock_bars_1d", SESSIONS)
    mine = {u: bars.filter(pl.col("symbol") == u) for u in UNDERLYINGS}
    frames = {u: load_vol_features(lake, u, mine[u]) for u in UNDERLYINGS}
    compared = 0
    for s in SESSIONS:
        snap = provider.latest(session_close(s) + dt.timedelta(minutes=30))
        assert snap is not None and snap.session == s
        if s not in CHAIN_SESSIONS:
            assert dict(snap.vol_features) == {}  # no surface that session: no features
            continue
        assert sorted(snap.vol_features) == sorted(UNDERLYINGS)
        for u, feats in snap.vol_features.items():
            frame = frames[u]
            assert frame is not None
            row = frame.filter(pl.col("session") == s).select(FEATURE_COLUMNS).row(0, named=True)
            assert _same(feats, VolSurfaceFeatures(**row)), (s, u)
            assert feats.session == s and 0.05 < feats.atm_iv_30d < 1.5
            assert math.isfinite(feats.realized_vol) and math.isfinite(feats.rr25)
            assert feats.put_call_volume > 0 and feats.put_call_oi > 0
            compared += 1
    assert compared == len(CHAIN_SESSIONS) * len(UNDERLYINGS)
    # IV rank appears once two prior surfaces exist (min_history=2), never before
    spy = frames["SPY"]
    assert spy is not None
    ranks = spy.sort("session").get_column("iv_rank").to_list()
    assert all(math.isnan(r) for r in ranks[:2]) and all(0 <= r <= 1 for r in ranks[2:])


def test_a_decision_before_the_close_sees_the_previous_sessions_features(lake_home: Path) -> None:
    provider = LakeSnapshotProvider(lake_home)
    s = CHAIN_SESSIONS[-1]
    snap = provider.latest(session_close(s) - dt.timedelta(hours=1))
    assert snap is not None and snap.session == CHAIN_SESSIONS[-2]
    assert {f.session for f in snap.vol_features.values()} == {CHAIN_SESSIONS[-2]}
