"""``alpaca-improved subscribers ...`` and ``alpaca-improved audit ...``: who the subscribers and
operators are, and whether the operator console's audit chain is intact.

- ``subscribers list | show ID | add | grant-operator | revoke-operator``: the ``subscribers``
  table with each subscription's status, entitlement and grace period
  (:mod:`signals.entitlements`). Role changes are themselves audited (platform ``cli``, the OS
  user).
- ``audit verify``: exit 0 with ``audit chain OK: N entries``, or exit 1 naming the first bad
  seq and why (:func:`signals.audit.verify`, the anchor file included). ``audit tail [-n N]``.
- ``outbox status | dead | requeue``: rows per delivery status, the dead letters with their
  reasons, and the dead-letter runbook's last step (:func:`signals.outbox.requeue_dead`), which
  is audited like a role change.

Bad input is one ``error:`` line naming the option, exit 2. The pipelines' CLI execs this
module (``python -m signals.cli``) for ``alpaca-improved signals|subscribers|audit``: no Dagster
here. ``serve`` runs the service (:mod:`signals.service`); ``demo`` the offline demo
(:mod:`signals.demo`).
"""

from __future__ import annotations

import getpass
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import sqlalchemy as sa
import typer
from sqlalchemy.engine import Engine

from contracts import paths
from signals import outbox as outbox_rows
from signals.audit import AuditLog, verify
from signals.db import access, make_engine, outbox, subscribers, subscriptions
from signals.db import plans as plans_table
from signals.entitlements import grace_until, is_entitled, plan_from_json
from signals.errors import SignalsError
from signals.model import Role

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Signals to subscribers: subscribers and operators, and the console's audit chain.",
)
subscribers_app = typer.Typer(no_args_is_help=True, help="Subscribers and operator roles.")
audit_app = typer.Typer(no_args_is_help=True, help="The operator console's hash-chained audit log.")
outbox_app = typer.Typer(no_args_is_help=True, help="The delivery outbox: status, dead letters.")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(audit_app, name="audit")
app.add_typer(outbox_app, name="outbox")

HomeOpt = Annotated[
    Path | None, typer.Option(help="ALPACA_IMPROVED_HOME (default: env or ./.alpaca_improved).")
]
TelegramOpt = Annotated[int | None, typer.Option(help="The subscriber's Telegram user id.")]
DiscordOpt = Annotated[str | None, typer.Option(help="The subscriber's Discord user id.")]


def resolve_home(home: Path | None) -> Path:
    """``--home``, else ``ALPACA_IMPROVED_HOME``, else ``./.alpaca_improved``, absolute."""
    return Path(home or paths.home_from_env()).resolve()


