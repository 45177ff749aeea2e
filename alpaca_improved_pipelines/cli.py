"""The ``alpaca-improved`` command line: demo, backfill, sql, ui."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from alpaca_improved_pipelines.errors import AlpacaImprovedError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Research and trade US equity options on Alpaca, on Dagster.",
)


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


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
    job: Annotated[str, typer.Option(help="Dagster job to run.")] = "market_data_job",
) -> None:
    """Materialize every session in [START, END] through Dagster, in batched single runs."""
    from alpaca_improved_pipelines.commands import run_backfill

    try:
        run_backfill(start, end, symbols, batch_size, job)
    except AlpacaImprovedError as exc:
        _fail(exc)


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

    try:
        run_demo(start, end)
    except AlpacaImprovedError as exc:
        _fail(exc)


@app.command()
def sql(
    query: Annotated[
        str, typer.Argument(help="SQL over the lake views, e.g. SELECT * FROM stock_bars_1d")
    ],
    format: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
    limit: Annotated[int, typer.Option(help="Rows to print in table format.")] = 50,
) -> None:
    """Query the lakehouse with DuckDB and print the result."""
    from alpaca_improved_pipelines.commands import run_sql

    if format not in ("table", "csv", "json"):
        _fail(ValueError(f"--format {format!r} is not one of table, csv, json"))
    try:
        run_sql(query, format, limit)
    except (AlpacaImprovedError, FileNotFoundError) as exc:
        _fail(exc)


@app.command()
def ui(port: Annotated[int, typer.Option(help="Port for the Dagster UI.")] = 3000) -> None:
    """Open the Dagster UI (webserver + daemon) on the persistent instance under the data root."""
    from alpaca_improved_pipelines.runner import dagster_instance
    from alpaca_improved_pipelines.settings import load_settings

    settings = load_settings()
    with dagster_instance(settings):
        pass  # writes dagster.yaml and sets DAGSTER_HOME
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


experiments_app = typer.Typer(no_args_is_help=True, help="Compare MLflow experiments.")
app.add_typer(experiments_app, name="experiments")


@experiments_app.command("compare")
def experiments_compare(
    experiment: Annotated[str, typer.Option(help="Strategy family, e.g. ma_crossover")],
    metric: Annotated[str, typer.Option(help="Metric to rank by")] = "sharpe_ratio",
    top: Annotated[int, typer.Option(help="Rows to show")] = 10,
    kind: Annotated[str | None, typer.Option(help="sweep, variant or walk_forward")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
) -> None:
    """Runs of an experiment with params and metrics, best first."""
    from research import experiments

    try:
        frame = experiments.compare(experiment, metric=metric, top=top, kind=kind)
    except ValueError as exc:
        _fail(exc)
    if format == "csv":
        print(frame.to_csv(index=False), end="")
    elif format == "json":
        print(frame.to_json(orient="records"))
    else:
        import pandas as pd

        with pd.option_context("display.max_columns", 30, "display.width", 200):
            print(frame.to_string(index=False))


@experiments_app.command("list")
def experiments_list() -> None:
    """Strategy families that have an MLflow experiment."""
    from research import experiments

    for name in experiments.list_experiments():
        print(name)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
