"""Atomic, idempotent Parquet partitions: ``<lake>/<table>/session=YYYY-MM-DD/part.parquet``.

A partition is written to a hidden temporary file in its directory, flushed and fsync'ed, then
renamed over the old one (``os.replace`` is atomic on POSIX), so readers see the old file or the
new one, never a half-written file. The same frame always yields the same bytes. The writer is
``contracts.parquet_io.write_table_atomic`` (re-exported here), shared with the live stream writer.

The layout, the table registry and the reader rule (only ``part.parquet`` is data) live in
``contracts.lake``: a write to a table that is not registered there is refused, and writing a
partition removes the strays beside its ``part.parquet`` (which no reader reads), with a warning
naming each one.

Every function takes the lake as a directory (``<home>/lake``) or a ``contracts.lake_store``
store: with ``ALPACA_IMPROVED_LAKE_URI=s3://bucket/prefix`` the directory stands for the bucket,
each partition is one object written with one conditional PUT of the same bytes, and a second
writer of a partition gets ``PartitionConflict`` (see ``contracts.lake_store``).
"""

from __future__ import annotations

import datetime as dt
import io
import warnings
from pathlib import Path

import polars as pl

from alpaca_improved_pipelines.errors import LakeError
from contracts import lake as layout
from contracts import lake_store
from contracts.lake import PART_FILE as PART_FILE  # re-exported: the layout's names
from contracts.lake import TMP_PREFIX as TMP_PREFIX
from contracts.lake_store import LakeStore
from contracts.parquet_io import LINEAGE_KEY as LINEAGE_KEY  # re-exported: the one writer
from contracts.parquet_io import ROW_GROUP_SIZE as ROW_GROUP_SIZE
from contracts.parquet_io import WrittenPartition as WrittenPartition
from contracts.parquet_io import file_sha256 as file_sha256
from contracts.parquet_io import read_lineage as read_lineage
from contracts.parquet_io import write_table_atomic as write_table_atomic

Lake = Path | LakeStore


def store(lake: Lake) -> LakeStore:
    """The store behind ``lake`` (``ALPACA_IMPROVED_LAKE_URI`` decides; see ``lake_store``)."""
    return lake_store.resolve(lake)


def partition_dir(lake: Lake, table: str, session: dt.date | str) -> Path:
    """The directory of one session partition of ``table``."""
    return layout.partition_dir(store(lake).base, table, session)


def partition_path(lake: Lake, table: str, session: dt.date | str) -> Path:
    """The Parquet file of one partition of ``table`` (a key relative to the bucket on S3)."""
    return store(lake).partition(table, session)


def has(lake: Lake, table: str, session: dt.date | str) -> bool:
    """Whether the partition exists (on S3, the ETag seen is what a rewrite expects)."""
    s = store(lake)
    return s.exists(s.partition(table, session))


def read_file(lake: Lake, path: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """Read one lake file with polars (local path, or the object's bytes on S3)."""
    s = store(lake)
    if not s.remote:
        return pl.read_parquet(path, columns=columns)
    return pl.read_parquet(io.BytesIO(s.read(path)), columns=columns)


def digest(lake: Lake, path: Path) -> str:
    """Hex SHA-256 of one lake file (its data version), wherever the lake is stored."""
    return store(lake).sha256(path)


def remove_strays(directory: Path, lake: Lake | None = None) -> list[Path]:
    """Remove the files beside a partition's ``part.parquet`` (no reader reads them).

    Called after a partition is written: re-materializing a partition replaces it whole. Each
    removed file is named in a ``LakeWarning``.
    """
    s = store(lake) if lake is not None else lake_store.LocalStore(directory.parent.parent)
    removed = []
    for stray in s.strays(directory):
        s.delete(stray)
        removed.append(stray)
        warnings.warn(
            layout.LakeWarning(
                f"removed stray {s.url(stray)} while re-materializing {directory} (the lake "
                f"reads only {PART_FILE}; nothing ever read it)"
            ),
            stacklevel=3,
        )
    return removed


def write_partition(
    frame: pl.DataFrame,
    lake: Lake,
    table: str,
    session: dt.date | str,
    fsync: bool = True,
    lineage: dict | None = None,
) -> WrittenPartition:
    """Write one session partition of ``table`` atomically, replacing any previous version.

    Raises:
        LakeLayoutError: ``table`` is not a session-partitioned table of ``contracts.lake``.
        PartitionConflict: (S3) another writer wrote the partition since this one read it.
    """
    layout.table(table, "session")
    s = store(lake)
    written = s.write(frame.to_arrow(), s.partition(table, session), fsync, lineage)
    remove_strays(written.path.parent, s)
    return written


def read_partition(
    lake: Lake, table: str, session: dt.date | str, schema: dict[str, pl.DataType] | None = None
) -> pl.DataFrame:
    """Read one partition, raising a LakeError that names the file if it is missing or foreign."""
    s = store(lake)
    path = s.partition(table, session)
    if not s.exists(path):
        raise LakeError(
            f"partition {table}/{path.parent.name} is missing ({s.url(path)}); "
            f"materialize {table} for that session first (alpaca-improved backfill)"
        )
    try:
        frame = read_file(s, path)
    except FileNotFoundError:
        raise LakeError(
            f"partition {table}/{path.parent.name} is missing ({s.url(path)}); "
            f"materialize {table} for that session first (alpaca-improved backfill)"
        ) from None
    except Exception as exc:  # polars raises several types for corrupt files
        raise LakeError(
            f"lake file {s.url(path)} is corrupted or not Parquet ({type(exc).__name__}); "
            f"delete it and re-materialize {table} for {path.parent.name.removeprefix('session=')}"
        ) from None
    if schema is not None:
        missing = [c for c in schema if c not in frame.columns]
        wrong = [c for c in schema if c in frame.columns and frame.schema[c] != schema[c]]
        if missing or wrong:
            raise LakeError(
                f"lake file {s.url(path)} does not have the {table} layout (missing columns "
                f"{missing}, wrong types {wrong}); it was not written by this platform: "
                f"move it away and re-materialize {table} for "
                f"{path.parent.name.removeprefix('session=')}"
            )
        frame = frame.select(list(schema))
    return frame


def read_partitions(
    lake: Lake,
    table: str,
    sessions: list[dt.date] | list[str],
    schema: dict[str, pl.DataType] | None = None,
) -> pl.DataFrame:
    """Read and concatenate several partitions (each validated as in ``read_partition``)."""
    frames = [read_partition(lake, table, s, schema) for s in sessions]
    if not frames:
        return pl.DataFrame(schema=schema) if schema else pl.DataFrame()
    return pl.concat(frames, how="vertical")


def existing_sessions(lake: Lake, table: str) -> list[str]:
    """Session keys that have a ``part.parquet`` for ``table``, ascending.

    Raises:
        LakeLayoutError: a ``session=`` directory of ``table`` is not a real date (named).
    """
    s = store(lake)
    if not s.remote:
        return [d.isoformat() for d in layout.sessions(s.base, table)]
    layout.table(table, "session")
    scan = s.scan(table)
    if scan.rejected:
        raise layout.LakeLayoutError("lake key " + "; ".join(str(r) for r in scan.rejected))
    return list(scan.files)
