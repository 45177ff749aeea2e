"""Where the lake's bytes live: local files (the default) or S3-compatible object storage.

One switch, ``ALPACA_IMPROVED_LAKE_URI``:

* unset (or empty): :class:`LocalStore` over ``<home>/lake``, today's behaviour byte for byte
  (temp file + fsync + ``os.replace``, see ``contracts.parquet_io``);
* ``s3://bucket/prefix``: :class:`S3Store`, with the standard ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``/``AWS_DEFAULT_REGION`` and
  ``AWS_ENDPOINT_URL`` (any S3-compatible server) variables. Every writer and reader of the lake
  (the pipelines, research's DuckDB views, the live runner's snapshot reader) then uses the
  bucket, and ``<home>/lake`` is not used.

The layout is the same on both: ``<lake>/<table>/<key>=<value>/part.parquet`` (``contracts.lake``).

Every write (and delete) then rewrites its table's commit marker, ``<prefix>/_commits/<table>``
(a small JSON object; a new ETag each time), or, inside :meth:`LakeStore.batch`, once per table
when the batch ends: a step that writes 252 partitions commits once (a notice to readers, not
an all-or-nothing transaction: each partition is whole once written). Research's DuckDB views
HEAD the markers of the tables a statement names and LIST a table only when its marker changed
(``research.lakehouse``): one request per table per statement, however many partitions it has,
instead of a LIST of them all (one page per 1,000 objects). Readers of the views read local
copies of the bucket's objects, fetched by the ETag the LIST returns (``contracts.lake_cache``);
with ``ALPACA_IMPROVED_LAKE_CACHE=off``
they read the bucket through :func:`lake_filesystem` (an fsspec filesystem on the store's boto3
client with an ETag-checked in-memory cache) registered with DuckDB: the locked DuckDB 2.0
cannot load ``httpfs`` offline, and through s3fs the same view ran ~130x slower than on local
files (~60 ms per object request on the moto server).

Why plain Parquet with one PUT per partition, not Delta Lake (measured in
``benchmarks/bench_lake_s3.py`` against the moto server; numbers below):

* A partition is ONE object written with ONE ``PutObject``. S3 PUTs are atomic: a reader gets the
  old whole object or the new whole object, never half of one, and no other key is involved, so
  there is nothing to commit and nothing a killed writer can leave behind.
* The object's bytes are exactly the bytes the local store writes (the same in-memory
  serialization, ``contracts.parquet_io.serialize``), so a partition's sha256, the data versions
  built from it and the lineage in its footer are the same on S3 as on disk.
* Two writers of one partition are detected with S3 conditional writes: a store that has seen a
  partition (HEAD, read, lineage check) writes it with ``If-Match: <the ETag it saw>``, and a
  partition it saw absent with ``If-None-Match: *``; one it never read is written as new
  (``If-None-Match: *``) and, if it exists, replaced ``If-Match`` its current ETag. When another
  writer replaced or created the object in between, S3 answers 412 and the write raises
  :class:`PartitionConflict`, naming the partition and what to do; the object stays the other
  writer's whole file.
* Delta Lake would give the same atomic replace and table versions, but its data files are
  named by UUID (the layout, the reader rule and the per-partition hashes change), a partition
  replace is a delete + add commit in ``_delta_log`` (every reader must go through the log: the
  live runner's reader, DuckDB 2.0 only through an Arrow dataset), and replacing one partition
  cost 10-30x a plain PUT on the moto server.

Measured (``benchmarks/bench_lake_s3.py``: 30 sessions x 10 symbols of minute bars, the moto
server, the 2-core machine under a load average of 12-21, best of 3; runs swing 2x):

* ingest of new partitions: ours 0.76-1.03x bare pyarrow (one If-None-Match PUT each; target
  >= 0.8x); replacing every partition again 0.45x (412, HEAD, If-Match PUT); Delta Lake with
  one commit per partition 0.10-0.37x;
* the daily-resample view: 39-80 ms on S3 vs 20-62 ms on local files (1.3-2.0x) while DuckDB
  read the bucket through Python file objects; 1.56-1.66x reading local cached copies
  (``contracts.lake_cache``) with one LIST of the table per statement (~7.5 ms of the moto
  server's and our CPU on a 2-core machine already busy with DuckDB); 1.34-1.36x (40
  interleaved rounds on a quiet machine: 20.4 vs 14.9 ms) with the commit marker's HEAD instead
  (2.7 ms). Ingest stays 1.09x bare pyarrow with one commit per batch; a commit per partition
  (writes outside a batch) costs one more PUT each: 0.71x. The Delta table through Arrow took
  73-106 ms, the same ``read_parquet`` through s3fs 0.6-4.4 s;
* replacing one partition: 10-60 ms ours vs 470-700 ms Delta (overwrite with a predicate).

Bad configuration (a URI that is not ``s3://bucket[/prefix]``, a missing bucket, wrong
credentials, an unreachable endpoint) raises :class:`LakeStoreError` from :func:`from_env` /
:func:`check`, which every entry point calls at start-up, with one line naming the variable and
the fix; secrets are never part of a message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, NamedTuple

import pyarrow as pa

from contracts import lake as layout
from contracts.errors import ContractError
from contracts.parquet_io import WrittenPartition, file_sha256, serialize, write_table_atomic

_log = logging.getLogger(__name__)
LAKE_URI_ENV = "ALPACA_IMPROVED_LAKE_URI"
ENDPOINT_ENV = "AWS_ENDPOINT_URL"
# How long a seen ETag stands for "this process read that partition" (then the write HEADs anew).
SEEN_TTL_S = 3600.0
# Per table, the object every commit rewrites: ``<prefix>/_commits/<table>`` (the underscore
# keeps it out of every table scan, as ``_sweeps``)
COMMITS_DIR = "_commits"
# A reader that found a table's commit marker unchanged LISTs it anyway once its last LIST is
# this old: a writer that died between its partition's PUT and the marker's, or a copy made
# outside the platform (`aws s3 cp`), is seen within this many seconds
RELIST_SECONDS = 60.0


class LakeStoreError(ContractError):
    """The lake's store is misconfigured or unreachable; the message names the variable and fix."""


