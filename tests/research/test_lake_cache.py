"""The lake cache (``contracts.lake_cache``) behind the DuckDB views over S3, on the moto server.

Each test proves one property a cache could break: a statement still sees a partition another
process committed after the connection was made (no stale reads); a corrupted or truncated
cache entry is deleted and fetched again, never served; processes sharing the cache directory,
with a bound so small that every download evicts, read whole versions while a writer replaces
partitions; objects are evicted only when no open connection reads them; bad knobs are one line.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from contracts import lake_cache
from contracts.lake_store import LakeStoreError, S3Store
from research import lakehouse
from tests.s3_server import S3Server

ROOT = Path(__file__).resolve().parents[2]
SQL = "SELECT session, max(marker), count(*) FROM stock_bars_1d GROUP BY 1 ORDER BY 1"


def _version(marker: int, rows: int) -> pl.DataFrame:
    return pl.DataFrame({"symbol": [f"S{i}" for i in range(rows)], "marker": [marker] * rows})


def _write(store: S3Store, day: str, marker: int, rows: int) -> None:
    store.write(_version(marker, rows).to_arrow(), store.partition("stock_bars_1d", day))


def _run(code: str, env: dict[str, str], timeout: float = 120) -> str:
    """Run ``code`` in another Python process (this repository importable) with ``env``."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.fixture
