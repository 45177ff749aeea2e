"""The lake on S3 (``ALPACA_IMPROVED_LAKE_URI=s3://bucket/prefix``) against a real moto server.

A real materialization of the synthetic market writes the same bytes to the bucket as to local
files; the DuckDB views over the bucket equal the local views; a reader polling a partition
while it is replaced only ever sees one whole version; a second writer of a partition gets
``PartitionConflict`` and the object stays the first writer's whole file; bad configuration
fails at start-up with one line naming the variable (and never the secret).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from alpaca_improved_pipelines.defs.resources import build_resources
from alpaca_improved_pipelines.errors import ConfigError
from alpaca_improved_pipelines.lake import lineage, storage
from alpaca_improved_pipelines.settings import load_settings
from contracts import lake_store
from contracts.lake_store import PartitionConflict, S3Store
from research import lakehouse
from tests.s3_server import SECRET, S3Server, free_port

from .conftest import BAR_TABLES, make_settings, run_sessions, with_resources

SESSIONS = ["2024-01-02", "2024-01-03", "2024-01-04"]


@pytest.fixture(scope="module")
def lakes(
    s3_server: S3Server, project_defs: dg.Definitions, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, Path, str]]:
    """The same bar sessions materialized into local files and into a fresh bucket."""
    local = tmp_path_factory.mktemp("local") / "home"
    remote = tmp_path_factory.mktemp("s3") / "home"
    uri = f"s3://{s3_server.bucket()}/lake"
    with dg.instance_for_test() as instance:
        defs = with_resources(project_defs, build_resources(make_settings(local)))
        assert run_sessions(defs, instance, SESSIONS[0], SESSIONS[-1], bars_only=True).success
    with pytest.MonkeyPatch.context() as mp:
        for key, value in s3_server.env(uri).items():
            mp.setenv(key, value)
        with dg.instance_for_test() as instance:
            defs = with_resources(project_defs, build_resources(make_settings(remote)))
            assert run_sessions(defs, instance, SESSIONS[0], SESSIONS[-1], bars_only=True).success
    yield local, remote, uri  # the lake variables are unset again: each test sets what it needs


def test_s3_materialization_writes_the_local_bytes(
    lakes: tuple[Path, Path, str], s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    local, remote, uri = lakes
    store = S3Store(uri, s3_server.env(uri))
    on_disk = local / "lake"
    assert not (remote / "lake").exists()  # the bucket is the lake; nothing went to <home>/lake
    for table in BAR_TABLES:
        assert list(store.scan(table).files) == SESSIONS, table
        for session in SESSIONS:
            path = store.partition(table, session)
            file = on_disk / table / f"session={session}" / "part.parquet"
            assert store.read(path) == file.read_bytes(), (table, session)
            # the data version: the sha256 stored with the object is the local file's
            assert store.sha256(path) == storage.file_sha256(file)
    for key, value in s3_server.env(uri).items():
        monkeypatch.setenv(key, value)
    # the pipelines' own readers go to the bucket: listings, lineage, frames
    assert storage.existing_sessions(remote / "lake", "stock_bars_1d") == SESSIONS
    stored = lineage.stored(remote / "lake", "stock_bars_1d", SESSIONS[0])
    assert stored is not None and stored["symbols"] == ["AAPL", "NVDA", "SPY"]
    frame = storage.read_partition(remote / "lake", "stock_bars_1m", SESSIONS[1])
    file = on_disk / "stock_bars_1m" / f"session={SESSIONS[1]}" / "part.parquet"
    assert frame.equals(pl.read_parquet(file))


def test_views_over_s3_equal_local_views(
    lakes: tuple[Path, Path, str], s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    local, remote, uri = lakes
    monkeypatch.delenv("ALPACA_IMPROVED_LAKE_URI", raising=False)
    with lakehouse.connect(local, warn=False) as con:
        expected = {
            v: (con.sql(f"DESCRIBE {v}").fetchall(), con.sql(f"SELECT * FROM {v}").pl())
            for v in con.views
        }
    for key, value in s3_server.env(uri).items():
        monkeypatch.setenv(key, value)
    with lakehouse.connect(remote, warn=False) as con:
        assert con.views == tuple(expected) and set(con.views) >= set(BAR_TABLES)
        assert con.problems == ()
        for view, (columns, rows) in expected.items():
            assert con.sql(f"DESCRIBE {view}").fetchall() == columns, view
            got = con.sql(f"SELECT * FROM {view}").pl()
            keys = [c for c in ("session", "symbol", "timestamp") if c in got.columns]
            assert got.sort(keys).equals(rows.sort(keys)), view
        # still read-only and confined to the lake's prefix
        with pytest.raises(lakehouse.QueryRefused):
            con.sql(f"COPY stock_bars_1d TO '{uri}/stock_bars_1d/x.parquet'")


def _version(marker: int, rows: int) -> pl.DataFrame:
    return pl.DataFrame({"symbol": [f"S{i}" for i in range(rows)], "marker": [marker] * rows})


def test_reader_polling_a_replaced_partition_sees_only_whole_versions(
    s3_server: S3Server,
) -> None:
    uri = f"s3://{s3_server.bucket()}/lake"
    writer, reader = S3Store(uri, s3_server.env(uri)), S3Store(uri, s3_server.env(uri))
    path = writer.partition("stock_bars_1d", "2024-01-02")
    versions = {m: _version(m, 20_000 + 5_000 * m) for m in range(4)}
    writer.write(versions[0].to_arrow(), path)
    stop = threading.Event()
    writes = 0

    def replace() -> None:
        nonlocal writes
        while not stop.is_set():
            m = writes % 3 + 1
            writer.write(versions[m].to_arrow(), path)
            writes += 1

    thread = threading.Thread(target=replace)
    thread.start()
    seen: set[int] = set()
    try:
        for _ in range(150):
            frame = storage.read_file(reader, path)
            markers = frame.get_column("marker").unique().to_list()
            assert len(markers) == 1, f"a mixed partition: markers {markers}"
            assert frame.equals(versions[markers[0]]), "a partial partition"
            seen.add(markers[0])
    finally:
        stop.set()
        thread.join()
    assert writes >= 3 and len(seen) >= 2, (writes, seen)  # it really raced replacements


def test_second_writer_of_a_partition_gets_a_conflict_and_the_first_file_stays(
    s3_server: S3Server,
) -> None:
    uri = f"s3://{s3_server.bucket()}/lake"
    first, second = S3Store(uri, s3_server.env(uri)), S3Store(uri, s3_server.env(uri))
    path = first.partition("stock_bars_1d", "2024-01-05")
    fa, fb = _version(1, 100), _version(2, 100)
    a, b = fa.to_arrow(), fb.to_arrow()
    # a new partition: both saw it absent (If-None-Match: *)
    assert first.head(path) is None and second.head(path) is None
    first.write(a, path)
    with pytest.raises(PartitionConflict, match=r"stock_bars_1d/session=2024-01-05 .*re-run"):
        second.write(b, path)
    assert storage.read_file(first, path).equals(fa)
    # an existing partition: both read it (ETag E), the first replaces it (If-Match: E)
    assert first.head(path) is not None and second.head(path) is not None
    first.write(b, path)
    with pytest.raises(PartitionConflict, match="another writer"):
        second.write(a, path)
    assert storage.read_file(first, path).equals(fb)
    # a writer that reads again afterwards writes normally
    second.head(path)
    second.write(a, path)
    assert storage.read_file(first, path).equals(fa)


def test_pipeline_write_after_a_lineage_read_detects_an_interleaved_writer(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipelines' read-then-write: the lineage check's read is what the write expects."""
    uri = f"s3://{s3_server.bucket()}/lake"
    for key, value in s3_server.env(uri).items():
        monkeypatch.setenv(key, value)
    lake = Path("unused-local-lake")
    day = dt.date(2024, 1, 8)
    storage.write_partition(_version(1, 10), lake, "stock_bars_1d", day, lineage={"symbols": []})
    assert lineage.stored(lake, "stock_bars_1d", day) == {"symbols": []}  # this run reads it
    other = S3Store(uri, s3_server.env(uri))
    other.head(other.partition("stock_bars_1d", day))
    other.write(_version(2, 10).to_arrow(), other.partition("stock_bars_1d", day))
    with pytest.raises(PartitionConflict, match="stock_bars_1d/session=2024-01-08"):
        storage.write_partition(_version(3, 10), lake, "stock_bars_1d", day)
    assert storage.read_partition(lake, "stock_bars_1d", day).equals(_version(2, 10))


