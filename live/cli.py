"""``alpaca-improved live ...``: run the runner, and control it through the halt file and its
journal (:mod:`live.runner.control`). Bad input is one ``error:`` line naming the option, exit 2.

Mount with ``app.add_typer(live.cli.app, name="live")``; also ``python -m live.cli``.
"""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from contracts import paths
from contracts.limits import AccountLimits
from contracts.logs import configure_logging
from live.errors import LiveError
from live.journal.pg import journal_where, open_journal
from live.journal.store import JournalDamaged, is_damage
from live.runner import control as runner_control
from live.runner.build import build_runner, resolve_home
from live.runner.config import RunnerConfig
from live.runner.status import journal_status

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The live runner: approved deployments -> risk engine -> broker.",
)
HomeOpt = Annotated[
    Path | None, typer.Option(help="ALPACA_IMPROVED_HOME (default: env or ./.alpaca_improved).")
]


def _fail(exc: Exception | str) -> None:
    """One line on stderr (``error: ...``), exit 2."""
    text = _one_line(exc) if isinstance(exc, ValidationError) else str(exc)
    typer.secho(f"error: {' '.join(text.split())}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _one_line(exc: ValidationError, prefix: str = "--") -> str:
    """A pydantic error as ``--option 'value': what is wrong`` (options named as on the CLI)."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if not loc:
            parts.append(msg)
        else:
            name = prefix + loc.replace("_", "-") if prefix == "--" else f"{prefix}{loc}"
            parts.append(f"{name} {err.get('input')!r}: {msg}")
    return "; ".join(parts)


def _day(option: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option} {text!r} is not a date; use YYYY-MM-DD") from None


def _aware(option: str, text: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{option} {text!r} is not an ISO time; use e.g. 2025-01-02T09:31:00-05:00"
        ) from None
    if ts.tzinfo is None:
        raise ValueError(f"{option} {text!r} needs a UTC offset, e.g. 2025-01-02T09:31:00-05:00")
    return ts


def _check_run_options(broker: str, live: bool, cycles: int | None) -> None:
    if cycles is not None and cycles < 0:
        raise ValueError(
            f"--cycles {cycles}: must be 0 or more (0 starts, reconciles and stops); "
            "omit it to run until stopped"
        )
    if live and broker == "sim":
        raise ValueError(
            "--broker sim --live contradict each other: the simulated broker never trades "
            "real money; use --broker alpaca --live for live trading, or drop --live"
        )


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
    health_port: Annotated[
        int | None, typer.Option(help="Serve /health and /metrics on this port.")
    ] = None,
    health_host: Annotated[
        str, typer.Option(help="Address of /health and /metrics (0.0.0.0 in a container).")
    ] = "127.0.0.1",
    webhook_url: Annotated[str | None, typer.Option(help="Notification webhook.")] = None,
    account_limits: Annotated[
        Path | None, typer.Option(help="JSON file of account limits.")
    ] = None,
    market_data: Annotated[
        str,
        typer.Option(
            help="lake (daily bars) or stream (plus minute bars: 1m strategies decide on each "
            "bar close, marks and loss limits follow each bar; sim replays the lake's minutes)."
        ),
    ] = "lake",
) -> None:
    """Run the live runner (Ctrl-C / SIGTERM stop it after the current cycle)."""
    try:
        if not logging.getLogger().handlers:  # text, or JSON (ALPACA_IMPROVED_LOG_FORMAT)
            configure_logging(logging.INFO)
        _check_run_options(broker, live, cycles)
        opts: dict[str, Any] = {
            "home": resolve_home(home),
            "broker": broker,
            "live": live,
            "cycle_seconds": cycle_seconds,
            "reconcile_every": reconcile_every,
            "stream": stream,
            "health_port": health_port,
            "health_host": health_host,
            "webhook_url": webhook_url,
            "sim_start": _aware("--sim-start", sim_start) if sim_start else None,
            "sim_speed": sim_speed,
            "market_data": market_data,
        }
        if account_limits is not None:
            opts["account_limits"] = _account_limits(account_limits)
        config = RunnerConfig(**opts)
        stop_at = _aware("--until", until) if until else None
        runner, health = build_runner(config)
    except (LiveError, ValueError, OSError) as exc:  # ValidationError is a ValueError
        _fail(exc)
        return
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    if health is not None:
        typer.echo(f"health: http://{config.health_host}:{health.port}/health")
        typer.echo(f"metrics: http://{config.health_host}:{health.port}/metrics")
    try:
        runner.run(
            cycles, lambda: stop["flag"] or (stop_at is not None and runner.clock.now() > stop_at)
        )
        typer.echo(json.dumps(journal_status(runner.j), indent=1, default=str))
    except KeyboardInterrupt:
        typer.echo("stopped")
    except sqlite3.DatabaseError as exc:  # the journal broke while running
        _fail(JournalDamaged(config.journal_path, str(exc)) if is_damage(exc) else exc)
    except LiveError as exc:
        _fail(exc)
    finally:
        if health is not None:
            health.close()
        if runner.lock is not None:
            runner.lock.release()


def _account_limits(path: Path) -> AccountLimits:
    try:
        return AccountLimits.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise ValueError(f"--account-limits {path}: {_one_line(exc, '')}") from None


def _control(command: Any, home: Path | None) -> None:
    try:
        typer.echo(command(resolve_home(home)))
    except (LiveError, ValueError, OSError) as exc:
        _fail(exc)


@app.command()
def halt(home: HomeOpt = None) -> None:
    """Kill switch: HALTED, cancel every open order, block new ones (until `resume`).

    Writes the halt file ``<home>/live/HALT`` first, so it works even when the journal is
    damaged, then queues the command in the journal."""
    _control(runner_control.halt, home)


@app.command()
def flatten(home: HomeOpt = None) -> None:
    """Emergency liquidation: cancel open orders, close every position, then stay HALTED."""
    _control(runner_control.flatten, home)


@app.command()
def resume(home: HomeOpt = None) -> None:
    """Clear every halt/reducing reason and the halt file (after a human looked at why)."""
    _control(runner_control.resume, home)


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
    from live.replay import replay as run_replay

    logging.basicConfig(level=logging.WARNING)
    try:
        result = run_replay(
            resolve_home(home), _day("--start", start), _day("--end", end),
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
        f"{len(result.orders)} orders; journal {paths.journal_path(result.home)}"
    )
    for o in result.orders:
        typer.echo(
            f"{o['session']} {o['deployment_id']:<24} {o['side']:<4} {o['qty']:>10g} "
            f"{o['symbol']:<8} {o['status']:<10} filled {o['filled_qty']:g}"
        )


@app.command()
def status(home: HomeOpt = None) -> None:
    """Trading state, last cycle, open orders and positions from the journal (read-only:
    opens the journal with ``mode=ro`` and creates nothing), plus whether a runner holds the
    data root now and the halt file."""
    root = resolve_home(home)
    path = paths.journal_path(root)
    try:
        journal = open_journal(root, readonly=True)
    except FileNotFoundError:
        where = journal_where(root)
        _fail(f"no journal at {where}: no runner has run on {root} (`alpaca-improved live run`)")
        return
    except (LiveError, ValueError) as exc:  # ValueError: a bad database URL
        _fail(exc)
        return
    try:
        out = journal_status(journal)
    except sqlite3.DatabaseError as exc:
        _fail(JournalDamaged(path, str(exc)) if is_damage(exc) else exc)
        return
    finally:
        journal.close()
    lock = runner_control.running(root)
    out["runner"] = {"running": lock.held, **(lock.holder or {})}
    out["halt_file"] = runner_control.read_halt(root)
    typer.echo(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    app()
