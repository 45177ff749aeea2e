"""Concurrent partition runs share one lake and one instance without lock errors, while
DuckDB readers query the same files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alpaca_improved_pipelines.lake import storage
from research import lakehouse

ROOT = Path(__file__).resolve().parents[2]
RANGES = [
    ("2024-01-02", "2024-01-03"),
    ("2024-01-04", "2024-01-05"),
    ("2024-01-08", "2024-01-09"),
    ("2024-01-10", "2024-01-11"),
]
CODE = (
    "import sys\nfrom alpaca_improved_pipelines.commands import run_backfill\n"
    "run_backfill(sys.argv[1], sys.argv[2], None, 60, 'market_data_job')\n"
)


@pytest.mark.slow
def test_four_concurrent_runs_and_readers(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ALPACA_IMPROVED_HOME": str(tmp_path),
        "ALPACA_IMPROVED_FSYNC": "0",
        "ALPACA_IMPROVED_SYMBOLS": "SPY,AAPL",
    }
    # the persistent instance is created once, as `make demo` would, before runs race
    first = subprocess.run(
        [sys.executable, "-c", CODE, *RANGES[0]],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CODE, *r],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in RANGES[1:]
    ]
    reads = 0
    while any(p.poll() is None for p in procs) and reads < 10_000:
        con = lakehouse.connect(tmp_path)
        if "stock_bars_1m" in lakehouse.available_views(tmp_path):
            con.execute("SELECT count(*), max(ts) FROM stock_bars_1m").fetchone()
            reads += 1
        con.close()
        time.sleep(0.05)
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
        assert "Could not set lock" not in err and "database is locked" not in err
    assert reads > 0
    got = storage.existing_sessions(tmp_path / "lake", "stock_bars_1m")
    assert len(got) == 8
    assert storage.existing_sessions(tmp_path / "lake", "indicators_1d") == got