class PartitionConflict(LakeStoreError):
    """Another writer replaced (or created) a partition between this writer's read and write."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One partition object: its version tag (S3 ETag, or local size+mtime) and size."""

    etag: str
    size: int
    mtime: float


class Listed(NamedTuple):
    """A table's commit marker, then (at ``when``, ``time.monotonic()``) its LIST."""

    marker: str | None
    when: float
    listing: dict[str, ObjectInfo]


class LakeStore(ABC):
    """The lake's bytes: partition objects under ``<table>/<key>=<value>/part.parquet``.

    Paths handed out (``partition``, ``scan``) are what ``url``/``open``/``head`` take back:
    absolute file paths for the local store, keys relative to the lake for S3.
    """

    uri: str

    def partition(self, table: str, value: Any) -> Path:
        """The path of one partition's ``part.parquet`` (see ``contracts.lake``)."""
        return layout.partition_path(self.base, table, value)

    @property
    @abstractmethod
    def base(self) -> Path:
        """The lake's root as this store's paths start."""

    @property
    def remote(self) -> bool:
        return False

    @property
    def root_url(self) -> str:
        """The lake's root as DuckDB reads it (a directory, or ``s3://bucket/prefix``)."""
        return str(self.base)

    @abstractmethod
    def url(self, path: Path) -> str:
        """What DuckDB/pyarrow/polars open: a file path, or ``s3://bucket/prefix/<key>``."""

    @abstractmethod
    def head(self, path: Path) -> ObjectInfo | None:
        """The object's version tag, size and modification time; None when absent."""

    @abstractmethod
    def read(self, path: Path) -> bytes:
        """The object's bytes (``FileNotFoundError`` when absent)."""

    @abstractmethod
    def open(self, path: Path) -> IO[bytes]:
        """A seekable binary reader (Parquet footers are read without fetching the object)."""

    @abstractmethod
    def write(
        self,
        table: pa.Table,
        path: Path,
        fsync: bool = True,
        lineage: dict | None = None,
        hold: bool = False,
    ) -> WrittenPartition:
        """Replace the partition at ``path`` with ``table``, atomically for every reader.

        ``hold``: the writer keeps appending to its own copy (the stream writer), so its next
        write of ``path`` must find the object exactly as this write left it (S3: remember the
        PUT's ETag for the next ``If-Match``)."""

    @abstractmethod
    def scan(self, name: str) -> layout.TableScan:
        """``name``'s partitions under the reader rule (as ``contracts.lake.scan_table``)."""

    @abstractmethod
    def strays(self, directory: Path) -> list[Path]:
        """Objects beside a partition's ``part.parquet`` (never read)."""

    @abstractmethod
    def delete(self, path: Path) -> None:
        """Remove one object (strays only)."""

    def exists(self, path: Path) -> bool:
        return self.head(path) is not None

    def sha256(self, path: Path) -> str:
        """Hex SHA-256 of the object's bytes: the partition's data version."""
        return hashlib.sha256(self.read(path)).hexdigest()

    def parquet_problem(self, path: Path) -> str | None:
        """Why the object cannot be whole Parquet (None when its frame looks whole)."""
        return layout.parquet_problem(path)

    def check(self) -> None:  # noqa: B027 - nothing to check for local files
        """Fail now, with one line naming the variable and fix, if the store is unusable."""

    def batch(self) -> AbstractContextManager[None]:
        """Readers are told of this thread's writes inside once, when it ends (S3: one commit
        marker per table written, not one per partition). Not all-or-nothing: each partition
        is whole in the bucket as soon as it is written, and a new reader LISTs it. Local files
        need no commit."""
        return nullcontext()

    def commit_marker(self, table: str) -> str | None:
        """The version of ``table``'s last commit (S3: the marker's ETag); None when none is
        recorded, so a reader must LIST the table to know it."""
        return None

    def pending(self, table: str) -> bool:
        """True while a batch of this process has written ``table`` and not committed it yet."""
        return False


