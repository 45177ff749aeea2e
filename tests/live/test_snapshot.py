"""The lake snapshot provider (no future bars; chains when present) and manifest validation."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from live.clock import NEW_YORK
from live.deployments.manifests import load_manifest, write_manifest
from live.errors import ConfigError
from live.market.snapshot import LakeSnapshotProvider, snapshot_quotes
from strategies.models import CHAIN_COLUMNS
from tests.live.helpers import CALL_A, manifest, sessions, write_lake

DAYS = sessions(12)  # ... Thu 2024-02-29, Fri 2024-03-01


def chain_partition(home: Path, day: date) -> None:
    row = {
        "contract": CALL_A,
        "underlying": "SPY",
        "session": day,
        "expiry": date(2024, 4, 26),
        "strike": 555.0,
        "right": "C",
        "bid": 1.9,
        "ask": 2.1,
        "mid": 2.0,
        "underlying_price": 500.0,
        "dte": 56,
        "iv": 0.2,
        "delta": 0.3,
        "gamma": 0.01,
        "vega": 0.5,
        "theta": -0.05,
    }
    part = home / "lake" / "option_chains" / f"session={day.isoformat()}"
    part.mkdir(parents=True)
    pl.DataFrame([row]).select(CHAIN_COLUMNS).write_parquet(part / "part.parquet")


def test_a_session_is_visible_only_after_its_close(tmp_path: Path) -> None:
    write_lake(tmp_path, {"SPY": [float(k) for k in range(1, 13)]}, DAYS)
    chain_partition(tmp_path, DAYS[-1])
    provider = LakeSnapshotProvider(tmp_path)
    during = provider.latest(datetime(2024, 3, 1, 10, 0, tzinfo=NEW_YORK))
    assert during.session == DAYS[-2] and during.prices == {"SPY": 11.0}
    assert during.history.get_column("session").max() == DAYS[-2] and not during.chains
    after = provider.latest(datetime(2024, 3, 1, 16, 5, tzinfo=NEW_YORK))
    assert after.session == DAYS[-1] and after.prices == {"SPY": 12.0}
    assert after.chain("SPY").quote(CALL_A).delta == 0.3
    quotes = snapshot_quotes(after)
    assert quotes[CALL_A].mid == 2.0 and quotes[CALL_A].greeks == (0.3, 0.01, 0.5, -0.05)
    assert quotes["SPY"].last == 12.0
    assert provider.latest(datetime(2024, 2, 1, 12, tzinfo=NEW_YORK)) is None


def test_lake_chains_are_converted_to_the_strategies_units(tmp_path: Path) -> None:
    write_lake(tmp_path, {"SPY": [float(k) for k in range(1, 13)]}, DAYS)
    chain_partition(tmp_path, DAYS[-1])
    part = tmp_path / "lake" / "option_chains" / f"session={DAYS[-1].isoformat()}" / "part.parquet"
    frame = pl.read_parquet(part)  # rewrite it in the option_chains asset's layout
    frame.rename({"dte": "dte_days"}).with_columns(
        pl.col("vega") * 100.0, pl.col("theta") * 365.0, pl.lit("synthetic").alias("source")
    ).write_parquet(part)
    snap = LakeSnapshotProvider(tmp_path).latest(datetime(2024, 3, 1, 17, tzinfo=NEW_YORK))
    row = snap.chains["SPY"].row(0, named=True)
    assert (
        row["dte"] == 56
        and row["vega"] == pytest.approx(0.5)
        and row["theta"] == pytest.approx(-0.05)
    )
    assert snapshot_quotes(snap)[CALL_A].greeks == pytest.approx((0.3, 0.01, 0.5, -0.05))
    pl.read_parquet(part).drop("delta").write_parquet(part)  # a foreign layout fails loudly
    with pytest.raises(ConfigError, match=r"option_chains/session=2024-03-01.*lacks.*delta"):
        LakeSnapshotProvider(tmp_path).latest(datetime(2024, 3, 1, 17, tzinfo=NEW_YORK))


def test_cached_history_follows_rewritten_and_new_partitions(tmp_path: Path) -> None:
    import os

    write_lake(tmp_path, {"SPY": [float(k) for k in range(1, 12)]}, DAYS[:-1])
    provider = LakeSnapshotProvider(tmp_path)
    evening = datetime(2024, 3, 1, 17, 0, tzinfo=NEW_YORK)
    first = provider.latest(evening)
    assert first.session == DAYS[-2] and first.close_array("SPY")[-1] == 11.0
    assert provider.latest(evening).history is first.history  # nothing new: nothing rebuilt
    # a backfill corrects an old session in place (same file name, newer mtime)
    fixed = tmp_path / "lake" / "stock_bars_1d" / f"session={DAYS[3].isoformat()}" / "part.parquet"
    frame = pl.read_parquet(fixed).with_columns(pl.lit(99.0).alias("close"))
    frame.write_parquet(fixed)
    stamp = os.stat(fixed).st_mtime + 5
    os.utime(fixed, (stamp, stamp))
    corrected = provider.latest(evening)
    assert corrected.close_array("SPY")[3] == 99.0
    # and the next session's partition appears
    write_lake(tmp_path, {"SPY": [12.0]}, DAYS[-1:])
    assert provider.latest(evening).session == DAYS[-1]


def test_manifests_are_validated(tmp_path: Path) -> None:
    folder = tmp_path / "deployments"
    ok = load_manifest(write_manifest(folder, "ok", manifest("ok")))
    assert ok.id == "ok" and ok.strategy.config.symbols == ("SPY",)  # JSON lists -> tuples
    for name, bad, needle in (
        ("version", {**manifest("v"), "interface_version": 2}, "interface version"),
        ("unknown", {**manifest("u"), "strategy": "nope"}, "unknown strategy"),
        ("params", {**manifest("p"), "params": {"fast": 30, "slow": 10}}, "invalid params"),
        ("extra", {**manifest("e"), "risk_limits": {"max_order_notionall": 1}}, "invalid"),
    ):
        with pytest.raises(ConfigError, match=needle):
            load_manifest(write_manifest(folder, name, bad))
