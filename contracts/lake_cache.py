"""A local, bounded, shared cache of the lake's S3 partition objects, read by DuckDB's views.

With the lake on S3 (``ALPACA_IMPROVED_LAKE_URI=s3://…``) the research views read these local
copies as plain files instead of streaming every statement's bytes through Python file objects
(the locked DuckDB cannot load ``httpfs`` offline): measured on the moto server, that streaming
was ~10 ms of a 30 ms daily-resample query, the view at 1.3-2.3x local files; with this cache the
view costs local files plus one LIST per table a statement names (``research.lakehouse``).

Knobs (read when a connection is made):

* ``ALPACA_IMPROVED_LAKE_CACHE``: the directory (default ``$XDG_CACHE_HOME/alpaca-improved/lake``,
  i.e. ``~/.cache/alpaca-improved/lake``; if that cannot be created, no cache); ``off`` reads
  the bucket through Python file objects as before (``contracts.lake_store.lake_filesystem``).
* ``ALPACA_IMPROVED_LAKE_CACHE_MB``: the size bound (default 4096). Objects no reader uses are
  evicted least recently used first once the cache is bigger; what open connections read stays
  (their views need it), so the bound can be exceeded by their current partitions.

Layout under the directory, per lake (``<id>`` = a hash of endpoint, bucket and prefix):

* ``<id>/objects/<table>/<key>=<value>/<etag hash>-<sha256>.parquet``: one immutable object
  version, named by its S3 ETag and the sha256 of its bytes. A download is written to a
  temporary name and renamed, so a partial file never has a final name; the bytes are checked
  against the sha256 the writer stored with the object (``S3Store.write``) before the rename,
  and a cached file is hashed again before a connection first uses it (a corrupted or truncated
  entry is deleted and fetched again, never served).
* ``<id>/readers/<host>-<pid>-<n>/<table>/<key>=<value>/<etag hash>.parquet``: hard links, one
  directory per DuckDB connection, which its views read. A link keeps its file's bytes alive, so
  eviction by another process (it removes only objects with no link) never pulls a file from
  under a running query. A closed connection removes its directory; one of a dead process on
  this host is removed by the next connection.

Correctness is the bucket's: a statement still LISTs each table it names (S3 LIST is strongly
consistent), so it sees every partition committed before it started, and each object version
is fetched by the ETag that LIST returned. The cache only decides where those exact bytes are
read from. Many processes may share the directory (downloads rename into place; two identical
downloads of one version are interchangeable).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from contracts import paths
from contracts.lake_store import LakeStore, LakeStoreError, ObjectInfo, S3Store
from contracts.parquet_io import file_sha256

CACHE_ENV = "ALPACA_IMPROVED_LAKE_CACHE"
CACHE_MB_ENV = "ALPACA_IMPROVED_LAKE_CACHE_MB"
DEFAULT_MB = 4096
DOWNLOAD_THREADS = 8  # concurrent GETs when a statement finds new partition versions
TMP_MAX_AGE_S = 3600.0  # a temporary file this old is a crashed download's: removed on eviction
_OFF = ("off", "0", "false", "no", "none")

# files this process has hashed: (device, inode, size, mtime_ns), not hashed again
_VERIFIED: set[tuple[int, int, int, int]] = set()
_VERIFIED_LOCK = threading.Lock()
_READERS = itertools.count()
_POOL: ThreadPoolExecutor | None = None


def cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The cache directory ``ALPACA_IMPROVED_LAKE_CACHE`` names (None: the cache is off)."""
    env = os.environ if environ is None else environ
    value = (env.get(CACHE_ENV) or "").strip()
    if value.lower() in _OFF:
        return None
    if value:
        return Path(value).expanduser()
    return paths.user_lake_cache_dir(env)


def cache_limit(environ: Mapping[str, str] | None = None) -> int:
    """The size bound in bytes (``ALPACA_IMPROVED_LAKE_CACHE_MB``, default 4096 MB).

    Raises:
        LakeStoreError: the value is not a whole number of megabytes >= 0.
    """
    env = os.environ if environ is None else environ
    raw = (env.get(CACHE_MB_ENV) or "").strip()
    if not raw:
        return DEFAULT_MB << 20
    try:
        mb = int(raw)
    except ValueError:
        mb = -1
    if mb < 0:
        raise LakeStoreError(
            f"{CACHE_MB_ENV}={raw!r} is not a size in megabytes; set a whole number >= 0 "
            f"(default {DEFAULT_MB}), or {CACHE_ENV}=off to read the bucket without a cache"
        )
    return mb << 20


