"""The backtrader adapter hands each daily snapshot its session's vol-surface features (as the
live runner's lake snapshot does), so a strategy reading ``snapshot.vol_features`` (an options
filter, ``gbm_signal`` v2) sees the same numbers under backtrader; without the frame, none."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.sources.synthetic_bars import daily_bars
from contracts.calendar import is_session
from research.backtrader_adapter import run_decide
from research.backtrader_feed import lake_feeds
from strategies.base import Param, ParamSpace, Strategy
from strategies.models import Book, MarketSnapshot, OrderIntent
from strategies.options.vol_features import features_by_session, vol_feature_frame
from tests.strategies.vol_lake import UNDERLYINGS, vol_lake

SURFACE, BARS, FLOWS = vol_lake(40, seed=11)
FRAME = vol_feature_frame(SURFACE, BARS, FLOWS)
SESSIONS = [s for s in sorted(FRAME["session"].unique().to_list()) if is_session(s)]


@dataclass(frozen=True)
class _Config:
    symbols: tuple[str, ...] = UNDERLYINGS


class Recorder(Strategy):
    """Decides nothing; records what each snapshot's ``vol_features`` hold."""

    name = "vol_recorder"
    config_cls = _Config

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.seen: dict[date, dict[str, Any]] = {}

    @classmethod
    def param_space(cls) -> ParamSpace:
        return ParamSpace((Param("symbols", values=(UNDERLYINGS,)),), _Config)

    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        self.seen[snapshot.session] = dict(snapshot.vol_features)
        return []


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("bt_vol")
    for s in SESSIONS:
        bars = daily_bars(7, UNDERLYINGS, s)
        storage.write_partition(bars, home / "lake", "stock_bars_1d", s, fsync=False)
    return home


def test_each_session_gets_its_own_surface_and_a_missing_one_stays_missing(home: Path) -> None:
    want = features_by_session(FRAME)
    strategy = Recorder()
    run_decide(lake_feeds(home, UNDERLYINGS, "1d"), strategy, 10_000.0, vol_features=FRAME)
    assert sorted(strategy.seen) == SESSIONS
    for s in SESSIONS:  # repr: exact for floats and NaN-aware (nan != nan in dataclass ==)
        got = {u: repr(f) for u, f in strategy.seen[s].items()}
        assert got == {u: repr(f) for u, f in want.get(s, {}).items()}, s
    # QQQ misses a surface on some sessions (a missed materialization): none there, not stale
    gaps = [s for s in SESSIONS if "QQQ" not in strategy.seen[s]]
    assert gaps and all("SPY" in strategy.seen[s] for s in gaps)
    assert all(strategy.seen[s]["SPY"].session == s for s in SESSIONS)


def test_without_the_frame_no_snapshot_has_vol_features(home: Path) -> None:
    strategy = Recorder()
    run_decide(lake_feeds(home, UNDERLYINGS, "1d"), strategy, 10_000.0)
    assert len(strategy.seen) == len(SESSIONS) and not any(strategy.seen.values())
