"""Optimistic reads over the lake on S3: the LIST of a statement's views overlaps the statement.

``research.lakehouse`` runs a statement on the views as they are while a thread LISTs the
tables it names, and hands the result back only if the LIST shows nothing changed; otherwise
it remakes the views and runs the statement again. Each test proves one property that could
break: a commit made between two statements is in the second one's result; a commit landing
while the LIST is in flight makes the statement run again, and only the second result is
returned, through every call that returns a whole result (relations' fetchall/pl/arrow,
execute + fetch, the CLI's table format); the calls that stream rows (the CLI's csv/json,
``to_arrow_reader``, ``iter_rows``) LIST first, on the caller's thread; a query that fails on
stale views but not on the fresh ones returns the fresh result, not the stale error; a LIST
failure is the same one-line error as before a statement; a local lake is untouched.
"""

from __future__ import annotations

import datetime as dt
import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from alpaca_improved_pipelines.read_commands import run_sql
from contracts.lake_store import LakeStoreError, S3Store
from research import lakehouse
from tests.research import test_lake_cache
from tests.research.test_lake_cache import SQL, _run, _write
from tests.s3_server import S3Server

lake = test_lake_cache.lake  # the fixture: a fresh bucket with two sessions, env pointed at it
BEFORE = [(dt.date(2024, 1, 2), 1, 50), (dt.date(2024, 1, 3), 1, 50)]
AFTER = [(dt.date(2024, 1, 2), 7, 80), (dt.date(2024, 1, 3), 1, 50)]


class Probe:
    """Counts the runs of each validated statement and, on the LIST thread, records which
    thread LISTed and makes ``commit`` (once) just before the first LIST: a commit that lands
    after the statement started, while it runs on the views as they were."""

    def __init__(self, con: lakehouse.LakeConnection, commit: Callable[[], None] | None) -> None:
        self.runs = 0
        self.list_threads: list[str] = []
        self.commit = commit
        refresh = con._before  # the connection's _Refresh (the lake on S3 with its cache)
        assert isinstance(refresh, lakehouse._Refresh)
        refresh.on_list = self.on_list
        validate = con._validate
        assert validate is not None

        def counting(query: str, run: Callable[[], Any]) -> Any:
            def counted() -> Any:
                self.runs += 1
                return run()

            return validate(query, counted)

        con._validate = counting

    def on_list(self, _name: str) -> None:
        self.list_threads.append(threading.current_thread().name)
        if self.commit is not None:
            commit, self.commit = self.commit, None
            commit()


def _replace(store: S3Store) -> Callable[[], None]:
    return lambda: _write(store, "2024-01-02", 7, 80)


def test_a_commit_by_another_process_between_two_statements_is_seen(
    lake: tuple[S3Store, dict[str, str]], tmp_path: Path
) -> None:
    store, env = lake
    with lakehouse.connect(tmp_path, warn=False) as con:
        probe = Probe(con, None)
        assert con.sql(SQL).fetchall() == BEFORE
        assert probe.runs == 1  # nothing changed: the optimistic result is kept
        assert probe.list_threads and threading.main_thread().name not in probe.list_threads
        _run(
            """
            import polars as pl
            from contracts.lake_store import from_env
            from pathlib import Path
            store = from_env(Path("unused"))
            frame = pl.DataFrame({"symbol": [f"S{i}" for i in range(80)], "marker": [7] * 80})
            store.write(frame.to_arrow(), store.partition("stock_bars_1d", "2024-01-02"))
            """,
            env,
        )
        assert con.sql(SQL).fetchall() == AFTER
        assert probe.runs == 3  # the stale run was discarded and the statement ran again
        assert con.sql(SQL).fetchall() == AFTER
        assert probe.runs == 4


@pytest.mark.parametrize(
    "read",
    [
        lambda con: con.sql(SQL).fetchall(),
        lambda con: [tuple(r.values()) for r in con.sql(SQL).pl().iter_rows(named=True)],
        lambda con: [tuple(r.values()) for r in con.sql(SQL).to_arrow_table().to_pylist()],
        lambda con: con.execute(SQL).fetchall(),
        lambda con: con.sql(SQL).limit(5).fetchall(),
        lambda con: (
            con.view("stock_bars_1d")
            .aggregate("session, max(marker), count(*)", "session")
            .order("session")
            .fetchall()
        ),
    ],
    ids=["fetchall", "pl", "arrow_table", "execute", "limit", "view"],
)
def test_a_commit_landing_while_the_list_is_in_flight_reruns_the_statement(
    lake: tuple[S3Store, dict[str, str]], tmp_path: Path, read: Callable[[Any], list]
) -> None:
    store, _env = lake
    with lakehouse.connect(tmp_path, warn=False) as con:
        probe = Probe(con, _replace(store))
        assert read(con) == AFTER
        assert probe.runs == 2  # the run over the old views was thrown away
        assert len(probe.list_threads) == 1
        assert probe.list_threads[0] != threading.main_thread().name  # overlapped
        assert read(con) == AFTER
        assert probe.runs == 3


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_the_cli_returns_only_validated_rows(
    lake: tuple[S3Store, dict[str, str]], tmp_path: Path, fmt: str
) -> None:
    store, _env = lake
    con = lakehouse.connect(tmp_path, warn=False)
    probe = Probe(con, _replace(store))
    out = io.StringIO()
    # run_sql opens its own connection: hand it this probed one
    original = lakehouse.connect
    try:
        lakehouse.connect = lambda *a, **k: con  # type: ignore[assignment]
        run_sql(SQL, fmt=fmt, home=tmp_path, out=out, err=io.StringIO())
    finally:
        lakehouse.connect = original  # type: ignore[assignment]
    text = out.getvalue()
    if fmt == "table":  # a whole (limited) result: validated after an overlapped LIST
        assert "2024-01-02 ┆ 7           ┆ 80" in text and "2024-01-03 ┆ 1" in text
        assert probe.runs == 2 and probe.list_threads[0] != threading.main_thread().name
        return
    rows = pl.read_csv(io.StringIO(text)) if fmt == "csv" else pl.read_json(io.StringIO(text))
    assert [(str(s), m, n) for s, m, n in rows.rows()] == [(str(s), m, n) for s, m, n in AFTER]
    # streamed in batches: LISTed first, on this thread, and run once, not validated after
    assert probe.runs == 0 and probe.list_threads == [threading.main_thread().name]