class LocalStore(LakeStore):
    """``<home>/lake`` on the local file system (temp file + fsync + rename per partition)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    @property
    def base(self) -> Path:
        return self.root

    def url(self, path: Path) -> str:
        return str(path)

    def head(self, path: Path) -> ObjectInfo | None:
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return ObjectInfo(f"{st.st_size}-{st.st_mtime_ns}", st.st_size, st.st_mtime)

    def read(self, path: Path) -> bytes:
        return path.read_bytes()

    def sha256(self, path: Path) -> str:
        return file_sha256(path)

    def open(self, path: Path) -> IO[bytes]:
        return path.open("rb")

    def write(
        self,
        table: pa.Table,
        path: Path,
        fsync: bool = True,
        lineage: dict | None = None,
        hold: bool = False,
    ) -> WrittenPartition:
        return write_table_atomic(table, path, fsync, lineage)

    def scan(self, name: str) -> layout.TableScan:
        return layout.scan_table(self.root, name)

    def strays(self, directory: Path) -> list[Path]:
        return layout.strays_in(directory)

    def delete(self, path: Path) -> None:
        path.unlink(missing_ok=True)


def _endpoint(env: Mapping[str, str]) -> str | None:
    return env.get(ENDPOINT_ENV) or env.get("AWS_ENDPOINT_URL_S3") or None


class S3Store(LakeStore):
    """The lake in ``s3://bucket/prefix``: one object per partition, written with one PUT.

    Args:
        uri: ``s3://bucket[/prefix]``.
        environ: where the ``AWS_*`` variables are read (default ``os.environ``).
    """

    def __init__(self, uri: str, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.uri = uri.rstrip("/")
        self.bucket, self.prefix = parse_uri(self.uri)
        self.endpoint = _endpoint(env)
        self.region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        self._key = env.get("AWS_ACCESS_KEY_ID") or None
        self._secret = env.get("AWS_SECRET_ACCESS_KEY") or None
        self._token = env.get("AWS_SESSION_TOKEN") or None
        self._local = threading.local()
        self._seen: dict[str, tuple[str | None, float]] = {}
        self._seen_lock = threading.Lock()
        self._client_lock = threading.Lock()
        self._scanned: dict[str, ObjectInfo] = {}
        self._pending: dict[str, int] = {}  # table -> open batches that wrote it, uncommitted
        self._pending_lock = threading.Lock()

    def __repr__(self) -> str:  # never the credentials
        return f"S3Store({self.uri!r}, endpoint={self.endpoint!r})"

    # -- clients ---------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """A boto3 S3 client (one per thread: boto3 clients are not shared across threads)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._new_client(raw_times=False)
        return client

    @property
    def lister(self) -> Any:
        """A client for LIST only, whose ``LastModified`` stay ISO strings: botocore's timestamp
        parsing (dateutil, per object) was ~1.5 ms of a 30-object LIST on the moto server, which
        every view statement pays (``research.lakehouse``)."""
        client = getattr(self._local, "lister", None)
        if client is None:
            client = self._local.lister = self._new_client(raw_times=True)
        return client

    def _new_client(self, raw_times: bool) -> Any:
        import boto3
        import botocore.session
        from botocore.config import Config

        with self._client_lock:  # a boto3 session is not thread-safe; the clients it makes are
            if not raw_times:
                session: Any = boto3
            else:
                session = getattr(self, "_raw_session", None)
                if session is None:
                    core = botocore.session.get_session()
                    parsers = core.get_component("response_parser_factory")
                    parsers.set_parser_defaults(timestamp_parser=str)
                    session = self._raw_session = boto3.session.Session(botocore_session=core)
            return session.client(
                "s3",
                endpoint_url=self.endpoint,
                region_name=self.region,
                aws_access_key_id=self._key,
                aws_secret_access_key=self._secret,
                aws_session_token=self._token,
                config=Config(
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=30,
                    s3={"addressing_style": "path"},
                    # the sha256 travels in the metadata; no extra CRC pass over every body
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )

    # -- paths -----------------------------------------------------------------------------
    @property
    def base(self) -> Path:
        return Path()

    @property
    def remote(self) -> bool:
        return True

    @property
    def root_url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, path: Path) -> str:
        rel = PurePosixPath(path).as_posix()
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def url(self, path: Path) -> str:
        return f"s3://{self.bucket}/{self.key(path)}"

    def _where(self, path: Path) -> str:
        return f"{PurePosixPath(path).parent.as_posix()} ({self.url(path)})"

    # -- reads -----------------------------------------------------------------------------
    def _remember(self, path: Path, etag: str | None) -> None:
        with self._seen_lock:
            self._seen[self.key(path)] = (etag, time.monotonic())

    def _request(
        self, op: str, path: Path, remember: bool = True, **kwargs: Any
    ) -> dict[str, Any] | None:
        """``head_object``/``get_object`` on ``path``'s key; None when the object is absent,
        ``LakeStoreError`` for any other refusal. With ``remember`` (a writer's read) the ETag
        seen is what this store's next write of ``path`` expects."""
        from botocore.exceptions import ClientError

        try:
            out: dict[str, Any] = getattr(self.client, op)(
                Bucket=self.bucket, Key=self.key(path), **kwargs
            )
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                if remember:
                    self._remember(path, None)
                return None
            raise self._error(exc, f"{op} {self.url(path)}") from None
        if remember:
            self._remember(path, out["ETag"])
        return out

    def head(self, path: Path) -> ObjectInfo | None:
        meta = self._request("head_object", path)
        if meta is None:
            return None
        return ObjectInfo(
            meta["ETag"], int(meta["ContentLength"]), meta["LastModified"].timestamp()
        )

    def read(self, path: Path) -> bytes:
        got = self._request("get_object", path)
        if got is None:
            raise FileNotFoundError(self.url(path))
        data: bytes = got["Body"].read()
        return data

    def sha256(self, path: Path) -> str:
        """The sha256 stored with the object by its one PUT (hashed from its bytes if absent)."""
        meta = self._request("head_object", path)
        if meta is None:
            raise FileNotFoundError(self.url(path))
        stored = (meta.get("Metadata") or {}).get("sha256")
        return str(stored) if stored else hashlib.sha256(self.read(path)).hexdigest()

    def open(self, path: Path) -> IO[bytes]:
        import io

        return io.BytesIO(self.read(path))

    def parquet_problem(self, path: Path) -> str | None:
        """A size check from the last LIST (no request): every object is one whole PUT of our
        serializer, so a torn object cannot exist; a foreign one fails when DuckDB opens it
        and is then named by its footer (``research.lakehouse``)."""
        info = self._scanned.get(PurePosixPath(path).as_posix()) or self.head(path)
        if info is None:
            return "it is gone (removed while the lake was read)"
        if info.size < 12:
            return f"it is {info.size} bytes long, too short for Parquet (truncated?)"
        return None

    def listing(self, rel_prefix: str) -> dict[str, ObjectInfo]:
        """Every object under ``<prefix>/<rel_prefix>/`` (key relative to the lake -> its ETag,
        size and time), from LIST alone: one request per 1,000 objects, no object is opened."""
        from botocore.exceptions import ClientError

        full = self.key(Path(rel_prefix)) + "/"
        cut = len(self.prefix) + 1 if self.prefix else 0
        out: dict[str, ObjectInfo] = {}
        try:
            pages = self.lister.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                for o in page.get("Contents", ()):
                    out[o["Key"][cut:]] = ObjectInfo(
                        o["ETag"], int(o["Size"]), _timestamp(o["LastModified"])
                    )
        except ClientError as exc:
            raise self._error(exc, f"LIST {self.url(Path(rel_prefix))}/") from None
        return dict(sorted(out.items()))

    def _keys(self, rel_prefix: str) -> list[str]:
        return list(self.listing(rel_prefix))

    def scan(self, name: str, listed: dict[str, ObjectInfo] | None = None) -> layout.TableScan:
        """``name``'s partitions from one LIST (or from ``listed``, a ``listing(name)``)."""
        spec = layout.table(name)
        prefix = f"{spec.key}="
        files: dict[str, Path] = {}
        rejected: dict[str, layout.Rejected] = {}
        strays: list[layout.Rejected] = []
        listed = self.listing(name) if listed is None else listed
        self._scanned.update(listed)
        for rel in listed:
            parts = rel.split("/")[1:]  # below the table
            if not parts or parts[0].startswith("."):
                continue
            path = Path(rel)
            if len(parts) == 1 or not parts[0].startswith(prefix):
                strays.append(layout._stray(path, name))
                continue
            value = parts[0].removeprefix(prefix)
            problem = layout.key_problem(spec.key, value)
            if problem is not None:
                rejected.setdefault(
                    parts[0],
                    layout.Rejected(
                        Path(name) / parts[0],
                        f"invalid partition key {parts[0]!r}: {problem}",
                        f"nothing reads it; move it out of the lake (a {name} partition is "
                        f"{prefix}{'YYYY-MM-DD' if spec.key == 'session' else '<family>'})",
                    ),
                )
                continue
            if parts[1:] == [layout.PART_FILE]:
                files[value] = path
            elif not parts[-1].startswith("."):
                strays.append(layout._stray(path, name))
        return layout.TableScan(
            spec, dict(sorted(files.items())), tuple(rejected.values()), tuple(strays)
        )

    def strays(self, directory: Path) -> list[Path]:
        out = []
        for rel in self._keys(PurePosixPath(directory).as_posix()):
            name = rel.rsplit("/", 1)[-1]
            if rel.count("/") == 2 and name != layout.PART_FILE and not name.startswith("."):
                out.append(Path(rel))
        return out

    def delete(self, path: Path) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(path))
        self._committed(path)

    # -- commits ---------------------------------------------------------------------------
    def batch(self) -> AbstractContextManager[None]:
        return self._batch()

    @contextmanager
    def _batch(self) -> Iterator[None]:
        """This thread's writes are committed when the outermost batch ends, one marker PUT per
        table written (also when the block raised: what was written is whole)."""
        local = self._local
        if getattr(local, "dirty", None) is not None:  # nested: the outermost commits
            yield
            return
        local.dirty = set()
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            dirty: set[str] = local.dirty
            local.dirty = None
            errors: list[LakeStoreError] = []
            try:
                for table in sorted(dirty):  # every table, whichever failed before
                    try:
                        self._commit(table)
                    except LakeStoreError as exc:
                        errors.append(exc)
            finally:
                self._unpend(dirty)
            for error in errors:
                _log.warning("%s", error)
            if errors and not failed:  # else the block's own error is the one to report
                raise errors[0]

    def _table(self, path: Path) -> str:
        return PurePosixPath(path).parts[0]

    def _committed(self, path: Path) -> None:
        """After a partition of ``path``'s table changed: commit it now, or at the end of this
        thread's batch."""
        table = self._table(path)
        dirty: set[str] | None = getattr(self._local, "dirty", None)
        if dirty is None:
            self._commit(table)
        elif table not in dirty:
            dirty.add(table)
            with self._pending_lock:
                self._pending[table] = self._pending.get(table, 0) + 1

    def _commit(self, table: str) -> None:
        """Rewrite ``table``'s commit marker (a new ETag: the body names a fresh commit id),
        after the partition objects it covers are whole in the bucket."""
        from botocore.exceptions import BotoCoreError, ClientError

        body = {"table": table, "commit": uuid.uuid4().hex, "at": time.time()}
        key = f"{COMMITS_DIR}/{table}"
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.key(Path(key)),
                Body=json.dumps(body).encode(),
                ContentType="application/json",
            )
        except ClientError as exc:
            raise self._error(exc, f"PUT {self.url(Path(key))} (the commit marker)") from None
        except BotoCoreError as exc:
            raise LakeStoreError(
                f"{LAKE_URI_ENV}={self.uri}: PUT {self.url(Path(key))} (the commit marker) "
                f"failed ({type(exc).__name__}); the partitions are written, and readers that "
                f"cached the table see them within {RELIST_SECONDS:g} s or when it is written again"
            ) from None

    def _unpend(self, tables: set[str]) -> None:
        with self._pending_lock:
            for table in tables:
                left = self._pending.get(table, 0) - 1
                if left > 0:
                    self._pending[table] = left
                else:
                    self._pending.pop(table, None)

    def commit_marker(self, table: str) -> str | None:
        from botocore.exceptions import ClientError

        key = f"{COMMITS_DIR}/{table}"
        try:  # the LIST client: no timestamp parsing (see ``lister``)
            meta = self.lister.head_object(Bucket=self.bucket, Key=self.key(Path(key)))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error(exc, f"HEAD {self.url(Path(key))}") from None
        return str(meta["ETag"])

    def pending(self, table: str) -> bool:
        with self._pending_lock:
            return self._pending.get(table, 0) > 0

    def relist(
        self, table: str, last: Listed | None, max_age: float = RELIST_SECONDS
    ) -> Listed | None:
        """``table``'s LIST if it may have changed since ``last`` (the reader's previous
        result); None when nothing was committed since: its marker is still ``last.marker``, no
        batch of this process is open on it, and ``last`` is younger than ``max_age`` seconds.

        The order is what makes a reader see every commit finished before this call: pending
        before the HEAD (a batch committing in between shows a new marker), the HEAD before
        the LIST (a commit racing with the LIST changes the marker again for the next call).
        """
        busy = self.pending(table)
        marker = self.commit_marker(table)
        if (
            last is not None
            and marker is not None
            and not busy
            and marker == last.marker
            and time.monotonic() - last.when < max_age
        ):
            return None
        when = time.monotonic()
        return Listed(marker, when, self.listing(table))

    # -- the write -------------------------------------------------------------------------
    _UNSEEN = "\0unseen"

    def seen(self, path: Path) -> str | None:
        """The ETag this store's last read of ``path`` saw (None: absent), consumed by the
        next write; ``_UNSEEN`` when it has not read it (or not for ``SEEN_TTL_S``)."""
        with self._seen_lock:
            hit = self._seen.pop(self.key(path), None)
        if hit is None or time.monotonic() - hit[1] >= SEEN_TTL_S:
            return self._UNSEEN
        return hit[0]

    def _put(self, path: Path, data: bytes, digest: str, etag: str | None) -> str | None:
        """One PUT, conditional on ``etag`` (If-Match) or on absence (If-None-Match: *); the
        new object's ETag."""
        condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        out = self.client.put_object(
            Bucket=self.bucket,
            Key=self.key(path),
            Body=data,
            ContentType="application/vnd.apache.parquet",
            Metadata={"sha256": digest},
            **condition,
        )
        return out.get("ETag")

    def write(
        self,
        table: pa.Table,
        path: Path,
        fsync: bool = True,
        lineage: dict | None = None,
        hold: bool = False,
    ) -> WrittenPartition:
        """One conditional PUT of the same bytes the local store writes.

        A partition this store read (HEAD, GET, lineage check) is written ``If-Match`` the ETag
        it saw, or ``If-None-Match: *`` if it saw none. One it never read is first tried as new
        (``If-None-Match: *``, the one request of an ingest) and, when it exists, replaced
        ``If-Match`` its current ETag (a rerun replaces its partitions).

        Raises:
            PartitionConflict: another writer replaced or created the partition since this store
                saw it (S3 answered 412 to ``If-Match``/``If-None-Match``).
        """
        from botocore.exceptions import ClientError

        buffer, digest = serialize(table, lineage)
        data = buffer.to_pybytes()
        etag = self.seen(path)
        try:
            try:
                new = self._put(path, data, digest, None if etag == self._UNSEEN else etag)
            except ClientError as exc:
                if etag != self._UNSEEN or not _precondition(exc):
                    raise
                info = self.head(path)  # it exists: this writer reads it now and replaces it
                etag = None if info is None else info.etag
                self.seen(path)
                new = self._put(path, data, digest, etag)
        except ClientError as exc:
            if _precondition(exc):
                seen = f"ETag {etag}" if etag is not None else "absent"
                raise PartitionConflict(
                    f"partition {self._where(path)} was written by another writer while this "
                    f"one was computing it (it was {seen} when this writer read it): two runs "
                    "materialized the same partition at once. The object is the other writer's "
                    "whole file; re-run this partition once the other run has finished"
                ) from None
            raise self._error(exc, f"PUT {self.url(path)}") from None
        if hold and new:
            self._remember(path, new)
        self._committed(path)
        return WrittenPartition(path, table.num_rows, buffer.size, digest)

    # -- start-up --------------------------------------------------------------------------
    def _error(self, exc: Exception, what: str) -> LakeStoreError:
        code = _code(exc)
        where = f" at {self.endpoint}" if self.endpoint else ""
        if code in ("NoSuchBucket",):
            fix = (
                f"bucket {self.bucket!r} does not exist{where}; create it, or point "
                f"{LAKE_URI_ENV} at an existing bucket"
            )
        elif code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
            fix = (
                f"the credentials were refused ({code}){where}; set AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY (or a role) allowed to read and write {self.uri}"
            )
        else:
            fix = f"S3 answered {code}{where}; check {LAKE_URI_ENV} and the AWS_* variables"
        return LakeStoreError(f"{LAKE_URI_ENV}={self.uri}: {what} failed: {fix}")

    def check(self) -> None:
        """List one key of the lake: proves the endpoint, the bucket and the credentials.

        Raises:
            LakeStoreError: one line naming ``ALPACA_IMPROVED_LAKE_URI`` (or the endpoint or
                credential variable) and the fix.
        """
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else "", MaxKeys=1
            )
        except NoCredentialsError:
            raise LakeStoreError(
                f"{LAKE_URI_ENV}={self.uri}: no AWS credentials found; set AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY (or a role / profile) for the bucket"
            ) from None
        except ClientError as exc:
            raise self._error(exc, "checking the bucket") from None
        except BotoCoreError as exc:
            raise LakeStoreError(
                f"{LAKE_URI_ENV}={self.uri}: the S3 endpoint "
                f"{self.endpoint or '(AWS default)'} cannot be reached ({type(exc).__name__}); "
                f"fix {ENDPOINT_ENV} or the network"
            ) from None


