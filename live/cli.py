"""``alpaca-improved live ...``: run the runner, and control a running one through its journal.

Mount with ``app.add_typer(live.cli.app, name="live")``; also ``python -m live.cli``.
"""

from __future__ import annotations

import json
import logging
import signal
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from live.build import build_runner, resolve_home
from live.clock import SystemClock
from live.errors import LiveError
from live.journal import Journal
from live.risk_limits import AccountLimits
from live.runner_config import RunnerConfig
from live.status import journal_status

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The live runner: approved deployments -> risk engine -> broker.",
)
HomeOpt = Annotated[
    Path | None, typer.Option(help="ALPACA_IMPROVED_HOME (default: env or ./.alpaca_improved).")
]


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.command()
def run(
    broker: Annotated[str, typer.Option(help="sim (embedded default) or alpaca.")] = "sim",
    home: HomeOpt = None,
    cycles: Annotated[
        int | None, typer.Option(help="Stop after N cycles (default: forever).")
    ] = None,
    cycle_seconds: Annotated[float, typer.Option(help="Cycle period in seconds.")] = 60.0,
    live: Annotated[
        bool,
        typer.Option("--live", help="Live trading (also needs ALPACA_IMPROVED_LIVE_TRADING=yes)."),
    ] = False,
    sim_start: Annotated[str | None, typer.Option(help="Simulated start, ISO with offset.")] = None,
    sim_speed: Annotated[
        float | None, typer.Option(help="Simulated s per real s (default: instant).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Stop once the (simulated) clock passes this ISO time.")
    ] = None,
    reconcile_every: Annotated[int, typer.Option(help="Reconcile every N cycles.")] = 10,
    stream: Annotated[
        bool, typer.Option(help="alpaca: follow the trade-update stream between cycles.")
    ] = True,
    health_port: Annotated[int | None, typer.Option(help="Serve /health on 127.0.0.1.")] = None,
    webhook_url: Annotated[str | None, typer.Option(help="Notification webhook.")] = None,
    account_limits: Annotated[
        Path | None, typer.Option(help="JSON file of account limits.")
    ] = None,
) -> None:
    """Run the live runner (Ctrl-C / SIGTERM stop it after the current cycle)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    try:
        opts: dict[str, Any] = {
            "home": resolve_home(home),
            "broker": broker,
            "live": live,
            "cycle_seconds": cycle_seconds,
            "reconcile_every": reconcile_every,
            "stream": stream,
            "health_port": health_port,
            "webhook_url": webhook_url,
            "sim_start": sim_start,
            "sim_speed": sim_speed,
        }
        if account_limits is not None:
            opts["account_limits"] = AccountLimits.model_validate_json(account_limits.read_text())
        config = RunnerConfig(**opts)
        stop_at = _aware(until) if until else None
        runner, health = build_runner(config)
    except (LiveError, ValueError, OSError) as exc:
        _fail(exc)
        return
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    if health is not None:
        typer.echo(f"health: http://127.0.0.1:{health.port}/health")
    try:
        runner.run(
            cycles, lambda: stop["flag"] or (stop_at is not None and runner.clock.now() > stop_at)
        )
    except KeyboardInterrupt:
        typer.echo("stopped")
    finally:
        if health is not None:
            health.close()
    typer.echo(json.dumps(journal_status(runner.j), indent=1, default=str))


def _aware(text: str) -> datetime:
    ts = datetime.fromisoformat(text)
    if ts.tzinfo is None:
        raise ValueError(f"--until {text!r} needs a UTC offset, e.g. 2025-01-02T09:31:00-05:00")
    return ts


def _command(name: str, home: Path | None) -> None:
    path = resolve_home(home) / "live" / "journal.sqlite"
    if not path.exists():
        _fail(FileNotFoundError(f"no journal at {path}; start `alpaca-improved live run` first"))
    journal = Journal(path)
    cid = journal.enqueue_command(name, SystemClock().now())
    journal.close()
    typer.echo(f"{name} queued (command {cid}); the runner applies it at its next cycle")


@app.command()
def halt(home: HomeOpt = None) -> None:
    """Kill switch: HALTED, cancel every open order, block new ones (until `resume`)."""
    _command("halt", home)


@app.command()
def flatten(home: HomeOpt = None) -> None:
    """Emergency liquidation: cancel open orders, close every position, then stay HALTED."""
    _command("flatten", home)


@app.command()
def resume(home: HomeOpt = None) -> None:
    """Clear every halt/reducing reason (after a human looked at why)."""
    _command("resume", home)


@app.command()
def replay(
    start: Annotated[str, typer.Option(help="First session to replay (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option(help="Last session to replay (YYYY-MM-DD).")],
    home: HomeOpt = None,
    deployment: Annotated[
        list[str] | None, typer.Option(help="Deployment to replay (repeatable; default all).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the orders as JSON.")] = False,
) -> None:
    """Replay past sessions through the runner in sim (own journal under live/replays/)."""
    from datetime import date

    from live.replay import replay as run_replay

    logging.basicConfig(level=logging.WARNING)
    try:
        result = run_replay(
            resolve_home(home), date.fromisoformat(start), date.fromisoformat(end),
            deployments=deployment or None,
        )  # fmt: skip
    except (LiveError, ValueError, OSError) as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "home": str(result.home), "start": result.start.isoformat(),
                    "end": result.end.isoformat(), "cycles": result.cycles,
                    "orders": result.orders,
                },
                default=str,
            )
        )  # fmt: skip
        return
    typer.echo(
        f"replayed {result.start}..{result.end} in {result.cycles} cycles: "
        f"{len(result.orders)} orders; journal {result.home / 'live' / 'journal.sqlite'}"
    )
    for o in result.orders:
        typer.echo(
            f"{o['session']} {o['deployment_id']:<24} {o['side']:<4} {o['qty']:>10g} "
            f"{o['symbol']:<8} {o['status']:<10} filled {o['filled_qty']:g}"
        )


@app.command()
def status(home: HomeOpt = None) -> None:
    """Trading state, last cycle, open orders and positions from the journal."""
    path = resolve_home(home) / "live" / "journal.sqlite"
    if not path.exists():
        _fail(FileNotFoundError(f"no journal at {path}"))
    typer.echo(json.dumps(journal_status(Journal(path)), indent=1, default=str))


if __name__ == "__main__":
    app()
