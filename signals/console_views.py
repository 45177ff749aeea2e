"""What the operator console's read commands show: ``/status``, ``/positions``, ``/pnl``.

Everything is read-only: the runner's journal is opened with ``readonly=True`` (no file, no
``-wal``, no schema is created, every write fails) and summarized by the same
:func:`live.runner.status.journal_status` that ``alpaca-improved live status`` prints; whether a
runner holds the data root comes from :func:`live.runner.control.running` (a probe, it takes
nothing); the halt file from :func:`live.runner.control.read_halt`.

P&L per deployment is folded from the journal's fills through the accounting every book uses
(:class:`strategies.accounting.Account`): realized P&L exactly, unrealized marked at each
symbol's last fill price (the journal keeps no quotes). When the lake holds ``live_pnl`` (the
monitoring asset's daily P&L marked to the lake's closes), its last session is shown beside it.

Each view returns its text and the raw data (:class:`View`); the console fits the text to a
message.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

import live.runner.control as control
from contracts import lake as layout
from contracts import paths
from contracts.lake_store import LAKE_URI_ENV
from live.errors import LiveError
from live.journal.orders import all_fills
from live.journal.pg import journal_where, open_journal
from live.journal.store import Journal, JournalDamaged, is_damage
from live.runner.status import journal_status
from strategies.accounting import Account, Holding


@dataclass(frozen=True, slots=True)
class View:
    """A read command's answer: lines of text and the data behind them."""

    lines: list[str]
    data: dict[str, Any] = field(default_factory=dict)


class NoJournal(LiveError):
    """No journal to read (no runner has run on this data root)."""


def _read(home: Path, fn: Any) -> Any:
    """``fn(journal)`` on the runner's journal opened read-only; one-line errors."""
    try:
        journal = open_journal(home, readonly=True)
    except FileNotFoundError:
        raise NoJournal(
            f"no journal at {journal_where(home)}: no runner has run on {home}"
        ) from None
    try:
        return fn(journal)
    except sqlite3.DatabaseError as exc:
        raise (JournalDamaged(journal.path, str(exc)) if is_damage(exc) else exc) from None
    finally:
        journal.close()


def _num(x: Any) -> str:
    return f"{x:,.2f}" if isinstance(x, float) else str(x)


def status(home: Path) -> View:
    """State and why, the runner and the halt file, last cycle, orders, deployments, limits."""
    out = _read(home, journal_status)
    lock = control.running(home)
    halt = control.read_halt(home)
    out["runner"] = {"running": lock.held, **(lock.holder or {})}
    out["halt_file"] = halt
    lines = [f"State: {out['state']}"]
    since = out.get("risk_since") or {}
    for scope, keys in sorted((out.get("reasons") or {}).items()):
        for key, state in sorted(keys.items()):
            at = (since.get(scope, {}).get(key) or {}).get("at", "?")
            detail = (out.get("reason_details") or {}).get(key, "")
            where = scope or "account"
            lines.append(
                f"  {state} {key} ({where}) since {at}" + (f": {detail}" if detail else "")
            )
    if lock.held:
        lines.append(f"Runner: running ({lock.describe()})")
    else:
        lines.append(f"Runner: not running ({control.heartbeat(home)})")
    if halt is not None:
        lines.append(
            f"Halt file: present ({halt.get('reason', 'unreadable')}, "
            f"{halt.get('created_at', '?')})"
        )
    cycle = out.get("last_cycle")
    if cycle:
        lines.append(
            f"Last cycle: #{cycle['seq']} {cycle.get('finished_at') or cycle['started_at']} "
            f"{cycle['state']}" + (f" error: {cycle['error']}" if cycle.get("error") else "")
        )
    by_status = ", ".join(f"{k} {v}" for k, v in sorted(out["orders_by_status"].items()))
    lines.append(
        f"Orders: {len(out['open_orders'])} open; {by_status or 'none'}; fills {out['fills']}"
    )
    lines.append(f"Deployments ({len(out['deployments'])}):")
    for d in out["deployments"]:
        limits = out["limits"].get(d["id"]) or {}
        shown = ", ".join(
            f"{k}={_num(v)}" for k, v in limits.items() if not isinstance(v, dict) and v is not None
        )
        active = "active" if d["active"] else "inactive"
        lines.append(
            f"  {d['id']} {d['strategy']} ({d['manifest_id']}, {active}) limits: {shown or 'none'}"
        )
    for c in out["commands"]:
        done = f"done {c['processed_at']}: {c['result']}" if c.get("processed_at") else "pending"
        lines.append(f"Command #{c['id']} {c['command']} at {c['created_at']} {done}")
    return View(lines, out)


