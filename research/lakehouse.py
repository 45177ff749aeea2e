"""Query the lakehouse with DuckDB: read-only, confined to the lake, one view per lake table.

    >>> from research import lakehouse
    >>> con = lakehouse.connect()            # ALPACA_IMPROVED_HOME or ./.alpaca_improved
    >>> con.sql("SELECT symbol, count(*) FROM stock_bars_1d GROUP BY 1").pl()

The views are those of ``contracts.lake``'s table registry, and they read what every reader
reads: ``<lake>/<table>/<key>=<value>/part.parquet``, nothing else. A file that is not whole
Parquet, or a partition directory whose key does not parse, is skipped with a ``LakeWarning``
that names it (``con.problems`` lists them), so one bad file never takes the other views down.

Once the views are made the connection is locked: DuckDB may read files only under the lake
(``allowed_directories``, ``enable_external_access = false``), may not load extensions, and its
configuration is frozen (``lock_configuration``). The settings alone would still let ``COPY … TO``
write into the lake, so ``LakeConnection`` also runs only SELECT statements (``research.readonly``).
DuckDB never holds the only copy of anything and never takes a write lock on a shared file, so
notebooks, the CLI and concurrent Dagster runs can all query while partitions are being written.
Notebooks that want to write use polars on the files, like the pipelines do.

With ``ALPACA_IMPROVED_LAKE_URI=s3://bucket/prefix`` the views read local copies of the
bucket's partition objects (``contracts.lake_cache``: shared, bounded, verified by sha256), with
the same columns: once a statement has started, every table whose view it names is checked
(one HEAD of its commit marker; a LIST when a commit happened since the view was made) and, if a
partition was added, replaced or removed, its view is remade over the versions now listed, so a
statement sees every partition committed before it started. The check runs on a thread while
DuckDB computes the result over the views as they are; that result is returned only when the
check shows nothing changed, otherwise the statement runs again on the remade views
(``research.readonly``: calls that stream rows check first, then run). The connection is confined to
``s3://bucket/prefix/`` and its own cache directory. With ``ALPACA_IMPROVED_LAKE_CACHE=off``
the views read the bucket through ``contracts.lake_store.lake_filesystem`` registered with
DuckDB (the locked DuckDB cannot load ``httpfs`` offline).
"""

from __future__ import annotations

import re
import tempfile
import warnings
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

import duckdb

from contracts import lake as layout
from contracts import lake_cache, lake_store, paths
from contracts.errors import ContractError
from contracts.lake import LakeWarning, Rejected
from research.readonly import LakeConnection, QueryRefused

__all__ = [
    "VIEWS",
    "LakeConnection",
    "QueryRefused",
    "available_views",
    "connect",
    "damaged_files",
    "default_home",
]

# One view per registered lake table; a view exists once its table has at least one partition.
VIEWS: tuple[str, ...] = tuple(t.name for t in layout.TABLES)


def default_home() -> Path:
    """The data root: ``ALPACA_IMPROVED_HOME`` or ``./.alpaca_improved``."""
    return paths.home_from_env()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _broken(
    path: Path, spec: layout.LakeTable, key: str, reason: str, skipped: bool = True
) -> Rejected:
    return Rejected(
        path,
        f"not readable Parquet: {reason}",
        (f"the {spec.name} view skips it; " if skipped else "")
        + f"move it out of the lake and re-materialize {spec.name} for {spec.key} {key}",
    )


