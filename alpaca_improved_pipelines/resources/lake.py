"""The lake as a Dagster resource: where partitions live and how they are written and read."""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from pathlib import Path

import dagster as dg
import polars as pl

from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.lake.storage import WrittenPartition
from contracts import paths


class LakeResource(dg.ConfigurableResource):
    """Hive-partitioned zstd Parquet under ``<home>/lake`` (or ``ALPACA_IMPROVED_LAKE_URI``'s
    bucket, see ``contracts.lake_store``) with atomic partition writes."""

    home: str
    fsync: bool = True

    @property
    def root(self) -> Path:
        return paths.lake_dir(Path(self.home))

    def write(
        self,
        table: str,
        session: dt.date | str,
        frame: pl.DataFrame,
        lineage: dict | None = None,
    ) -> WrittenPartition:
        """Atomically replace one session partition of ``table`` with ``frame``.

        ``lineage`` (see ``lake.lineage``) is stored in the file's footer with the data.
        """
        return storage.write_partition(
            frame, self.root, table, session, fsync=self.fsync, lineage=lineage
        )

    def batch(self) -> AbstractContextManager[None]:
        """Readers are told of the partitions written inside once, at its end (on S3: one
        commit marker per table, which the DuckDB views HEAD per statement, not one per
        partition; not all-or-nothing); a step that writes many partitions wraps its loop in it."""
        return storage.store(self.root).batch()

    def read(
        self,
        table: str,
        sessions: list[str] | list[dt.date],
        schema: dict[str, pl.DataType] | None = None,
    ) -> pl.DataFrame:
        """Read partitions of ``table`` (LakeError naming the file if one is missing or foreign)."""
        return storage.read_partitions(self.root, table, sessions, schema)

    def has(self, table: str, session: dt.date | str) -> bool:
        return storage.has(self.root, table, session)

    def path(self, table: str, session: dt.date | str) -> Path:
        """The partition's file (a key relative to the bucket when the lake is on S3)."""
        return storage.partition_path(self.root, table, session)

    def frame(
        self, table: str, session: dt.date | str, columns: list[str] | None = None
    ) -> pl.DataFrame:
        """One partition as polars reads it (no layout check; see ``read`` for that)."""
        return storage.read_file(self.root, self.path(table, session), columns)
