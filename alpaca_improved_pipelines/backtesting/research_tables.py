"""Research results in the lake: per-family Parquet files read by the DuckDB views."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from alpaca_improved_pipelines.lake import storage
from contracts import lake as layout


def family_path(lake: storage.Lake, table: str, family: str) -> Path:
    return storage.partition_path(lake, table, family)


def write_family(lake: storage.Lake, table: str, family: str, frame: pl.DataFrame) -> Path:
    """Atomically replace ``table``'s file for ``family`` (a family-partitioned lake table).

    Raises:
        LakeLayoutError: ``table`` is not a family-partitioned table of ``contracts.lake``, or
            ``family`` is not a valid partition value.
    """
    layout.table(table, "family")
    if (problem := layout.key_problem("family", family)) is not None:
        raise layout.LakeLayoutError(f"cannot write {table} for family {family!r}: {problem}")
    s = storage.store(lake)
    path = family_path(s, table, family)
    s.write(frame.to_arrow(), path)
    storage.remove_strays(path.parent, s)
    return path


def read_family(lake: storage.Lake, table: str, family: str) -> pl.DataFrame:
    s = storage.store(lake)
    path = family_path(s, table, family)
    if not s.exists(path):
        from alpaca_improved_pipelines.errors import LakeError

        raise LakeError(
            f"{table} has no results for {family} ({s.url(path)}); materialize the "
            f"{family}_sweep asset first"
        )
    return storage.read_file(s, path)
