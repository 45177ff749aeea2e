"""Partitions are written atomically: a kill mid-write never leaves a visible partial file.

The lake has one table registry (``contracts.lake``): every table the pipelines write is in it,
and so has a view; nothing else is written, and no view lacks a writer.
"""

from __future__ import annotations

import ast
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from alpaca_improved_pipelines.backtesting import research_tables
from alpaca_improved_pipelines.errors import LakeError
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from contracts import lake as layout
from research import lakehouse

ROOT = Path(__file__).resolve().parents[2]

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
    storage.write_partition(frame, lake, "stock_bars_1m", "2024-01-02", fsync=True)
    print(i, flush=True)
    i += 1
"""


def test_write_is_idempotent_byte_for_byte(tmp_path: Path) -> None:
    frame = pl.DataFrame({"symbol": ["A", "B"], "x": [1.0, 2.0]})
    a = storage.write_partition(frame, tmp_path, "stock_bars_1d", "2024-01-02")
    bytes_a = a.path.read_bytes()
    b = storage.write_partition(frame, tmp_path, "stock_bars_1d", "2024-01-02")
    assert a.sha256 == b.sha256
    assert b.path.read_bytes() == bytes_a
    assert list(a.path.parent.iterdir()) == [a.path]  # no temp file left behind
    assert pq.ParquetFile(a.path).metadata.row_group(0).column(0).compression == "ZSTD"


@pytest.mark.slow
def test_sigkill_during_writes_never_exposes_a_partial_file(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    target = storage.partition_path(tmp_path, "stock_bars_1m", "2024-01-02")
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
    storage.write_partition(pl.DataFrame({"version": [9]}), tmp_path, "stock_bars_1m", "2024-01-02")
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


# The packages that write the lake: the pipelines, and live's intraday stream writer.
WRITING_PACKAGES = ("alpaca_improved_pipelines", "live")


def _written_tables() -> dict[str, set[str]]:
    """Lake tables named in the writing packages' write calls, and the modules making them.

    A table name is a string constant (or a module-level constant) passed to a call whose
    function name contains ``write``: ``lake.write("option_chains", ...)``,
    ``write_family(lake, "sweep_results", ...)``, ``fetch_and_write(..., "stock_bars_1m", ...)``.
    """
    shaped = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")  # every lake table has an underscore
    found: dict[str, set[str]] = {}
    sources = (p for pkg in WRITING_PACKAGES for p in (ROOT / pkg).rglob("*.py"))
    for path in sorted(sources):
        tree = ast.parse(path.read_text(), filename=str(path))
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        consts = {
            t.id: n.value.value
            for n in tree.body
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
            for t in n.targets
            if isinstance(t, ast.Name) and isinstance(n.value.value, str)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if "write" not in name:
                continue
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                value = arg.value if isinstance(arg, ast.Constant) else None
                if isinstance(arg, ast.Name):
                    value = consts.get(arg.id)
                if isinstance(value, str) and shaped.match(value):
                    found.setdefault(value, set()).add(module)
    return found


def test_every_written_table_has_a_view_and_every_view_a_writer() -> None:
    written = _written_tables()
    assert {"cross_source_bars", "sweep_results", "stream_bars_1m"} <= set(written)  # seen
    unregistered = sorted(set(written) - set(lakehouse.VIEWS))
    unwritten = sorted(set(lakehouse.VIEWS) - set(written))
    assert not unregistered, (
        f"written but without a view (register in contracts/lake.py): {unregistered}"
    )
    assert not unwritten, f"views that nothing writes: {unwritten}"
    assert tuple(layout.REGISTRY) == lakehouse.VIEWS
    for name, modules in written.items():
        assert modules == set(layout.REGISTRY[name].writers), name


def test_a_write_to_an_unregistered_table_is_refused(tmp_path: Path) -> None:
    frame = pl.DataFrame({"x": [1]})
    with pytest.raises(layout.LakeLayoutError, match="'data_quality_anomalies' is not a lake"):
        storage.write_partition(frame, tmp_path, "data_quality_anomalies", "2024-01-02")
    with pytest.raises(layout.LakeLayoutError, match="partitioned by family, not by session"):
        storage.write_partition(frame, tmp_path, "sweep_results", "2024-01-02")
    with pytest.raises(layout.LakeLayoutError, match="partitioned by session, not by family"):
        research_tables.write_family(tmp_path, "stock_bars_1d", "ma_crossover", frame)
    assert not any(tmp_path.iterdir())  # nothing written


def test_rematerializing_a_partition_removes_its_strays_and_names_them(tmp_path: Path) -> None:
    frame = pl.DataFrame({"symbol": ["A"], "x": [1.0]})
    first = storage.write_partition(frame, tmp_path, "stock_bars_1d", "2024-01-02")
    stray = first.path.with_name("part-copy.parquet")
    stray.write_bytes(first.path.read_bytes())
    with pytest.warns(layout.LakeWarning, match="removed stray .*part-copy.parquet"):
        again = storage.write_partition(frame, tmp_path, "stock_bars_1d", "2024-01-02")
    assert [p.name for p in again.path.parent.iterdir()] == ["part.parquet"]
    family = research_tables.write_family(tmp_path, "walk_forward", "ma_crossover", frame)
    (family.parent / "old.parquet").write_bytes(family.read_bytes())
    with pytest.warns(layout.LakeWarning, match="removed stray .*old.parquet"):
        research_tables.write_family(tmp_path, "walk_forward", "ma_crossover", frame)
    assert [p.name for p in family.parent.iterdir()] == ["part.parquet"]


def test_the_shared_session_listing_rejects_an_invalid_session_with_its_path(
    tmp_path: Path,
) -> None:
    storage.write_partition(pl.DataFrame({"x": [1]}), tmp_path, "stock_bars_1d", "2024-02-28")
    assert layout.sessions(tmp_path) == [dt.date(2024, 2, 28)]
    bad = tmp_path / "stock_bars_1d" / "session=2024-02-30"
    bad.mkdir()
    (bad / "part.parquet").write_bytes(b"")
    for listing in (
        lambda: layout.sessions(tmp_path),
        lambda: storage.existing_sessions(tmp_path, "stock_bars_1d"),
    ):
        with pytest.raises(layout.LakeLayoutError, match=re.escape(str(bad))) as err:
            listing()
        assert "day is out of range" in str(err.value) and "move it out of the lake" in str(
            err.value
        )
