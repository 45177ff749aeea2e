"""The operator console both bots call: ``/status``, ``/positions``, ``/pnl``, ``/halt``,
``/resume``, ``/flatten``, authorized by platform user id and role, confirmed, and audited.

Who is an operator: a platform user listed in ``TELEGRAM_OPERATOR_IDS`` / ``DISCORD_OPERATOR_IDS``
(comma- or space-separated user ids; the way in before anyone is in the database), or a
subscriber row whose ``role`` is ``operator`` (``alpaca-improved subscribers grant-operator``).
Everyone else is refused: a user we do not know, and a subscriber without the role.

Destructive commands (``/halt``, ``/resume``, ``/flatten``) act in two steps. The first call
returns a :class:`ConsoleReply` with a ``confirm_token`` (random, 128 bits, for the bot's
confirm button) and does nothing. Only a second call with that token, by the *same* user on the
same platform for the same command, within :data:`CONFIRM_TTL_S` seconds, acts; the token is
then spent. A wrong user, a token for another command, an expired, unknown or spent token is
refused. Tokens live in this process's memory (``signals serve`` runs both bots in one process):
a restart forgets pending confirmations, which only means asking again.

The actions are :func:`live.runner.control.halt` / ``resume`` / ``flatten``, the very
functions ``alpaca-improved live halt`` calls: the halt file first, then the journaled command.

Every call (allowed, refused, confirmed or failed) appends one entry to the audit chain
(:mod:`signals.audit`) before the answer is returned; the token itself is never audited.
Answers fit a message (Telegram 4096 characters, Discord 2000) and say when they were cut.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

import live.runner.control as control
from live.errors import LiveError
from signals import console_views as views
from signals.audit import AuditLog
from signals.db import subscribers
from signals.interfaces import ConsoleReply
from signals.model import Channel, Role

OPERATOR_ENV = {Channel.TELEGRAM: "TELEGRAM_OPERATOR_IDS", Channel.DISCORD: "DISCORD_OPERATOR_IDS"}
MAX_CHARS = 4096  # Telegram's message limit
LIMITS = {Channel.TELEGRAM.value: MAX_CHARS, Channel.DISCORD.value: 2000}  # Discord: content
CONFIRM_TTL_S = 60.0
FULL = "full: alpaca-improved live status"
READ_COMMANDS: dict[str, Callable[[Path], views.View]] = {
    "status": views.status,
    "positions": views.positions,
    "pnl": views.pnl,
}
ACTIONS: dict[str, Callable[[Path], str]] = {
    "halt": control.halt,
    "resume": control.resume,
    "flatten": control.flatten,
}
WHAT = {
    "halt": "HALT trading: cancel every open order and block new ones until /resume",
    "resume": "RESUME trading: clear every halt reason and the halt file",
    "flatten": "FLATTEN: cancel open orders and close every position, then stay HALTED",
}
COMMANDS = (*READ_COMMANDS, *ACTIONS)


@dataclass(frozen=True, slots=True)
class _Pending:
    platform: str
    user_id: str
    command: str
    expires_at: datetime


def normalize(command: str) -> str:
    """``/Halt@my_bot`` -> ``halt`` (Telegram appends the bot's name in groups)."""
    return command.strip().lstrip("/").split("@", 1)[0].strip().lower()


def fit(text: str, limit: int = MAX_CHARS) -> str:
    """``text`` cut to whole lines within ``limit`` characters, saying so when cut."""
    if len(text) <= limit:
        return text
    lines = text.splitlines()
    kept: list[str] = []
    size = 0  # characters of the kept lines, a newline after each
    for k, line in enumerate(lines):
        note = f"… truncated: {len(lines) - k} more lines ({FULL})"
        if size + len(line) + 1 + len(note) > limit:
            if not kept:  # one huge first line: show its start
                kept.append(line[: max(limit - len(note) - 1, 0)])
            return "\n".join([*kept, note])[:limit]
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)[:limit]  # only reached for text longer by its line endings alone


