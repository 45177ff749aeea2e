"""The CLI: bad input gives one clear line and exit code 2; sql prints tables, CSV and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alpaca_improved_pipelines.cli import app

runner = CliRunner()


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {
        "ALPACA_IMPROVED_HOME": str(home),
        "ALPACA_IMPROVED_FSYNC": "0",
        "ALPACA_IMPROVED_SYMBOLS": "SPY,AAPL",
        **extra,
    }


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--start", "2024-02-01", "--end", "2024-01-05"], {}, "is after --end"),
        (
            ["--start", "2024-07-04", "--end", "2024-07-10"],
            {},
            "2024-07-04 is not an NYSE trading session",
        ),
        (["--start", "2024-13-01", "--end", "2024-12-31"], {}, "is not a date; use YYYY-MM-DD"),
        (
            ["--start", "2024-01-02", "--end", "2024-01-05", "--symbols", "MSFT"],
            {},
            "not in the universe",
        ),
        (
            ["--start", "2024-01-02", "--end", "2024-01-05"],
            {"ALPACA_IMPROVED_SYMBOLS": " , "},
            "ALPACA_IMPROVED_SYMBOLS is empty",
        ),
        (
            ["--start", "2024-01-02", "--end", "2024-01-05"],
            {"ALPACA_IMPROVED_SYMBOLS": "ZZZZ"},
            "unknown symbol 'ZZZZ' for the synthetic source",
        ),
        (["--start", "2023-06-01", "--end", "2023-06-30"], {}, "before the first partition"),
        (
            ["--start", "2024-01-02", "--end", "2024-01-05"],
            {"ALPACA_IMPROVED_SOURCE": "yahoo"},
            "ALPACA_IMPROVED_SOURCE='yahoo' is not a source",
        ),
    ],
)
def test_backfill_bad_input(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = runner.invoke(app, ["backfill", *args], env=_env(tmp_path, **env))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "lake").exists()  # nothing written


def test_backfill_then_sql(tmp_path: Path) -> None:
    env = _env(tmp_path)
    result = runner.invoke(
        app, ["backfill", "--start", "2024-01-02", "--end", "2024-01-04"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "materialized 3 sessions" in result.output
    q = "SELECT symbol, count(*) AS n FROM stock_bars_1d GROUP BY 1 ORDER BY 1"
    out = runner.invoke(app, ["sql", q, "--format", "json"], env=env)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == [{"symbol": "AAPL", "n": 3}, {"symbol": "SPY", "n": 3}]
    csv = runner.invoke(app, ["sql", q, "--format", "csv"], env=env)
    assert csv.output.splitlines() == ["symbol,n", "AAPL,3", "SPY,3"]
    table = runner.invoke(app, ["sql", q], env=env)
    assert "AAPL" in table.output and "shape: (2, 2)" in table.output
    # the runs are in the persistent instance under the data root (what `make ui` shows)
    assert (tmp_path / "dagster_home" / "dagster.yaml").exists()
    assert any((tmp_path / "dagster_home").rglob("*.db"))


def test_sql_errors_are_one_line(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["sql", "SELECT 1"], env=_env(tmp_path / "none"))
    assert missing.exit_code == 2 and "does not exist" in missing.output
    bad_format = runner.invoke(app, ["sql", "SELECT 1", "--format", "xml"], env=_env(tmp_path))
    assert bad_format.exit_code == 2 and "--format 'xml'" in bad_format.output


def test_live_subcommand_runs_the_live_cli_in_its_own_process() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "alpaca_improved_pipelines.cli", "live", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    for command in ("run", "halt", "flatten", "status"):
        assert command in out.stdout