def mirror_for(store: LakeStore, environ: Mapping[str, str] | None = None) -> LakeMirror | None:
    """A cache reader for ``store`` (None for local files or with the cache off).

    Without ``ALPACA_IMPROVED_LAKE_CACHE`` a default directory that cannot be created (a
    read-only home in a container) means no cache: the views read the bucket as before.

    Raises:
        LakeStoreError: the directory ``ALPACA_IMPROVED_LAKE_CACHE`` names cannot be created or
            written, or its path holds ``=`` (DuckDB would read it as a hive partition key);
            one line naming the variable.
    """
    if not isinstance(store, S3Store):
        return None
    root = cache_dir(environ)
    if root is None:
        return None
    limit = cache_limit(environ)
    env = os.environ if environ is None else environ
    try:
        return LakeMirror(store, root, limit)
    except LakeStoreError:
        if (env.get(CACHE_ENV) or "").strip():
            raise
        return None


def _etag_hash(etag: str) -> str:
    return hashlib.sha256(etag.encode()).hexdigest()[:16]


def _pool() -> ThreadPoolExecutor:
    """The download threads, kept for the process (each keeps its boto3 client)."""
    global _POOL
    with _VERIFIED_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(DOWNLOAD_THREADS, thread_name_prefix="lake-cache")
        return _POOL


