"""Atomic, idempotent Parquet partitions: ``<lake>/<table>/session=YYYY-MM-DD/part.parquet``.

A partition is written to a hidden temporary file in its directory, flushed and fsync'ed, then
renamed over the old one (``os.replace`` is atomic on POSIX), so readers see the old file or the
new one, never a half-written file. The same frame always yields the same bytes.

The layout, the table registry and the reader rule (only ``part.parquet`` is data) live in
``contracts.lake``: a write to a table that is not registered there is refused, and writing a
partition removes the strays beside its ``part.parquet`` (which no reader reads), with a warning
naming each one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from alpaca_improved_pipelines.errors import LakeError
from contracts import lake as layout
from contracts.lake import PART_FILE as PART_FILE  # re-exported: the layout's names
from contracts.lake import TMP_PREFIX as TMP_PREFIX

ROW_GROUP_SIZE = 1_000_000


@dataclass(frozen=True, slots=True)
class WrittenPartition:
    """What one partition write produced."""

    path: Path
    rows: int
    bytes: int
    sha256: str


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


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes: the partition's data version."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temps(directory: Path) -> None:
    for stale in directory.glob(f"{TMP_PREFIX}*"):
        stale.unlink(missing_ok=True)


def write_table_atomic(
    table: pa.Table, path: Path, fsync: bool = True, lineage: dict | None = None
) -> WrittenPartition:
    """Write ``table`` as zstd Parquet to ``path`` atomically; return its size and hash.

    The file is serialized in memory first, so its hash costs no second read and the temporary
    file is written with one system call before it is flushed, fsync'ed and renamed into place.
    ``lineage`` (what the partition was computed with) goes into the file's key-value metadata,
    so it is written atomically with the data.
    """
    if lineage is not None:
        meta = dict(table.schema.metadata or {})
        meta[LINEAGE_KEY] = json.dumps(lineage, sort_keys=True).encode()
        table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    pq.write_table(
        table, sink, compression="zstd", row_group_size=ROW_GROUP_SIZE, write_statistics=True
    )
    data = sink.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path.parent)
    tmp = path.parent / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    try:
        with tmp.open("wb") as f:
            f.write(memoryview(data))
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if fsync:
            _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return WrittenPartition(path, table.num_rows, data.size, digest)


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


# --- partition lineage: what a partition was computed with (universe, source, history) ---
LINEAGE_KEY = b"alpaca_improved.lineage"


def read_lineage(path: Path) -> dict | None:
    """The lineage stored in a partition's Parquet footer; None when absent or unreadable."""
    try:
        meta = pq.read_schema(path).metadata or {}
        raw = meta.get(LINEAGE_KEY)
        return json.loads(raw) if raw else None
    except (OSError, ValueError, pa.ArrowException):
        return None


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