class _Plan:
    """The files one view reads, and what it skips.

    With ``mirror`` (the lake on S3 with its local cache, ``contracts.lake_cache``) the view
    reads the cached copies of exactly the object versions ``scan`` listed, by their paths;
    ``stale`` are the cache links of the view this one replaces.
    """

    def __init__(
        self,
        store: lake_store.LakeStore,
        name: str,
        mirror: lake_cache.LakeMirror | None = None,
        scan: layout.TableScan | None = None,
    ) -> None:
        self.store = store
        scan = scan if scan is not None else store.scan(name)
        self.spec = scan.table
        self.problems: list[Rejected] = [*scan.rejected, *scan.strays]
        self.files: dict[str, Path] = {}
        for key, path in scan.files.items():
            reason = store.parquet_problem(path)
            if reason is None:
                self.files[key] = path
            else:
                self.problems.append(_broken(path, self.spec, key, reason))
        # read by glob while nothing was skipped (a notebook's connection then sees partitions
        # written after it was opened); by the exact list of good files otherwise
        self.glob = not scan.rejected and len(self.files) == len(scan.files)
        self.root = store.base / name
        self.local = mirror is not None
        self.stale: list[Path] = []
        if mirror is not None:
            listed = mirror.listed(self.files.values())
            cached, self.stale = mirror.files(name, listed)
            rel = {key: PurePosixPath(path).as_posix() for key, path in self.files.items()}
            self.files = {key: cached[r] for key, r in rel.items() if r in cached}
            self.glob = False

    def drop_unreadable(self) -> bool:
        """Drop the files whose footer pyarrow cannot read; True when one was dropped."""
        import pyarrow.parquet as pq

        dropped = False
        for key, path in list(self.files.items()):
            try:
                remote = self.store.remote and not self.local
                pq.read_metadata(self.store.open(path) if remote else path)
            except Exception as exc:  # pyarrow raises several types for a damaged footer
                del self.files[key]
                self.problems.append(_broken(path, self.spec, key, str(exc).splitlines()[0]))
                self.glob, dropped = False, True
        return dropped

    def sql(self) -> str:
        if self.glob:
            glob = self.root / f"{self.spec.key}=*" / layout.PART_FILE
            source = _quote(self.store.url(glob))
        else:
            url = str if self.local else self.store.url
            source = "[" + ", ".join(_quote(url(p)) for p in self.files.values()) + "]"
        hive_type = "DATE" if self.spec.key == "session" else "VARCHAR"
        return (
            f"CREATE OR REPLACE VIEW {self.spec.name} AS SELECT * FROM read_parquet({source}, "
            f"hive_partitioning = true, union_by_name = true, "
            f"hive_types = {{'{self.spec.key}': '{hive_type}'}})"
        )


def available_views(home: Path | None = None) -> list[str]:
    """Views whose lake table has at least one ``part.parquet`` (whole or not)."""
    store = lake_store.from_env(paths.lake_dir(home or default_home()))
    return [name for name in VIEWS if store.scan(name).files]


def _make_view(con: duckdb.DuckDBPyConnection, plan: _Plan) -> bool:
    """Create the view, dropping files DuckDB cannot open; False when it cannot be made."""
    while plan.files:
        try:
            con.execute(plan.sql())
            return True
        except duckdb.Error as exc:
            if plan.drop_unreadable():
                continue
            plan.problems.append(
                Rejected(
                    plan.root,
                    f"the {plan.spec.name} view cannot be made ({str(exc).splitlines()[0]})",
                    "the other views work; move the offending files out of the lake and "
                    f"re-materialize {plan.spec.name}",
                )
            )
            return False
    return False


def lock(con: duckdb.DuckDBPyConnection, lake: Path | str, also: Iterable[Path] = ()) -> None:
    """Confine ``con`` to reading under ``lake`` (a directory or ``s3://bucket/prefix``) and
    ``also`` (the lake cache's directory of this connection) and freeze its configuration.

    A query too big for memory spills to the system's temp directory, not the working one.
    """
    spill = Path(tempfile.gettempdir()) / "alpaca-improved-duckdb"
    allowed = ", ".join(_quote(str(d) + "/") for d in (lake, *also))
    for statement in (
        f"SET temp_directory = {_quote(str(spill))}",
        f"SET allowed_directories = [{allowed}]",
        "SET enable_external_access = false",
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        "SET lock_configuration = true",
    ):
        con.execute(statement)


