"""Where a sweep's chunk checkpoints live: beside the lake, on local disk or in its bucket.

Local (the default): ``<home>/sweeps/<family>/<sweep key>/chunk-<size>-NNNNN.parquet``, chunk
NNNNN of ``size`` points (the size is in the name: a sweep chunked differently never misreads
another's files), each written atomically (temporary file, fsync, rename). With
``ALPACA_IMPROVED_LAKE_URI=s3://bucket/prefix`` the checkpoints go to the lake's bucket under
``<prefix>/_sweeps/<family>/<sweep key>/`` (the leading underscore keeps them out of every table
scan), each one object written with one PUT, which S3 makes atomic: a sweep driven from another
machine, or from a pod that was replaced, resumes from the same checkpoints. Only the process
that runs ``run_sweep`` writes them, once per chunk index, whatever engine evaluated the chunk.
"""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from contracts import lake_store, parquet_io, paths
from contracts.lake_store import LakeStore


class Checkpoints:
    """A sweep's chunk files: under ``root`` on disk, or under ``root`` in ``store``'s bucket."""

    def __init__(self, root: Path, store: LakeStore | None = None, size: int = 32) -> None:
        self.root = Path(root)
        self.store = store if store is not None and store.remote else None
        self.size = size  # points per chunk
        self._cleaned = False  # a killed driver's temporary files removed (first put)

    def sized(self, size: int) -> Checkpoints:
        """The same place, for chunks of ``size`` points."""
        return Checkpoints(self.root, self.store, size)

    @classmethod
    def for_sweep(cls, home: Path, family: str, key: str) -> Checkpoints:
        """The checkpoints of sweep ``key`` of ``family``: the lake's bucket when it has one."""
        store = lake_store.from_env(paths.lake_dir(home))
        if store.remote:
            return cls(Path("_sweeps") / family / key, store)
        return cls(paths.sweeps_dir(home) / family / key)

    def path(self, i: int) -> Path:
        return self.root / f"chunk-{self.size}-{i:05d}.parquet"

    def where(self) -> str:
        """Where the checkpoints are, for messages (a directory or an ``s3://`` URL)."""
        return self.store.url(self.root) if self.store else str(self.root)

    def exists(self, i: int) -> bool:
        return self.store.exists(self.path(i)) if self.store else self.path(i).exists()

    def put(self, i: int, blob: bytes) -> None:
        """Checkpoint chunk ``i`` (its Parquet bytes), atomically for any reader."""
        if self.store is None:
            # the directory holds one file per chunk: scanning it for stale temporary files on
            # every put was O(chunks^2) (~4.9M entries over a 100k-point sweep's 3,125 puts)
            parquet_io.write_bytes_atomic(blob, self.path(i), clean=not self._cleaned)
            self._cleaned = True
            return
        store = self.store
        key = store.key(self.path(i))  # type: ignore[attr-defined]  # an S3Store when remote
        store.client.put_object(Bucket=store.bucket, Key=key, Body=blob)  # type: ignore[attr-defined]

    def read(self, i: int) -> pl.DataFrame:
        if self.store is None:
            return pl.read_parquet(self.path(i))
        return pl.read_parquet(io.BytesIO(self.store.read(self.path(i))))