class OperatorConsole:
    """The :class:`signals.interfaces.Console` of one data root.

    Args:
        home: The data root the live runner uses (``ALPACA_IMPROVED_HOME``).
        engine: The signals engine (roles, the audit chain).
        audit: The audit log (default: the chain in ``engine``, anchored under ``home``).
        environ: Where the operator allow-lists come from (default: the process's).
        clock: The time now (tests inject one to expire a token).
        confirm_ttl_s: How long a confirmation token is good for.
    """

    def __init__(
        self,
        home: Path,
        engine: Engine,
        audit: AuditLog | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
        confirm_ttl_s: float = CONFIRM_TTL_S,
    ) -> None:
        self.home = home
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))
        self.audit = audit or AuditLog(engine, home, clock=self.clock, environ=environ)
        self.ttl = timedelta(seconds=confirm_ttl_s)
        self.allow = {
            p: _ids((os.environ if environ is None else environ).get(var, ""))
            for p, var in OPERATOR_ENV.items()
        }
        self._pending: dict[str, _Pending] = {}  # sha256(token) -> what it confirms
        self._guard = threading.Lock()

    # -- authorization -----------------------------------------------------------------------
    def role_of(self, platform: str, user_id: str) -> Role | None:
        """The user's role: operator by allow-list or by the subscriber row; None if unknown."""
        user_id = str(user_id).strip()
        if user_id in self.allow.get(Channel(platform), frozenset()):
            return Role.OPERATOR
        if platform == Channel.TELEGRAM:
            if not user_id.lstrip("-").isdigit():
                return None
            where = subscribers.c.telegram_user_id == int(user_id)
        else:
            where = subscribers.c.discord_user_id == user_id
        with self.engine.connect() as conn:
            role = conn.execute(sa.select(subscribers.c.role).where(where)).scalar()
        if role is None:
            return None
        return Role.OPERATOR if role == Role.OPERATOR else Role.SUBSCRIBER

    # -- the one entry point -------------------------------------------------------------------
    def handle(
        self,
        platform: str,
        user_id: str,
        command: str,
        args: str = "",
        confirm_token: str | None = None,
    ) -> ConsoleReply:
        """Authorize, run or stage the command, audit, answer (module docstring)."""
        platform = Channel(platform).value
        user_id = str(user_id)
        name = normalize(command)
        shown = f"/{name}" if name in COMMANDS else command.strip() or "(empty)"  # redacted, cut
        reply, outcome = self._decide(platform, user_id, name, confirm_token)
        self.audit.append(platform, user_id, shown, args, reply.allowed, outcome)
        return replace(reply, text=fit(reply.text, LIMITS[platform]))

    def _decide(
        self, platform: str, user_id: str, name: str, token: str | None
    ) -> tuple[ConsoleReply, str]:
        role = self.role_of(platform, user_id)
        if role is None:
            return _refuse(
                f"refused: {platform} user {user_id} is not known here (not an operator)"
            )
        if role is not Role.OPERATOR:
            return _refuse(f"refused: {platform} user {user_id} is a subscriber, not an operator")
        if name not in COMMANDS:
            cmds = " ".join(f"/{c}" for c in COMMANDS)
            return _refuse(f"refused: unknown command; the console knows {cmds}")  # not echoed
        if name in READ_COMMANDS:
            return self._read(name)
        if token is None:
            return self._stage(platform, user_id, name)
        problem = self._spend(platform, user_id, name, token)
        if problem is not None:
            return _refuse(f"refused: /{name} not done: {problem}")
        return self._act(name)

    def _read(self, name: str) -> tuple[ConsoleReply, str]:
        try:
            view = READ_COMMANDS[name](self.home)
        except (LiveError, OSError, ValueError, sqlite3.DatabaseError) as exc:
            text = f"/{name} failed: {' '.join(str(exc).split())}"
            return ConsoleReply(text), text
        return ConsoleReply("\n".join(view.lines), data=view.data), f"answered: {view.lines[0]}"

    def _act(self, name: str) -> tuple[ConsoleReply, str]:
        try:
            result = ACTIONS[name](self.home)
        except (LiveError, OSError, ValueError) as exc:
            text = f"/{name} failed: {' '.join(str(exc).split())}"
            return ConsoleReply(text), text
        return ConsoleReply(f"/{name} done: {result}"), f"confirmed and done: {result}"

    # -- confirmation tokens -------------------------------------------------------------------
    def _stage(self, platform: str, user_id: str, name: str) -> tuple[ConsoleReply, str]:
        token = secrets.token_urlsafe(16)
        now = self.clock()
        with self._guard:
            self._pending = {k: p for k, p in self._pending.items() if p.expires_at > now}
            self._pending[_digest(token)] = _Pending(platform, user_id, name, now + self.ttl)
        secs = int(self.ttl.total_seconds())
        text = f"Confirm within {secs} s: {WHAT[name]}. Only you can confirm; the token works once."
        return ConsoleReply(text, confirm_token=token), f"confirmation requested ({secs} s)"

    def _spend(self, platform: str, user_id: str, name: str, token: str) -> str | None:
        """Why ``token`` cannot confirm this call (None: it can, and is now spent)."""
        key = _digest(token)
        now = self.clock()
        with self._guard:
            pending = self._pending.get(key)
            if pending is None:
                return "the confirmation is unknown or was already used; send the command again"
            if pending.expires_at <= now:
                del self._pending[key]
                return "the confirmation expired; send the command again"
            if (pending.platform, pending.user_id) != (platform, user_id):
                return "the confirmation belongs to another user"  # kept for its owner
            if pending.command != name:
                return f"the confirmation was for /{pending.command}"
            del self._pending[key]
        return None


def _refuse(text: str) -> tuple[ConsoleReply, str]:
    return ConsoleReply(text, allowed=False), text


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _ids(text: str) -> frozenset[str]:
    return frozenset(t for t in text.replace(",", " ").split() if t)