def _state(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _verified(path: Path) -> None:
    with _VERIFIED_LOCK:
        _VERIFIED.add(_state(path))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


class LakeMirror:
    """One connection's view of the cache: which local file holds each partition it reads.

    Args:
        store: the lake's bucket.
        root: the cache directory (shared by every process on this machine).
        limit: the size bound in bytes for objects no reader links.
    """

    def __init__(self, store: S3Store, root: Path, limit: int) -> None:
        ident = hashlib.sha256(f"{store.endpoint}|{store.bucket}|{store.prefix}".encode())
        self.store = store
        self.limit = limit
        self.base = Path(root).resolve() / ident.hexdigest()[:16]
        self.objects = self.base / "objects"
        host = socket.gethostname().replace("-", "_") or "host"
        self.reader = self.base / "readers" / f"{host}-{os.getpid()}-{next(_READERS)}"
        if "=" in str(self.reader):
            raise LakeStoreError(
                f"{CACHE_ENV}={root}: the path holds '=', which DuckDB would read as a hive "
                f"partition key; choose a directory without '=' (or {CACHE_ENV}=off)"
            )
        try:
            self.objects.mkdir(parents=True, exist_ok=True)
            self.reader.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            raise LakeStoreError(
                f"{CACHE_ENV}={root}: the lake cache cannot be created there ({exc.strerror}); "
                f"point {CACHE_ENV} at a writable directory, or set it to off"
            ) from None
        self._pins: dict[str, tuple[str, Path]] = {}  # rel key -> (ETag, link this reader reads)
        self._reap()

    # -- what a view reads -------------------------------------------------------------------
    def listed(self, paths: Iterable[Path]) -> dict[str, ObjectInfo]:
        """The ETag and size of each partition as the store's last LIST saw it (``scan``)."""
        out = {}
        for path in paths:
            rel = PurePosixPath(path).as_posix()
            info = self.store._scanned.get(rel)
            if info is None:  # not listed by this store: HEAD it (never arming a write)
                got = self.store._request("head_object", Path(path), remember=False)
                if got is None:
                    continue
                info = ObjectInfo(got["ETag"], int(got["ContentLength"]), 0.0)
            out[rel] = info
        return out

    def files(
        self, table: str, wanted: Mapping[str, ObjectInfo]
    ) -> tuple[dict[str, Path], list[Path]]:
        """Local files holding ``wanted``'s object versions (keys relative to the lake, every
        one under ``table``), and this reader's links they replace.

        Returns ``(rel key -> path under this reader's directory, stale links)``; unlink the
        stale ones (:meth:`release`) once the view no longer reads them. An object removed from
        the bucket since the listing is left out; one replaced since then is read as its newer
        version (each file is one whole version either way).
        """
        prefix = f"{table}/"
        before = {rel: pin for rel, pin in self._pins.items() if rel.startswith(prefix)}
        pins: dict[str, tuple[str, Path]] = {}
        fetch: list[str] = []
        for rel, info in wanted.items():
            pin = before.get(rel)
            if pin is not None and pin[0] == info.etag:
                pins[rel] = pin
                continue
            link = self._adopt(rel, info.etag, info.size)
            if link is None:
                fetch.append(rel)
            else:
                pins[rel] = (info.etag, link)
        if fetch:
            got = list(_pool().map(self._download, fetch))
            pins.update((rel, hit) for rel, hit in zip(fetch, got, strict=True) if hit)
            self._evict()
        for rel in before:
            del self._pins[rel]
        self._pins.update(pins)
        keep = {link for _, link in pins.values()}
        stale = [link for _, link in before.values() if link not in keep]
        return {rel: pins[rel][1] for rel in wanted if rel in pins}, stale

    @staticmethod
    def release(links: list[Path]) -> None:
        """Unlink links no view reads any more (their objects become evictable)."""
        for link in links:
            link.unlink(missing_ok=True)

    def close(self) -> None:
        """Remove this reader's links (the objects stay cached for the next connection)."""
        shutil.rmtree(self.reader, ignore_errors=True)
        self._pins.clear()

    # -- cache entries ----------------------------------------------------------------------
    def _object_dir(self, rel: str) -> Path:
        return self.objects / PurePosixPath(rel).parent

    def _link_path(self, rel: str, etag: str) -> Path:
        return self.reader / PurePosixPath(rel).parent / f"{_etag_hash(etag)}.parquet"

    def _link(self, rel: str, etag: str, obj: Path) -> Path | None:
        """Hard-link ``obj`` into this reader's directory (None: evicted meanwhile)."""
        link = self._link_path(rel, etag)
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(obj, link)
        except FileExistsError:
            pass
        except FileNotFoundError:
            return None
        except OSError:  # a file system without hard links: this reader's own copy
            try:
                tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.tmp")
                shutil.copyfile(obj, tmp)
                os.replace(tmp, link)
            except FileNotFoundError:
                return None
        return link

    def _adopt(self, rel: str, etag: str, size: int) -> Path | None:
        """This reader's link to a whole cached copy of ``rel`` at ``etag`` (None: not cached).

        A copy whose size or sha256 does not match its name is deleted, never linked."""
        stem = f"{_etag_hash(etag)}-"
        try:
            candidates = [p for p in self._object_dir(rel).iterdir() if p.name.startswith(stem)]
        except FileNotFoundError:
            return None
        for obj in candidates:
            if not obj.name.endswith(".parquet"):
                continue
            link = self._link(rel, etag, obj)
            if link is None:
                continue
            if self._whole(link, size, obj.name[len(stem) : -len(".parquet")]):
                os.utime(link)  # recently used: evicted last (the link is the object's inode)
                _verified(link)
                return link
            link.unlink(missing_ok=True)
            obj.unlink(missing_ok=True)
        return None

    @staticmethod
    def _whole(path: Path, size: int, sha: str) -> bool:
        """``path`` has ``size`` bytes hashing to ``sha`` (hashed once per process per file
        state: a file rewritten in place has a new mtime and is hashed again)."""
        if path.stat().st_size != size:
            return False
        with _VERIFIED_LOCK:
            if _state(path) in _VERIFIED:
                return True
        if file_sha256(path) != sha:
            return False
        _verified(path)
        return True

    def _download(self, rel: str) -> tuple[str, Path] | None:
        """GET ``rel``, check it against its stored sha256, rename it into the cache, link it."""
        got = self.store._request("get_object", Path(rel), remember=False)
        if got is None:
            return None  # removed since the listing
        data: bytes = got["Body"].read()
        etag = str(got["ETag"])
        digest = hashlib.sha256(data).hexdigest()
        stored = (got.get("Metadata") or {}).get("sha256")
        if stored and stored != digest:
            raise LakeStoreError(
                f"{self.store.url(Path(rel))}: the bytes read do not match the sha256 stored "
                "with the object (a damaged transfer or an object rewritten outside the "
                "pipelines); query again, and re-materialize the partition if it persists"
            )
        folder = self._object_dir(rel)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{_etag_hash(etag)}-{digest}.parquet"
        tmp = folder / f".{final.name}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, final)  # whole or absent under its final name
        _verified(final)
        for _ in range(3):  # evicted between the rename and the link: write it again
            link = self._link(rel, etag, final)
            if link is not None:
                return etag, link
            tmp.write_bytes(data)
            os.replace(tmp, final)
        raise LakeStoreError(f"{CACHE_ENV}: {final} keeps disappearing (another process?)")

    def _evict(self) -> None:
        """Remove least recently used objects no reader links until the cache fits its bound."""
        now = time.time()
        total, free = 0, []
        for folder, _, names in os.walk(self.objects):
            for name in names:
                path = Path(folder) / name
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                if name.startswith("."):
                    if now - st.st_mtime > TMP_MAX_AGE_S:
                        path.unlink(missing_ok=True)
                    continue
                total += st.st_size
                if st.st_nlink == 1:
                    free.append((st.st_mtime, st.st_size, path))
        for _, size, path in sorted(free):
            if total <= self.limit:
                break
            path.unlink(missing_ok=True)
            total -= size

    def _reap(self) -> None:
        """Remove reader directories of processes on this host that are gone."""
        host = self.reader.name.rsplit("-", 2)[0]
        for folder in (self.base / "readers").iterdir():
            parts = folder.name.rsplit("-", 2)
            pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else os.getpid()
            if parts[0] == host and pid != os.getpid() and not _alive(pid):
                shutil.rmtree(folder, ignore_errors=True)