def _fail(text: str, code: int = 2) -> NoReturn:
    typer.secho(f"error: {' '.join(str(text).split())}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _engine(home: Path | None) -> tuple[Path, Engine]:
    root = resolve_home(home)
    try:
        return root, make_engine(root)
    except (SignalsError, ValueError, OSError) as exc:
        _fail(str(exc))


def _fmt(ts: datetime | None) -> str:
    if ts is None:
        return "-"
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%d %H:%M")


def _rows(engine: Engine, where: Any = None) -> list[dict[str, Any]]:
    """One row per (subscriber, subscription); a subscriber without one gets one row too."""
    now = datetime.now(UTC)
    q = (
        sa.select(
            subscribers,
            subscriptions.c.plan_id,
            subscriptions.c.status,
            subscriptions.c.past_due_since,
            subscriptions.c.current_period_end,
            plans_table.c.plan_json,
        )  # fmt: skip
        .outerjoin(subscriptions, subscriptions.c.subscriber_id == subscribers.c.subscriber_id)
        .outerjoin(plans_table, plans_table.c.plan_id == subscriptions.c.plan_id)
        .order_by(subscribers.c.subscriber_id, subscriptions.c.plan_id)
    )
    if where is not None:
        q = q.where(where)
    out = []
    with engine.connect() as conn:
        for r in conn.execute(q):
            m = dict(r._mapping)
            grace_days = plan_from_json(m["plan_json"]).grace_days if m["plan_json"] else 0
            if m["status"] is not None:
                m["entitled"] = is_entitled(m["status"], m["past_due_since"], grace_days, now)
                m["grace_until"] = grace_until(m["status"], m["past_due_since"], grace_days)
            out.append(m)
    return out


@subscribers_app.command("list")
def list_subscribers(home: HomeOpt = None) -> None:
    """Every subscriber: platform ids, role, plans, status, entitled, grace period end."""
    _, engine = _engine(home)
    rows = _rows(engine)
    header = (
        f"{'ID':<20} {'TELEGRAM':>12} {'DISCORD':>20} {'ROLE':<10} {'PLAN':<20} {'STATUS':<10} "
        f"{'ENTITLED':<8} GRACE UNTIL"
    )
    typer.echo(header)
    for m in rows:
        entitled = "-" if m["status"] is None else ("yes" if m["entitled"] else "no")
        typer.echo(
            f"{m['subscriber_id']:<20} {m['telegram_user_id'] or '-':>12} "
            f"{m['discord_user_id'] or '-':>20} {m['role']:<10} {m['plan_id'] or '-':<20} "
            f"{m['status'] or '-':<10} {entitled:<8} {_fmt(m.get('grace_until'))}"
        )
    typer.echo(f"{len({m['subscriber_id'] for m in rows})} subscribers")


@subscribers_app.command("show")
def show(
    subscriber_id: Annotated[str, typer.Argument(help="The subscriber id.")], home: HomeOpt = None
) -> None:
    """One subscriber: ids, role, every subscription and the access actually granted."""
    _, engine = _engine(home)
    rows = _rows(engine, subscribers.c.subscriber_id == subscriber_id)
    if not rows:
        _fail(f"no subscriber {subscriber_id!r}; `alpaca-improved subscribers list` shows them")
    m = rows[0]
    typer.echo(f"subscriber {m['subscriber_id']} (role {m['role']}, since {_fmt(m['created_at'])})")
    typer.echo(
        f"  telegram user {m['telegram_user_id'] or '-'} chat {m['telegram_chat_id'] or '-'}"
    )
    typer.echo(f"  discord user {m['discord_user_id'] or '-'}")
    for r in rows:
        if r["status"] is not None:
            typer.echo(
                f"  plan {r['plan_id']}: {r['status']}, "
                f"entitled {'yes' if r['entitled'] else 'no'}, "
                f"period end {_fmt(r['current_period_end'])}, grace until {_fmt(r['grace_until'])}"
            )
    with engine.connect() as conn:
        for a in conn.execute(sa.select(access).where(access.c.subscriber_id == subscriber_id)):
            typer.echo(
                f"  access {a.plan_id} on {a.platform}: {a.state} (updated {_fmt(a.updated_at)})"
            )


@subscribers_app.command("add")
def add(
    telegram_user_id: TelegramOpt = None,
    discord_user_id: DiscordOpt = None,
    role: Annotated[str, typer.Option(help="subscriber or operator.")] = Role.SUBSCRIBER.value,
    home: HomeOpt = None,
) -> None:
    """Add a subscriber (or an operator) by platform user id; prints the new subscriber id."""
    if telegram_user_id is None and discord_user_id is None:
        _fail("give --telegram-user-id or --discord-user-id (or both)")
    if role not in {r.value for r in Role}:
        _fail(f"--role {role!r} is not a role; use subscriber or operator")
    _, engine = _engine(home)
    existing = _find(engine, telegram_user_id, discord_user_id)
    if existing is not None:
        _fail(
            f"that platform user is already subscriber {existing}; "
            "use grant-operator to change its role"
        )
    sid = f"sub_{secrets.token_hex(6)}"
    with engine.begin() as conn:
        conn.execute(
            sa.insert(subscribers).values(
                subscriber_id=sid, created_at=datetime.now(UTC), role=role,
                telegram_user_id=telegram_user_id, discord_user_id=discord_user_id,
            )
        )  # fmt: skip
    if role == Role.OPERATOR:
        _audit_cli(engine, home, "subscribers add", f"{sid} role operator")
    typer.echo(f"added subscriber {sid} (role {role})")


def _find(engine: Engine, telegram_user_id: int | None, discord_user_id: str | None) -> str | None:
    conds = []
    if telegram_user_id is not None:
        conds.append(subscribers.c.telegram_user_id == telegram_user_id)
    if discord_user_id is not None:
        conds.append(subscribers.c.discord_user_id == discord_user_id)
    with engine.connect() as conn:
        return conn.execute(sa.select(subscribers.c.subscriber_id).where(sa.or_(*conds))).scalar()


def _set_role(
    role: Role, subscriber_id: str | None, telegram_user_id: int | None,
    discord_user_id: str | None, home: Path | None,
) -> None:  # fmt: skip
    given = [x for x in (subscriber_id, telegram_user_id, discord_user_id) if x is not None]
    if len(given) != 1:
        _fail("name the subscriber once: its ID, or --telegram-user-id, or --discord-user-id")
    _, engine = _engine(home)
    sid = subscriber_id or _find(engine, telegram_user_id, discord_user_id)
    with engine.begin() as conn:
        n = conn.execute(
            sa.update(subscribers).where(subscribers.c.subscriber_id == sid).values(role=role.value)
        ).rowcount
    if not n:
        _fail(f"no such subscriber ({given[0]}); `alpaca-improved subscribers list` shows them")
    verb = "grant-operator" if role is Role.OPERATOR else "revoke-operator"
    _audit_cli(engine, home, f"subscribers {verb}", str(sid))
    typer.echo(f"subscriber {sid} is now {role.value}")


SubjectArg = Annotated[str | None, typer.Argument(help="The subscriber id.")]


@subscribers_app.command("grant-operator")
def grant_operator(
    subscriber_id: SubjectArg = None, telegram_user_id: TelegramOpt = None,
    discord_user_id: DiscordOpt = None, home: HomeOpt = None,
) -> None:  # fmt: skip
    """Make a subscriber an operator (may use the console; the change is audited)."""
    _set_role(Role.OPERATOR, subscriber_id, telegram_user_id, discord_user_id, home)


@subscribers_app.command("revoke-operator")
def revoke_operator(
    subscriber_id: SubjectArg = None, telegram_user_id: TelegramOpt = None,
    discord_user_id: DiscordOpt = None, home: HomeOpt = None,
) -> None:  # fmt: skip
    """Make an operator a plain subscriber again (the change is audited)."""
    _set_role(Role.SUBSCRIBER, subscriber_id, telegram_user_id, discord_user_id, home)


def _audit_cli(engine: Engine, home: Path | None, command: str, args: str) -> None:
    AuditLog(engine, resolve_home(home)).append(
        "cli", getpass.getuser(), command, args, True, "done"
    )


@audit_app.command("verify")
def audit_verify(home: HomeOpt = None) -> None:
    """Verify the audit chain (and its anchor file): exit 0 if intact, 1 naming the first bad
    entry."""
    root, engine = _engine(home)
    result = verify(engine, root)
    if result.ok:
        typer.echo(f"audit chain OK: {result.n_entries} entries")
        return
    typer.secho(
        f"audit chain BROKEN at seq {result.first_bad_seq}: {result.reason} "
        f"({result.n_entries} entries verified before it)",
        fg=typer.colors.RED,
        err=True,
    )
    raise typer.Exit(1)


@audit_app.command("tail")
def audit_tail(
    n: Annotated[int, typer.Option("-n", "--lines", help="How many entries.")] = 20,
    home: HomeOpt = None,
) -> None:
    """The last entries of the audit chain, oldest first."""
    if n < 1:
        _fail(f"-n {n}: must be 1 or more")
    root, engine = _engine(home)
    for e in AuditLog(engine, root).tail(n):
        verdict = "allowed" if e.allowed else "REFUSED"
        args = f" {e.args}" if e.args else ""
        typer.echo(
            f"#{e.seq} {e.ts.isoformat(timespec='seconds')} {e.platform}:{e.user_id} "
            f"{e.command}{args} {verdict}: {e.outcome} [{e.hash[:12]}]"
        )


@outbox_app.command("status")
def outbox_status(home: HomeOpt = None) -> None:
    """Outbox rows per delivery status (pending, sending, sent, dead, skipped)."""
    _, engine = _engine(home)
    with engine.connect() as conn:
        by_status = outbox_rows.counts(conn)
    if not by_status:
        typer.echo("outbox is empty")
    for status, n in sorted(by_status.items()):
        typer.echo(f"{status:<10} {n}")


@outbox_app.command("dead")
def outbox_dead(
    n: Annotated[int, typer.Option("-n", "--lines", help="How many, newest first.")] = 50,
    home: HomeOpt = None,
) -> None:
    """The dead letters, newest first: id, channel, target, attempts and the reason."""
    if n < 1:
        _fail(f"-n {n}: must be 1 or more")
    _, engine = _engine(home)
    q = (
        sa.select(
            outbox.c.id,
            outbox.c.channel,
            outbox.c.target,
            outbox.c.event_id,
            outbox.c.attempts,
            outbox.c.last_error,
        )  # fmt: skip
        .where(outbox.c.status == outbox_rows.DEAD)
        .order_by(outbox.c.id.desc())
        .limit(n)
    )
    with engine.connect() as conn:
        rows = list(conn.execute(q))
    if not rows:
        typer.echo("no dead letters")
    for r in rows:
        typer.echo(
            f"#{r.id} {r.channel}:{r.target} {r.event_id} attempts={r.attempts} {r.last_error}"
        )


@outbox_app.command("requeue")
def outbox_requeue(
    ids: Annotated[
        list[int] | None, typer.Option("--id", help="A dead row's id (repeat for several).")
    ] = None,
    reason_like: Annotated[
        str, typer.Option(help="Only rows whose last error contains this text.")
    ] = "",
    all_dead: Annotated[
        bool, typer.Option("--all", help="Every dead row (or every one matching --reason-like).")
    ] = False,
    home: HomeOpt = None,
) -> None:
    """Put dead letters back to pending (attempts reset, due now, never before the tier's
    delay). Name rows with --id, or pass --all; blocked chats stay blocked."""
    if not ids and not all_dead:
        _fail("name the rows with --id N (repeatable) or pass --all (with --reason-like to filter)")
    if ids and all_dead:
        _fail("--id and --all exclude each other")
    if ids and any(i < 1 for i in ids):
        _fail(f"--id {min(ids)}: outbox ids are 1 or more")
    _, engine = _engine(home)
    with engine.begin() as conn:
        n = outbox_rows.requeue_dead(
            conn, datetime.now(UTC), ids=ids or None, reason_like=reason_like
        )
    args = " ".join([*(f"--id {i}" for i in ids or ()), *(["--all"] if all_dead else [])])
    if reason_like:
        args += f" --reason-like {reason_like!r}"
    _audit_cli(engine, home, "outbox requeue", args.strip())
    typer.echo(f"requeued {n} dead letter{'s' if n != 1 else ''}")


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="HTTP port: bots' endpoints, dashboard.")] = 8082,
    reconcile_s: Annotated[
        float, typer.Option(help="Seconds between full access reconciliations.")
    ] = 300.0,
    home: HomeOpt = None,
) -> None:
    """Run the signals service: journal tailer, outbox dispatcher, Telegram and Discord bots,
    payments webhooks, access reconciler, dashboard (/dashboard/) and /health."""
    from signals.service import ServiceOptions, serve

    if not 0 < port < 65536:
        _fail(f"--port {port}: must be 1-65535")
    if reconcile_s <= 0:
        _fail(f"--reconcile-s {reconcile_s}: must be > 0")
    try:
        serve(resolve_home(home), ServiceOptions(host=host, port=port, reconcile_s=reconcile_s))
    except SignalsError as exc:
        _fail(str(exc))


@app.command("demo")
def demo_command(home: HomeOpt = None) -> None:
    """Signals to demo subscribers of two tiers through the local bot fakes and the local
    payment provider, from this data root's live journal (``make demo`` runs it)."""
    from signals.demo import main

    root = resolve_home(home)
    if not (root / "live").exists():
        _fail(f"{root} has no live runner data; run `alpaca-improved demo` (or `live run`) first")
    try:
        main(root)
    except (SignalsError, TimeoutError) as exc:
        _fail(str(exc), code=1)


if __name__ == "__main__":
    app()
