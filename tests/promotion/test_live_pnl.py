"""Daily live P&L marks options at the archived chain mids, 100 shares per contract."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from alpaca_improved_pipelines.defs.monitoring.assets import live_results
from alpaca_improved_pipelines.lake import storage
from live.journal import orders as jo
from live.journal.store import Journal
from research import lakehouse
from tests.research.conftest import quiet, resources_for

PUT = "SPY240607P00500000"
UTC = dt.UTC


def day(d: int) -> dt.date:
    return dt.date(2024, 6, d)


def at(d: int, hour: int) -> dt.datetime:
    return dt.datetime(2024, 6, d, hour, tzinfo=UTC)


@pytest.fixture
def home(year_home: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "home"
    shutil.copytree(year_home / "lake", dst / "lake")
    # archived chains on the 3rd, 4th and 6th (none on the 5th: the mark carries)
    for d, mid in ((3, 2.10), (4, 1.50), (6, 0.40)):
        frame = pl.DataFrame({"contract": [PUT], "session": [day(d)], "mid": [mid]})
        storage.write_partition(frame, dst / "lake", "option_chains", day(d), fsync=False)
    journal = Journal(dst / "live" / "journal.sqlite")
    jo.record_fills(
        journal,
        [
            jo.FillRow("e1", None, "opt", PUT, "us_option", -1.0, 2.00, at(3, 15)),  # sell to open
            jo.FillRow("e2", None, "opt", PUT, "us_option", 1.0, 0.0, at(7, 21), "expire"),
            jo.FillRow("e3", None, "eq", "SPY", "us_equity", 10.0, 500.0, at(3, 15)),
        ],
    )
    journal.close()
    return dst


def test_option_pnl_uses_chain_mids_and_the_contract_multiplier(home: Path) -> None:
    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [live_results], resources=resources_for(home), instance=instance, run_config=quiet()
        )
    assert res.success
    con = lakehouse.connect(home)
    rows = con.execute(
        "SELECT session, market_value, cash_flow, pnl FROM live_pnl "
        "WHERE deployment_id = 'opt' AND session <= '2024-06-07' ORDER BY session"
    ).fetchall()
    assert [r[0] for r in rows] == [day(d) for d in (3, 4, 5, 6, 7)]
    # premium +200; marks -210, -150, -150 (no chain on the 5th), -40; expired worthless
    assert [r[1] for r in rows] == pytest.approx([-210.0, -150.0, -150.0, -40.0, 0.0])
    assert [r[2] for r in rows] == pytest.approx([200.0, 0.0, 0.0, 0.0, 0.0])
    assert [r[3] for r in rows] == pytest.approx([-10.0, 60.0, 0.0, 110.0, 40.0])
    # the equity deployment still marks at the daily close, one share per unit
    closes = dict(
        con.execute(
            "SELECT session, close FROM stock_bars_1d WHERE symbol = 'SPY' "
            "AND session BETWEEN '2024-06-03' AND '2024-06-04'"
        ).fetchall()
    )
    first = con.execute(
        "SELECT pnl FROM live_pnl WHERE deployment_id = 'eq' AND session = '2024-06-03'"
    ).fetchone()[0]
    assert first == pytest.approx(10 * (closes[day(3)] - 500.0))
