"""Faults and hostile input at the query interface (``alpaca-improved sql``, ``experiments``,
``lakehouse.connect``): each leaves the data exactly as it was and names the culprit.

Every test builds its own temp data root, damages or attacks it, and compares every byte under
the temp directory before and after.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from alpaca_improved_pipelines.cli import app
from alpaca_improved_pipelines.lake import storage
from alpaca_improved_pipelines.sources.synthetic_bars import daily_bars, minute_bars
from research import lakehouse

SESSIONS = (dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4))
SYMBOLS = ("SPY", "AAPL")
runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A data root with three sessions of daily and minute bars, and a directory beside it."""
    root = tmp_path / "home"
    for s in SESSIONS:
        storage.write_partition(daily_bars(7, SYMBOLS, s), root / "lake", "stock_bars_1d", s, False)
        storage.write_partition(
            minute_bars(7, SYMBOLS, s), root / "lake", "stock_bars_1m", s, fsync=False
        )
    (tmp_path / "outside").mkdir()
    return root


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with the hash of its bytes (directories as '')."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(root.rglob("*"))
    }


def sql(home: Path, *args: str):
    return runner.invoke(app, ["sql", *args], env={"ALPACA_IMPROVED_HOME": str(home)})


def one_line_error(result, *needles: str) -> str:
    """The error of a command that must exit 2 with one line naming the input."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _partition(home: Path, table: str, session: dt.date) -> Path:
    return storage.partition_path(home / "lake", table, session)


# --- item 1: the query interface is read-only and confined to the lake -------------------------

WRITES = [
    ("COPY", "COPY (SELECT * FROM stock_bars_1d) TO '{part}' (FORMAT parquet)"),
    ("COPY", "COPY (SELECT 1 AS x) TO '{outside}/leak.csv'"),
    ("ATTACH", "ATTACH '{lake}/sneaky.duckdb' AS sneaky"),
    ("EXPORT", "EXPORT DATABASE '{outside}/export'"),
    ("INSTALL", "INSTALL httpfs"),
    ("LOAD", "LOAD httpfs"),
    ("SET", "SET enable_external_access = true"),
    ("PRAGMA", "PRAGMA enable_profiling"),
    ("CALL", "CALL checkpoint()"),
    ("CREATE", "CREATE TABLE t AS SELECT 1"),
    ("EXPLAIN", "EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{lake}/x.csv'"),
    ("2 statements", "SELECT 42; COPY (SELECT 1 AS x) TO '{lake}/y.csv'"),
]


@pytest.mark.parametrize(("what", "template"), WRITES, ids=[w[1][:24] for w in WRITES])
def test_sql_refuses_every_statement_that_is_not_a_select(
    home: Path, what: str, template: str
) -> None:
    before = snapshot(home.parent)
    query = template.format(
        part=_partition(home, "stock_bars_1d", SESSIONS[0]),
        outside=home.parent / "outside",
        lake=home / "lake",
    )
    one_line_error(sql(home, query), what)
    assert snapshot(home.parent) == before


def test_sql_reads_nothing_outside_the_lake(home: Path, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "secret.csv"
    secret.write_text("user,password\nroot,hunter2\n")
    before = snapshot(home.parent)
    for query in (
        f"SELECT * FROM read_csv('{secret}')",
        "SELECT * FROM read_text('/etc/passwd')",
        f"SELECT * FROM read_parquet('{home / 'lake'}/../../outside/*.parquet')",
        f"SELECT * FROM glob('{tmp_path}/*')",
    ):
        result = sql(home, query)
        line = one_line_error(result, "Queries read only the lake")
        assert "hunter2" not in result.output and "root:x" not in result.output, line
    assert snapshot(home.parent) == before


def test_the_notebook_connection_is_locked_the_same_way(home: Path, tmp_path: Path) -> None:
    before = snapshot(home.parent)
    con = lakehouse.connect(home)
    part = _partition(home, "stock_bars_1d", SESSIONS[0])
    with pytest.raises(lakehouse.QueryRefused, match="COPY is refused"):
        con.sql(f"COPY (SELECT 1 AS x) TO '{part}' (FORMAT parquet)")
    with pytest.raises(lakehouse.QueryRefused, match="ATTACH is refused"):
        con.execute(f"ATTACH '{home / 'lake' / 'x.duckdb'}' AS x")
    with pytest.raises(duckdb.PermissionException):
        con.sql("SELECT * FROM read_text('/etc/passwd')").fetchall()
    with pytest.raises(lakehouse.QueryRefused, match="SET is refused"):
        con.sql("SET lock_configuration = false")
    # reading works as before, including parameters and a notebook's own frames
    assert con.execute("SELECT count(*) FROM stock_bars_1d WHERE symbol = ?", ["SPY"]).fetchall()
    con.register("picks", pl.DataFrame({"symbol": ["SPY"]}))
    n = con.sql("SELECT count(*) FROM stock_bars_1d JOIN picks USING (symbol)").fetchall()
    assert n == [(len(SESSIONS),)]
    assert snapshot(home.parent) == before


def test_limit_runs_inside_the_query(home: Path) -> None:
    # 20 million rows, the 10-millionth of which raises: only a pushed-down limit never gets there
    query = (
        "SELECT CASE WHEN x > 10000000 THEN error('materialized too much') ELSE x END AS x "
        "FROM range(20000000) t(x)"
    )
    result = sql(home, query, "--limit", "3")
    assert result.exit_code == 0, result.output
    assert "shape: (3, 1)" in result.output and "first 3 rows" in result.output


# --- item 6: a corrupt partition is skipped and named; the other views keep working -----------

DAMAGES = {
    "truncated": lambda b: b[: len(b) // 2],
    "emptied": lambda b: b"",
    "not parquet": lambda b: b"PAR1 this is not parquet at all PAR1",
    "footer garbled": lambda b: _garble_footer(b),
}


def _garble_footer(data: bytes) -> bytes:
    """Overwrite the footer but keep its length and magic: only a real parse notices."""
    n = int.from_bytes(data[-8:-4], "little")
    return data[: -8 - n] + b"\xff" * n + data[-8:]


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_corrupt_partition_is_skipped_and_named(home: Path, damage: str) -> None:
    bad = _partition(home, "stock_bars_1d", SESSIONS[1])
    bad.write_bytes(DAMAGES[damage](bad.read_bytes()))
    before = snapshot(home.parent)
    result = sql(home, "SELECT 42 AS answer")
    assert result.exit_code == 0, result.output
    assert "42" in result.stdout and f"warning: skipped {bad}" in result.stderr
    counted = sql(home, "SELECT count(*) AS n FROM stock_bars_1d", "--format", "csv")
    assert counted.exit_code == 0, counted.output
    assert counted.stdout.splitlines() == ["n", str(len(SYMBOLS) * (len(SESSIONS) - 1))]
    minutes = sql(home, "SELECT count(DISTINCT session) AS n FROM stock_bars_1m", "-f", "csv")
    assert minutes.stdout.splitlines() == ["n", str(len(SESSIONS))]
    with pytest.warns(UserWarning, match=str(bad)):
        con = lakehouse.connect(home)
    assert con.sql("SELECT count(*) FROM stock_bars_1m").fetchall() == [(390 * 2 * 3,)]
    assert snapshot(home.parent) == before  # nothing moved, repaired or written


def test_a_damaged_data_page_names_the_file(home: Path) -> None:
    bad = _partition(home, "stock_bars_1m", SESSIONS[2])
    data = bytearray(bad.read_bytes())
    for i in range(len(data) // 8, len(data) // 2, 3):
        data[i] ^= 0x5A
    bad.write_bytes(bytes(data))
    before = snapshot(home.parent)
    one_line_error(sql(home, "SELECT sum(close) FROM stock_bars_1m"), str(bad), "re-materialize")
    assert snapshot(home.parent) == before


# --- item 8: one reader rule, only part.parquet -----------------------------------------------


def test_a_stray_parquet_is_never_merged_into_a_view(home: Path) -> None:
    part = _partition(home, "stock_bars_1d", SESSIONS[0])
    stray = part.with_name("part-backup.parquet")
    shutil.copy(part, stray)
    before = snapshot(home.parent)
    result = sql(home, "SELECT count(*) AS n FROM stock_bars_1d", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["n", str(len(SYMBOLS) * len(SESSIONS))]  # no dupes
    assert f"warning: skipped {stray}" in result.stderr
    assert snapshot(home.parent) == before


# --- item 9: a partition directory with an invalid key is rejected with its path --------------


def test_an_invalid_session_directory_is_rejected_with_its_path(home: Path) -> None:
    part = _partition(home, "stock_bars_1d", SESSIONS[0])
    bad = part.parent.with_name("session=2024-02-30")
    bad.mkdir()
    shutil.copy(part, bad / "part.parquet")
    before = snapshot(home.parent)
    result = sql(home, "SELECT typeof(session) AS t, count(*) AS n FROM stock_bars_1d GROUP BY 1")
    assert result.exit_code == 0, result.output
    assert "DATE" in result.output and "VARCHAR" not in result.output
    assert f"warning: skipped {bad}" in result.output and "day is out of range" in result.output
    from contracts import lake as layout

    with pytest.raises(layout.LakeLayoutError, match=str(bad)):
        layout.sessions(home / "lake", "stock_bars_1d")  # what the runner lists sessions with
    assert snapshot(home.parent) == before


# --- bad input: one line naming the input and the fix, exit 2 ---------------------------------


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["", "--limit", "3"], ["the query is empty", "SELECT"]),
        (["   "], ["the query is empty"]),
        (["SELECT 1", "--limit", "-5"], ["--limit -5", "positive"]),
        (["SELECT 1", "--limit", "0"], ["--limit 0"]),
        (["SELECT 1", "--format", "xml"], ["--format 'xml'", "table, csv, json"]),
        (["SELEC 1"], ["query failed", "syntax error"]),
    ],
)
def test_sql_bad_input_is_one_line(home: Path, args: list[str], needles: list[str]) -> None:
    before = snapshot(home.parent)
    one_line_error(sql(home, *args), *needles)
    assert snapshot(home.parent) == before


@pytest.fixture(scope="module")
def mlflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from alpaca_improved_pipelines.tracking.mlflow_store import RunTags, Tracker

    root = tmp_path_factory.mktemp("mlflow_home")
    tracker = Tracker(root)
    for i, sharpe in enumerate((0.5, 2.0)):
        run_id = tracker.start_run("ma_crossover", f"v{i}", "variant", RunTags("r", "a", "p"))
        tracker.log(run_id, params={"fast": i}, metrics={"sharpe_ratio": sharpe, "dsr": 0.1})
        tracker.finish(run_id)
    return root


def experiments(home: Path, *args: str):
    return runner.invoke(app, ["experiments", *args], env={"ALPACA_IMPROVED_HOME": str(home)})


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--metric", "no_such_metric"], ["--metric 'no_such_metric'", "known: dsr, sharpe_ratio"]),
        (["--top", "-1"], ["--top -1", "positive"]),
        (["--top", "0"], ["--top 0"]),
        (["--format", "xml"], ["--format 'xml'", "table, csv, json"]),
        (["--kind", "bogus"], ["--kind 'bogus'", "sweep, variant, walk_forward, backtest"]),
        (["--metric", "x` DESC, metrics.`y"], ["is not a metric name"]),
    ],
)
def test_experiments_compare_bad_input_is_one_line(
    mlflow_home: Path, args: list[str], needles: list[str]
) -> None:
    before = snapshot(mlflow_home)
    one_line_error(
        experiments(mlflow_home, "compare", "--experiment", "ma_crossover", *args), *needles
    )
    assert snapshot(mlflow_home) == before


def test_experiments_compare_still_ranks(mlflow_home: Path) -> None:
    result = experiments(mlflow_home, "compare", "--experiment", "ma_crossover", "-f", "csv")
    assert result.exit_code == 0, result.output
    assert (
        result.output.splitlines()[1].endswith(",2.0") or ",2.0," in result.output.splitlines()[1]
    )
    empty = experiments(mlflow_home, "compare", "--experiment", "ma_crossover", "--kind", "sweep")
    assert empty.exit_code == 0 and "no sweep runs in experiment ma_crossover" in empty.output
    assert "Empty DataFrame" not in empty.output


def test_read_only_commands_create_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "no_root"
    for args in (["list"], ["compare", "--experiment", "ma_crossover"]):
        one_line_error(experiments(missing, *args), str(missing), "does not exist")
    one_line_error(sql(missing, "SELECT 1"), str(missing), "does not exist")
    assert not missing.exists()
    empty = tmp_path / "empty_root"
    empty.mkdir()
    listed = experiments(empty, "list")
    assert listed.exit_code == 0 and "no experiments under" in listed.output
    assert sql(empty, "SELECT 1").exit_code == 0
    assert list(empty.iterdir()) == []  # no mlflow.db, no lake, nothing