def lake(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[S3Store, dict[str, str]]:
    """A fresh bucket with two sessions, the environment pointing the lake and cache at it."""
    uri = f"s3://{s3_server.bucket()}/lake"
    env = {**s3_server.env(uri), "ALPACA_IMPROVED_LAKE_CACHE": str(tmp_path / "cache")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ALPACA_IMPROVED_LAKE_CACHE_MB", raising=False)
    store = S3Store(uri, env)
    _write(store, "2024-01-02", 1, 50)
    _write(store, "2024-01-03", 1, 50)
    return store, env


def _objects(env: dict[str, str]) -> list[Path]:
    return sorted(Path(env["ALPACA_IMPROVED_LAKE_CACHE"]).glob("*/objects/**/*.parquet"))


def test_views_read_local_files_and_see_another_process_commit(
    lake: tuple[S3Store, dict[str, str]], tmp_path: Path
) -> None:
    store, env = lake
    with lakehouse.connect(tmp_path, warn=False) as con:
        assert con.sql(SQL).fetchall() == [
            (dt.date(2024, 1, 2), 1, 50),
            (dt.date(2024, 1, 3), 1, 50),
        ]
        # the view reads the cache's files, not the bucket
        query = "SELECT sql FROM duckdb_views() WHERE view_name = 'stock_bars_1d'"
        files = re.findall(r"'([^']+[.]parquet)'", con.sql(query).fetchall()[0][0])
        assert files and all(Path(f).is_file() for f in files)
        assert all(f.startswith(env["ALPACA_IMPROVED_LAKE_CACHE"]) for f in files)
        # another process adds one partition and replaces another
        _run(
            """
            import polars as pl
            from contracts.lake_store import from_env
            from pathlib import Path
            store = from_env(Path("unused"))
            for day, marker, rows in (("2024-01-04", 2, 60), ("2024-01-02", 3, 70)):
                frame = pl.DataFrame({"symbol": [f"S{i}" for i in range(rows)],
                                      "marker": [marker] * rows})
                store.write(frame.to_arrow(), store.partition("stock_bars_1d", day))
            """,
            env,
        )
        assert con.sql(SQL).fetchall() == [
            (dt.date(2024, 1, 2), 3, 70),
            (dt.date(2024, 1, 3), 1, 50),
            (dt.date(2024, 1, 4), 2, 60),
        ]
        # a removed partition disappears from the next statement too
        store.delete(store.partition("stock_bars_1d", "2024-01-03"))
        assert [r[0] for r in con.sql(SQL).fetchall()] == [dt.date(2024, 1, 2), dt.date(2024, 1, 4)]
        reader = Path(files[0]).parents[2]
        # the replaced version's link is gone; the cache keeps both versions' objects
        assert len(list(reader.rglob("*.parquet"))) == 2
        assert len(_objects(env)) == 4
    assert not reader.exists()  # close() removed this connection's links


@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_a_damaged_cache_entry_is_fetched_again_never_served(
    lake: tuple[S3Store, dict[str, str]], tmp_path: Path, damage: str
) -> None:
    store, env = lake
    with lakehouse.connect(tmp_path, warn=False) as con:
        expected = con.sql(SQL).fetchall()
    (victim, *_) = _objects(env)
    good = victim.read_bytes()
    os.chmod(victim, 0o644)
    if damage == "flipped":  # same size, different bytes: only the sha256 tells
        bad = bytearray(good)
        bad[len(bad) // 2] ^= 0xFF
        victim.write_bytes(bytes(bad))
    else:
        victim.write_bytes(good[: len(good) // 2])
    # a leftover of a crashed download is never read either
    (victim.parent / f".{victim.name}.dead.tmp").write_bytes(b"garbage")
    # a fresh process (nothing remembered as verified) reads through the damaged cache
    out = _run(
        f"""
        from research import lakehouse
        with lakehouse.connect("home", warn=False) as con:
            print(repr(con.sql({SQL!r}).fetchall()))
        """,
        env,
    )
    assert out.strip() == repr(expected)
    assert victim.read_bytes() == good  # fetched again under its name, whole


def test_processes_sharing_a_tiny_cache_read_whole_versions_while_a_writer_replaces(
    lake: tuple[S3Store, dict[str, str]],
) -> None:
    """Three reader processes, a 0 MB bound (every download evicts what no one links) and a
    writer replacing a partition between their statements: every result is one whole version
    of each partition (count matches marker), and no reader fails."""
    store, env = lake
    env = {**env, "ALPACA_IMPROVED_LAKE_CACHE_MB": "0"}
    reader = f"""
        from research import lakehouse
        bad = 0
        with lakehouse.connect("home", warn=False) as con:
            for _ in range(25):
                day2 = con.sql({SQL!r}).fetchall()[0]
                bad += day2[2] != 50 + 10 * day2[1]  # version m has 50 + 10 m rows
        print("bad", bad)
    """
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(reader)],
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        m = 0
        while any(p.poll() is None for p in procs):
            m += 1
            _write(store, "2024-01-02", m % 5, 50 + 10 * (m % 5))
    finally:
        outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert out.split() == ["bad", "0"], out
    assert m >= 3  # the partition really changed under the readers


def test_eviction_spares_what_an_open_connection_reads(
    lake: tuple[S3Store, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, env = lake
    monkeypatch.setenv("ALPACA_IMPROVED_LAKE_CACHE_MB", "0")
    with lakehouse.connect(tmp_path, warn=False) as con:
        assert len(con.sql(SQL).fetchall()) == 2
        _write(store, "2024-01-03", 2, 60)
        with lakehouse.connect(tmp_path, warn=False) as other:  # downloads, then evicts
            assert other.sql(SQL).fetchall()[1] == (dt.date(2024, 1, 3), 2, 60)
        # the first connection still reads its own version until its next statement lists
        # its 2 objects (linked) survived the other's eviction, beside the new version
        assert len(_objects(env)) == 3
        assert con.sql(SQL).fetchall()[1] == (dt.date(2024, 1, 3), 2, 60)
    # nothing links anything now: the next download evicts every unlinked object
    _write(store, "2024-01-04", 1, 50)
    with lakehouse.connect(tmp_path, warn=False) as con:
        assert len(con.sql(SQL).fetchall()) == 3
        assert len(_objects(env)) == 3  # exactly what this connection reads


def test_dead_readers_links_are_removed(
    lake: tuple[S3Store, dict[str, str]], tmp_path: Path
) -> None:
    store, env = lake
    out = _run(  # a process that dies without closing its connection (os._exit)
        """
        import os
        from research import lakehouse
        con = lakehouse.connect("home", warn=False)
        con.sql("SELECT count(*) FROM stock_bars_1d").fetchall()
        print(os.getpid(), flush=True)
        os._exit(0)
        """,
        env,
    )
    pid = out.strip()
    readers = Path(env["ALPACA_IMPROVED_LAKE_CACHE"]).glob(f"*/readers/*-{pid}-*")
    assert list(readers)
    with lakehouse.connect(tmp_path, warn=False):
        readers = Path(env["ALPACA_IMPROVED_LAKE_CACHE"]).glob(f"*/readers/*-{pid}-*")
        assert not list(readers)


def test_cache_knobs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert lake_cache.cache_dir({"ALPACA_IMPROVED_LAKE_CACHE": "off"}) is None
    assert lake_cache.cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/alpaca-improved/lake")
    assert lake_cache.cache_limit({}) == 4096 << 20
    assert lake_cache.cache_limit({"ALPACA_IMPROVED_LAKE_CACHE_MB": "10"}) == 10 << 20
    with pytest.raises(LakeStoreError) as err:
        lake_cache.cache_limit({"ALPACA_IMPROVED_LAKE_CACHE_MB": "lots"})
    assert str(err.value).startswith("ALPACA_IMPROVED_LAKE_CACHE_MB='lots'")
    assert "\n" not in str(err.value)
    store = S3Store("s3://b/lake", {})
    with pytest.raises(LakeStoreError, match="^ALPACA_IMPROVED_LAKE_CACHE=.*'='"):
        lake_cache.mirror_for(store, {"ALPACA_IMPROVED_LAKE_CACHE": str(tmp_path / "a=b")})
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(LakeStoreError, match="^ALPACA_IMPROVED_LAKE_CACHE=.*cannot be created"):
        lake_cache.mirror_for(store, {"ALPACA_IMPROVED_LAKE_CACHE": str(blocker / "cache")})
    # the default place unusable (a read-only home): no cache, no error
    assert lake_cache.mirror_for(store, {"XDG_CACHE_HOME": str(blocker)}) is None
    assert lake_cache.mirror_for(store, {"XDG_CACHE_HOME": str(tmp_path / "ok")}) is not None


def test_without_hard_links_each_reader_reads_its_own_copy(
    lake: tuple[S3Store, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, env = lake

    def no_links(src: object, dst: object) -> None:
        raise PermissionError(1, "Operation not permitted")  # e.g. a volume without links

    monkeypatch.setattr(lake_cache.os, "link", no_links)
    with lakehouse.connect(tmp_path, warn=False) as con:
        assert [r[1] for r in con.sql(SQL).fetchall()] == [1, 1]
        _write(store, "2024-01-02", 2, 60)
        assert con.sql(SQL).fetchall()[0] == (dt.date(2024, 1, 2), 2, 60)
    assert all(p.stat().st_nlink == 1 for p in _objects(env))


# ---- commits: one HEAD per statement, a LIST only when something was committed -----------------


def _refresh(con: lakehouse.LakeConnection) -> Any:
    return con._before  # the views' freshness check (lakehouse._Refresh)


def test_a_statement_lists_a_table_only_after_a_commit(
    lake: tuple[S3Store, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _env = lake
    with lakehouse.connect(tmp_path, warn=False) as con:
        reader = _refresh(con).mirror.store
        lists: list[str] = []
        listing = reader.listing
        monkeypatch.setattr(reader, "listing", lambda name: lists.append(name) or listing(name))
        con.sql(SQL).fetchall()  # no marker recorded yet: HEAD, then LIST
        assert lists == ["stock_bars_1d"]
        for _ in range(3):  # nothing committed since: the HEAD alone
            assert len(con.sql(SQL).fetchall()) == 2
        assert lists == ["stock_bars_1d"]
        _write(store, "2024-01-04", 2, 60)  # another writer's commit: a new marker
        assert len(con.sql(SQL).fetchall()) == 3
        assert lists == ["stock_bars_1d"] * 2


def test_a_batch_commits_once_at_its_end_and_its_own_process_reads_inside_it(
    lake: tuple[S3Store, dict[str, str]], tmp_path: Path
) -> None:
    store, env = lake
    writer = S3Store(store.uri, env)  # another writer's store, as another process has
    with lakehouse.connect(tmp_path, warn=False) as con:
        con.sql(SQL).fetchall()
        before = store.commit_marker("stock_bars_1d")
        assert before is not None
        with writer.batch():
            _write(writer, "2024-01-04", 2, 60)
            with writer.batch():  # nested: committed by the outermost only
                _write(writer, "2024-01-05", 2, 60)
            assert writer.pending("stock_bars_1d")
            assert writer.commit_marker("stock_bars_1d") == before
            assert len(con.sql(SQL).fetchall()) == 2  # not committed yet: the view stands
        assert not writer.pending("stock_bars_1d")
        assert writer.commit_marker("stock_bars_1d") != before
        assert len(con.sql(SQL).fetchall()) == 4
        # the store this process's views use: its open batch is read through at once
        own = _refresh(con).mirror.store
        with own.batch():
            _write(own, "2024-01-08", 3, 10)
            assert own.pending("stock_bars_1d")
            assert con.sql(SQL).fetchall()[-1] == (dt.date(2024, 1, 8), 3, 10)


def test_a_batch_that_raises_still_commits_what_it_wrote(
    lake: tuple[S3Store, dict[str, str]], tmp_path: Path
) -> None:
    store, _env = lake
    before = store.commit_marker("stock_bars_1d")
    with pytest.raises(RuntimeError, match="the step failed"), store.batch():
        _write(store, "2024-01-04", 2, 60)
        raise RuntimeError("the step failed")
    assert store.commit_marker("stock_bars_1d") not in (None, before)
    assert not store.pending("stock_bars_1d")
    with lakehouse.connect(tmp_path, warn=False) as con:
        assert len(con.sql(SQL).fetchall()) == 3


def test_an_object_put_without_a_commit_is_seen_within_the_relist_bound(
    lake: tuple[S3Store, dict[str, str]], tmp_path: Path
) -> None:
    """A writer that died between its partition's PUT and the marker's (or `aws s3 cp`): the
    next LIST finds it, at the latest ``relist_after`` seconds after the last one."""
    import io

    store, _env = lake
    with lakehouse.connect(tmp_path, warn=False) as con:
        refresh = _refresh(con)
        refresh.relist_after = 1.0
        con.sql(SQL).fetchall()
        buf = io.BytesIO()
        _version(9, 5).write_parquet(buf)
        key = store.key(store.partition("stock_bars_1d", "2024-01-04"))
        store.client.put_object(Bucket=store.bucket, Key=key, Body=buf.getvalue())
        start = time.monotonic()
        while len(con.sql(SQL).fetchall()) == 2:
            assert time.monotonic() - start < 10, "never seen"
            time.sleep(0.1)
        assert time.monotonic() - start < 1.0 + 5  # the bound (and a loaded machine's slack)
        assert con.sql(SQL).fetchall()[-1] == (dt.date(2024, 1, 4), 9, 5)


def test_a_commit_landing_after_the_list_is_seen_by_the_next_statement(
    lake: tuple[S3Store, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker a view stands on is the one read BEFORE its LIST: a commit that lands right
    after the LIST changes the marker again, so the next statement LISTs (recording the marker
    read after the LIST would hide that commit until the relist bound)."""
    store, env = lake
    writer = S3Store(store.uri, env)
    with lakehouse.connect(tmp_path, warn=False) as con:
        con.sql(SQL).fetchall()  # the view stands on marker M1
        _write(writer, "2024-01-04", 2, 60)  # M2: the next statement LISTs
        reader = _refresh(con).mirror.store
        listing, landed = reader.listing, []

        def list_then_commit(name: str) -> dict:
            out = listing(name)
            if not landed:  # lands after this LIST, before the statement ends
                _write(writer, "2024-01-05", 3, 70)
                landed.append(name)
            return out

        monkeypatch.setattr(reader, "listing", list_then_commit)
        assert len(con.sql(SQL).fetchall()) == 3  # its LIST was before the commit
        assert landed
        assert con.sql(SQL).fetchall()[-1] == (dt.date(2024, 1, 5), 3, 70)


def test_a_failed_commit_still_commits_the_other_tables_and_is_raised(
    lake: tuple[S3Store, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from contracts.lake_store import LakeStoreError

    store, env = lake
    writer = S3Store(store.uri, env)
    before = {t: writer.commit_marker(t) for t in ("stock_bars_1d", "stock_bars_5m")}
    commit = writer._commit

    def refuse_1d(table: str) -> None:
        if table == "stock_bars_1d":
            raise LakeStoreError("the marker PUT was refused")
        commit(table)

    monkeypatch.setattr(writer, "_commit", refuse_1d)
    frame = _version(4, 3).to_arrow()
    with pytest.raises(LakeStoreError, match="refused"), writer.batch():
        writer.write(frame, writer.partition("stock_bars_1d", "2024-01-04"))
        writer.write(frame, writer.partition("stock_bars_5m", "2024-01-04"))
    assert writer.commit_marker("stock_bars_5m") not in (None, before["stock_bars_5m"])
    assert writer.commit_marker("stock_bars_1d") == before["stock_bars_1d"]
    assert not writer.pending("stock_bars_1d") and not writer.pending("stock_bars_5m")
    # the block's own error wins over a failed commit
    with pytest.raises(KeyError), writer.batch():
        writer.write(frame, writer.partition("stock_bars_1d", "2024-01-05"))
        raise KeyError("the step's own error")