def connect(
    home: Path | str | None = None, threads: int | None = None, warn: bool = True
) -> LakeConnection:
    """A read-only DuckDB connection with a view for every lake table that has data.

    Args:
        home: the data root; defaults to ``ALPACA_IMPROVED_HOME`` or ``./.alpaca_improved``.
        threads: DuckDB worker threads (default: DuckDB's own choice).
        warn: issue a ``LakeWarning`` per skipped path (they are in ``.problems`` either way).

    Raises:
        FileNotFoundError: the data root does not exist (run ``make demo`` or a backfill first).
    """
    root = Path(home) if home is not None else default_home()
    store = lake_store.from_env(paths.lake_dir(root).resolve())
    if not store.remote and not root.is_dir():
        raise FileNotFoundError(
            f"data root {root.resolve()} does not exist; run `make demo` or "
            "`alpaca-improved backfill` first, or set ALPACA_IMPROVED_HOME"
            if not root.exists()
            else f"data root {root.resolve()} is not a directory; set ALPACA_IMPROVED_HOME "
            "to the directory `make demo` or `alpaca-improved backfill` wrote"
        )
    lake = paths.lake_dir(root).resolve()
    con = duckdb.connect(":memory:")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    mirror = lake_cache.mirror_for(store)
    streamed = None if mirror else lake_store.register_duckdb(con, store)
    pool = None
    if mirror is not None:  # the statements' LIST thread; its own S3 client is made meanwhile
        pool = ThreadPoolExecutor(1, thread_name_prefix="lake-list")
        s3 = mirror.store
        pool.submit(lambda: s3.lister)
    views, problems = [], []
    listed: dict[str, tuple] = {}
    for name in VIEWS:
        if mirror is None:
            plan = _Plan(store, name)
        else:
            listing = mirror.store.listing(name)
            plan = _Plan(store, name, mirror, mirror.store.scan(name, listing))
            listed[name] = _versions(listing)
        if _make_view(con, plan):
            views.append(name)
        problems += plan.problems
    lock(con, store.root_url if store.remote else lake, [mirror.reader] if mirror else [])
    if warn:
        for problem in problems:
            warnings.warn(LakeWarning(str(problem)), stacklevel=2)
    before: Callable[[str], None] | None = None
    refresh = _Refresh(con, mirror, listed, views, pool) if mirror is not None else None
    if refresh is not None:
        before = refresh
    elif streamed is not None:
        fresh_listing = streamed
        before = lambda _query: fresh_listing()  # noqa: E731
    connection = LakeConnection(
        con,
        lake,
        tuple(views),
        tuple(problems),
        before,
        on_close=refresh.close if refresh else None,
        validate=refresh.validate if refresh else None,
    )
    if refresh is not None:  # a connection dropped without close() releases its links too
        weakref.finalize(connection, refresh.close)
    return connection


def _versions(listing: dict[str, lake_store.ObjectInfo]) -> tuple:
    """Every object a LIST of a table returned, with its version (ETag)."""
    return tuple((rel, info.etag) for rel, info in listing.items())


