"""Atomic Parquet writes: the one implementation every lake writer uses (pipelines and live).

A file is serialized in memory, written to a hidden temporary file beside its target
(``.part.parquet.tmp-<pid>-<uuid>``), flushed and fsync'ed, then renamed over the target
(``os.replace`` is atomic on POSIX), and the directory is fsync'ed. Readers see the old file or
the new one, never a half-written file; a kill leaves at most a hidden temporary file, which the
reader rule ignores and the next write in that directory removes. The same table always yields
the same bytes. ``lineage`` (what the file was computed with) goes into the Parquet footer, so it
is written atomically with the data.

It lives in the contracts leaf because two processes write the lake: the Dagster pipelines
(``alpaca_improved_pipelines.lake.storage``) and the live stream writer
(``live.market.stream.lake_writer``), and neither may import the other.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from contracts.lake import TMP_PREFIX

ROW_GROUP_SIZE = 1_000_000
LINEAGE_KEY = b"alpaca_improved.lineage"


@dataclass(frozen=True, slots=True)
class WrittenPartition:
    """What one partition write produced."""

    path: Path
    rows: int
    bytes: int
    sha256: str


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


def remove_stale_temps(directory: Path) -> None:
    """Remove the temporary files a killed writer left in ``directory`` (hidden; never read)."""
    for stale in directory.glob(f"{TMP_PREFIX}*"):
        stale.unlink(missing_ok=True)


def serialize(table: pa.Table, lineage: dict | None = None) -> tuple[pa.Buffer, str]:
    """The partition file's bytes (zstd Parquet, ``lineage`` in the footer) and their sha256.

    The one serialization of every store (local files and S3), so a partition's bytes and hash
    do not depend on where it is stored.
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
    return data, hashlib.sha256(data).hexdigest()


def write_table_atomic(
    table: pa.Table,
    path: Path,
    fsync: bool = True,
    lineage: dict | None = None,
    before_rename: Callable[[Path], None] | None = None,
) -> WrittenPartition:
    """Write ``table`` as zstd Parquet to ``path`` atomically; return its size and hash.

    The file is serialized in memory first, so its hash costs no second read and the temporary
    file is written with one system call before it is flushed, fsync'ed and renamed into place.
    ``before_rename`` is called with the complete temporary file just before the rename (tests
    use it to kill a writer at the worst moment).
    """
    data, digest = serialize(table, lineage)
    write_bytes_atomic(data, path, fsync, before_rename)
    return WrittenPartition(path, table.num_rows, data.size, digest)


def write_bytes_atomic(
    data: pa.Buffer | bytes,
    path: Path,
    fsync: bool = True,
    before_rename: Callable[[Path], None] | None = None,
    clean: bool = True,
) -> None:
    """Put ``data`` (bytes already serialized, e.g. by :func:`serialize` in another process) at
    ``path`` atomically: temporary file, flush, fsync, rename, directory fsync.

    ``clean``: first remove killed writers' temporary files beside ``path`` (a scan of the
    directory; a writer of many files into one directory cleans once, not per file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if clean:
        remove_stale_temps(path.parent)
    tmp = path.parent / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    try:
        with tmp.open("wb") as f:
            f.write(memoryview(data))
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        if before_rename is not None:
            before_rename(tmp)
        os.replace(tmp, path)
        if fsync:
            _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_lineage(path: Path | Any) -> dict | None:
    """The lineage stored in a partition's Parquet footer; None when absent or unreadable.

    ``path`` is a file path or an open binary file (an object of the S3 lake).
    """
    try:
        meta = pq.read_schema(path).metadata or {}
        raw = meta.get(LINEAGE_KEY)
        return json.loads(raw) if raw else None
    except (OSError, ValueError, pa.ArrowException):
        return None
