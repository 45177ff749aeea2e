"""The ``alpaca-improved`` command line: demo, backfill, sql, ui, live, stream, signals,
subscribers, audit, experiments."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from alpaca_improved_pipelines.errors import AlpacaImprovedError
from contracts.errors import ContractError

# bad input from the shared calendar or manifest is a ContractError, ours an AlpacaImprovedError
USER_ERRORS = (AlpacaImprovedError, ContractError)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Research and trade US equity options on Alpaca, on Dagster.",
)


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _writing(call: Callable[[], object]) -> None:
    """Run a command that writes: bad input, a full disk or an unwritable root is one line."""
    from alpaca_improved_pipelines.commands import environment_error

    try:
        call()
    except USER_ERRORS as exc:
        _fail(exc)
    except Exception as exc:
        err = environment_error(exc)
        if err is None:
            raise
        _fail(err)


@app.command()
def backfill(
    start: Annotated[str, typer.Option(help="First session, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last session, YYYY-MM-DD (inclusive).")],
    symbols: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated subset of the universe; merged into existing partitions."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Sessions per Dagster run.")] = 60,
    job: Annotated[
        str, typer.Option(help="Dagster job to run: market_data_job or options_job.")
    ] = "market_data_job",
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Replace existing partitions computed with another universe, source or "
            "history (refused without it), and every partition computed from them.",
        ),
    ] = False,
) -> None:
    """Materialize every session in [START, END] through Dagster, in batched single runs."""
    from alpaca_improved_pipelines.commands import run_backfill

    _writing(lambda: run_backfill(start, end, symbols, batch_size, job, replace=replace))


@app.command()
def demo(
    start: Annotated[
        str | None, typer.Option(help="First session (default: ALPACA_IMPROVED_START).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Last session (default: about 6 months after start).")
    ] = None,
) -> None:
    """Run the main job on embedded defaults (synthetic data, local lake) and say where to look."""
    from alpaca_improved_pipelines.commands import run_demo

    _writing(lambda: run_demo(start, end))


@app.command()
def sql(
    query: Annotated[
        str, typer.Argument(help="SQL over the lake views, e.g. SELECT * FROM stock_bars_1d")
    ],
    format: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
    limit: Annotated[int, typer.Option(help="Rows to print in table format.")] = 50,
) -> None:
    """Query the lakehouse with DuckDB (one read-only SELECT) and print the result."""
    from alpaca_improved_pipelines.read_commands import run_sql

    try:
        run_sql(query, format, limit)
    except (*USER_ERRORS, FileNotFoundError) as exc:
        _fail(exc)


@app.command()
def ui(port: Annotated[int, typer.Option(help="Port for the Dagster UI.")] = 3000) -> None:
    """Open the Dagster UI (webserver + daemon) on the persistent instance under the data root."""
    from alpaca_improved_pipelines.runner import dagster_instance
    from alpaca_improved_pipelines.settings import check_home, load_settings

    def prepare() -> None:
        settings = load_settings()
        check_home(settings, write=True)
        with dagster_instance(settings):
            pass  # writes dagster.yaml, sets DAGSTER_HOME, fails runs orphaned by a kill

    _writing(prepare)
    root = Path(__file__).resolve().parent.parent
    os.execvp(
        sys.executable,
        [
            sys.executable,
            "-m",
            "dagster",
            "dev",
            "-w",
            str(root / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
    )


@app.command(
    "live",
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],
    },
    add_help_option=False,
)
def live(ctx: typer.Context) -> None:
    """The live runner: run, halt, flatten, resume, status (see `alpaca-improved live --help`).

    It runs as its own process (``python -m live.cli``): the live runner never imports Dagster,
    and this code location never imports the live runner.
    """
    os.execvp(sys.executable, [sys.executable, "-m", "live.cli", *ctx.args])


@app.command(
    "stream",
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],
    },
    add_help_option=False,
)
def stream(ctx: typer.Context) -> None:
    """The market-data stream into the lake: run, status (see `alpaca-improved stream --help`).

    Its own process (``python -m live.market.stream.cli``), like ``live``: no Dagster in it.
    """
    os.execvp(sys.executable, [sys.executable, "-m", "live.market.stream.cli", *ctx.args])


_EXEC = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@app.command("signals", context_settings=_EXEC, add_help_option=False)
def signals(ctx: typer.Context) -> None:
    """Signals to subscribers: subscribers, audit (see `alpaca-improved signals --help`).

    Its own process (``python -m signals.cli``), like ``live``: this code location never imports
    the signals service.
    """
    os.execvp(sys.executable, [sys.executable, "-m", "signals.cli", *ctx.args])


@app.command("subscribers", context_settings=_EXEC, add_help_option=False)
def subscribers(ctx: typer.Context) -> None:
    """Subscribers and operators: list, show, add, grant-operator, revoke-operator."""
    os.execvp(sys.executable, [sys.executable, "-m", "signals.cli", "subscribers", *ctx.args])


@app.command("audit", context_settings=_EXEC, add_help_option=False)
def audit(ctx: typer.Context) -> None:
    """The operator console's audit chain: verify (exit 1 if tampered), tail."""
    os.execvp(sys.executable, [sys.executable, "-m", "signals.cli", "audit", *ctx.args])


experiments_app = typer.Typer(no_args_is_help=True, help="Compare MLflow experiments.")
app.add_typer(experiments_app, name="experiments")


@experiments_app.command("compare")
def experiments_compare(
    experiment: Annotated[str, typer.Option(help="Strategy family, e.g. ma_crossover")],
    metric: Annotated[str, typer.Option(help="Metric to rank by")] = "sharpe_ratio",
    top: Annotated[int, typer.Option(help="Rows to show")] = 10,
    kind: Annotated[
        str | None, typer.Option(help="sweep, variant, walk_forward or backtest")
    ] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
) -> None:
    """Runs of an experiment with params and metrics, best first."""
    from alpaca_improved_pipelines.read_commands import experiments_compare as compare

    try:
        compare(experiment, metric, top, kind, format)
    except USER_ERRORS as exc:
        _fail(exc)


@experiments_app.command("list")
def experiments_list() -> None:
    """Strategy families that have an MLflow experiment."""
    from alpaca_improved_pipelines.read_commands import experiments_list as list_families

    try:
        list_families()
    except USER_ERRORS as exc:
        _fail(exc)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