class _Refresh:
    """The views' freshness (the lake on S3 with its cache): every table whose view a statement
    names is checked after the statement started and, when a partition was added, replaced or
    removed since the view was made, the view is remade over the cached copies of the versions
    now listed (new ones fetched concurrently). So a statement sees every partition committed
    before it started, as a local lake's glob does.

    The check is one HEAD of the table's commit marker (``contracts.lake_store``: every write
    rewrites it after its partition is whole, a batch once at its end): when its ETag is the one
    read before the LIST that made the view, nothing was committed since and no LIST is needed.
    Otherwise (or with no marker yet, a batch of this process still open on the table, or the
    last LIST ``lake_store.RELIST_SECONDS`` old) the table is LISTed. The marker is read before
    the LIST, so a commit racing with it is seen by the next statement. A HEAD costs what a LIST
    of a handful of objects does and stays one request however many partitions the table has (a
    LIST of 30 objects was ~7.5 ms of the moto server's and our CPU, one page per 1,000 objects).

    ``__call__`` checks before the statement runs (for calls that stream rows); ``validate``
    checks on a thread while the statement runs on the views as they are (DuckDB and boto3's
    socket reads both release the GIL) and keeps that result when nothing changed: S3's HEAD and
    LIST are strongly consistent and began after the statement did, so an unchanged marker or
    unchanged versions mean the views already held every earlier commit. Otherwise the views are
    remade and the statement runs again; only the second result (or error) is returned."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        mirror: lake_cache.LakeMirror,
        listed: dict[str, tuple],
        views: list[str],
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self.con, self.mirror, self.listed = con, mirror, listed
        self.names = {name: re.compile(rf"\b{name}\b", re.I) for name in views}
        self.pool = pool  # the LIST thread (made on first use if not given)
        # per view: the commit marker and the LIST its view stands on
        self.seen: dict[str, lake_store.Listed] = {}
        self.relist_after = lake_store.RELIST_SECONDS
        # tests: called on the LIST thread, before each check of a view
        self.on_list: Callable[[str], None] | None = None

    def named(self, query: str) -> list[str]:
        return [name for name, pattern in self.names.items() if pattern.search(query)]

    def list(self, names: list[str]) -> dict[str, lake_store.Listed]:
        """The views among ``names`` whose table may have changed, each with its marker and a
        LIST made after it (``S3Store.relist``)."""
        out = {}
        for name in names:
            if self.on_list is not None:
                self.on_list(name)
            fresh = self.mirror.store.relist(name, self.seen.get(name), self.relist_after)
            if fresh is not None:
                out[name] = fresh
        return out

    def __call__(self, query: str) -> None:
        self.apply(self.list(self.named(query)))

    def validate(self, query: str, run: Callable[[], Any]) -> Any:
        names = self.named(query)
        if not names:
            return run()
        if self.pool is None:
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="lake-list")
        listing = self.pool.submit(self.list, names)
        try:
            result, error = run(), None
        except duckdb.Error as exc:  # perhaps only because a view is stale: decided below
            result, error = None, exc
        if self.apply(listing.result()):  # a LIST error is raised here, as before a statement
            return run()
        if error is not None:
            raise error
        return result

    def apply(self, listings: dict[str, lake_store.Listed]) -> bool:
        """Remake the views whose listing changed; True when one was remade."""
        store, changed = self.mirror.store, False
        for name, fresh in listings.items():
            listing = fresh.listing
            versions = _versions(listing)
            if versions == self.listed[name]:
                self.seen[name] = fresh
                continue  # nothing added, replaced or removed: the view stands
            plan = _Plan(store, name, self.mirror, store.scan(name, listing))
            if not _make_view(self.con, plan):
                why = plan.problems[-1] if plan.problems else f"{name} has no partitions left"
                raise ContractError(
                    f"the {name} view cannot be remade over the lake as it is now: {why}"
                )
            self.mirror.release(plan.stale)
            self.listed[name] = versions
            self.seen[name] = fresh  # the view stands on them
            changed = True
        return changed

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False)
            self.pool = None
        self.mirror.close()


def damaged_files(con: LakeConnection, query: str) -> list[Rejected]:
    """Files of the views ``query`` names that cannot be read through, each with the fix.

    Reads every page of those files, so it is for naming a culprit after a query failed inside
    DuckDB (a damaged data page passes the footer checks that ``connect`` makes).
    """
    import pyarrow.parquet as pq

    named: Iterable[str] = (v for v in con.views if re.search(rf"\b{v}\b", query))
    out = []
    store = lake_store.from_env(con.lake)
    for name in named:
        scan = store.scan(name)
        for key, path in scan.files.items():
            try:
                pq.read_table(store.open(path) if store.remote else path)
            except Exception as exc:  # pyarrow raises several types for damaged pages
                reason = str(exc).splitlines()[0]
                out.append(_broken(path, scan.table, key, reason, skipped=False))
    return out