@pytest.mark.parametrize(
    "read",
    [
        lambda rel: [tuple(r.values()) for b in rel.to_arrow_reader(1) for r in b.to_pylist()],
        lambda rel: [tuple(r) for r in rel.iter_rows()],
        lambda rel: rel.pl(lazy=True).collect().rows(),
    ],
    ids=["to_arrow_reader", "iter_rows", "pl_lazy"],
)
def test_streaming_calls_list_before_the_first_row(
    lake: tuple[S3Store, dict[str, str]], tmp_path: Path, read: Callable[[Any], list]
) -> None:
    store, _env = lake
    with lakehouse.connect(tmp_path, warn=False) as con:
        probe = Probe(con, None)
        rel = con.sql(SQL)  # nothing runs yet
        _replace(store)()
        assert read(rel) == AFTER
        assert probe.runs == 0  # never the optimistic path
        assert probe.list_threads == [threading.main_thread().name]


def test_an_error_on_stale_views_reruns_instead_of_failing(
    lake: tuple[S3Store, dict[str, str]], tmp_path: Path
) -> None:
    store, _env = lake
    extra = "SELECT max(extra) FROM stock_bars_1d"
    frame = pl.DataFrame({"symbol": ["A"], "marker": [9], "extra": [41]})
    with lakehouse.connect(tmp_path, warn=False) as con:
        with pytest.raises(duckdb.BinderException, match="extra"):
            con.sql(extra)  # no such column anywhere in the lake: the real error
        # the column arrives with a new partition: binding fails on the views as they are
        store.write(frame.to_arrow(), store.partition("stock_bars_1d", "2024-01-04"))
        assert con.sql(extra).fetchall() == [(41,)]
    with lakehouse.connect(tmp_path, warn=False) as con:
        probe = Probe(con, None)
        more = frame.rename({"extra": "more"}).with_columns(more=pl.lit(43))
        store.write(more.to_arrow(), store.partition("stock_bars_1d", "2024-01-05"))
        # execute binds inside the overlapped run: its error waits for the LIST, which changed
        assert con.execute("SELECT sum(more) FROM stock_bars_1d").fetchall() == [(43,)]
        assert probe.runs == 2
        # works on the views as they are, fails on the fresh ones: the fresh error is reported
        for day in ("2024-01-04", "2024-01-05"):
            store.delete(store.partition("stock_bars_1d", day))
        with pytest.raises(duckdb.BinderException, match="extra"):
            con.execute(extra)
        assert probe.runs == 4


def test_a_list_failure_is_the_same_error_as_before_a_statement(
    lake: tuple[S3Store, dict[str, str]], tmp_path: Path, s3_server: S3Server
) -> None:
    store, _env = lake
    con = lakehouse.connect(tmp_path, warn=False)
    client: Any = s3_server.client()
    for key in [o["Key"] for o in client.list_objects_v2(Bucket=store.bucket)["Contents"]]:
        client.delete_object(Bucket=store.bucket, Key=key)
    client.delete_bucket(Bucket=store.bucket)
    with pytest.raises(LakeStoreError) as serial:
        con._before(SQL)  # the LIST before a statement that streams
    assert "does not exist" in str(serial.value)
    for read in (lambda: con.sql(SQL).fetchall(), lambda: con.execute(SQL)):
        with pytest.raises(LakeStoreError) as overlapped:
            read()
        assert str(overlapped.value) == str(serial.value)
    con.close()


def test_a_local_lake_is_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALPACA_IMPROVED_LAKE_URI", raising=False)
    part = tmp_path / "lake" / "stock_bars_1d" / "session=2024-01-02" / "part.parquet"
    part.parent.mkdir(parents=True)
    pl.DataFrame({"symbol": ["A"], "marker": [1]}).write_parquet(part)
    with lakehouse.connect(tmp_path, warn=False) as con:
        assert con._validate is None
        rel = con.sql(SQL)
        assert type(rel) is duckdb.DuckDBPyRelation  # DuckDB's own relation, no wrapper
        assert rel.fetchall() == [(dt.date(2024, 1, 2), 1, 1)]