def _timestamp(text: str) -> float:
    """An S3 ``LastModified`` (ISO 8601, ``Z`` for UTC) as POSIX seconds."""
    import datetime as dt

    when = dt.datetime.fromisoformat(text)
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def _precondition(exc: Exception) -> bool:
    return _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict")


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) or type(exc).__name__


def parse_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes).

    Raises:
        LakeStoreError: ``uri`` is not ``s3://bucket[/prefix]``.
    """
    if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        raise LakeStoreError(
            f"{LAKE_URI_ENV}={uri!r} is not an S3 URI; use s3://bucket/prefix (the standard "
            f"AWS_* variables and {ENDPOINT_ENV} select the server), or unset it for <home>/lake"
        )
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


_STORES: dict[tuple[str, str | None], S3Store] = {}
_STORES_LOCK = threading.Lock()


def from_env(lake: Path, environ: Mapping[str, str] | None = None) -> LakeStore:
    """The lake's store: ``S3Store`` when ``ALPACA_IMPROVED_LAKE_URI`` is set, else ``lake``.

    The S3 store is checked once per URI and endpoint (process-wide) when first made.

    Raises:
        LakeStoreError: the URI or the bucket, endpoint or credentials are wrong (one line).
    """
    env = os.environ if environ is None else environ
    uri = (env.get(LAKE_URI_ENV) or "").strip()
    if not uri:
        return LocalStore(lake)
    ident = (uri.rstrip("/"), _endpoint(env))
    with _STORES_LOCK:
        store = _STORES.get(ident)
        if store is None:
            store = S3Store(uri, env)
            store.check()
            _STORES[ident] = store
    return store


def resolve(lake: Path | LakeStore) -> LakeStore:
    """``lake`` as a store: a store as is; a directory as the configured store for it."""
    return lake if isinstance(lake, LakeStore) else from_env(Path(lake))


def check(environ: Mapping[str, str] | None = None) -> None:
    """Start-up check of ``ALPACA_IMPROVED_LAKE_URI`` (nothing to do when it is unset).

    Raises:
        LakeStoreError: one line naming the variable and the fix.
    """
    from_env(Path("lake"), environ)


class _ReadCache:
    """Partition bytes by (key, ETag), least recently used first out, at most ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        from collections import OrderedDict

        self.limit = limit
        self.size = 0
        self.items: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str, etag: str) -> bytes | None:
        with self.lock:
            hit = self.items.get(key)
            if hit is None or hit[0] != etag:
                return None
            self.items.move_to_end(key)
            return hit[1]

    def put(self, key: str, etag: str, data: bytes) -> None:
        if len(data) > self.limit:
            return
        with self.lock:
            old = self.items.pop(key, None)
            self.size += len(data) - (len(old[1]) if old else 0)
            self.items[key] = (etag, data)
            while self.size > self.limit:
                _, (_, dropped) = self.items.popitem(last=False)
                self.size -= len(dropped)


