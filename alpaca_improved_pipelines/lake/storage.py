"""Atomic, idempotent Parquet partitions: ``<lake>/<table>/session=YYYY-MM-DD/part.parquet``.

A partition is written to a hidden temporary file in its directory, flushed and fsync'ed, then
renamed over the old one (``os.replace`` is atomic on POSIX), so readers see the old file or the
new one, never a half-written file. The same frame always yields the same bytes. The writer is
``contracts.parquet_io.write_table_atomic`` (re-exported here), shared with the live stream writer.

The layout, the table registry and the reader rule (only ``part.parquet`` is data) live in
``contracts.lake``: a write to a table that is not registered there is refused, and writing a
partition removes the strays beside its ``part.parquet`` (which no reader reads), with a warning
naming each one.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import polars as pl

from alpaca_improved_pipelines.errors import LakeError
from contracts import lake as layout
from contracts.lake import PART_FILE as PART_FILE  # re-exported: the layout's names
from contracts.lake import TMP_PREFIX as TMP_PREFIX
from contracts.parquet_io import LINEAGE_KEY as LINEAGE_KEY  # re-exported: the one writer
from contracts.parquet_io import ROW_GROUP_SIZE as ROW_GROUP_SIZE
from contracts.parquet_io import WrittenPartition as WrittenPartition
from contracts.parquet_io import file_sha256 as file_sha256
from contracts.parquet_io import read_lineage as read_lineage
from contracts.parquet_io import write_table_atomic as write_table_atomic


def partition_dir(lake: Path, table: str, session: dt.date | str) -> Path:
    """The directory of one session partition of ``table``."""
    return layout.partition_dir(lake, table, session)


def partition_path(lake: Path, table: str, session: dt.date | str) -> Path:
    """The Parquet file of one session partition of ``table``."""
    return layout.partition_path(lake, table, session)


def remove_strays(directory: Path) -> list[Path]:
    """Remove the files beside a partition's ``part.parquet`` (no reader reads them).

    Called after a partition is written: re-materializing a partition replaces it whole. Each
    removed file is named in a ``LakeWarning``.
    """
    removed = []
    for stray in layout.strays_in(directory):
        stray.unlink(missing_ok=True)
        removed.append(stray)
        warnings.warn(
            layout.LakeWarning(
                f"removed stray {stray} while re-materializing {directory} (the lake reads "
                f"only {PART_FILE}; nothing ever read it)"
            ),
            stacklevel=3,
        )
    return removed


def write_partition(
    frame: pl.DataFrame,
    lake: Path,
    table: str,
    session: dt.date | str,
    fsync: bool = True,
    lineage: dict | None = None,
) -> WrittenPartition:
    """Write one session partition of ``table`` atomically, replacing any previous version.

    Raises:
        LakeLayoutError: ``table`` is not a session-partitioned table of ``contracts.lake``.
    """
    layout.table(table, "session")
    written = write_table_atomic(
        frame.to_arrow(), partition_path(lake, table, session), fsync, lineage
    )
    remove_strays(written.path.parent)
    return written


def read_partition(
    lake: Path, table: str, session: dt.date | str, schema: dict[str, pl.DataType] | None = None
) -> pl.DataFrame:
    """Read one partition, raising a LakeError that names the file if it is missing or foreign."""
    path = partition_path(lake, table, session)
    if not path.exists():
        raise LakeError(
            f"partition {table}/{path.parent.name} is missing ({path}); "
            f"materialize {table} for that session first (alpaca-improved backfill)"
        )
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for corrupt files
        raise LakeError(
            f"lake file {path} is corrupted or not Parquet ({type(exc).__name__}); delete it and "
            f"re-materialize {table} for {path.parent.name.removeprefix('session=')}"
        ) from None
    if schema is not None:
        missing = [c for c in schema if c not in frame.columns]
        wrong = [c for c in schema if c in frame.columns and frame.schema[c] != schema[c]]
        if missing or wrong:
            raise LakeError(
                f"lake file {path} does not have the {table} layout (missing columns {missing}, "
                f"wrong types {wrong}); it was not written by this platform: move it away and "
                f"re-materialize {table} for {path.parent.name.removeprefix('session=')}"
            )
        frame = frame.select(list(schema))
    return frame


def read_partitions(
    lake: Path,
    table: str,
    sessions: list[dt.date] | list[str],
    schema: dict[str, pl.DataType] | None = None,
) -> pl.DataFrame:
    """Read and concatenate several partitions (each validated as in ``read_partition``)."""
    frames = [read_partition(lake, table, s, schema) for s in sessions]
    if not frames:
        return pl.DataFrame(schema=schema) if schema else pl.DataFrame()
    return pl.concat(frames, how="vertical")


def existing_sessions(lake: Path, table: str) -> list[str]:
    """Session keys that have a ``part.parquet`` for ``table``, ascending.

    Raises:
        LakeLayoutError: a ``session=`` directory of ``table`` is not a real date (named).
    """
    return [d.isoformat() for d in layout.sessions(lake, table)]
