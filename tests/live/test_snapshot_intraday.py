"""The live snapshot builder fills ``intraday_features`` at the daily close from the lake's
``stock_bars_1m`` with the definition sweeps use; a session without minute bars gives none (an
intraday gate then stays closed)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.sources.synthetic_bars import minute_bars
from contracts.calendar import session_open_close
from live.clock import NEW_YORK
from live.market.snapshot import LakeSnapshotProvider
from strategies.equity import Momentum, MomentumConfig
from strategies.indicators.session_features import intraday_feature_frame
from strategies.models import Book
from tests.live.helpers import sessions, write_lake

DAYS = sessions(12)  # ... Thu 2024-02-29, Fri 2024-03-01


def test_the_snapshot_carries_the_sessions_intraday_features(tmp_path: Path) -> None:
    """During Friday the snapshot is Thursday's, with Thursday's features; after Friday's close
    Friday's, equal to the sweep frame's row for (SPY, Friday) field by field."""
    write_lake(tmp_path, {"SPY": [100.0 + k for k in range(12)]}, DAYS)
    minutes = {d: minute_bars(7, ("SPY",), d) for d in DAYS[-2:]}
    for d, bars in minutes.items():
        storage.write_partition(bars, tmp_path / "lake", "stock_bars_1m", d, fsync=False)
    provider = LakeSnapshotProvider(tmp_path)
    during = provider.latest(datetime(2024, 3, 1, 10, 0, tzinfo=NEW_YORK))
    assert during is not None and during.intraday_features["SPY"].session == DAYS[-2]
    after = provider.latest(datetime(2024, 3, 1, 16, 5, tzinfo=NEW_YORK))
    assert after is not None
    got = after.intraday_features["SPY"]
    bounds = [session_open_close(d) for d in DAYS[-2:]]
    frame = intraday_feature_frame(
        pl.concat(minutes.values()),
        pl.DataFrame(
            {
                "session": DAYS[-2:],
                "open": [o.to_pydatetime() for o, _ in bounds],
                "close": [c.to_pydatetime() for _, c in bounds],
            }
        ),
    )
    row = frame.filter(pl.col("session") == DAYS[-1]).row(0, named=True)
    assert got.session == DAYS[-1] and got.bars == row["bars"] == 390
    for name in ("rv_intraday", "vwap_distance", "last_hour_return", "orb_breakout"):
        assert np.isfinite(row[name]) and getattr(got, name) == row[name], name


def test_a_session_without_minute_bars_has_no_features_and_a_gate_stays_closed(
    tmp_path: Path,
) -> None:
    """Rising closes make momentum enter on Friday; with the gate on and no Friday minute
    partition, the snapshot has no features and the gated variant buys nothing."""
    write_lake(tmp_path, {"SPY": [100.0 + k for k in range(12)]}, DAYS)
    snap = LakeSnapshotProvider(tmp_path).latest(datetime(2024, 3, 1, 16, 5, tzinfo=NEW_YORK))
    assert snap is not None and dict(snap.intraday_features) == {}
    params = {"lookback": 3, "trend": 0}
    assert len(Momentum(MomentumConfig(**params)).decide(snap, Book.build(10_000.0))) == 1
    gated = Momentum(MomentumConfig(intraday_gate="above_vwap", **params))
    assert gated.decide(snap, Book.build(10_000.0)) == []