def _settings_error(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> str:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert "\n" not in message and SECRET not in message and "wrong-secret" not in message
    return message


def test_bad_lake_configuration_fails_at_startup_naming_the_variable(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = s3_server.env("s3://no-such-bucket/lake")
    message = _settings_error(monkeypatch, env)
    assert "ALPACA_IMPROVED_LAKE_URI=s3://no-such-bucket/lake" in message
    assert "bucket 'no-such-bucket' does not exist" in message
    message = _settings_error(monkeypatch, {"ALPACA_IMPROVED_LAKE_URI": "/data/lake"})
    assert "ALPACA_IMPROVED_LAKE_URI='/data/lake' is not an S3 URI" in message
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    message = _settings_error(
        monkeypatch, {**s3_server.env("s3://lake/x"), "AWS_ENDPOINT_URL": closed}
    )
    assert f"S3 endpoint {closed} cannot be reached" in message and "AWS_ENDPOINT_URL" in message


def test_wrong_credentials_fail_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that checks signatures (moto with IAM auth on) refuses unknown keys."""
    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "0")
    server = S3Server.start()
    monkeypatch.delenv("INITIAL_NO_AUTH_ACTION_COUNT")
    try:
        env = {**server.env("s3://lake/x"), "AWS_SECRET_ACCESS_KEY": "wrong-secret"}
        message = _settings_error(monkeypatch, env)
        assert message.startswith("ALPACA_IMPROVED_LAKE_URI=s3://lake/x: ")
        assert "credentials were refused" in message and "AWS_ACCESS_KEY_ID" in message
    finally:
        server.stop()
    lake_store._STORES.clear()


def test_live_snapshot_reader_reads_the_bucket_and_refetches_only_changed_partitions(
    lakes: tuple[Path, Path, str], s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from live.market.snapshot import LakeSnapshotProvider

    local, remote, uri = lakes
    now = dt.datetime(2024, 1, 5, 12, tzinfo=dt.UTC)
    monkeypatch.delenv("ALPACA_IMPROVED_LAKE_URI", raising=False)
    expected = LakeSnapshotProvider(local).latest(now)
    for key, value in s3_server.env(uri).items():
        monkeypatch.setenv(key, value)
    from live.runner.build import lake_sessions

    assert lake_sessions(remote, dt.date(2024, 1, 5)) == [
        dt.date.fromisoformat(s) for s in SESSIONS
    ]
    provider = LakeSnapshotProvider(remote)
    got = provider.latest(now)
    assert expected is not None and got is not None
    assert got.session == expected.session == dt.date(2024, 1, 4)
    assert got.prices == expected.prices and got.history.equals(expected.history)
    first = provider._cache[provider._path("stock_bars_1d", dt.date(2024, 1, 4))][1]
    again = provider.latest(now)
    assert again is not None  # nothing changed: the cached frame, not a new GET
    assert provider._cache[provider._path("stock_bars_1d", dt.date(2024, 1, 4))][1] is first
    # the pipelines replace the last session: the next cycle's LIST shows a new ETag
    store = S3Store(uri, s3_server.env(uri))
    part = store.partition("stock_bars_1d", "2024-01-04")
    original = store.read(part)
    day = storage.read_partition(remote / "lake", "stock_bars_1d", "2024-01-04")
    try:
        storage.write_partition(
            day.with_columns(pl.col("close") * 2), remote / "lake", "stock_bars_1d", "2024-01-04"
        )
        changed = provider.latest(now)
        assert changed is not None
        assert changed.prices == pytest.approx({s: 2 * p for s, p in expected.prices.items()})
    finally:  # the module's lake stays the materialized one
        store.client.put_object(Bucket=store.bucket, Key=store.key(part), Body=original)


def test_live_snapshot_reader_lists_a_table_only_after_a_commit(
    lakes: tuple[Path, Path, str], s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each cycle HEADs the tables' commit markers; a table is LISTed again only once a writer
    committed it (a LIST is one request per 1,000 partitions, the HEAD one in all)."""
    from live.market.snapshot import LakeSnapshotProvider

    _local, remote, uri = lakes
    for key, value in s3_server.env(uri).items():
        monkeypatch.setenv(key, value)
    now = dt.datetime(2024, 1, 5, 12, tzinfo=dt.UTC)
    provider = LakeSnapshotProvider(remote)
    store = provider.store
    lists: list[str] = []
    listing = store.listing
    monkeypatch.setattr(store, "listing", lambda table: lists.append(table) or listing(table))
    first = provider.latest(now)
    assert first is not None and lists.count("stock_bars_1d") == 1
    for _ in range(3):
        assert provider.latest(now) is not None
    assert lists.count("stock_bars_1d") == 1  # nothing committed: the HEADs alone
    store_ = S3Store(uri, s3_server.env(uri))
    part = store_.partition("stock_bars_1d", "2024-01-04")
    original = store_.read(part)
    day = storage.read_partition(remote / "lake", "stock_bars_1d", "2024-01-04")
    try:  # a commit: the next cycle LISTs and reads the new version
        storage.write_partition(
            day.with_columns(pl.col("close") * 2), remote / "lake", "stock_bars_1d", "2024-01-04"
        )
        again = provider.latest(now)
        assert lists.count("stock_bars_1d") == 2
        assert again is not None
        assert again.prices == pytest.approx({s: 2 * p for s, p in first.prices.items()})
    finally:  # the module's lake stays the materialized one
        store_.client.put_object(Bucket=store_.bucket, Key=store_.key(part), Body=original)


def test_each_view_statement_sees_partitions_written_after_connect(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The views' in-memory cache is checked against a fresh LIST per statement."""
    uri = f"s3://{s3_server.bucket()}/lake"
    for key, value in s3_server.env(uri).items():
        monkeypatch.setenv(key, value)
    lake = tmp_path / "lake"
    for day, marker in (("2024-01-02", 1), ("2024-01-03", 1)):
        storage.write_partition(_version(marker, 50), lake, "stock_bars_1d", day)
    sql = "SELECT session, max(marker), count(*) FROM stock_bars_1d GROUP BY 1 ORDER BY 1"
    with lakehouse.connect(tmp_path, warn=False) as con:
        assert [r[1] for r in con.sql(sql).fetchall()] == [1, 1]
        storage.write_partition(_version(2, 50), lake, "stock_bars_1d", "2024-01-04")
        storage.write_partition(_version(3, 70), lake, "stock_bars_1d", "2024-01-02")
        assert con.sql(sql).fetchall() == [
            (dt.date(2024, 1, 2), 3, 70),
            (dt.date(2024, 1, 3), 1, 50),
            (dt.date(2024, 1, 4), 2, 50),
        ]
