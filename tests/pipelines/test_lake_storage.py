"""Partitions are written atomically: a kill mid-write never leaves a visible partial file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from alpaca_improved_pipelines.errors import LakeError
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from research import lakehouse

WRITER = """
import sys, polars as pl, numpy as np
from pathlib import Path
from alpaca_improved_pipelines.lake import storage
lake = Path(sys.argv[1])
n = 1_500_000
i = 0
while True:
    frame = pl.DataFrame({"version": np.full(n, i % 2, dtype=np.int64),
                          "x": np.random.default_rng(i % 2).random(n)})
    storage.write_partition(frame, lake, "stress", "2024-01-02", fsync=True)
    print(i, flush=True)
    i += 1
"""


def test_write_is_idempotent_byte_for_byte(tmp_path: Path) -> None:
    frame = pl.DataFrame({"symbol": ["A", "B"], "x": [1.0, 2.0]})
    a = storage.write_partition(frame, tmp_path, "t", "2024-01-02")
    bytes_a = a.path.read_bytes()
    b = storage.write_partition(frame, tmp_path, "t", "2024-01-02")
    assert a.sha256 == b.sha256
    assert b.path.read_bytes() == bytes_a
    assert list(a.path.parent.iterdir()) == [a.path]  # no temp file left behind
    assert pq.ParquetFile(a.path).metadata.row_group(0).column(0).compression == "ZSTD"


@pytest.mark.slow
def test_sigkill_during_writes_never_exposes_a_partial_file(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    target = storage.partition_path(tmp_path, "stress", "2024-01-02")
    for delay in (0.0, 0.35, 0.8, 1.3, 2.1):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        if delay:
            proc.stdout.readline()  # at least one complete write happened
            time.sleep(delay)
        else:
            time.sleep(1.0)  # kill during the very first write or soon after
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        visible = (
            sorted(p.name for p in target.parent.glob("*.parquet"))
            if target.parent.exists()
            else []
        )
        assert visible in ([], ["part.parquet"])
        if visible:
            frame = pl.read_parquet(target)  # complete and readable
            assert frame.height == 1_500_000
            assert frame["version"].n_unique() == 1
    # the next write cleans up any temp file a kill left behind
    storage.write_partition(pl.DataFrame({"version": [9]}), tmp_path, "stress", "2024-01-02")
    assert [p.name for p in target.parent.iterdir()] == ["part.parquet"]


def test_corrupted_partition_is_a_clear_error(tmp_path: Path) -> None:
    path = storage.partition_path(tmp_path, "stock_bars_1d", "2024-01-02")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(LakeError, match="corrupted or not Parquet.*re-materialize stock_bars_1d"):
        storage.read_partition(tmp_path, "stock_bars_1d", "2024-01-02", BAR_SCHEMA)


def test_foreign_parquet_is_a_clear_error(tmp_path: Path) -> None:
    storage.write_partition(pl.DataFrame({"foo": [1]}), tmp_path, "stock_bars_1d", "2024-01-02")
    with pytest.raises(LakeError, match="does not have the stock_bars_1d layout.*missing columns"):
        storage.read_partition(tmp_path, "stock_bars_1d", "2024-01-02", BAR_SCHEMA)


def test_missing_partition_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(LakeError, match="missing.*alpaca-improved backfill"):
        storage.read_partition(tmp_path, "stock_bars_1d", "2024-01-02")


def test_missing_data_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist; run `make demo`"):
        lakehouse.connect(tmp_path / "nowhere")