def lake_filesystem(store: S3Store, cache_bytes: int = 512 << 20) -> Any:
    """A read-only fsspec filesystem over the lake's bucket for DuckDB (protocol ``s3``).

    Measured on the moto server, s3fs needs ~60 ms per object (its async client) and DuckDB
    through it ran the daily-resample view 130x slower than on local files; this filesystem
    uses the store's boto3 client instead and keeps partition bytes in memory by ETag:
    ``glob`` is one LIST of the table per statement (``new_statement()``, which
    ``research.readonly.LakeConnection`` calls before each statement, starts a new listing), so
    a statement sees every partition written before it started; an object whose ETag is
    unchanged is served from memory, a changed one is fetched whole with one GET (partitions
    are single objects written by one PUT: each read is one whole version).
    """
    import fnmatch
    import io

    from fsspec import AbstractFileSystem

    class LakeS3FileSystem(AbstractFileSystem):  # type: ignore[misc]
        protocol = ("s3", "s3a")
        cachable = False

        def __init__(self) -> None:
            super().__init__()
            self.etags: dict[str, ObjectInfo] = {}
            self.cache = _ReadCache(cache_bytes)
            self.listed: dict[str, dict[str, ObjectInfo]] = {}  # this statement's LISTs

        def new_statement(self) -> None:
            """The next ``glob`` lists the bucket again (called before every statement)."""
            self.listed.clear()

        def _rel(self, path: str) -> str:
            bucket_key = str(path).split("://", 1)[-1]
            bucket, _, key = bucket_key.partition("/")
            if bucket != store.bucket:
                raise PermissionError(f"{path} is outside the lake ({store.uri})")
            cut = len(store.prefix) + 1 if store.prefix else 0
            return key[cut:]

        def glob(self, path: str, **kwargs: Any) -> list[str]:
            rel = self._rel(path)
            fixed = re.split(r"[*?\[]", rel, maxsplit=1)[0].rsplit("/", 1)[0]
            listed = self.listed.get(fixed)
            if listed is None:
                listed = self.listed[fixed] = store.listing(fixed)
            self.etags.update((store.key(Path(k)), v) for k, v in listed.items())
            return [
                f"{store.bucket}/{store.key(Path(k))}" for k in listed if fnmatch.fnmatch(k, rel)
            ]

        def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
            rel = self._rel(path)
            key = store.key(Path(rel))
            meta = self.etags.get(key)
            if meta is None:
                got = store._request("head_object", Path(rel), remember=False)
                if got is None:
                    raise FileNotFoundError(path)
                meta = ObjectInfo(
                    got["ETag"], int(got["ContentLength"]), got["LastModified"].timestamp()
                )
            self.etags[key] = meta
            return {"name": f"{store.bucket}/{key}", "size": meta.size, "type": "file"}

        def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
            found = [self.info(p) for p in self.glob(str(path).rstrip("/") + "/*")]
            return found if detail else [f["name"] for f in found]

        def modified(self, path: str) -> Any:
            import datetime as _dt

            self.info(path)
            meta = self.etags[store.key(Path(self._rel(path)))]
            return _dt.datetime.fromtimestamp(meta.mtime, tz=_dt.UTC)

        def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
            if "r" not in mode:
                raise PermissionError(f"{path}: the lake is read-only here")
            rel = self._rel(path)
            key = store.key(Path(rel))
            meta = self.etags.get(key)
            data = self.cache.get(key, meta.etag) if meta is not None else None
            if data is None:
                got = store._request("get_object", Path(rel), remember=False)
                if got is None:
                    raise FileNotFoundError(path)
                data = got["Body"].read()
                etag = got["ETag"]
                self.etags[key] = ObjectInfo(etag, len(data), got["LastModified"].timestamp())
                self.cache.put(key, etag, data)
            return io.BytesIO(data)

    return LakeS3FileSystem()


def register_duckdb(con: Any, store: LakeStore) -> Callable[[], None] | None:
    """Let DuckDB read the bucket (the locked DuckDB cannot load its ``httpfs`` extension
    offline) through :func:`lake_filesystem`; nothing for the local store.

    Returns what to call before each statement (a fresh listing), or None.
    """
    if not isinstance(store, S3Store):
        return None
    fs = lake_filesystem(store)
    con.register_filesystem(fs)
    hook: Callable[[], None] = fs.new_statement
    return hook