def positions(home: Path) -> View:
    """The journal's positions, per deployment."""
    rows = _read(home, lambda j: [dict(r) for r in j.rows(
        "SELECT deployment_id, symbol, qty, avg_price, asset_class, updated_at FROM positions "
        "ORDER BY deployment_id, symbol")])  # fmt: skip
    if not rows:
        return View(["Positions: none"], {"positions": []})
    lines = [f"Positions ({len(rows)}):"]
    for r in rows:
        lines.append(f"  {r['deployment_id']} {r['symbol']} {r['qty']:g} @ {r['avg_price']:,.4f}")
    return View(lines, {"positions": rows})


def journal_pnl(j: Journal) -> dict[str, dict[str, float]]:
    """Deployment -> realized, unrealized (at the last fill price) and fees, from the fills."""
    accounts: dict[str, Account] = {}
    last_price: dict[str, float] = {}
    for f in all_fills(j):
        account = accounts.setdefault(f.deployment_id, Account())
        held = account.holdings.get(f.symbol) or Holding.of(f.symbol, f.asset_class)
        account.trade(held, f.qty, f.price)
        last_price[f.symbol] = f.price
    out = {}
    for dep, account in sorted(accounts.items()):
        for symbol in account.holdings:
            account.mark(symbol, last_price[symbol])
        st = account.statement()
        out[dep] = {"realized": st.realized_pnl, "unrealized": st.unrealized_pnl}
    return out


def lake_pnl(home: Path) -> tuple[str, dict[str, dict[str, float]]] | None:
    """The lake's ``live_pnl`` at its last session (None when absent or on a remote lake)."""
    if os.environ.get(LAKE_URI_ENV, "").strip():
        return None  # the lake is in a bucket: not dialled from a chat command
    lake = paths.lake_dir(home)
    try:
        sessions = layout.partition_values(lake, "live_pnl")
        if not sessions:
            return None
        frame = pl.read_parquet(layout.partition_path(lake, "live_pnl", sessions[-1]))
    except (OSError, layout.LakeLayoutError, pl.exceptions.PolarsError):
        return None
    rows = {
        r["deployment_id"]: {"realized": r["realized_pnl"], "unrealized": r["unrealized_pnl"],
                             "pnl": r["pnl"]}
        for r in frame.iter_rows(named=True)
    }  # fmt: skip
    return sessions[-1], rows


def pnl(home: Path) -> View:
    """Realized and unrealized P&L per deployment (journal), and the lake's last ``live_pnl``."""
    by_dep = _read(home, journal_pnl)
    lines = ["P&L from the journal's fills (unrealized at the last fill price):"]
    for dep, v in by_dep.items():
        lines.append(f"  {dep}: realized {v['realized']:,.2f} unrealized {v['unrealized']:,.2f}")
    if not by_dep:
        lines.append("  no fills yet")
    data: dict[str, Any] = {"journal": by_dep}
    lake = lake_pnl(home)
    if lake is not None:
        session, rows = lake
        lines.append(f"Lake live_pnl at the close of {session} (marked to the lake's closes):")
        for dep, v in sorted(rows.items()):
            lines.append(
                f"  {dep}: day {v['pnl']:,.2f} realized {v['realized']:,.2f} "
                f"unrealized {v['unrealized']:,.2f}"
            )
        data["lake"] = {"session": session, "rows": rows}
    return View(lines, data)
